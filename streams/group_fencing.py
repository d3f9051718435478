"""Zombie fencing by consumer-group generation (Kafka's KIP-447), for aiokafka.

One transactional producer per process can serve every partition the process
owns, if the broker refuses a transaction's offset commit from an owner the group
has moved on from. Kafka does that when the commit names the member and the
generation it was made under (`TxnOffsetCommit` v3): a stale generation gets
`ILLEGAL_GENERATION`, and the transaction can only abort. The new owner, in turn,
must not read the commit point while an older transaction that commits offsets
for the partition is still open: `OffsetFetch` v7 with `require_stable` answers
`UNSTABLE_OFFSET_COMMIT` until it has ended, so the reader waits.

aiokafka (0.14) sends neither request version, so both are defined here on
aiokafka's own protocol types, and `bind_group` makes one producer send its
offset commits with the group metadata. This touches aiokafka internals
(`Sender._do_txn_offset_commit`, the transaction manager); `check_support`
says so at start, not mid-run, if a future aiokafka moves them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

#: the group's generation and this member's id, as the consumer knows them now
GroupMetadata = Callable[[], tuple[int, str]]
#: reads the group's committed offset and metadata for a partition (-1 when none)
CommitReader = Callable[[TopicPartition], Awaitable[tuple[int, str]]]

ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID = 22, 25, 27, 82
UNSTABLE_OFFSET_COMMIT = 88
#: what a commit names when its member has left the group: refused, never unchecked
NO_GENERATION, NO_MEMBER = 2**31 - 1, "tierline-not-a-member"
_STALE_MEMBER = {ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID}

_TEXT = CompactString("utf-8")


def _by_topic(name: str, partitions: str, *fields: tuple[str, Any]) -> CompactArray:
    """Kafka's usual nesting, flexible: topics, each with its partitions' `fields`."""
    return CompactArray(
        (name, _TEXT),
        (partitions, CompactArray(*fields, ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitResponseV3(Response):  # type: ignore[misc]
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "errors",
            _by_topic("topic", "partition_errors", ("partition", Int32), ("error_code", Int16)),
        ),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequestV3(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponseV3
    SCHEMA = Schema(
        ("transactional_id", _TEXT),
        ("group_id", _TEXT),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", _TEXT),
        ("group_instance_id", _TEXT),
        (
            "topics",
            _by_topic(
                "topic",
                "partitions",
                ("partition", Int32),
                ("offset", Int64),
                ("leader_epoch", Int32),
                ("metadata", _TEXT),
            ),
        ),
        ("tags", TaggedFields),
    )


class OffsetFetchResponseV7(Response):  # type: ignore[misc]
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            _by_topic(
                "name",
                "partitions",
                ("partition", Int32),
                ("offset", Int64),
                ("leader_epoch", Int32),
                ("metadata", _TEXT),
                ("error_code", Int16),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequestV7(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponseV7
    SCHEMA = Schema(
        ("group_id", _TEXT),
        (
            "topics",
            CompactArray(
                ("name", _TEXT), ("partitions", CompactArray(Int32)), ("tags", TaggedFields)
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class _Fields(Request[Any]):  # type: ignore[misc]
    """A request of one fixed struct version, built from its fields in schema order."""

    API_KEY = -1
    STRUCT: type[RequestStruct]

    def __init__(self, *fields: object) -> None:
        self.fields = fields

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        low, high = versions.get(self.STRUCT.API_KEY, (0, -1))
        if not low <= self.STRUCT.API_VERSION <= high:
            raise kafka_errors.IncompatibleBrokerVersion(
                f"the broker does not take {type(self).__name__} v{self.STRUCT.API_VERSION}"
                " (Kafka 2.5 or later does)"
            )
        return self.build(self.STRUCT)

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(*self.fields)


class GroupTxnOffsetCommit(_Fields):
    API_KEY = 28
    STRUCT = TxnOffsetCommitRequestV3


class StableOffsetFetch(_Fields):
    API_KEY = 9
    STRUCT = OffsetFetchRequestV7


def check_support() -> None:
    """Fail at start, clearly, if this aiokafka lacks what `bind_group` replaces."""
    handler = getattr(aiokafka_sender, "TxnOffsetCommitHandler", None)
    if handler is None or not hasattr(aiokafka_sender.Sender, "_do_txn_offset_commit"):
        raise RuntimeError(
            "this aiokafka has no TxnOffsetCommitHandler/_do_txn_offset_commit: process-wide "
            "transactions need aiokafka 0.12-0.14; set kafka.transaction_scope = 'partition'"
        )


def bind_group(producer: AIOKafkaProducer, metadata: GroupMetadata) -> None:
    """Make `producer` commit transactional offsets under the group's current generation.

    Call before `start`. A commit made under a generation the group has left fails
    with `CommitFailedError` and leaves the transaction abortable, as Kafka's Java
    client does.
    """
    check_support()
    sender = producer._sender
    base: Any = aiokafka_sender.TxnOffsetCommitHandler

    class Handler(base):  # type: ignore[misc]
        def create_request(self) -> GroupTxnOffsetCommit:
            manager = self._sender._txn_manager
            generation, member_id = metadata()
            if generation < 0 or not member_id:
                # out of the group (aiokafka resets to -1 and ""): the broker would skip the
                # check for those, so name a member that cannot exist and be refused
                generation, member_id = NO_GENERATION, NO_MEMBER
            topics: dict[str, list[tuple[int, int, int, str, dict[int, bytes]]]] = {}
            for tp, committed in sorted(self._offsets.items()):
                topics.setdefault(tp.topic, []).append(
                    (tp.partition, committed.offset, -1, committed.metadata, {})
                )
            return GroupTxnOffsetCommit(
                manager.transactional_id,
                self._group_id,
                manager.producer_id,
                manager.producer_epoch,
                generation,
                member_id,
                None,
                [(topic, parts, {}) for topic, parts in topics.items()],
                {},
            )

        def handle_response(self, resp: Any) -> float | None:
            manager = self._sender._txn_manager
            plain = []
            for topic, partitions, _tags in resp.errors:
                for partition, code, _ptags in partitions:
                    if code in _STALE_MEMBER:
                        error = kafka_errors.for_code(code).__name__
                        manager.error_transaction(
                            kafka_errors.CommitFailedError(f"{topic}-{partition}: {error}")
                        )
                        return None
                plain.append((topic, [(partition, code) for partition, code, _ in partitions]))
            return super().handle_response(_V0Errors(plain))  # type: ignore[no-any-return]

    async def offset_commit(offsets: Any, group_id: str) -> None:
        if not offsets:
            return
        node_id = await sender._find_coordinator(aiokafka_sender.CoordinationType.GROUP, group_id)
        await Handler(sender, offsets, group_id).do(node_id)

    sender._do_txn_offset_commit = offset_commit


class _V0Errors:
    """A v3 response's errors in the v0 shape aiokafka's own handler reads."""

    def __init__(self, errors: list[tuple[str, list[tuple[int, int]]]]) -> None:
        self.errors = errors


def stable_commit_reader(
    admin: AIOKafkaAdminClient, group_id: str, *, retry_s: float = 0.1
) -> CommitReader:
    """Reads `group_id`'s commit point for a partition once it is stable.

    While a transaction that commits offsets for the partition is open (a
    previous owner's last one, or a SIGKILLed owner's until the broker times it
    out), the broker answers UNSTABLE_OFFSET_COMMIT and this waits.
    """

    async def read(tp: TopicPartition) -> tuple[int, str]:
        while True:
            node_id = await admin.find_coordinator(group_id)
            request = StableOffsetFetch(group_id, [(tp.topic, [tp.partition], {})], True, {})
            response = await admin._client.send(node_id, request)
            if response.error_code:
                raise kafka_errors.for_code(response.error_code)()
            entry = next((p for _name, parts, _tags in response.topics for p in parts), None)
            if entry is None:
                return -1, ""
            _partition, offset, _epoch, metadata, code, _ptags = entry
            if code == UNSTABLE_OFFSET_COMMIT:
                await asyncio.sleep(retry_s)
                continue
            if code:
                raise kafka_errors.for_code(code)()
            return (offset if offset >= 0 else -1), (metadata or "")

    return read
