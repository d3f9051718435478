"""Publishing each provider call's `started` record as the call is made.

It goes out on the process's plain (idempotent, not transactional) producer, and
the call's outcome waits for its ack: it must survive exactly the crash that
aborts the transaction the call's answer would have been in. Its `settled` twin
rides in that transaction (`worker_step.respond`).
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer

from tierline.processors.serving.walk import AttemptHook
from tierline.schemas import Attempt, encode
from tierline.streams.outgoing import Outgoing
from tierline.streams.sender import Sender
from tierline.streams.topics import Topics

log = logging.getLogger("tierline.worker")


def attempt_recorder(producer: AIOKafkaProducer, topics: Topics) -> AttemptHook:
    sender = Sender(producer, topics, "attempts", log)

    async def record(attempt: Attempt) -> None:
        await sender.send([Outgoing(topics.attempts, attempt.tenant.encode(), encode(attempt))])

    return record
