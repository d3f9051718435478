"""Whatever bytes arrive, the router step answers: one forward, or one dead letter (+ a reply).

The property, over a corpus of malformed requests (tests/corpus/malformed.py) and over
bytes hypothesis makes up: the step never raises; an input is either routed (exactly one
send to its tier, beside its `tierline.features` record) or rejected (exactly one dead
letter holding the input byte for byte, plus exactly one error response when, and only
when, an id can be read).
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus.malformed import CORPUS, Case
from tierline.processors.pricing.catalog import load_catalog
from tierline.processors.routing.classifiers.rules import RulesClassifier
from tierline.processors.routing.tier_rules import TierRules
from tierline.schemas import DeadLetter, RouteResponse, Tier
from tierline.streams.config import RouterSettings, Settings
from tierline.streams.outgoing import Outgoing
from tierline.streams.router import RequestRouter
from tierline.streams.topic_directory import TopicDirectory
from tierline.streams.topics import Topics

TOPICS = Topics("t.")
STEP = RequestRouter(
    Settings(router=RouterSettings(max_request_bytes=64 * 1024)),
    TOPICS,
    RulesClassifier(),
    TierRules(),
    load_catalog(),
    TopicDirectory.fixed([*TOPICS.all(), "acme.replies"]),
)
TIER_TOPICS = {TOPICS.tier(t) for t in Tier}


def check_outcome(raw: bytes | None, sends: list[Outgoing]) -> str:
    """Assert the property for one input; say whether it was routed or rejected."""
    forwards = [s for s in sends if s.topic != TOPICS.features]  # a routed one's record
    if len(forwards) == 1 and forwards[0].topic in TIER_TOPICS:
        return "routed"
    letters = [s for s in sends if s.topic == TOPICS.dlq]
    replies = [s for s in sends if s.topic != TOPICS.dlq]
    assert len(letters) == 1, sends
    assert letters[0].value == (raw or b"")  # byte for byte
    assert letters[0].headers is not None
    letter = DeadLetter.from_headers(letters[0].headers)
    assert letter.reason and letter.error_type
    assert len(replies) <= 1
    if replies:
        response = RouteResponse.model_validate(orjson.loads(replies[0].value))
        assert response.status == "error" and response.error is not None
        assert response.id == letter.request_id != ""
        assert replies[0].topic in (TOPICS.responses, "acme.replies")
    else:
        assert letter.request_id == ""
    return "rejected"


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
async def test_every_malformed_request_gets_what_its_class_says(case: Case) -> None:
    sends = await STEP.decide(case.raw, ("t.requests", 0, 1))
    assert check_outcome(case.raw, sends) == "rejected"
    replies = [s for s in sends if s.topic != TOPICS.dlq]
    if case.answered:
        assert len(replies) == 1, f"{case.name}: id {case.answered!r} is readable, no reply"
        assert RouteResponse.model_validate(orjson.loads(replies[0].value)).id == case.answered
        assert replies[0].topic == TOPICS.responses  # never a reply_to it did not earn
    else:
        assert replies == [], f"{case.name}: answered, but its id is not readable"


def test_the_corpus_covers_every_class() -> None:
    kinds = {c.kind for c in CORPUS}
    assert kinds >= {"syntax", "strict", "shape", "identifier", "type", "size", "reply_to"}
    assert len(CORPUS) >= 80


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=140), json_like),
        "tenant": st.one_of(st.text(max_size=10), json_like),
        "messages": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "system", "bot", ""]), "content": json_like}
                ),
                max_size=3,
            ),
            json_like,
        ),
        "params": json_like,
        "hints": json_like,
        "metadata": json_like,
        "reply_to": st.one_of(st.sampled_from(["acme.replies", "t.dlq", "__x"]), st.text()),
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(st.binary(max_size=300), fields.map(lambda d: orjson.dumps(d, option=0))))
async def test_no_input_stops_the_router_or_goes_unanswered(raw: bytes) -> None:
    sends = await STEP.decide(raw, ("t.requests", 0, 1))
    check_outcome(raw, sends)


async def test_an_empty_message_is_dead_lettered() -> None:
    sends = await STEP.decide(None, ("t.requests", 0, 1))
    assert check_outcome(None, sends) == "rejected"
