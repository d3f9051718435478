"""Which adapter speaks for which provider family."""

from __future__ import annotations

from processors.providers.base import Adapter
from processors.providers.openai import OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
}


def adapter_for(family: str) -> Adapter:
    try:
        return ADAPTERS[family]
    except KeyError:
        raise ValueError(f"no adapter for provider family {family!r}") from None
