"""Budgets on real Kafka: two routers, two workers processes, one tenant with a hard cap of a
few cents and 500 requests at once; one router is SIGKILLed mid-run. The bill stays under
the cap plus one request, every refused request cost nothing, and the ledger survived."""

from __future__ import annotations

import asyncio
import collections
import signal
from decimal import Decimal
from pathlib import Path

import orjson
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client

from tests.integration.support import (
    Trickle,
    collect,
    log_tail,
    make_settings,
    request_body,
    role_env,
    start_role,
    stop_roles,
    wait_until,
)
from tierline.processors.simulator import SimulatorProfile, spawn_simulator
from tierline.schemas import ErrorType, RouteResponse, Tier
from tierline.streams.cli import main
from tierline.streams.runtime import start_pipeline
from tierline.streams.tail import read_topic, tail_consumer

CAP = Decimal("0.05")
POLICY = f"""
[[budgets]]
tenant = "capped"
period = "day"
limit_usd = "{CAP}"
"""


async def test_a_hard_cap_holds_across_routers_workers_and_a_router_kill(
    kafka_bootstrap: str,
    topic_prefix: str,
    chdb_url: str,
    clickhouse: Client,
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with spawn_simulator(SimulatorProfile(seed=21, latency_ms=100, output_tokens=(40, 200))) as sim:
        settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, sim.url, tmp_path)
        sink = await start_pipeline(settings, roles=("sink",))  # creates the topics
        procs: dict[str, object] = {}

        def start(name: str, role: str) -> None:
            env = role_env(
                kafka_bootstrap,
                topic_prefix,
                tmp_path / name,
                sim.url,
                router_policy=str(policy),
            )
            procs[name] = start_role(role, env, tmp_path / f"{name}.log")

        for name, role in (
            ("r1", "router"),
            ("r2", "router"),
            ("w1", "workers"),
            ("w2", "workers"),
        ):
            start(name, role)
        try:
            responses = await tail_consumer(kafka_bootstrap, sink.topics.responses)
            n = 500
            ids = [f"{topic_prefix}cap-{i}" for i in range(n)]
            hints = {"min_tier": "premium", "max_tier": "premium"}
            bodies = [
                request_body(
                    rid,
                    f"Write a long answer {i}",
                    tenant="capped",
                    hints=hints,
                    params={"max_tokens": 200},
                )
                for i, rid in enumerate(ids)
            ]
            # bursts of 50 at once, so settlements come back between them and the spend
            # climbs to the cap instead of stopping at the first burst's reservations
            sending = asyncio.create_task(
                Trickle(kafka_bootstrap, sink.topics.requests, bodies, 50, 0.5, key=b"capped").run()
            )
            records = await collect(responses, 150, timeout_s=120)
            assert len(records) >= 150, log_tail(tmp_path / "r1.log")
            killed = procs["r1"]
            killed.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
            killed.wait()  # type: ignore[attr-defined]
            start("r1", "router")
            await asyncio.wait_for(sending, 120)
            records += await collect(responses, n - len(records), timeout_s=180, settle_s=3)
            got = [RouteResponse.model_validate(orjson.loads(r.value)) for r in records]
            per_id = collections.Counter(r.id for r in got)
            assert set(per_id) == set(ids) and max(per_id.values()) == 1  # one answer each
            ok = [r for r in got if r.status == "ok"]
            refused = [r for r in got if r.status == "error"]
            assert ok and refused, (len(ok), len(refused))
            assert all(r.error and r.error.type == ErrorType.BUDGET_EXCEEDED for r in refused)
            assert all(r.attempts == 0 and r.cost_usd == 0 for r in refused)

            where = f"tenant = 'capped' AND request_id LIKE '{topic_prefix}cap-%'"

            async def all_billed() -> bool:
                rows = clickhouse.query(
                    f"SELECT uniqExact(request_id) FROM costs FINAL WHERE {where}"
                ).result_rows
                return int(rows[0][0]) >= len(ok)

            assert await wait_until(all_billed, 60)
            billed, dearest, billed_ids = clickhouse.query(
                "SELECT sum(c), max(c), count() FROM (SELECT request_id, sum(cost_usd) AS c "
                f"FROM costs FINAL WHERE {where} GROUP BY request_id)"
            ).result_rows[0]
            billed, dearest = Decimal(billed), Decimal(dearest)
            assert billed_ids == len(ok)  # a refused request has no cost row
            assert billed == sum((r.cost_usd for r in ok), Decimal(0))
            assert billed <= CAP + dearest, (billed, CAP, dearest)
            # the ledger agrees with the bill, once the settlements are in (the restarted
            # router reads them): read back from the compacted changelog
            account: dict[str, object] = {}

            async def ledger_settled() -> bool:
                nonlocal account
                changelog = await read_topic(
                    kafka_bootstrap, sink.topics.budget_changelog, "read_committed"
                )
                accounts = {
                    r.key: orjson.loads(r.value)
                    for r in changelog
                    if r.key and r.key.startswith(b"a\x1fcapped") and r.value is not None
                }
                account = next(iter(accounts.values()), {})
                return Decimal(str(account.get("spent", "0"))) == billed

            assert await wait_until(ledger_settled, 60), account
            assert Decimal(str(account["reserved"])) == 0
            print(
                f"budgets: cap {CAP}, billed {billed}, dearest request {dearest}, "
                f"{len(ok)} answered, {len(refused)} refused"
            )
            await responses.stop()
        finally:
            stop_roles(*procs.values())  # type: ignore[arg-type]
            await asyncio.wait_for(sink.stop(), timeout=60)


