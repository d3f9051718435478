"""`tierline dlq list` and `replay` against a real broker: each answerable request is sent
again once, with `replay` one higher, keyed by tenant; a second replay sends nothing.

No pipeline runs: the test writes the dead letters itself, the way the router and the
workers do (`streams.outgoing.dead_letter` / `unreadable`), and reads what the replay sends.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner, Result

from tests.integration.support import collect, make_settings
from tierline.schemas import ErrorType, RoutedRequest, RouteRequest, RoutingDecision, Tier, encode
from tierline.streams.config import Settings
from tierline.streams.dlq_replay import list_dead_letters, replay_dead_letters
from tierline.streams.outgoing import Outgoing, Source, dead_letter, unreadable
from tierline.streams.sender import send_one
from tierline.streams.tail import tail_consumer
from tierline.streams.topics import Topics, ensure_topics


def _request(rid: str, tenant: str) -> RouteRequest:
    return RouteRequest.model_validate(
        {"id": rid, "tenant": tenant, "messages": [{"role": "user", "content": f"hi {rid}"}]}
    )


def _routed(request: RouteRequest, tier: Tier) -> bytes:
    decision = RoutingDecision(task="qa", tier=tier, score=0.2)
    routed = RoutedRequest(
        request=request, decision=decision, candidates=["m"], routed_at=datetime.now(UTC)
    )
    return encode(routed)


def _dead_letters(topics: Topics) -> list[Outgoing]:
    """Five dead letters: two answerable requests (one of them dead-lettered twice, by the
    router and by a worker), garbage bytes, and a request every provider refuses."""
    timed_out, refused = _request("dlq-a", "acme"), _request("dlq-b", "globex")
    refused_always = _request("dlq-c", "acme")
    economy, standard = topics.tier(Tier.ECONOMY), topics.tier(Tier.STANDARD)

    def by_worker(source: Source, request: RouteRequest, why: str, error: ErrorType) -> Outgoing:
        key = request.id.encode()
        return dead_letter(
            topics.dlq, source, why, error, key=key, request_id=request.id, tenant=request.tenant
        )

    return [
        dead_letter(
            topics.dlq,
            Source(topics.requests, 0, 10, encode(timed_out)),
            "provider timed out",
            ErrorType.TIMEOUT,
            request_id=timed_out.id,
            tenant=timed_out.tenant,
        ),
        by_worker(
            Source(economy, 1, 20, _routed(refused, Tier.ECONOMY)),
            refused,
            "connection refused",
            ErrorType.CONNECTION,
        ),
        unreadable(
            topics.dlq,
            Source(topics.requests, 2, 30, b"\xff{not json"),
            "request",
            ValueError("not JSON"),
        ),
        by_worker(
            Source(standard, 0, 40, _routed(refused_always, Tier.STANDARD)),
            refused_always,
            "400 bad request",
            ErrorType.BAD_REQUEST,
        ),
        by_worker(
            Source(economy, 2, 50, _routed(timed_out, Tier.ECONOMY)),
            timed_out,
            "no candidate usable until the deadline",
            ErrorType.UNAVAILABLE,
        ),
    ]


async def _seed(settings: Settings) -> Topics:
    bootstrap = settings.kafka.bootstrap
    topics = await ensure_topics(settings.kafka, bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for send in _dead_letters(topics):
            assert await send_one(producer, send) is None
    finally:
        await producer.stop()
    return topics


async def _requests_sent(settings: Settings, topics: Topics, want: int) -> list[Any]:
    consumer = await tail_consumer(settings.kafka.bootstrap, topics.requests, from_start=True)
    try:
        return await collect(consumer, want, timeout_s=20, settle_s=1.5)
    finally:
        await consumer.stop()


async def _cli(settings: Settings, *args: str, columns: int = 80) -> Result:
    """`tierline dlq ARGS` as a user runs it (a thread: the command runs its own event loop)."""
    from tierline.streams.cli import main

    env: dict[str, str | None] = {
        "TIERLINE_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "TIERLINE_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "TIERLINE_KAFKA_TRANSACTIONS": settings.kafka.transactions,
        "TIERLINE_CONFIG": None,
        "COLUMNS": str(columns),  # the terminal width rich renders for
    }
    result = await asyncio.to_thread(CliRunner().invoke, main, ["dlq", *args], env=env)
    assert result.exit_code == 0, result.output
    return result


def _json_lines(result: Result) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("transactions", ["on", "off"])
async def test_replay_sends_each_answerable_request_once_and_only_once(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, transactions: str
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, "", "", tmp_path)
    settings.kafka.transactions = transactions  # type: ignore[assignment]
    assert settings.transactional == (transactions == "on")
    topics = await _seed(settings)

    dry = await replay_dead_letters(settings, dry_run=True)
    assert dry.summary()["would_replay"] == 2 and dry.summary()["replayed_now"] == 0

    first = (await replay_dead_letters(settings)).summary()
    assert first == {
        "selected": 5,
        "answerable": 3,
        "already_replayed": 0,
        "duplicates": 1,
        "replayed_now": 2,
        "would_replay": 0,
        "not_answerable": {"bad_request": 1, "invalid_request": 1},
        "dry_run": False,
    }
    sent = await _requests_sent(settings, topics, want=2)
    requests = [RouteRequest.model_validate_json(r.value) for r in sent]
    assert Counter((r.tenant, r.id) for r in requests) == {
        ("acme", "dlq-a"): 1,
        ("globex", "dlq-b"): 1,
    }
    assert all(r.replay == 1 for r in requests)
    assert sorted(r.key for r in sent) == [b"acme", b"globex"]  # keyed by tenant, as apps do

    again = _json_lines(await _cli(settings, "replay", "--json"))
    assert again[-1]["summary"]["replayed_now"] == 0
    assert again[-1]["summary"]["already_replayed"] == 3
    assert len(again) == 1  # nothing sent: only the summary line
    assert len(await _requests_sent(settings, topics, want=3)) == 2

    rows = _json_lines(await _cli(settings, "list", "--json"))
    shown = {(r["request_id"], r["error_type"]): r for r in rows}
    assert len(rows) == 5
    answerable = {key: (r["answerable"], r["replayed"]) for key, r in shown.items()}
    assert answerable == {
        ("dlq-a", "timeout"): (True, True),
        ("dlq-b", "connection"): (True, True),
        ("", "invalid_request"): (False, False),
        ("dlq-c", "bad_request"): (False, False),
        ("dlq-a", "unavailable"): (True, True),
    }
    assert shown[("dlq-b", "connection")]["source_topic"] == topics.tier(Tier.ECONOMY)
    assert all(r["replay"] == 0 for r in rows if r["request_id"])


async def test_list_selects_by_error_type_and_time_and_the_table_cuts_reasons(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, "", "", tmp_path)
    await _seed(settings)

    listing = await list_dead_letters(settings, error_types={"timeout", "connection"})
    assert sorted(r.request_id for r in listing.records) == ["dlq-a", "dlq-b"]
    assert not listing.replayed
    assert (await list_dead_letters(settings, since=datetime.now(UTC))).records == []
    assert len((await list_dead_letters(settings, limit=2)).records) == 2

    narrow = await _cli(settings, "list", "--since", "1h")  # two plain lines a dead letter
    assert "dlq-c  bad_request  gen 0  replay? no  from tier.standard" in narrow.stdout
    assert "5 dead letters; 3 answerable and not replayed yet" in narrow.stderr
    table = await _cli(settings, "list", "--since", "1h", "--limit", "3", columns=200)
    assert "dlq-c" in table.stdout and "bad_request" in table.stdout and "dlq-a" in table.stdout
    assert "3 dead letters" in table.stderr
