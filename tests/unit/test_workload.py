"""streams.workload: the demo workload file and the request generator."""

from __future__ import annotations

from collections import Counter

import pytest

from tierline.schemas import RouteRequest
from tierline.streams.workload import DIFFICULTIES, TASKS, demo_requests, load_workload, to_request


@pytest.fixture(scope="module")
def workload() -> list[dict[str, object]]:
    return load_workload()


def test_has_enough_entries(workload: list[dict[str, object]]) -> None:
    assert len(workload) >= 200


def test_every_entry_is_a_valid_request(workload: list[dict[str, object]]) -> None:
    for index, entry in enumerate(workload):
        request = to_request(entry, f"w-{index}")
        assert isinstance(request, RouteRequest)
        assert request.messages[-1].role == "user"
        assert request.prompt_text().strip()
        assert request.metadata.feature
        assert request.metadata.tags["expected_task"] == entry["expected_task"]


def test_labels_and_dimensions(workload: list[dict[str, object]]) -> None:
    tasks = Counter(str(entry["expected_task"]) for entry in workload)
    assert set(tasks) == set(TASKS)  # every label appears, no stray ones
    assert {entry["difficulty"] for entry in workload} == set(DIFFICULTIES)
    tenants = {entry["tenant"] for entry in workload}
    assert len(tenants) == 4
    features = {entry["metadata"]["feature"] for entry in workload}  # type: ignore[index]
    assert 6 <= len(features) <= 10


def test_mix_is_mostly_easy(workload: list[dict[str, object]]) -> None:
    shares = Counter(str(entry["difficulty"]) for entry in workload)
    total = len(workload)
    assert 0.45 <= shares["easy"] / total <= 0.65
    assert 0.20 <= shares["medium"] / total <= 0.40
    assert 0.08 <= shares["hard"] / total <= 0.25


def test_hints_agree_with_labels(workload: list[dict[str, object]]) -> None:
    for entry in workload:
        hints = entry.get("hints") or {}
        assert isinstance(hints, dict)
        if "task" in hints:
            assert hints["task"] == entry["expected_task"]


def test_prompts_vary_in_length(workload: list[dict[str, object]]) -> None:
    lengths = [len(to_request(entry, "x").prompt_text()) for entry in workload]
    assert min(lengths) < 100
    assert sum(length > 1000 for length in lengths) >= 10
    assert len({to_request(entry, "x").messages[-1].text() for entry in workload}) == len(workload)


def test_demo_requests_returns_n_with_ids() -> None:
    requests = demo_requests(25, seed=7)
    assert len(requests) == 25
    assert [request.id for request in requests] == [f"demo-7-{i}" for i in range(25)]
    assert demo_requests(0, seed=7) == []
    with pytest.raises(ValueError):
        demo_requests(-1, seed=7)


def test_demo_requests_is_deterministic() -> None:
    first = demo_requests(50, seed=3)
    assert [r.model_dump() for r in first] == [r.model_dump() for r in demo_requests(50, seed=3)]
    other = demo_requests(50, seed=4)
    assert [r.prompt_text() for r in first] != [r.prompt_text() for r in other]


def test_demo_requests_cycles_through_everything(workload: list[dict[str, object]]) -> None:
    size = len(workload)
    requests = demo_requests(2 * size + 5, seed=1)
    assert len(requests) == 2 * size + 5
    first_pass = Counter(r.prompt_text() for r in requests[:size])
    assert len(first_pass) == len({to_request(e, "x").prompt_text() for e in workload})
    assert all(r.id == f"demo-1-{i}" for i, r in enumerate(requests))


def test_labels_stay_out_of_the_request() -> None:
    for request in demo_requests(40, seed=11):
        dumped = request.model_dump()
        assert "expected_task" not in dumped
        assert "difficulty" not in dumped
        assert request.metadata.tags["expected_task"] in TASKS
        assert request.metadata.tags["expected_difficulty"] in DIFFICULTIES
