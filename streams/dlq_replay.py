"""Replaying dead letters: sending again what died of a passing failure.

A dead letter (`streams.outgoing.dead_letter`) is the message as it was read,
byte for byte, with headers saying why it died (`schemas.DeadLetter`). Some died
of something that passes: a provider timed out, refused connections, was
overloaded, or every model of the tier was unusable until the deadline. Once
that is over, the same request would be answered. The others (malformed input,
a request every provider refuses, a budget or a policy saying no) would die the
same way again: they are listed, never replayed.

`tierline dlq replay` reads the DLQ from its start up to the end it had when the
command started, keeps the answerable dead letters (an error type in
`ANSWERABLE`, and a value that is a `RouteRequest`, or a `RoutedRequest`
holding one), and produces each request again to `tierline.requests`, keyed by
tenant as applications do, with `replay` one higher. Workers deduplicate by
request key *and* replay generation, so the copy is served even though the
original's key was seen, while a second copy of the same generation is not.

What was replayed is recorded in the compacted `tierline.dlq.replays`, keyed
`<request key>#<generation of the dead request>` (`marker_key`). That makes a
replay idempotent: a dead letter whose marker exists is skipped, and two dead
letters of one request and generation (the router and a worker both gave up on
it) are sent once. With Kafka transactions (`Settings.transactional`) each batch
of requests and their markers commits in one transaction: a crash can neither
replay without marking nor mark without replaying. Without them a batch of
requests is acknowledged before its markers are sent: at least once, and the
workers' dedupe by key and generation drops the copy a crash may leave.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import annotated_types
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from tierline.processors.store.spend import moment_of, parse_bound
from tierline.schemas import DeadLetter, ErrorType, RoutedRequest, RouteRequest, encode
from tierline.streams.config import Settings
from tierline.streams.outgoing import Outgoing
from tierline.streams.partition_outbox import transactional_producers
from tierline.streams.sender import send_one
from tierline.streams.tail import read_topic
from tierline.streams.topics import Topics, ensure_topics, partition_ids

#: the error types a later try can answer: the failure was the provider's, or ours, and passes
ANSWERABLE: frozenset[str] = frozenset(
    {
        ErrorType.TIMEOUT,
        ErrorType.CONNECTION,
        ErrorType.SERVER_ERROR,
        ErrorType.OVERLOADED,
        ErrorType.RATE_LIMITED,
        ErrorType.UNAVAILABLE,
        ErrorType.INTERNAL,
    }
)
#: requests (and their markers) per transaction, or per acknowledged batch without transactions
BATCH = 200
#: what a DLQ record without tierline's headers (someone else produced it) is listed as
NO_HEADERS = "(no dead-letter headers)"

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default `say`: progress goes nowhere."""


class ReplayError(RuntimeError):
    """Listing or replaying cannot go on, for a reason the operator can fix; the message says it."""


def _most_replays() -> int:
    """The highest `RouteRequest.replay` the schema accepts: a request there is not sent again."""
    for rule in RouteRequest.model_fields["replay"].metadata:
        if isinstance(rule, annotated_types.Le):
            return cast(int, rule.le)
    return sys.maxsize


MOST_REPLAYS = _most_replays()


# --- the pure parts: what a dead letter is, which to pick, what to send ----------------------


