"""Where each provider family lives by default, and which variable holds its key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FamilyDefaults:
    family: str
    api_base: str
    key_env: str
    #: path the simulator serves this wire format under, appended to its URL
    simulator_path: str = ""

    def simulated_base(self, simulator_url: str) -> str:
        return simulator_url.rstrip("/") + self.simulator_path


FAMILIES: dict[str, FamilyDefaults] = {
    "openai": FamilyDefaults("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "/v1"),
}


def family_defaults(provider: str) -> FamilyDefaults:
    try:
        return FAMILIES[provider]
    except KeyError:
        raise ValueError(
            f"unknown provider family {provider!r}; known: {sorted(FAMILIES)}"
        ) from None
