"""`Attempt`: a provider call as the worker makes it, produced to `tierline.attempts`.

A provider bills a call it answered even if the caller died before reading the
answer. So as each call starts a worker publishes the attempt as `started`, with
its estimated cost, and uses the call's outcome only once the broker has acked it
(the ack takes milliseconds, the call hundreds: a crash inside that first window
can hide a call); with the answer (in the same
transaction as the response and the bills) it publishes the same attempt as
`settled`. An attempt that stays `started` was cut off (a crash, a kill, a lost
transaction): the provider may have billed it and tierline never saw the bill.
`tierline spend` shows those as "possibly billed by providers, unconfirmed".

`attempt_id` names one serving of one request (request id, attempt number, and a
serving nonce): a request served again after a crash gets new attempt ids, so its
settlement never hides the attempts that were cut off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tierline.schemas.money import Money
from tierline.schemas.tier import Tier

AttemptState = Literal["started", "settled"]


class Attempt(BaseModel):
    schema_version: Literal[1] = 1
    attempt_id: str = Field(max_length=200)
    request_id: str = Field(max_length=128)
    tenant: str
    tier: Tier
    model: str
    provider: str
    state: AttemptState
    #: the prompt's counted tokens and the output bound, at the model's price
    estimated_cost_usd: Money
    created_at: datetime