async def test_past_the_soft_limit_requests_go_a_tier_cheaper_with_one_alert(
    kafka_bootstrap: str, topic_prefix: str, chdb_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "[routing]\nstandard_threshold = 0.0\npremium_threshold = 0.99\n\n"
        '[[budgets]]\ntenant = "soft"\nperiod = "month"\nlimit_usd = "10"\n'
        'soft_limit_usd = "0.01"\n'
    )
    with spawn_simulator(SimulatorProfile(seed=22, latency_ms=20)) as sim:
        settings = make_settings(kafka_bootstrap, topic_prefix, chdb_url, sim.url, tmp_path)
        settings.router.policy = str(policy)
        pipeline = await start_pipeline(settings, roles=("router", "workers"))
        try:
            responses = await tail_consumer(kafka_bootstrap, pipeline.topics.responses)
            ids = [f"{topic_prefix}soft-{i}" for i in range(45)]
            bodies = [request_body(rid, "Say hi", tenant="soft") for rid in ids]
            await Trickle(kafka_bootstrap, pipeline.topics.requests, bodies, 3, 0.2, b"soft").run()
            got = [
                RouteResponse.model_validate(orjson.loads(r.value))
                for r in await collect(responses, 45, timeout_s=60, settle_s=1)
            ]
            assert {r.id for r in got} == set(ids) and all(r.status == "ok" for r in got)
            got.sort(key=lambda r: ids.index(r.id))  # in the order they were sent
            tiers = [r.tier for r in got]
            # under the soft limit at first; past it, one tier cheaper for good
            assert tiers[0] == Tier.STANDARD and tiers[-5:] == [Tier.ECONOMY] * 5, tiers
            cheaper = [r for r in got if r.tier == Tier.ECONOMY]
            assert all(
                any(
                    "soft limit of soft per month" in x and "standard -> economy" in x
                    for x in (r.decision.reasons if r.decision else [])
                )
                for r in cheaper
            )

            async def one_alert() -> bool:
                alerts = await read_topic(kafka_bootstrap, pipeline.topics.alerts, "read_committed")
                return len(alerts) >= 1

            assert await wait_until(one_alert, 20)
            await asyncio.sleep(1)
            alerts = await read_topic(kafka_bootstrap, pipeline.topics.alerts, "read_committed")
            kinds = [orjson.loads(a.value)["kind"] for a in alerts]
            assert kinds == ["soft_limit_crossed"], kinds  # once per period, not per request
            # the operator's view of the same ledger
            env = {
                "TIERLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
                "TIERLINE_KAFKA_TOPIC_PREFIX": topic_prefix,
                "TIERLINE_ROUTER_POLICY": str(policy),
            }
            shown = await asyncio.to_thread(
                CliRunner().invoke, main, ["budgets", "--json"], env=env
            )
            assert shown.exit_code == 0, shown.output
            (row,) = [orjson.loads(x) for x in shown.output.splitlines() if x.startswith("{")]
            assert row["tenant"] == "soft" and row["period"] == "month"
            assert row["state"] in ("ok", "soft limit")  # near it: standard no longer fits
            assert Decimal(row["spent_usd"]) > 0
            assert (row["limit_usd"], row["soft_limit_usd"]) == ("10", "0.01")
            await responses.stop()
        finally:
            await asyncio.wait_for(pipeline.stop(), timeout=60)
