"""What a model can do beyond text, and what a request needs of it: tools, images, json_schema.

A request needs

* `tools` when it offers tools (`params.tools`) or its history holds tool calls
  or tool results (a model without function calling cannot read them);
* `images` when a message has an `image_url` part;
* `json_schema` when `response_format` is `{"type": "json_schema"}`.

A model's flags come from the public price catalog the bundled snapshot is cut
from (LiteLLM's `supports_function_calling`, `supports_vision`,
`supports_response_schema`), and a catalog entry in the config overrides them
with the same keys (`supports_function_calling = false`). Each flag is true,
false or unknown (the catalog does not say, or the model has no catalog entry);
only a flag that is *false* keeps a model from a request that needs it. An
unknown one lets the provider decide: a model that answers "does not support
tools" is then passed over for the next candidate
(`processors.providers.capability_errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tierline.schemas import RouteRequest


class Capability(StrEnum):
    TOOLS = "tools"
    IMAGES = "images"
    JSON_SCHEMA = "json_schema"

    @property
    def described(self) -> str:
        return _DESCRIBED[self]


_DESCRIBED = {
    Capability.TOOLS: "tools (function calling)",
    Capability.IMAGES: "image input (vision)",
    Capability.JSON_SCHEMA: "response_format json_schema (structured output)",
}
#: the public catalog's flag for each capability, also the config file's key
CATALOG_FLAGS: dict[Capability, str] = {
    Capability.TOOLS: "supports_function_calling",
    Capability.IMAGES: "supports_vision",
    Capability.JSON_SCHEMA: "supports_response_schema",
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """A model's flags: True, False, or None for unknown."""

    tools: bool | None = None
    images: bool | None = None
    json_schema: bool | None = None

    @classmethod
    def from_flags(cls, entry: Mapping[str, Any]) -> Capabilities:
        """From a catalog entry's `supports_*` flags; a flag that is not a bool is unknown."""
        return cls().overridden(entry)

    def overridden(self, entry: Mapping[str, Any]) -> Capabilities:
        """These flags, with the ones `entry` sets (as bools) replacing them."""
        values = {c.value: self.of(c) for c in Capability}
        for capability, flag in CATALOG_FLAGS.items():
            value = entry.get(flag)
            if isinstance(value, bool):
                values[capability.value] = value
        return Capabilities(**values)

    def of(self, capability: Capability) -> bool | None:
        value: bool | None = getattr(self, capability.value)
        return value

    def lacks(self, needed: Iterable[Capability]) -> list[Capability]:
        """The needed capabilities this model is known not to have, in `Capability` order."""
        wanted = set(needed)
        return [c for c in Capability if c in wanted and self.of(c) is False]


def needed(request: RouteRequest) -> frozenset[Capability]:
    """What `request` needs of the model that serves it (see the module docstring)."""
    needs: set[Capability] = set()
    if request.params.tools:
        needs.add(Capability.TOOLS)
    for m in request.messages:
        if m.tool_calls or m.role == "tool":
            needs.add(Capability.TOOLS)
        if isinstance(m.content, list) and any(p.get("type") == "image_url" for p in m.content):
            needs.add(Capability.IMAGES)
    if (request.params.response_format or {}).get("type") == "json_schema":
        needs.add(Capability.JSON_SCHEMA)
    return frozenset(needs)
