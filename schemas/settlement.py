"""`Settlement`: what one request finally cost, for the router's budget ledger.

The worker publishes it with the request's answer (in the same transaction) to
`tierline.settlements`, on the partition the router named in
`RoutedRequest.budget_partition`: the partition of `tierline.requests` the
request came in on, whose owner holds the request's reservation. Reading it, that
router turns the reservation into spend (`processors.spend`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tierline.schemas.identifier import Identifier
from tierline.schemas.money import Money


class Settlement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    request_id: Identifier
    tenant: Identifier
    feature: str = ""
    #: every billed attempt of the request, summed (0 for an answer that cost nothing)
    cost_usd: Money
    created_at: datetime
