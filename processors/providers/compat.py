"""The OpenAI-compatible family: one wire format, each member's quirks in one table.

Every member speaks `POST {api_base}/chat/completions` with a Bearer key and
answers a `chat.completion`; `processors.providers.openai.OpenAIAdapter` does
the work, steered by one `Dialect` per family. What differs:

| family     | max tokens field      | cached-read tokens      | cache-write tokens | json_schema |
|------------|-----------------------|-------------------------|--------------------|-------------|
| openai     | max_completion_tokens | details.cached_tokens   | details.cache_write_tokens | yes |
| deepseek   | max_tokens            | prompt_cache_hit_tokens | -                  | json_object |
| mistral    | max_tokens            | details.cached_tokens   | -                  | yes         |
| qwen       | max_tokens            | details.cached_tokens   | -                  | json_object |
| groq       | max_tokens            | details.cached_tokens   | -                  | json_object |
| together   | max_tokens            | details.cached_tokens   | -                  | yes         |
| openrouter | max_tokens            | details.cached_tokens   | details.cache_write_tokens | yes |
| vllm       | max_tokens            | details.cached_tokens   | -                  | yes         |
| ollama     | max_tokens            | -                       | -                  | yes         |

(`details.` is `usage.prompt_tokens_details.`; a field absent from a reply
counts 0; "json_object" means a `json_schema` request is sent as JSON mode.)

* openai: the reference. Reasoning models (o1, o3, o4-*, gpt-5* but not
  gpt-5-chat) reject `temperature`, `top_p` and `stop`, which are dropped; the
  `developer` role is kept; a `message.refusal` with no content is a content
  filter. Cache writes cost nothing extra before the GPT-5.6 family; GPT-5.6 and
  later bill them at 1.25x input and report them in `cache_write_tokens` (the
  catalog's `cache_creation_input_token_cost`); earlier models report 0 or
  nothing there.
* deepseek: `prompt_tokens` = `prompt_cache_hit_tokens` +
  `prompt_cache_miss_tokens`; finish `insufficient_system_resource` is an
  overload (retried); `reasoning_content` (deepseek-reasoner) is not part of
  the answer; HTTP 402 (out of balance) is an auth error.
* mistral: finish `model_length` is length and `error` an error; content may be
  a list of chunks (`thinking`, `text`); errors are top-level
  `{"object": "error", "message", "type"}`; unknown fields answer 422; a tool call
  id must be 9 letters or digits ("Tool call id was call_abc but must be a-z, A-Z,
  0-9, with a length of 9."), so the ids of a history another provider wrote are
  sent as 9-character digests of themselves (the same in the call and its result).
* qwen (DashScope compatible mode): `enable_thinking: false` is sent, since
  hybrid Qwen3 models refuse thinking without streaming.
* groq: usage also carries queue and processing times (ignored).
* together: finish `eos` is stop.
* openrouter: sends `X-Title: tierline`; passes a content part's
  `cache_control` on to the Anthropic and Gemini models behind it (every other
  member gets parts without it); a 200 may carry `error` instead of `choices`;
  `usage.cost` (its own bill, in credits) is ignored, tierline prices from the
  catalog like everyone else.
* vllm: self-hosted; no key unless the server runs with `--api-key`; cached
  tokens are reported with `--enable-prompt-tokens-details`.
* ollama: self-hosted, no key; a prompt longer than the server's `num_ctx` is
  silently truncated, so give the model `context_window = <num_ctx>`.

Everywhere: `role: developer` becomes `system` except for OpenAI itself;
`finish_reason` maps `stop`/`eos` -> stop, `length`/`model_length` -> length,
`content_filter` -> content_filter, `tool_calls`/`function_call` -> tool_calls,
`error` -> a server error; the request id is the `x-request-id` header, else the
body's `id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPENAI_CACHED_READ = ("prompt_tokens_details.cached_tokens",)
OPENAI_CACHE_WRITE = "prompt_tokens_details.cache_write_tokens"


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one member of the OpenAI-compatible family departs from OpenAI's own API."""

    family: str
    #: the request field that caps the reply's tokens
    max_tokens_field: str = "max_tokens"
    #: accepts `response_format: {"type": "json_schema"}`; else it is sent as `json_object`
    json_schema: bool = True
    #: accepts the `developer` role; else such messages are sent as `system`
    developer_role: bool = False
    #: drop sampling parameters for reasoning models (OpenAI's o-series and gpt-5)
    reasoning_models: bool = False
    #: usage fields holding cached-read prompt tokens, first present wins (dotted paths)
    cached_read: tuple[str, ...] = OPENAI_CACHED_READ
    #: usage fields holding cache-write prompt tokens, first present wins
    cache_write: tuple[str, ...] = ()
    #: passes a content part's `cache_control` on (Anthropic-style caching); else it is removed
    cache_control: bool = False
    #: fields added to every request body
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    #: headers added to every request
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    #: tool call ids must be 9 letters or digits (Mistral); others are sent as digests
    nine_char_tool_ids: bool = False


DIALECTS: dict[str, Dialect] = {
    d.family: d
    for d in (
        Dialect(
            "openai",
            max_tokens_field="max_completion_tokens",
            developer_role=True,
            reasoning_models=True,
            cache_write=(OPENAI_CACHE_WRITE,),
        ),
        Dialect(
            "deepseek",
            json_schema=False,
            cached_read=("prompt_cache_hit_tokens", *OPENAI_CACHED_READ),
        ),
        Dialect("mistral", nine_char_tool_ids=True),
        Dialect("qwen", json_schema=False, extra_body={"enable_thinking": False}),
        Dialect("groq", json_schema=False),
        Dialect("together"),
        Dialect(
            "openrouter",
            cache_write=(OPENAI_CACHE_WRITE,),
            cache_control=True,
            extra_headers={"X-Title": "tierline"},
        ),
        Dialect("vllm"),
        Dialect("ollama", cached_read=()),
    )
}


def dialect_for(family: str) -> Dialect:
    try:
        return DIALECTS[family]
    except KeyError:
        raise ValueError(f"{family!r} is not in the OpenAI-compatible family") from None
