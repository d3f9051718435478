"""`ResponseChunk`: a piece of a streamed answer, on the reply topic before its response.

A request with `params.stream = true` is answered twice over on its reply topic (its
`reply_to`, else `tierline.responses`), both keyed by request id: first the chunks,
in order (`seq` 0, 1, 2, ...), each with the text and tool-call fragments the
provider wrote since the last, as soon as the worker has them; then the request's one
`RouteResponse`, whole, with usage and cost exactly as without streaming. Tell them
apart by `object` (`"tierline.chunk"`; a response has none).

Chunks are sent outside the answers' transactions, so that they can be read as they
come: a reader may see the chunks of a serving that a crash cut short, and then the
chunks of the serving that answered, under a new `serving`. Follow one `serving`
(restart when a new one begins at `seq` 0); the response is what counts, and it comes
once. Only a reader that sets nothing special sees chunks at once: a `read_committed`
consumer (which tierline's answers need) sees each after the transaction open on its
partition ends, a few ms later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tierline.schemas.identifier import Identifier


class ToolCallPiece(BaseModel):
    """A fragment of a tool call, OpenAI's streamed shape: `index` names the call; its
    first fragment carries the id and the function's name, the rest pieces of the
    arguments' JSON text."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int = Field(ge=0)
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ResponseChunk(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    object: Literal["tierline.chunk"] = "tierline.chunk"
    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, max_length=256)
    tenant: Identifier
    #: which serving of the request streams: a serving cut short by a crash is followed by
    #: another, with a new one, starting again at seq 0
    serving: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)
    delta: str = ""
    tool_calls: list[ToolCallPiece] | None = None
    #: the model writing the answer
    model: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    created_at: datetime