@dataclass(frozen=True, slots=True)
class DeadRecord:
    """One DLQ record as read: where it is, when it died, why, and the request it holds."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter
    #: the dead request, when the value is one (from `tierline.requests` or a tier topic)
    request: RouteRequest | None

    @property
    def died_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def tenant(self) -> str:
        return self.request.tenant if self.request else self.letter.tenant

    @property
    def request_id(self) -> str:
        return self.request.id if self.request else self.letter.request_id

    @property
    def generation(self) -> int | None:
        """How many times the dead request had been replayed (None: the value is no request)."""
        return self.request.replay if self.request else None

    @property
    def answerable(self) -> bool:
        return is_answerable(self.letter.error_type, self.request)

    @property
    def marker(self) -> str | None:
        """Its key in `tierline.dlq.replays` (None: there is no request to replay)."""
        return marker_key(self.request) if self.request else None


def parse_when(text: str, now: datetime) -> datetime:
    """`--since`: an ISO-8601 time (without an offset: UTC), or a span back from `now`; the
    forms of `tierline spend --since` (`processors.store.spend.parse_bound`), but not `all`."""
    bound = parse_bound(text, "--since")
    if bound is None:
        raise ValueError(
            "--since takes an ISO-8601 time or a span back from now; leave it out "
            "for every dead letter"
        )
    return moment_of(bound, now)


def dead_request(value: bytes | None) -> RouteRequest | None:
    """The request a DLQ value holds: a `RouteRequest`, or a `RoutedRequest`'s; else None."""
    if not value:
        return None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    for kind in (RoutedRequest, RouteRequest):
        try:
            parsed = kind.model_validate(data)
        except ValidationError:
            continue
        return parsed.request if isinstance(parsed, RoutedRequest) else parsed
    return None


def is_answerable(error_type: str, request: RouteRequest | None) -> bool:
    """Whether sending the request again can help: a passing failure, and a request to send."""
    return error_type in ANSWERABLE and request is not None and request.replay < MOST_REPLAYS


def marker_key(request: RouteRequest) -> str:
    """The key that says "replayed": the request's key and the generation that died."""
    return f"{request.key}#{request.replay}"


def read_letter(headers: Iterable[tuple[str, bytes]]) -> DeadLetter:
    """The dead-letter headers; a record without them is listed, with an empty error type."""
    try:
        return DeadLetter.from_headers(tuple(headers))
    except (ValidationError, UnicodeDecodeError):
        return DeadLetter(reason=NO_HEADERS, error_type="", source_topic="")


def to_dead_record(record: ConsumerRecord[bytes, bytes]) -> DeadRecord:
    """A DLQ record as `DeadRecord`."""
    return DeadRecord(
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        letter=read_letter(record.headers or ()),
        request=dead_request(record.value),
    )


def select(
    records: Iterable[DeadRecord],
    since: datetime | None = None,
    error_types: Collection[str] = (),
) -> list[DeadRecord]:
    """The records that died at `since` or later, of one of `error_types` (empty: any),
    oldest first."""
    since_ms = None if since is None else since.timestamp() * 1000
    chosen = [
        r
        for r in records
        if (since_ms is None or r.timestamp_ms >= since_ms)
        and (not error_types or r.letter.error_type in error_types)
    ]
    return sorted(chosen, key=lambda r: (r.timestamp_ms, r.partition, r.offset))


@dataclass
class ReplayPlan:
    """What a replay does with the selected dead letters, and why it leaves the others."""

    selected: int = 0
    #: the dead letters to send again, one per request and generation
    send: list[DeadRecord] = field(default_factory=list)
    #: answerable, but their marker says they were replayed before
    already_replayed: int = 0
    #: answerable, but another selected dead letter of the same request and generation is sent
    duplicates: int = 0
    #: per error type, the dead letters that are not answerable
    not_answerable: Counter[str] = field(default_factory=Counter)

    @property
    def answerable(self) -> int:
        return len(self.send) + self.already_replayed + self.duplicates


def plan_replay(selected: Sequence[DeadRecord], replayed: Collection[str]) -> ReplayPlan:
    """Which of `selected` to send: the answerable ones whose marker is not in `replayed`,
    each request and generation once."""
    plan = ReplayPlan(selected=len(selected))
    planned: set[str] = set()
    for record in selected:
        marker = record.marker
        if not record.answerable or marker is None:
            plan.not_answerable[record.letter.error_type or "(none)"] += 1
        elif marker in replayed:
            plan.already_replayed += 1
        elif marker in planned:
            plan.duplicates += 1
        else:
            planned.add(marker)
            plan.send.append(record)
    return plan


