"""The sender against a fake producer: only failed sends go again, each rerouted as it must."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from tierline.schemas import RouteResponse, encode
from tierline.streams.outgoing import Outgoing
from tierline.streams.sender import Sender
from tierline.streams.topics import Topics

#: (topic, how many sends to it came before) -> the error the broker answers, or None
Refuse = Callable[[str, int], BaseException | None]


class FakeProducer:
    def __init__(self, refuse: Refuse) -> None:
        self.refuse = refuse
        self.tries: Counter[str] = Counter()
        self.landed: list[Outgoing] = []

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        error = self.refuse(topic, self.tries[topic])
        self.tries[topic] += 1
        if error is None:
            self.landed.append(
                Outgoing(topic, key, value, None if headers is None else tuple(headers), partition)
            )
            ack.set_result(None)
        else:
            ack.set_exception(error)
        return ack


def sender(refuse: Refuse) -> tuple[Sender, FakeProducer]:
    producer = FakeProducer(refuse)
    return Sender(producer, Topics("t."), "test", logging.getLogger("test")), producer  # type: ignore[arg-type]


def response() -> bytes:
    return encode(RouteResponse(id="r", tenant="acme", status="ok", content="hello"))


async def test_only_the_sends_that_failed_are_sent_again() -> None:
    def first_cost_fails(topic: str, n: int) -> BaseException | None:
        return KafkaConnectionError() if (topic, n) == ("t.costs", 0) else None

    send, producer = sender(first_cost_fails)
    batch = [
        Outgoing("t.responses", b"r", response()),
        Outgoing("t.costs", b"acme", b"{}"),
        Outgoing("t.dlq", None, b"raw", (("tierline.reason", b"why"),)),
        Outgoing("t.tier.economy.done", b"r", b"", partition=1),
    ]
    await send.send(batch)
    assert producer.tries == Counter(
        {"t.costs": 2, "t.responses": 1, "t.dlq": 1, "t.tier.economy.done": 1}
    )
    assert sorted(producer.landed, key=batch.index) == batch


async def test_a_response_too_large_lands_as_an_error_response() -> None:
    def too_large(topic: str, n: int) -> BaseException | None:
        return MessageSizeTooLargeError() if n == 0 else None

    send, producer = sender(too_large)
    await send.send([Outgoing("t.responses", b"r", response())])
    [landed] = producer.landed
    assert landed.topic == "t.responses" and landed.key == b"r"
    replaced = RouteResponse.model_validate_json(landed.value)
    assert replaced.status == "error" and replaced.content is None


async def test_a_refusing_reply_to_is_answered_on_the_shared_topic() -> None:
    def refusing(topic: str, n: int) -> BaseException | None:
        return KafkaConnectionError() if topic == "acme.replies" else None

    send, producer = sender(refusing)
    await send.send([Outgoing("acme.replies", b"r", response())])
    assert producer.tries["acme.replies"] == 3
    assert producer.landed == [Outgoing("t.responses", b"r", response())]


async def test_an_error_that_is_not_kafkas_is_raised() -> None:
    send, _ = sender(lambda topic, n: RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        await send.send([Outgoing("t.costs", b"acme", b"{}")])
