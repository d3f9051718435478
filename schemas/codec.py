"""Wire encoding: every topic carries orjson-serialized JSON of a pydantic model."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel) -> bytes:
    """Serialize a message (Decimals become strings, datetimes ISO 8601)."""
    return orjson.dumps(model.model_dump(mode="json", exclude_none=True))


def decode(kind: type[M], raw: bytes | str) -> M:
    """Parse and validate; raises `orjson.JSONDecodeError` or `pydantic.ValidationError`."""
    return kind.model_validate(orjson.loads(raw))
