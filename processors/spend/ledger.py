"""The budget ledger: reserve a request's worst case, then reconcile it to what it cost.

One ledger per partition of `tierline.requests`: a tenant's requests all arrive
on one partition, so the router that owns the partition is the only one that
ever changes that tenant's accounts. That is what makes the ledger exact with
several routers, with no lock and no shared counter.

An account is (tenant, feature or "", period, period start): what was `spent`
(settled), what is `reserved` (forwarded, not yet settled), and whether its
soft- and hard-limit alerts were raised this period. When the router forwards a
request it *reserves* the request's worst-case cost on every account that covers
it, unless that would take one past its hard limit (then the request is refused
with `budget_exceeded`, before any provider call). Concurrent requests therefore
cannot overshoot together: each one's worst case is counted before the next one
is admitted. When the request's `Settlement` comes back, its hold is released and
its actual cost is added to the accounts it was held on (those of the period it
was reserved in, even if the day has turned since). A settlement with no hold (a
redelivery, an unknown request) changes nothing, so settling is idempotent.

The overshoot of a hard cap is therefore at most what settled requests cost
beyond their reservations: with `max_tokens` set, the token estimate's error;
without it, the default output estimate's. The README states the promise.

Every change is also a changelog entry (`entries`), which the router publishes in
the same Kafka transaction as the forward or the consumed settlement, so a new
owner rebuilds the ledger exactly from the compacted changelog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

import orjson

from tierline.processors.spend.budgets import Budget, Budgets, period_start

SEP = "\x1f"
#: changelog keys start with one of these
ACCOUNT, HOLD = "a", "h"


@dataclass(frozen=True, slots=True)
class AccountKey:
    tenant: str
    feature: str
    period: str
    start: str  # ISO date-time of the period's start

    def encode(self) -> str:
        return SEP.join((ACCOUNT, self.tenant, self.feature, self.period, self.start))

    @classmethod
    def decode(cls, text: str) -> AccountKey:
        _, tenant, feature, period, start = text.split(SEP)
        return cls(tenant, feature, period, start)


@dataclass(slots=True)
class Account:
    spent: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    soft_alerted: bool = False
    hard_alerted: bool = False

    @property
    def committed(self) -> Decimal:
        return self.spent + self.reserved


@dataclass(frozen=True, slots=True)
class Hold:
    amount: Decimal
    accounts: tuple[AccountKey, ...]


@dataclass(frozen=True, slots=True)
class Crossing:
    """A limit a request's reservation reached: what to say and which alert to raise."""

    budget: Budget
    key: AccountKey
    kind: Literal["soft", "hard"]
    committed: Decimal
    alert: bool


@dataclass(slots=True)
class Verdict:
    """Whether the request may be forwarded with this reservation."""

    accounts: list[tuple[Budget, AccountKey]]
    soft: list[Crossing] = field(default_factory=list)
    hard: list[Crossing] = field(default_factory=list)

    @property
    def exceeded(self) -> bool:
        return bool(self.hard)


#: a changelog entry: key, and value (None = delete)
Entry = tuple[str, bytes | None]


class Ledger:
    def __init__(self) -> None:
        self.accounts: dict[AccountKey, Account] = {}
        self.holds: dict[str, Hold] = {}

    # ---------------------------------------------------------------- decide

    def check(
        self,
        budgets: Budgets,
        tenant: str,
        feature: str | None,
        amount: Decimal,
        now: datetime,
    ) -> Verdict:
        """What reserving `amount` would do to every budget covering the request."""
        verdict = Verdict([])
        for budget in budgets.covering(tenant, feature):
            key = AccountKey(
                tenant,
                budget.feature or "",
                budget.period,
                period_start(budget.period, now).isoformat(),
            )
            verdict.accounts.append((budget, key))
            account = self.accounts.get(key, Account())
            after = account.committed + amount
            if after > budget.limit_usd:
                verdict.hard.append(
                    Crossing(budget, key, "hard", account.committed, not account.hard_alerted)
                )
            elif budget.soft_limit_usd is not None and after > budget.soft_limit_usd:
                verdict.soft.append(
                    Crossing(budget, key, "soft", account.committed, not account.soft_alerted)
                )
        return verdict

    def alerted(self, crossing: Crossing) -> list[Entry]:
        """Note that `crossing`'s alert was raised (once per account and period)."""
        account = self.accounts.setdefault(crossing.key, Account())
        if crossing.kind == "soft":
            account.soft_alerted = True
        else:
            account.hard_alerted = True
        return [self._account_entry(crossing.key)]

    def reserve(self, request_key: str, amount: Decimal, verdict: Verdict) -> list[Entry]:
        """Hold `amount` on the verdict's accounts for the request (once per request)."""
        if request_key in self.holds or not verdict.accounts:
            return []
        keys = tuple(key for _, key in verdict.accounts)
        for key in keys:
            self.accounts.setdefault(key, Account()).reserved += amount
        self.holds[request_key] = Hold(amount, keys)
        return [self._hold_entry(request_key), *(self._account_entry(k) for k in keys)]

    def settle(self, request_key: str, cost: Decimal) -> list[Entry]:
        """The request's actual cost: release its hold, add the cost. Idempotent."""
        hold = self.holds.pop(request_key, None)
        if hold is None:
            return []
        for key in hold.accounts:
            account = self.accounts.setdefault(key, Account())
            account.reserved = max(Decimal(0), account.reserved - hold.amount)
            account.spent += cost
        return [(HOLD + SEP + request_key, None), *(self._account_entry(k) for k in hold.accounts)]

    # ------------------------------------------------------------- changelog

    def _account_entry(self, key: AccountKey) -> Entry:
        a = self.accounts[key]
        value = {
            "spent": format(a.spent, "f"),
            "reserved": format(a.reserved, "f"),
            "soft_alerted": a.soft_alerted,
            "hard_alerted": a.hard_alerted,
        }
        return key.encode(), orjson.dumps(value)

    def _hold_entry(self, request_key: str) -> Entry:
        hold = self.holds[request_key]
        value = {
            "amount": format(hold.amount, "f"),
            "accounts": [k.encode() for k in hold.accounts],
        }
        return HOLD + SEP + request_key, orjson.dumps(value)

    def apply(self, key: str, value: bytes | None) -> None:
        """One changelog entry, as read back by a new owner (the newest per key wins)."""
        kind, _, rest = key.partition(SEP)
        if kind == ACCOUNT:
            account_key = AccountKey.decode(key)
            if value is None:
                self.accounts.pop(account_key, None)
                return
            raw = orjson.loads(value)
            self.accounts[account_key] = Account(
                spent=Decimal(raw["spent"]),
                reserved=Decimal(raw["reserved"]),
                soft_alerted=bool(raw.get("soft_alerted")),
                hard_alerted=bool(raw.get("hard_alerted")),
            )
        elif kind == HOLD:
            if value is None:
                self.holds.pop(rest, None)
                return
            raw = orjson.loads(value)
            self.holds[rest] = Hold(
                Decimal(raw["amount"]), tuple(AccountKey.decode(k) for k in raw["accounts"])
            )
        else:
            raise ValueError(f"not a ledger entry: {key[:80]!r}")
