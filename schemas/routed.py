"""`RoutedRequest`: what the router forwards to `tierline.tier.<tier>`.

The request travels unchanged, with the routing decision and the tier's
candidate models in the order a worker should try them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from schemas.request import RouteRequest
from schemas.response import RoutingDecision


class RoutedRequest(BaseModel):
    schema_version: Literal[1] = 1
    request: RouteRequest
    decision: RoutingDecision
    candidates: list[str] = Field(min_length=1)
    routed_at: datetime
