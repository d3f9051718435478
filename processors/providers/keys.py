"""API keys: read from the environment or a secrets file, handed to adapters, never shown.

`KeyRing.from_sources(names, env, secrets_file)` loads the variables the
catalog's models name (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...). The
environment wins; a name it lacks is looked up in the secrets file, whose path
is `secrets_file` or the `TIERLINE_SECRETS_FILE` variable. The file is TOML
(`OPENAI_API_KEY = "sk-..."`, top level or under a `[keys]` table) or
env-style lines (`OPENAI_API_KEY=sk-...`, optionally `export `-prefixed and
quoted; `#` starts a comment). A file readable by group or others is still
read, with a warning in `KeyRing.warnings`.

A key never appears in anything this module produces: not in `repr()`, not in
`describe()`, not in the errors a bad secrets file raises (they name the file
and the line, never its content). `KeyRing.redact` scrubs every known key from
a text, and is applied to every error message before it leaves the process
(responses, DLQ headers, logs). A model whose key is missing is skipped by the
dispatcher, not called (`missing()` lists those names for one startup warning).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

REDACTED = "[REDACTED]"
SECRETS_FILE_ENV = "TIERLINE_SECRETS_FILE"


class SecretsFileError(ValueError):
    """The secrets file cannot be read; the message names the file and line, never a value."""


class KeyRing:
    def __init__(self, keys: Mapping[str, str], *, fallback: str | None = None) -> None:
        self._keys = {name: value for name, value in keys.items() if value}
        self._fallback = fallback
        self._sources: dict[str, str] = {name: "given" for name in self._keys}
        self.warnings: list[str] = []

    @classmethod
    def from_environment(
        cls, names: list[str], *, fallback: str | None = None, env: Mapping[str, str] | None = None
    ) -> KeyRing:
        source = os.environ if env is None else env
        return cls({n: source.get(n, "") for n in names}, fallback=fallback)

    @classmethod
    def from_sources(
        cls,
        names: Iterable[str],
        env: Mapping[str, str] | None = None,
        secrets_file: str | Path | None = None,
        *,
        fallback: str | None = None,
    ) -> KeyRing:
        """Keys `names` from `env` (default: the process environment), then the secrets file."""
        env = os.environ if env is None else env
        wanted = sorted({n for n in names if n})
        path = secrets_file if secrets_file is not None else env.get(SECRETS_FILE_ENV) or None
        from_file = read_secrets_file(Path(path)) if path else {}
        keys: dict[str, str] = {}
        sources: dict[str, str] = {}
        for name in wanted:
            if env.get(name):
                keys[name], sources[name] = env[name], "environment"
            elif from_file.get(name):
                keys[name], sources[name] = from_file[name], "secrets file"
        ring = cls(keys, fallback=fallback)
        ring._sources = sources
        if path:
            ring.warnings.extend(_permission_warnings(Path(path)))
        return ring

    def get(self, name: str) -> str | None:
        """The key in variable `name`; the fallback (the simulator's) when unset."""
        return self._keys.get(name, self._fallback)

    def missing(self, names: Iterable[str]) -> list[str]:
        return sorted({n for n in names if n and n not in self._keys})

    def describe(self) -> dict[str, str]:
        """Where each key came from ("environment", "secrets file"), for a startup line."""
        return dict(sorted(self._sources.items()))

    def redact(self, text: str) -> str:
        for value in self._keys.values():
            if len(value) >= 8 and value in text:
                text = text.replace(value, REDACTED)
        return text

    def __repr__(self) -> str:
        names = ", ".join(sorted(self._keys)) or "no keys"
        return f"KeyRing({names}{', with fallback' if self._fallback else ''})"


def read_secrets_file(path: Path) -> dict[str, str]:
    """NAME -> value from a TOML or env-style secrets file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretsFileError(f"cannot read secrets file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return _env_style(text, path)
    keys = data.get("keys")
    table: dict[str, object] = keys if isinstance(keys, dict) else data
    return {str(k): v for k, v in table.items() if isinstance(v, str)}


def _env_style(text: str, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            raise SecretsFileError(f"{path}, line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[name] = value
    return out


def _permission_warnings(path: Path) -> list[str]:
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"secrets file {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it"]
    return []
