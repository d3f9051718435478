"""The simulator's shared wire skeleton: the helpers every wire format parses with."""

from __future__ import annotations

import pytest

from tierline.processors.simulator.anthropic_wire import AnthropicWire
from tierline.processors.simulator.gemini_wire import GeminiWire
from tierline.processors.simulator.openai_wire import OpenAIWire
from tierline.processors.simulator.wire import PromptTally, WireFormat, part_texts, positive_int


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (7, True), (0, False), (-3, False), (True, False), (1.0, False), ("5", False)],
)
def test_positive_int_takes_whole_counts_only(value: object, ok: bool) -> None:
    assert positive_int(value) is ok


def test_part_texts_joins_the_text_parts_and_skips_the_rest() -> None:
    assert part_texts([{"text": "a"}, {"image": 1}, 3, {"text": 2}, {"text": "b"}]) == "a b"
    assert part_texts([{"text": "only"}]) == "only"
    assert part_texts([]) == ""


def test_tally_without_system_caches_the_first_message() -> None:
    tally = PromptTally()
    tally.system("")  # an empty system prompt is no message
    tally.message("", user=False)
    tally.message("second", user=True)
    req = tally.request("m", None)
    assert (req.first_text, req.n_messages, req.text_chars) == ("", 2, 6)
    assert req.last_user_text == "second"


def test_tally_with_system_caches_the_system_prompt() -> None:
    tally = PromptTally()
    tally.system("be brief")
    tally.message("hi", user=True)
    tally.message("hello", user=False)
    req = tally.request("m", 5, wants_json=True, json_schema={"type": "object"}, cache_marked=True)
    assert (req.first_text, req.n_messages, req.text_chars) == ("be brief", 3, 15)
    assert req.last_user_text == "hi"
    assert (req.max_tokens, req.wants_json, req.cache_marked) == (5, True, True)
    assert req.json_schema == {"type": "object"}


WIRES = [OpenAIWire(), AnthropicWire(), GeminiWire()]


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_every_wire_format_is_a_complete_wire_format(wire: WireFormat) -> None:
    assert isinstance(wire, WireFormat)
    assert wire.error_statuses and all(s >= 500 for s in wire.error_statuses)
    # the fallback messages format with a status and nothing else
    assert wire.server_error_text.format(status=599)
    assert wire.client_error_text.format(status=418)
