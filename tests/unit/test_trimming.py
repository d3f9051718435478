"""Context trimming: which messages a too-long history keeps, and when a model takes it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tierline.processors.pricing.catalog import ModelSpec
from tierline.processors.pricing.prices import Price
from tierline.processors.providers.tokens import count_prompt_tokens
from tierline.processors.routing.trim_rules import TrimRules
from tierline.processors.serving.context_fit import fit_model, output_room, window_label
from tierline.processors.serving.trimming import cut_points, keep_recent
from tierline.schemas import RouteRequest


def count(request: RouteRequest) -> int:
    return count_prompt_tokens(request, "anthropic")


def msg(role: str, text: str | None = "", **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": text, **extra}


def call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "function": {"name": "lookup", "arguments": '{"q": "x"}'}}


def ask(*messages: dict[str, Any], **fields: Any) -> RouteRequest:
    return RouteRequest.model_validate(
        {"id": "r", "tenant": "t", "messages": list(messages), **fields}
    )


WORDS = "the quarterly report covers revenue, churn and hiring plans in detail " * 8


def chat(turns: int, **fields: Any) -> RouteRequest:
    """A system prompt, then `turns` user/assistant exchanges, then a last question."""
    messages = [msg("system", "You are terse.")]
    for n in range(turns):
        messages += [msg("user", f"q{n} {WORDS}"), msg("assistant", f"a{n} {WORDS}")]
    return ask(*messages, msg("user", "and the last question?"), **fields)


def texts(request: RouteRequest) -> list[str]:
    return [m.text().split(" ")[0] for m in request.messages]


# --------------------------------------------------------------------------- keep_recent


def test_the_system_prompt_and_the_most_recent_turns_are_kept() -> None:
    request = chat(6)
    whole = count(request)
    trimmed = keep_recent(request, count, whole // 2)
    assert trimmed is not None
    kept = trimmed.request.messages
    assert kept[0].role == "system" and kept[0].text() == "You are terse."
    assert kept[1].role == "user"  # the kept history opens with a user turn
    assert kept[-1].text() == "and the last question?"
    assert trimmed.dropped == len(request.messages) - len(kept) > 0
    # the kept turns are the latest ones, in order: a suffix of the conversation
    assert [m.text() for m in kept[1:]] == [m.text() for m in request.messages[-(len(kept) - 1) :]]
    assert trimmed.tokens == count(trimmed.request) <= whole // 2


def test_the_fewest_messages_are_dropped() -> None:
    request = chat(6)
    without_first = ask(*[m.model_dump() for m in request.messages[:1] + request.messages[3:]])
    trimmed = keep_recent(request, count, count(without_first))
    assert trimmed is not None
    assert trimmed.dropped == 2  # q0 and a0: exactly what was too much
    assert texts(trimmed.request) == texts(without_first)


def test_every_system_message_is_kept_wherever_it_is() -> None:
    request = ask(
        msg("system", "rules"),
        msg("user", f"old {WORDS}"),
        msg("developer", "more rules"),
        msg("assistant", f"old {WORDS}"),
        msg("user", "new?"),
    )
    trimmed = keep_recent(request, count, 60, min_turns=1)
    assert trimmed is not None
    assert texts(trimmed.request) == ["rules", "more", "new?"]
    assert trimmed.dropped == 2


def test_the_last_user_turn_is_never_dropped() -> None:
    # the tool exchange after the last user turn goes with it
    request = ask(
        msg("system", "rules"),
        msg("user", f"old {WORDS}"),
        msg("assistant", f"old {WORDS}"),
        msg("user", "weather?"),
        msg("assistant", None, tool_calls=[call("c9")]),
        msg("tool", "sunny", tool_call_id="c9"),
    )
    trimmed = keep_recent(request, count, 80, min_turns=1)
    assert trimmed is not None
    assert [m.role for m in trimmed.request.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
    ]
    assert trimmed.request.messages[1].text() == "weather?"
    assert cut_points(request.messages) == [3]


def test_a_history_too_long_even_trimmed_is_not_trimmed() -> None:
    request = ask(
        msg("system", "rules"),
        msg("user", f"old {WORDS}"),
        msg("assistant", "ok"),
        msg("user", f"new {WORDS}"),
    )
    last_alone = count(ask(msg("system", "rules"), msg("user", f"new {WORDS}")))
    assert keep_recent(request, count, last_alone - 1, min_turns=1) is None
    assert keep_recent(request, count, last_alone, min_turns=1) is not None
    assert keep_recent(request, count, 0, min_turns=1) is None


def test_min_turns_refuses_a_trim_that_keeps_too_little() -> None:
    request = ask(msg("user", f"old {WORDS}"), msg("assistant", f"old {WORDS}"), msg("user", "hi"))
    last_alone = count(ask(msg("user", "hi")))
    assert keep_recent(request, count, last_alone, min_turns=1) is not None
    assert keep_recent(request, count, last_alone, min_turns=2) is None


def test_one_message_has_nothing_to_trim() -> None:
    request = ask(msg("system", "rules"), msg("user", WORDS))
    assert cut_points(request.messages) == []
    assert keep_recent(request, count, 5, min_turns=1) is None


AGENT = ask(
    msg("system", "rules"),
    msg("user", f"u1 {WORDS}"),
    msg("assistant", None, tool_calls=[call("c1"), call("c2")]),
    msg("tool", f"r1 {WORDS}", tool_call_id="c1"),
    msg("tool", f"r2 {WORDS}", tool_call_id="c2"),
    msg("assistant", f"a1 {WORDS}"),
    msg("user", f"u2 {WORDS}"),
    msg("assistant", None, tool_calls=[call("c3")]),
    msg("tool", f"r3 {WORDS}", tool_call_id="c3"),
    msg("assistant", f"a2 {WORDS}"),
    msg("user", "u3 last?"),
    msg("assistant", None, tool_calls=[call("c4")]),
    msg("tool", "r4", tool_call_id="c4"),
    params={"tools": [{"type": "function", "function": {"name": "lookup"}}]},
)


def test_tool_calls_and_their_results_are_never_split() -> None:
    whole = count(AGENT)
    seen = set()
    for budget in range(0, whole + 1, 7):
        trimmed = keep_recent(AGENT, count, budget, min_turns=1)
        if trimmed is None:
            continue
        kept = trimmed.request.messages
        asked = {c.id for m in kept for c in m.tool_calls or ()}
        answered = {m.tool_call_id for m in kept if m.role == "tool"}
        assert asked == answered, texts(trimmed.request)
        assert kept[1].role == "user"
        assert trimmed.tokens <= budget
        seen.add(trimmed.dropped)
    assert seen == {5, 9}  # cut before u2, or before u3: never inside an exchange


def test_a_cut_between_a_call_and_its_late_result_is_not_allowed() -> None:
    # a user turn sits between the call and its result: cutting before it would keep an
    # orphan tool result
    request = ask(
        msg("user", f"u1 {WORDS}"),
        msg("assistant", None, tool_calls=[call("c1")]),
        msg("user", f"u2 {WORDS}"),
        msg("tool", "r1", tool_call_id="c1"),
        msg("assistant", "a"),
        msg("user", "u3"),
    )
    assert cut_points(request.messages) == [5]


def test_the_tools_offered_are_counted_in_the_trimmed_prompt() -> None:
    trimmed = keep_recent(AGENT, count, count(AGENT) // 2, min_turns=1)
    assert trimmed is not None
    assert trimmed.request.params.tools == AGENT.params.tools
    assert trimmed.tokens == count(trimmed.request)


# --------------------------------------------------------------------------- fit_model


def model(window: int | None, max_output: int | None = None) -> ModelSpec:
    return ModelSpec(
        name="nano",
        provider="anthropic",
        model_id="nano",
        api_base="http://127.0.0.1:1",
        key_env="",
        price=Price.per_million(Decimal("0.1"), Decimal("0.4")),
        context_window=window,
        max_output_tokens=max_output,
    )


RULES = TrimRules(min_turns=1)


def test_a_prompt_that_fits_is_sent_whole() -> None:
    request = chat(2)
    fit = fit_model(request, model(100_000), RULES, 512)
    assert fit.ok and fit.trimmed is None
    assert fit_model(request, model(None), RULES, 512).ok


def test_a_prompt_over_the_window_is_trimmed_and_leaves_room_for_the_answer() -> None:
    request = chat(8, params={"max_tokens": 300})
    window = count(request) // 2
    fit = fit_model(request, model(window), TrimRules(min_turns=1, headroom_tokens=100), 512)
    assert fit.ok and fit.trimmed is not None
    assert fit.tokens == count(fit.trimmed.request)
    assert fit.tokens + 300 + 100 <= window  # the answer's room and the headroom are free
    assert fit.reason.startswith(f"trimmed {fit.trimmed.dropped} oldest messages to fit nano's ")


def test_a_prompt_that_fits_only_without_room_for_the_answer_is_trimmed() -> None:
    request = chat(4)
    window = count(request) + 10  # fits, but leaves 10 tokens for the answer
    fit = fit_model(request, model(window), RULES, 512)
    assert fit.trimmed is not None and fit.tokens + 512 + 256 <= window


def test_the_answer_room_is_max_tokens_else_the_typical_answer_within_the_model() -> None:
    bounded = ask(msg("user", "hi"), params={"max_tokens": 64})
    assert output_room(bounded, model(1000, max_output=32), 512) == 64
    assert output_room(ask(msg("user", "hi")), model(1000), 512) == 512
    assert output_room(ask(msg("user", "hi")), model(1000, max_output=200), 512) == 200


def test_a_request_that_opts_out_is_not_trimmed() -> None:
    request = chat(8, hints={"trim": False})
    window = count(request) // 2
    fit = fit_model(request, model(window), RULES, 512)
    assert not fit.ok and fit.trimmed is None and fit.tokens > window
    off = fit_model(chat(8), model(window), TrimRules(enabled=False), 512)
    assert not off.ok and off.trimmed is None


def test_a_history_no_trim_fits_is_judged_as_before() -> None:
    huge = ask(msg("system", "rules"), msg("user", WORDS * 4))
    assert not fit_model(huge, model(100), RULES, 512).ok  # skipped, as without trimming
    # fits the window but no trim leaves room: sent whole, as without trimming
    window = count(huge) + 10
    fit = fit_model(huge, model(window), RULES, 512)
    assert fit.ok and fit.trimmed is None


@pytest.mark.parametrize(
    ("window", "label"), [(128_000, "128k"), (2000, "2k"), (1_047_576, "1,047,576-token")]
)
def test_windows_are_labelled_as_people_say_them(window: int, label: str) -> None:
    assert window_label(window) == label