def replay_sends(record: DeadRecord, topics: Topics, now: datetime) -> tuple[Outgoing, Outgoing]:
    """The request to produce again (its `replay` one higher) and the marker recording it."""
    request, marker = record.request, record.marker
    if request is None or marker is None:
        raise ValueError(f"dead letter {record.partition}/{record.offset} holds no request")
    again = request.model_copy(update={"replay": request.replay + 1})
    resend = Outgoing(topics.requests, again.tenant.encode(), encode(again))
    note = {
        "replayed_at": now.isoformat(),
        "dlq_partition": record.partition,
        "dlq_offset": record.offset,
        "error_type": record.letter.error_type,
        "replay": again.replay,
    }
    return resend, Outgoing(topics.dlq_replays, marker.encode(), orjson.dumps(note))


def row(record: DeadRecord, replayed: Collection[str]) -> dict[str, Any]:
    """One dead letter as `tierline dlq list` shows it (the JSON line; the table cuts `reason`)."""
    letter = record.letter
    return {
        "time": record.died_at.isoformat(timespec="seconds"),
        "tenant": record.tenant,
        "request_id": record.request_id,
        "error_type": letter.error_type,
        "reason": letter.reason,
        "source_topic": letter.source_topic,
        "replay": record.generation,
        "answerable": record.answerable,
        "replayed": record.marker is not None and record.marker in replayed,
        "dlq_partition": record.partition,
        "dlq_offset": record.offset,
    }


# --- Kafka: reading the DLQ and the markers, sending the replays -----------------------------


def require_bootstrap(settings: Settings) -> str:
    """The configured Kafka; the embedded broker keeps no DLQ between runs, so none is started."""
    if not settings.kafka.bootstrap:
        raise ReplayError(
            "no Kafka configured: set TIERLINE_KAFKA_BOOTSTRAP (or kafka.bootstrap in the "
            "config file) to the cluster whose DLQ to read"
        )
    return settings.kafka.bootstrap


def isolation_of(settings: Settings) -> str:
    """Committed records only (an aborted dead letter never died); the embedded broker has no
    transactions to read past."""
    return "read_uncommitted" if settings.embedded_kafka else "read_committed"


async def read_dead_letters(
    settings: Settings, bootstrap: str, since: datetime | None = None, say: Say = _quiet
) -> list[DeadRecord]:
    """The DLQ's records (those that died at `since` or later, when given)."""
    topic = Topics(settings.kafka.topic_prefix).dlq
    if not await partition_ids(bootstrap, topic):
        raise ReplayError(
            f"topic {topic} does not exist at {bootstrap}: nothing was dead-lettered there yet, "
            "or kafka.topic_prefix (TIERLINE_KAFKA_TOPIC_PREFIX) names other topics"
        )
    say(f"reading {topic} ...")
    since_ms = None if since is None else int(since.timestamp() * 1000)
    records = await read_topic(bootstrap, topic, isolation_of(settings), since_ms)
    say(f"read {len(records)} dead letters")
    return [to_dead_record(r) for r in records]


async def read_markers(settings: Settings, bootstrap: str) -> set[str]:
    """The marker keys in `tierline.dlq.replays`: the dead letters replayed before."""
    topic = Topics(settings.kafka.topic_prefix).dlq_replays
    markers: set[str] = set()
    for record in await read_topic(bootstrap, topic, isolation_of(settings)):
        if record.key is None:
            continue
        if record.value is None:  # a tombstone takes a marker back
            markers.discard(record.key.decode())
        else:
            markers.add(record.key.decode())
    return markers


@dataclass(frozen=True)
class Listing:
    """What `tierline dlq list` shows: the selected dead letters, and which were replayed."""

    records: list[DeadRecord]
    replayed: set[str]

    def rows(self) -> list[dict[str, Any]]:
        return [row(r, self.replayed) for r in self.records]


async def list_dead_letters(
    settings: Settings,
    since: datetime | None = None,
    error_types: Collection[str] = (),
    limit: int | None = None,
    say: Say = _quiet,
) -> Listing:
    """The dead letters that died at `since` or later, of `error_types` (empty: any), oldest
    first; with `limit`, the newest `limit` of them."""
    bootstrap = require_bootstrap(settings)
    chosen = select(await read_dead_letters(settings, bootstrap, since, say), since, error_types)
    if limit is not None:
        chosen = chosen[-limit:] if limit > 0 else []
    return Listing(chosen, await read_markers(settings, bootstrap))


