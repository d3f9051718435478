"""Chat messages in the OpenAI chat format, the lingua franca of every request.

Besides text (and content parts), a conversation carries tool calls both ways
(`schemas.tools`): an `assistant` turn may hold the `tool_calls` its model made,
and each call's result comes back as a `tool` message naming it by `tool_call_id`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierline.schemas.tools import ToolCall

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    """One chat turn. `content` is a string or a list of OpenAI content parts."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    #: the calls an assistant turn made (its content may then be empty)
    tool_calls: list[ToolCall] | None = Field(default=None, max_length=128)
    #: for a `tool` message: the id of the call whose result it is
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _tool_fields_where_they_belong(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"tool_calls belong to assistant messages, not {self.role}")
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError(f"tool_call_id belongs to tool messages, not {self.role}")
        return self

    def text(self) -> str:
        """The message's text, with content parts joined; non-text parts are skipped."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(
            str(part.get("text", "")) for part in self.content if part.get("type") == "text"
        )
