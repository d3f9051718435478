"""A 4xx that says the *model* lacks a capability, not that the request is wrong.

A `bad_request` is final: the same request fails on every model. Except when
the provider refuses because this model cannot do something the request asks
for, which another candidate may well do. The price catalog's flags keep most
such models away (`processors.pricing.capabilities`); a model whose flags are
unknown, or wrong, still answers like this:

messages of these shapes (the tests hold each one):

* "registry.ollama.ai/library/gemma:2b does not support tools" (Ollama);
* "deepseek-reasoner does not support Function Calling" (DeepSeek);
* "Unsupported parameter: 'tools' is not supported with this model." (OpenAI);
* "Function calling is not enabled for models/gemma-3-27b-it" (Gemini);
* "Function calling is not supported for this model" (Mistral, Groq);
* '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser
  to be set' (vLLM started without tool parsing);
* "image_url is only supported by certain models." (OpenAI, a text-only model);
* "unknown variant `image_url`, expected `text`" (DeepSeek, images);
* "Invalid parameter: 'response_format' of type 'json_schema' is not supported
  with this model." (OpenAI).

`unsupported_capability(message)` names the capability (`tools`, `images`,
`json_schema`) when the message is one of these shapes: a capability word right
next to a refusal ("does not support tools", "'tools' is not supported", "function
calling is not enabled"), nothing looser, so a schema error that happens to say
"not supported" about a keyword is still a `bad_request`. The walk moves on to the
next candidate only when the request really needs what was refused.
"""

from __future__ import annotations

import re

_TOOLS = (
    r"tools?|tool[ _-]?use|tool[ _-]?calls?|tool[ _-]?calling|tool_choice"
    r"|function[ _-]?calling|functions?[ _-]?calls?|functions"
)
_IMAGES = r"images?|image[ _-]?inputs?|image_url|vision|multimodal(?: inputs?)?"
_JSON_SCHEMA = r"json_schema|structured[ _-]?outputs?|response[ _-]?schema"
_WORDS = {"tools": _TOOLS, "images": _IMAGES, "json_schema": _JSON_SCHEMA}
_QUOTE = r"['\"`]?"
_REFUSED = (
    r"(?:is |are )?"
    r"(?:not supported|unsupported|not enabled|not available|only supported by certain models)"
)


def _patterns(words: str) -> list[re.Pattern[str]]:
    return [
        # "does not support tools", "doesn't support Function Calling"
        re.compile(
            rf"\b(?:does|do)(?: not|n't) support (?:the )?{_QUOTE}(?:{words}){_QUOTE}\b", re.I
        ),
        # "'tools' is not supported", "function calling is not enabled"
        re.compile(rf"(?<![\w.]){_QUOTE}(?:{words}){_QUOTE}\s+{_REFUSED}\b", re.I),
        # "'response_format' of type 'json_schema' is not supported"
        re.compile(rf"of type {_QUOTE}(?:{words}){_QUOTE}\s+{_REFUSED}\b", re.I),
    ]


_SHAPES = {name: _patterns(words) for name, words in _WORDS.items()}
_SPECIAL = {
    "tools": re.compile(r"tool choice requires --enable-auto-tool-choice", re.I),  # vLLM
    "images": re.compile(r"unknown variant [`'\"]?image_url", re.I),  # DeepSeek
}


def unsupported_capability(message: str) -> str | None:
    """`tools`, `images` or `json_schema` when `message` refuses that capability; else None."""
    for name in ("json_schema", "images", "tools"):  # the most specific first
        special = _SPECIAL.get(name)
        if special is not None and special.search(message):
            return name
        if any(p.search(message) for p in _SHAPES[name]):
            return name
    return None