@dataclass
class ReplayReport:
    """What a replay did (or, in a dry run, would do)."""

    plan: ReplayPlan
    dry_run: bool
    #: the dead letters sent again (a dry run: those it would send)
    sent: list[DeadRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "selected": plan.selected,
            "answerable": plan.answerable,
            "already_replayed": plan.already_replayed,
            "duplicates": plan.duplicates,
            "replayed_now": 0 if self.dry_run else len(self.sent),
            "would_replay": len(self.sent) if self.dry_run else 0,
            "not_answerable": dict(sorted(plan.not_answerable.items())),
            "dry_run": self.dry_run,
        }


async def replay_dead_letters(
    settings: Settings,
    since: datetime | None = None,
    error_types: Collection[str] = (),
    dry_run: bool = False,
    say: Say = _quiet,
) -> ReplayReport:
    """Send again the answerable dead letters of the selection that were not replayed before.

    A dry run reads the same and sends nothing (nor creates a topic).
    """
    bootstrap = require_bootstrap(settings)
    if dry_run:
        topics = Topics(settings.kafka.topic_prefix)
    else:
        topics = await ensure_topics(settings.kafka, bootstrap)
    chosen = select(await read_dead_letters(settings, bootstrap, since, say), since, error_types)
    plan = plan_replay(chosen, await read_markers(settings, bootstrap))
    if dry_run or not plan.send:
        return ReplayReport(plan, dry_run, list(plan.send))
    now = datetime.now(UTC)
    pairs = [replay_sends(r, topics, now) for r in plan.send]
    sent = await publish_replays(settings, bootstrap, pairs, say)
    return ReplayReport(plan, dry_run, plan.send[:sent])


async def publish_replays(
    settings: Settings, bootstrap: str, pairs: Sequence[tuple[Outgoing, Outgoing]], say: Say
) -> int:
    """Send each (request, marker) pair, `BATCH` at a time; how many were sent.

    Transactional: a batch's requests and markers in one transaction. Otherwise a
    batch's requests, their acks, then their markers. A failure raises `ReplayError`
    saying how many were sent before it (their markers hold: a new run skips them).
    """
    transactional = settings.transactional
    producer = _producer(settings, bootstrap, transactional)
    await producer.start()
    sent = 0
    try:
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            requests, markers = [p[0] for p in chunk], [p[1] for p in chunk]
            if transactional:
                async with producer.transaction():
                    await _send_all(producer, requests + markers)
            else:
                await _send_all(producer, requests)
                await _send_all(producer, markers)
            sent += len(chunk)
            say(f"replayed {sent}/{len(pairs)}")
    except KafkaError as exc:
        raise ReplayError(
            f"sending the replays failed after {sent} of {len(pairs)}: {exc!r}; "
            "run `tierline dlq replay` again: what was recorded as replayed is skipped"
        ) from exc
    finally:
        await producer.stop()
    return sent


def replay_transactional_id(prefix: str) -> str:
    """One per topic prefix: a second replay running at once fences the first."""
    return f"{prefix}dlq-replay"


def _producer(settings: Settings, bootstrap: str, transactional: bool) -> AIOKafkaProducer:
    if transactional:
        new = transactional_producers(bootstrap, settings.kafka)
        return new(replay_transactional_id(settings.kafka.topic_prefix))
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=not settings.embedded_kafka,
        linger_ms=settings.kafka.linger_ms,
        max_request_size=settings.kafka.max_message_bytes,
    )


async def _send_all(producer: AIOKafkaProducer, sends: Sequence[Outgoing]) -> None:
    """Send all of `sends` and wait for their acks; the first error is raised."""
    errors = await asyncio.gather(*(send_one(producer, s) for s in sends))
    for error in errors:
        if error is not None:
            raise error
