"""The one place tierline's aiokafka roles send: a list of `Outgoing`, every one until it lands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from tierline.streams.outgoing import Outgoing, reroute
from tierline.streams.topics import Topics


class Sender:
    """Sends batches with one shared producer; `who` names the role in log lines."""

    def __init__(
        self, producer: AIOKafkaProducer, topics: Topics, who: str, log: logging.Logger
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.who = who
        self.log = log

    async def send(self, sends: Sequence[Outgoing]) -> None:
        """Send all of `sends` and wait for their acks.

        Kafka being down delays this; it never drops a send: the ones that failed
        (only those) are sent again, with backoff, until they land, each as
        `outgoing.reroute` says after its failure. The caller keeps its offset
        uncommitted meanwhile. An error that is not Kafka's is raised.
        """
        delay, tries, pending = 0.1, 0, list(sends)
        while pending:
            results = await asyncio.gather(
                *(send_one(self.producer, send) for send in pending), return_exceptions=True
            )
            failed = [(send, r) for send, r in zip(pending, results, strict=True) if r is not None]
            for _, error in failed:
                if not isinstance(error, KafkaError):
                    raise error
            if not failed:
                return
            tries += 1
            pending = [
                instead(send, tries, error, self.topics, self.who, self.log)
                for send, error in failed
            ]
            self.log.warning(
                "%s: %d sends failed (%s); retrying in %.1fs",
                self.who,
                len(pending),
                failed[0][1],
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def send_one(producer: AIOKafkaProducer, send: Outgoing) -> BaseException | None:
    """Send and wait for the ack; the error instead of raising it, so others can finish."""
    try:
        future = await producer.send(
            send.topic,
            send.payload,
            key=send.key,
            headers=send.header_list(),
            partition=send.partition,
        )
        await future
    except KafkaError as exc:
        error: BaseException = exc
        return error
    return None


def instead(
    send: Outgoing,
    tries: int,
    error: BaseException,
    topics: Topics,
    who: str,
    log: logging.Logger,
) -> Outgoing:
    """What to send after `send` failed with `error` (`outgoing.reroute`), said in the log."""
    rerouted = reroute(send, tries, isinstance(error, MessageSizeTooLargeError), topics)
    if rerouted.topic != send.topic:
        log.warning("%s: reply_to %s refuses; answering on %s", who, send.topic, rerouted.topic)
    return rerouted
