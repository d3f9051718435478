"""Which adapter speaks for which provider family.

Three wire formats: OpenAI Chat Completions (OpenAI itself and every member of
the OpenAI-compatible family, each with its `Dialect`), Anthropic Messages and
Gemini generateContent.
"""

from __future__ import annotations

from tierline.processors.providers.anthropic import AnthropicAdapter
from tierline.processors.providers.base import Adapter
from tierline.processors.providers.compat import DIALECTS
from tierline.processors.providers.gemini import GeminiAdapter
from tierline.processors.providers.openai import OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    **{family: OpenAIAdapter(dialect) for family, dialect in DIALECTS.items()},
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}


def adapter_for(family: str) -> Adapter:
    try:
        return ADAPTERS[family]
    except KeyError:
        raise ValueError(f"no adapter for provider family {family!r}") from None
