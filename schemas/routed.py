"""`RoutedRequest`: what the router forwards to `tierline.tier.<tier>`.

The request travels unchanged, with the routing decision and the tier's
candidate models in the order a worker should try them. A request routed as a
cascade also carries `cascade`: where to escalate (a tier and its candidates)
when the cheap answer fails its check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tierline.schemas.request import RouteRequest
from tierline.schemas.response import RoutingDecision
from tierline.schemas.tier import Tier


class Escalation(BaseModel):
    """The second step of a cascade: the tier to escalate to and its candidates."""

    tier: Tier
    candidates: list[str] = Field(min_length=1)


class RoutedRequest(BaseModel):
    schema_version: Literal[1] = 1
    request: RouteRequest
    decision: RoutingDecision
    candidates: list[str] = Field(min_length=1)
    #: set when the request is served as a cascade: `candidates` first, then these
    cascade: Escalation | None = None
    #: where to go when every candidate stays unusable until the request's deadline (an
    #: outage): the next tier up, when the policy allows it and the hints do
    escalation: Escalation | None = None
    #: set when a budget holds a reservation for the request: the `tierline.requests`
    #: partition whose router owns it; the worker's `Settlement` goes to that partition
    budget_partition: int | None = Field(default=None, ge=0)
    routed_at: datetime
