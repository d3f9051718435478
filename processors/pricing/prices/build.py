"""Rebuild the bundled price snapshot from LiteLLM's public catalog.

    python -m processors.prices.build path/to/model_prices_and_context_window.json

Keeps chat models of the providers tierline speaks to, and only the fields it
reads (token prices, cache prices with Anthropic's 1-hour writes apart,
long-context tiers, context windows, and the capability flags routing reads:
function calling, vision, response schema), so the snapshot stays small. The catalog
is LiteLLM's, MIT-licensed: LICENSE-litellm.txt beside the snapshot carries its
notice and must ship with it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from tierline.processors.pricing.capabilities import CATALOG_FLAGS
from tierline.processors.pricing.prices.book import BUNDLED_FILE, LONG_CONTEXT_FIELD

PROVIDERS = {
    "openai",
    "anthropic",
    "gemini",
    "deepseek",
    "mistral",
    "dashscope",
    "groq",
    "together_ai",
    "openrouter",
    "ollama",
    "hosted_vllm",
    "xai",
    "fireworks_ai",
}
FIELDS = {
    "litellm_provider",
    "mode",
    "max_input_tokens",
    "max_output_tokens",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "input_cost_per_token_batches",
    "output_cost_per_token_batches",
    *CATALOG_FLAGS.values(),
}


def kept(field: str) -> bool:
    return field in FIELDS or LONG_CONTEXT_FIELD.match(field) is not None


def trim(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {f: v for f, v in entry.items() if kept(f)}
        for key, entry in sorted(raw.items())
        if isinstance(entry, dict)
        and entry.get("mode") == "chat"
        and entry.get("litellm_provider") in PROVIDERS
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    trimmed = trim(orjson.loads(Path(argv[0]).read_bytes()))
    out = Path(__file__).parent / BUNDLED_FILE
    out.write_bytes(
        orjson.dumps(trimmed, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    print(f"wrote {len(trimmed)} models to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
