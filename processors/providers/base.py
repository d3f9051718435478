"""The adapter contract: our request in, the provider's wire format out, and back.

An adapter is two pure functions. `build` turns a `RouteRequest` into the HTTP
call a provider expects; `parse` turns the provider's HTTP reply into a
`ProviderReply`, or raises a `ProviderError` of the right type. The HTTP
exchange itself happens once, in `processors.providers.call`, for every adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from processors.catalog import ModelSpec
from schemas import RouteRequest, Usage
from schemas.response import FinishReason


@dataclass(frozen=True, slots=True)
class HttpCall:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """A provider's answer, normalized: the same shape whoever answered."""

    content: str
    finish_reason: FinishReason
    usage: Usage
    request_id: str | None = None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    @property
    def content_filtered(self) -> bool:
        return self.finish_reason == "content_filter"


class Adapter(Protocol):
    family: str

    def build(self, model: ModelSpec, request: RouteRequest, api_key: str | None) -> HttpCall: ...

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderReply: ...
