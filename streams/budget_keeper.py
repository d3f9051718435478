"""The router's budget ledgers on Kafka: one per owned `tierline.requests` partition.

Requests are keyed by tenant, so a tenant's requests all arrive on one
partition, and its owner alone keeps the tenant's accounts
(`processors.spend.ledger`). The router reads `tierline.settlements` in the same
consumer group with a range assignment, so it owns settlements partition p
exactly when it owns requests partition p; workers send each settlement to the
partition the router named (`RoutedRequest.budget_partition`).

Every ledger change is a record on the compacted `tierline.budget.changelog`, on
the same partition number, published in the transaction that forwards the
request or consumes the settlement (the same way as faust's table changelogs).
A router that is handed a partition reads that partition of the changelog to
its end before it routes anything from it; a router whose transaction failed
reads it again. So the ledger survives restarts and rebalances exactly, and is
exact with several routers: each tenant has one writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from aiokafka import TopicPartition
from pydantic import ValidationError

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.budget_gate import GateResult, gate
from tierline.processors.routing.policy import Policy
from tierline.processors.spend.ledger import AccountKey, Entry, Ledger
from tierline.schemas import RoutedRequest, Settlement, encode
from tierline.schemas.request import request_key
from tierline.streams.metrics import Metrics
from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import retried
from tierline.streams.tail import read_topic
from tierline.streams.topics import Topics

log = logging.getLogger("tierline.budgets")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BudgetKeeper:
    def __init__(
        self,
        topics: Topics,
        bootstrap: str,
        isolation_level: str,
        clock: Clock = _utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.topics = topics
        self.bootstrap = bootstrap
        self.isolation_level = isolation_level
        self.clock = clock
        self.ledgers: dict[int, Ledger] = {}
        #: per partition, set once its ledger is rebuilt; its records wait for it
        self._ready: dict[int, asyncio.Event] = {}
        #: settlements that matched no hold (a redelivery, or an unknown request)
        self.unmatched = 0
        self.malformed = 0

    # ------------------------------------------------------------ ownership

    def expect(self, partitions: Iterable[int]) -> None:
        """Hold back the records of `partitions` until `restore` has rebuilt their ledgers
        (aiokafka may hand out a new partition's records before its assignment callback
        has finished)."""
        for partition in partitions:
            if partition not in self._ready or self._ready[partition].is_set():
                self._ready[partition] = asyncio.Event()

    async def ready(self, partition: int) -> None:
        """Return once `partition`'s ledger is rebuilt (at once if it is not being rebuilt)."""
        event = self._ready.get(partition)
        if event is not None:
            await event.wait()

    async def restore(self, partitions: Iterable[int]) -> None:
        """Rebuild the ledgers of `partitions` from the changelog, read to its end."""
        wanted = sorted(set(partitions))
        if not wanted:
            return
        self.expect(wanted)
        try:
            await self._rebuild(wanted)
        finally:
            for partition in wanted:
                self._ready[partition].set()

    async def _rebuild(self, wanted: list[int]) -> None:
        # the broker may be down right now (a restart): wait for it, never crash the router
        records = await retried(
            lambda: read_topic(
                self.bootstrap, self.topics.budget_changelog, self.isolation_level, only=wanted
            ),
            "budgets: reading the changelog",
            log,
        )
        fresh = {p: Ledger() for p in wanted}
        for record in records:
            ledger = fresh.get(record.partition)
            if ledger is None or record.key is None:
                continue
            try:
                ledger.apply(record.key.decode(), record.value)
            except (ValueError, KeyError) as exc:
                log.warning("budgets: skipping a bad changelog record (%s)", exc)
        self.ledgers.update(fresh)
        held = sum(len(ledger.holds) for ledger in fresh.values())
        log.info("budgets: partitions %s restored (%d open reservations)", wanted, held)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.ledgers.pop(partition, None)
            event = self._ready.pop(partition, None)
            if event is not None:
                event.set()

    # ------------------------------------------------------------ the steps

    def admit(
        self, routed: RoutedRequest, partition: int, policy: Policy, catalog: Catalog
    ) -> tuple[RoutedRequest, list[Outgoing]]:
        """The request as the budgets let it go (and what to publish with it); raises
        `BudgetExceeded` (carrying the alert to publish) when a hard limit refuses it."""
        ledger = self.ledgers.setdefault(partition, Ledger())
        key = routed.request.key
        if key in ledger.holds:  # a redelivery of a request already reserved for
            return routed.model_copy(update={"budget_partition": partition}), []
        result = gate(routed, policy, catalog, ledger, self.clock())
        admitted = result.routed
        if key in ledger.holds:  # held: the worker settles it on this partition
            admitted = admitted.model_copy(update={"budget_partition": partition})
            self._gauge(ledger, policy, ledger.holds[key].accounts)
        return admitted, self.outgoing(result, partition)

    def _gauge(self, ledger: Ledger, policy: Policy | None, keys: Iterable[AccountKey]) -> None:
        """The whole-tenant accounts' figures as Prometheus gauges."""
        if self.metrics is None:
            return
        for key in keys:
            if key.feature:
                continue
            account = ledger.accounts.get(key)
            if account is None:
                continue
            self.metrics.budget_spent.labels(key.tenant, key.period).set(float(account.spent))
            self.metrics.budget_reserved.labels(key.tenant, key.period).set(float(account.reserved))
            if policy is not None:
                for budget in policy.budgets.covering(key.tenant, None):
                    if budget.period == key.period:
                        self.metrics.budget_limit.labels(key.tenant, key.period).set(
                            float(budget.limit_usd)
                        )

    def outgoing(self, result: GateResult, partition: int) -> list[Outgoing]:
        sends = [self._entry(entry, partition) for entry in result.entries]
        sends += [
            Outgoing(self.topics.alerts, alert.tenant.encode(), encode(alert))
            for alert in result.alerts
        ]
        return sends

    def settle(self, raw: bytes | None, partition: int) -> list[Outgoing]:
        """A worker's settlement: the hold becomes spend (idempotent)."""
        try:
            settlement = Settlement.model_validate_json(raw or b"")
        except (ValidationError, ValueError) as exc:
            self.malformed += 1
            log.warning("budgets: ignoring a malformed settlement (%s)", type(exc).__name__)
            return []
        ledger = self.ledgers.setdefault(partition, Ledger())
        key = request_key(settlement.tenant, settlement.request_id)
        hold = ledger.holds.get(key)
        entries = ledger.settle(key, settlement.cost_usd)
        if hold is None:
            self.unmatched += 1  # a redelivery, or a tenant no budget covers: counted, no change
        else:
            self._gauge(ledger, None, hold.accounts)

        return [self._entry(entry, partition) for entry in entries]

    def _entry(self, entry: Entry, partition: int) -> Outgoing:
        key, value = entry
        topic = self.topics.budget_changelog
        if value is None:
            return Outgoing(topic, key.encode(), b"", partition=partition, tombstone=True)
        return Outgoing(topic, key.encode(), value, partition=partition)


def partitions_of(assigned: Iterable[TopicPartition], topic: str) -> set[int]:
    return {tp.partition for tp in assigned if tp.topic == topic}
