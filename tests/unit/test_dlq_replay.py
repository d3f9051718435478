"""`tierline dlq`: the pure parts (--since, answerable or not, marker keys, selecting, planning)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from click.testing import CliRunner

from tierline.schemas import (
    DeadLetter,
    ErrorType,
    RoutedRequest,
    RouteRequest,
    RoutingDecision,
    Tier,
    encode,
)
from tierline.streams.dlq_replay import (
    ANSWERABLE,
    MOST_REPLAYS,
    NO_HEADERS,
    DeadRecord,
    dead_request,
    is_answerable,
    marker_key,
    parse_when,
    plan_replay,
    read_letter,
    replay_sends,
    row,
    select,
)
from tierline.streams.topics import Topics

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _request(rid: str = "r-1", tenant: str = "acme", replay: int = 0) -> RouteRequest:
    return RouteRequest.model_validate(
        {
            "id": rid,
            "tenant": tenant,
            "messages": [{"role": "user", "content": "hi"}],
            "replay": replay,
        }
    )


def _routed(request: RouteRequest) -> RoutedRequest:
    return RoutedRequest(
        request=request,
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1),
        candidates=["m"],
        routed_at=NOW,
    )


def _dead(
    error_type: str = "timeout",
    request: RouteRequest | None = None,
    *,
    offset: int = 0,
    minutes_ago: float = 5,
) -> DeadRecord:
    letter = DeadLetter(reason="provider timed out", error_type=error_type, source_topic="x")
    at = NOW - timedelta(minutes=minutes_ago)
    return DeadRecord(0, offset, int(at.timestamp() * 1000), letter, request)


# --- --since ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "back"),
    [("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1))],
)
def test_since_takes_a_span_back_from_now(text: str, back: timedelta) -> None:
    assert parse_when(text, NOW) == NOW - back


def test_since_takes_an_iso_time_and_reads_one_without_offset_as_utc() -> None:
    assert parse_when("2025-02-28T08:30:00Z", NOW) == datetime(2025, 2, 28, 8, 30, tzinfo=UTC)
    assert parse_when("2025-02-28T08:30:00", NOW) == datetime(2025, 2, 28, 8, 30, tzinfo=UTC)
    at = parse_when("2025-02-28T10:30:00+02:00", NOW)
    assert at == datetime(2025, 2, 28, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "5x", "", "2025-13-01"])
def test_since_refuses_anything_else_saying_what_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_when(text, NOW)


# --- what a dead letter holds, and whether a replay helps -----------------------------------


def test_the_request_is_read_from_a_route_request_or_a_routed_request() -> None:
    request = _request()
    assert dead_request(encode(request)) == request
    assert dead_request(encode(_routed(request))) == request


@pytest.mark.parametrize(
    "value", [None, b"", b"{not json", b"[1, 2]", b'"text"', orjson.dumps({"id": "x"})]
)
def test_a_value_that_is_no_request_holds_none(value: bytes | None) -> None:
    assert dead_request(value) is None


def test_answerable_means_a_passing_failure_and_a_request_to_send() -> None:
    request = _request()
    for error_type in ANSWERABLE:
        assert is_answerable(error_type, request)
        assert not is_answerable(error_type, None)
    for error_type in ("invalid_request", "bad_request", "auth", "budget_exceeded", ""):
        assert not is_answerable(error_type, request)


def test_a_request_replayed_as_often_as_the_schema_allows_is_not_answerable() -> None:
    assert is_answerable(ErrorType.TIMEOUT, _request(replay=MOST_REPLAYS - 1))
    assert not is_answerable(ErrorType.TIMEOUT, _request(replay=MOST_REPLAYS))


def test_the_marker_key_is_the_request_key_and_the_generation_that_died() -> None:
    assert marker_key(_request("r-1", "acme")) == "acme\x1fr-1#0"
    assert marker_key(_request("r-1", "acme", replay=2)) == "acme\x1fr-1#2"


def test_a_record_without_dead_letter_headers_reads_as_no_error_type() -> None:
    letter = read_letter([("other", b"1")])
    assert (letter.reason, letter.error_type) == (NO_HEADERS, "")
    full = DeadLetter(reason="r", error_type="timeout", source_topic="t", tenant="acme")
    assert read_letter(full.to_headers()) == full


# --- selecting and planning -------------------------------------------------------------------


def test_select_by_time_and_error_type_oldest_first() -> None:
    old = _dead("timeout", offset=1, minutes_ago=120)
    new_timeout = _dead("timeout", offset=2, minutes_ago=10)
    new_bad = _dead("bad_request", offset=3, minutes_ago=5)
    records = [new_bad, new_timeout, old]
    assert select(records) == [old, new_timeout, new_bad]
    assert select(records, since=NOW - timedelta(hours=1)) == [new_timeout, new_bad]
    assert select(records, error_types={"timeout"}) == [old, new_timeout]
    since = NOW - timedelta(hours=1)
    assert select(records, since=since, error_types={"bad_request"}) == [new_bad]


def test_plan_sends_each_request_and_generation_once_and_skips_the_replayed() -> None:
    first = _request("a")
    fresh = _dead("timeout", first, offset=1)
    twin = _dead("connection", first, offset=2)  # the router and a worker both gave up
    done = _dead("timeout", _request("b"), offset=3)
    next_generation = _dead("timeout", _request("b", replay=1), offset=4)
    garbage = _dead("invalid_request", None, offset=5)
    refused = _dead("bad_request", _request("c"), offset=6)
    unreadable_timeout = _dead("timeout", None, offset=7)
    selected = [fresh, twin, done, next_generation, garbage, refused, unreadable_timeout]

    plan = plan_replay(selected, replayed={"acme\x1fb#0"})

    assert plan.send == [fresh, next_generation]
    assert (plan.selected, plan.answerable) == (7, 4)
    assert (plan.already_replayed, plan.duplicates) == (1, 1)
    assert plan.not_answerable == {"invalid_request": 1, "bad_request": 1, "timeout": 1}


def test_replay_sends_the_request_one_generation_up_keyed_by_tenant_and_marks_it() -> None:
    topics = Topics("p.")
    record = _dead("timeout", _request("r-9", "globex", replay=1), offset=42)
    resend, marker = replay_sends(record, topics, NOW)
    assert (resend.topic, resend.key) == ("p.requests", b"globex")
    again = RouteRequest.model_validate_json(resend.value)
    assert (again.id, again.tenant, again.replay) == ("r-9", "globex", 2)
    assert (marker.topic, marker.key) == ("p.dlq.replays", b"globex\x1fr-9#1")
    assert orjson.loads(marker.value) == {
        "replayed_at": NOW.isoformat(),
        "dlq_partition": 0,
        "dlq_offset": 42,
        "error_type": "timeout",
        "replay": 2,
    }
    with pytest.raises(ValueError, match="holds no request"):
        replay_sends(_dead("timeout", None), topics, NOW)


def test_a_row_prefers_the_request_and_says_answerable_and_replayed() -> None:
    record = _dead("timeout", _request("r-1", "acme"))
    shown = row(record, replayed={"acme\x1fr-1#0"})
    assert shown["time"] == "2025-03-01T11:55:00+00:00"
    assert (shown["tenant"], shown["request_id"], shown["replay"]) == ("acme", "r-1", 0)
    assert (shown["answerable"], shown["replayed"]) == (True, True)
    garbage = row(_dead("invalid_request", None), replayed=set())
    assert (garbage["replay"], garbage["answerable"], garbage["replayed"]) == (None, False, False)


def test_narrow_terminals_get_two_lines_a_dead_letter_wide_ones_a_table() -> None:
    from rich.console import Console

    from tierline.streams.cli.dlq import REASON_WIDTH, dlq_lines, dlq_table

    record = _dead("unavailable", _request("r-1", "acme"))
    long_reason = "no candidate of the tier was usable until the deadline " * 3
    letter = record.letter.model_copy(update={"reason": long_reason, "source_topic": "p.tier.x"})
    shown = row(DeadRecord(0, 7, record.timestamp_ms, letter, record.request), replayed=set())
    assert dlq_lines([shown], "p.") == [
        "2025-03-01 11:55  acme  r-1  unavailable  gen 0  replay? yes  from tier.x",
        f"    {long_reason}",
    ]
    console = Console(width=200, record=True)
    console.print(dlq_table([shown], "p."))
    text = console.export_text()
    assert "2025-03-01 11:55" in text and "tier.x" in text and "p.tier.x" not in text
    assert long_reason[: REASON_WIDTH - 1] + "…" in text


@pytest.mark.parametrize("dry_run", [True, False])
def test_replay_prints_each_request_sent_then_the_summary(dry_run: bool) -> None:
    from tierline.streams.cli.dlq import replay_lines
    from tierline.streams.dlq_replay import ReplayReport

    sent = _dead("timeout", _request("r-1", "acme", replay=1))
    plan = plan_replay([sent, _dead("bad_request", _request("r-2"))], replayed=set())
    lines = replay_lines(ReplayReport(plan, dry_run, list(plan.send)))
    verb, done = ("would send", "would replay") if dry_run else ("sent", "replayed now")
    assert lines[0] == (
        f"{verb}: tenant acme request r-1 as replay 2 (died 2025-03-01 11:55:00 UTC of timeout)"
    )
    assert f"{done}: 1" in lines
    assert "not answerable: 1 (bad_request 1)" in lines
    assert ("dry run: nothing was sent" in lines) == dry_run


# --- the commands' errors ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["list", "replay"])
def test_without_kafka_configured_the_commands_say_what_to_set(command: str) -> None:
    from tierline.streams.cli import main

    env = {"TIERLINE_KAFKA_BOOTSTRAP": "", "TIERLINE_CONFIG": None}
    result = CliRunner().invoke(main, ["dlq", command], env=env)
    assert result.exit_code == 1
    assert "TIERLINE_KAFKA_BOOTSTRAP" in result.output and "kafka.bootstrap" in result.output


def test_a_since_it_cannot_read_is_a_usage_error() -> None:
    from tierline.streams.cli import main

    env = {"TIERLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1", "TIERLINE_CONFIG": None}
    result = CliRunner().invoke(main, ["dlq", "list", "--since", "last week"], env=env)
    assert result.exit_code == 2 and "ISO-8601" in result.output
