"""Dead letters: input tierline could not answer, kept byte for byte.

A record on `tierline.dlq` carries the original message value unchanged (so
nothing is lost, however malformed) and says why in Kafka headers, as Kafka
Connect's dead-letter queues do. `DeadLetter` is the in-code view of those headers.
"""

from __future__ import annotations

from pydantic import BaseModel

HEADER_PREFIX = "tierline."


class DeadLetter(BaseModel):
    reason: str
    error_type: str
    source_topic: str
    source_partition: int = -1
    source_offset: int = -1
    request_id: str = ""
    tenant: str = ""

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [(HEADER_PREFIX + k, str(v).encode()) for k, v in self.model_dump().items()]

    @classmethod
    def from_headers(
        cls, headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]
    ) -> DeadLetter:
        fields = {
            k.removeprefix(HEADER_PREFIX): v.decode()
            for k, v in headers
            if k.startswith(HEADER_PREFIX)
        }
        return cls.model_validate(fields)
