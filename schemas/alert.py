"""`Alert`: something about spend an operator should hear of, on `tierline.alerts`.

Kinds: `soft_limit_crossed` and `hard_limit_reached` (a budget's, once per period:
the router raises them as it reserves), and `spend_anomaly` (a spend rate far off
its trailing baseline: the cost sink raises one per episode). They land in the
ClickHouse `alerts` table and, when a webhook is configured, are POSTed there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tierline.schemas.identifier import Identifier
from tierline.schemas.money import Money

AlertKind = Literal["soft_limit_crossed", "hard_limit_reached", "spend_anomaly"]


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = 1
    #: stable per alert (kind, scope, period or episode start): a redelivered alert is one row
    alert_id: str = Field(min_length=1, max_length=512)
    kind: AlertKind
    tenant: Identifier
    #: "" = the whole tenant
    feature: str = Field(default="", max_length=128)
    #: for anomalies: the model whose spend rate is off ("" = every model)
    model: str = Field(default="", max_length=200)
    #: "day" | "month" for budgets; the detector's bucket ("5m") for anomalies
    period: str = Field(default="", max_length=32)
    #: start of the budget period, or of the anomalous window
    window_start: datetime
    window_end: datetime | None = None
    spent_usd: Money
    #: the budget's limit, or the baseline spend the anomaly is measured against
    limit_usd: Money
    detail: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
