"""The calls waiting for answers: one send per key, tenants kept apart, late answers kept."""

from __future__ import annotations

import asyncio

import pytest

from tierline.processors.gateway.waiters import Waiters
from tierline.schemas import RouteResponse


def answer(tenant: str, rid: str, content: str = "hi") -> RouteResponse:
    return RouteResponse(id=rid, tenant=tenant, status="ok", content=content)


class Sends:
    """A `send` that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


async def test_a_repeated_key_in_flight_joins_the_wait_and_is_sent_once() -> None:
    waiters, sends = Waiters(), Sends()
    first = asyncio.create_task(waiters.wait("acme", "r1", sends, 5))
    second = asyncio.create_task(waiters.wait("acme", "r1", sends, 5))
    await asyncio.sleep(0)
    assert sends.count == 1 and len(waiters) == 1 and waiters.wants("r1")
    assert waiters.resolve(answer("acme", "r1"))
    assert (await first).content == (await second).content == "hi"
    assert len(waiters) == 0 and not waiters.wants("r1")


async def test_two_tenants_with_one_id_each_get_only_their_own_answer() -> None:
    waiters, sends = Waiters(), Sends()
    acme = asyncio.create_task(waiters.wait("acme", "same", sends, 5))
    globex = asyncio.create_task(waiters.wait("globex", "same", sends, 5))
    await asyncio.sleep(0)
    assert sends.count == 2  # two requests: the key is (tenant, id)
    assert waiters.resolve(answer("globex", "same", "for globex"))
    assert (await globex).content == "for globex"
    assert not acme.done() and waiters.wants("same")
    assert not waiters.resolve(answer("initech", "same"))  # nobody asked for it
    waiters.resolve(answer("acme", "same", "for acme"))
    assert (await acme).content == "for acme"


async def test_a_late_answer_is_kept_for_the_key_asked_again() -> None:
    waiters, sends = Waiters(remember=10), Sends()
    with pytest.raises(TimeoutError):
        await waiters.wait("acme", "slow", sends, 0.01)
    assert len(waiters) == 0 and waiters.wants("slow")  # still expected
    assert waiters.resolve(answer("acme", "slow", "at last"))
    again = await waiters.wait("acme", "slow", sends, 5)
    assert again.content == "at last" and sends.count == 1  # answered from memory


async def test_a_key_asked_again_after_a_timeout_waits_for_the_first_answer() -> None:
    waiters, sends = Waiters(remember=10), Sends()
    with pytest.raises(TimeoutError):
        await waiters.wait("acme", "slow", sends, 0.01)
    retry = asyncio.create_task(waiters.wait("acme", "slow", sends, 5))
    await asyncio.sleep(0)
    assert sends.count == 2  # sent again: the pipeline drops the copy, the answer is one
    waiters.resolve(answer("acme", "slow"))
    assert (await retry).status == "ok"
    assert not waiters.wants("slow")


async def test_memory_is_bounded() -> None:
    waiters, sends = Waiters(remember=2), Sends()
    for rid in ("a", "b", "c"):
        task = asyncio.create_task(waiters.wait("acme", rid, sends, 5))
        await asyncio.sleep(0)
        waiters.resolve(answer("acme", rid))
        await task
    await waiters.wait("acme", "c", sends, 5)
    assert sends.count == 3  # c remembered
    for rid in ("x", "y", "z"):
        with pytest.raises(TimeoutError):
            await waiters.wait("acme", rid, sends, 0.001)
    assert not waiters.wants("x") and waiters.wants("y") and waiters.wants("z")


async def test_without_memory_nothing_is_kept() -> None:
    waiters, sends = Waiters(remember=0), Sends()
    with pytest.raises(TimeoutError):
        await waiters.wait("acme", "slow", sends, 0.01)
    assert not waiters.wants("slow")


async def test_a_failed_send_fails_every_call_that_joined_it() -> None:
    waiters = Waiters()
    started = asyncio.Event()

    async def broken() -> None:
        started.set()
        await asyncio.sleep(0.01)
        raise ConnectionError("broker down")

    first = asyncio.create_task(waiters.wait("acme", "r1", broken, 5))
    await started.wait()
    joined = asyncio.create_task(waiters.wait("acme", "r1", broken, 5))
    for call in (first, joined):
        with pytest.raises(ConnectionError):
            await call
    assert len(waiters) == 0


async def test_abandon_fails_the_calls_in_flight() -> None:
    waiters, sends = Waiters(), Sends()
    call = asyncio.create_task(waiters.wait("acme", "r1", sends, 5))
    await asyncio.sleep(0)
    waiters.abandon(ConnectionAbortedError("stopping"))
    with pytest.raises(ConnectionAbortedError):
        await call
