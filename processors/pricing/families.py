"""Where each provider family lives by default, which variable holds its key, how it is priced.

A *family* is what a catalog model's `provider` names and what a response's
`provider` field reports: `openai`, `anthropic`, `gemini`, or one of the
OpenAI-compatible family (`deepseek`, `mistral`, `qwen`, `groq`, `together`,
`openrouter`, `vllm`, `ollama`). The wire format each speaks is the registry's
business (`processors.providers.registry`); this table only says where:

* `api_base`: the default base URL; the adapter appends its path
  (`/chat/completions`, `/v1/messages`, `/v1beta/models/{id}:generateContent`).
* `key_env`: the environment variable (or secrets-file entry) holding the key;
  empty for self-hosted servers that need none (set `key_env` on the model in
  the catalog when yours does).
* `simulator_path`: appended to the simulator's URL to reach the same wire
  format: the simulator serves `/v1/chat/completions`, `/v1/messages` and
  `/v1beta/models/...`.
* `price_prefix`: how the public price catalog prefixes this family's model
  keys (`gemini/gemini-2.5-flash`), so a catalog model named by its plain id
  finds its price.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FamilyDefaults:
    family: str
    api_base: str
    key_env: str
    #: path the simulator serves this wire format under, appended to its URL
    simulator_path: str = ""
    #: prefix of this family's keys in the public price catalog
    price_prefix: str = ""

    def simulated_base(self, simulator_url: str) -> str:
        return simulator_url.rstrip("/") + self.simulator_path

    def price_keys(self, name: str) -> tuple[str, ...]:
        """Keys to look a model up by in the price catalog, most specific first."""
        if self.price_prefix and not name.startswith(self.price_prefix):
            return (self.price_prefix + name, name)
        return (name,)


_FAMILIES = (
    FamilyDefaults("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "/v1"),
    FamilyDefaults("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", ""),
    FamilyDefaults(
        "gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", "", "gemini/"
    ),
    FamilyDefaults("deepseek", "https://api.deepseek.com", "DEEPSEEK_API_KEY", "/v1", "deepseek/"),
    FamilyDefaults("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "/v1", "mistral/"),
    FamilyDefaults(
        "qwen",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "DASHSCOPE_API_KEY",
        "/v1",
        "dashscope/",
    ),
    FamilyDefaults("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "/v1", "groq/"),
    FamilyDefaults(
        "together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", "/v1", "together_ai/"
    ),
    FamilyDefaults(
        "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "/v1", "openrouter/"
    ),
    FamilyDefaults("vllm", "http://localhost:8000/v1", "", "/v1", "hosted_vllm/"),
    FamilyDefaults("ollama", "http://localhost:11434/v1", "", "/v1", "ollama/"),
)

FAMILIES: dict[str, FamilyDefaults] = {f.family: f for f in _FAMILIES}


def family_defaults(provider: str) -> FamilyDefaults:
    try:
        return FAMILIES[provider]
    except KeyError:
        raise ValueError(
            f"unknown provider family {provider!r}; known: {sorted(FAMILIES)}"
        ) from None
