"""A second copy of a request in flight waits for the first copy's turn to end."""

from __future__ import annotations

import asyncio

from tierline.streams.tier_worker import InFlightIds


async def test_a_second_copy_waits_for_the_first_to_finish() -> None:
    serving = InFlightIds()
    order: list[str] = []
    first_may_end = asyncio.Event()

    async def copy(name: str, hold: asyncio.Event | None = None) -> None:
        async with serving.turn("r1"):
            order.append(f"{name} starts")
            if hold is not None:
                await hold.wait()
            order.append(f"{name} ends")

    first = asyncio.create_task(copy("first", first_may_end))
    await asyncio.sleep(0)
    second = asyncio.create_task(copy("second"))
    other = asyncio.create_task(_other_request(serving, order))
    await asyncio.sleep(0.01)
    assert order == ["first starts", "r2 served"]  # another id does not wait
    first_may_end.set()
    await asyncio.wait_for(asyncio.gather(first, second, other), timeout=1)
    assert order == ["first starts", "r2 served", "first ends", "second starts", "second ends"]


async def _other_request(serving: InFlightIds, order: list[str]) -> None:
    async with serving.turn("r2"):
        order.append("r2 served")


async def test_a_turn_that_failed_still_lets_the_next_copy_in() -> None:
    serving = InFlightIds()

    async def fails() -> None:
        async with serving.turn("r1"):
            await asyncio.sleep(0)
            raise RuntimeError("publish failed")

    failing = asyncio.create_task(fails())
    await asyncio.sleep(0)

    async def second() -> str:
        async with serving.turn("r1"):
            return "served"

    assert await asyncio.wait_for(second(), timeout=1) == "served"
    assert isinstance(failing.exception(), RuntimeError)
