"""API keys: read from the environment, handed to adapters, never shown.

`KeyRing.redact` scrubs every known key from a text, and is applied to every
error message before it leaves the process (responses, DLQ headers, logs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

REDACTED = "[REDACTED]"


class KeyRing:
    def __init__(self, keys: Mapping[str, str], *, fallback: str | None = None) -> None:
        self._keys = {name: value for name, value in keys.items() if value}
        self._fallback = fallback

    @classmethod
    def from_environment(
        cls, names: list[str], *, fallback: str | None = None, env: Mapping[str, str] | None = None
    ) -> KeyRing:
        source = os.environ if env is None else env
        return cls({n: source.get(n, "") for n in names}, fallback=fallback)

    def get(self, name: str) -> str | None:
        """The key in variable `name`; the fallback (the simulator's) when unset."""
        return self._keys.get(name, self._fallback)

    def missing(self, names: list[str]) -> list[str]:
        return sorted({n for n in names if n not in self._keys})

    def redact(self, text: str) -> str:
        for value in self._keys.values():
            if len(value) >= 8 and value in text:
                text = text.replace(value, REDACTED)
        return text
