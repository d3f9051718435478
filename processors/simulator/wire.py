"""What the three wire formats share: the skeleton that turns an HTTP request into a
`SimRequest` or the provider's error, and the plumbing of their JSON answers.

Each `*_wire` module subclasses `WireFormat` and holds only what is its own: how
its API authenticates, where its fields live, its error bodies, messages and
headers, and how it streams. The server talks to every format through
`WireFormat` alone.

Streaming: `stream_ask` tells a streamed request (`"stream": true` in an OpenAI or
Anthropic body, Gemini's `streamGenerateContent` route) and gives the bytes its
fate is drawn from: the body as the same request sent unstreamed would be, so
both get the same answer (`StreamAsk.identity`). `stream_writes` renders a reply
as the format's event stream, split into the writes the server paces: the
opening events with the first content chunk, each next content chunk, then the
closing events (always at least two writes, the closing one last), so a cut
stream is the first write and `stream_cut_tail`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeGuard

import orjson
from aiohttp import web

from tierline.processors.simulator.limits import Admission, Breach
from tierline.processors.simulator.replies import Reply
from tierline.processors.simulator.request import SimRequest
from tierline.processors.simulator.tool_use import ToolAsk

__all__ = [
    "PromptTally",
    "StreamAsk",
    "WireFormat",
    "paced",
    "part_texts",
    "pieces",
    "positive_int",
    "sse",
]


@dataclass(frozen=True, slots=True)
class StreamAsk:
    """A request that asked for a streamed answer, and how."""

    identity: bytes
    """The bytes its fate is drawn from: the body as the unstreamed request sends it (the
    body less `stream` and `stream_options`, as compact JSON in the order sent; Gemini's
    body as it is, since its route says it streams)."""
    include_usage: bool = True
    """OpenAI: `stream_options.include_usage`, a last chunk with the usage."""
    sse: bool = True
    """Server-sent events; False = Gemini without `alt=sse`, a JSON array of responses."""


def sse(data: bytes, event: str = "", eol: bytes = b"\n") -> bytes:
    """One server-sent event: an optional `event:` line, one `data:` line, a blank line."""
    head = b"event: " + event.encode() + eol if event else b""
    return head + b"data: " + data + eol + eol


def pieces(text: str, size: int) -> list[str]:
    """`text` cut into pieces of `size` characters (none for an empty text)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def paced(opening: bytes, contents: list[bytes], closing: bytes) -> list[bytes]:
    """A stream's writes: the opening events with the first content chunk, each next
    content chunk, the closing events; always two writes at least, the closing last."""
    if not contents:
        return [opening, closing]
    return [opening + contents[0], *contents[1:], closing]


def positive_int(value: object) -> TypeGuard[int]:
    """An int of at least 1; `True` is no count, though Python calls it an int."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def part_texts(parts: list[Any]) -> str:
    """The text of a list of parts: every `{"text": "..."}` part, joined with spaces."""
    return " ".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


class PromptTally:
    """What a request's messages add up to, filled in the order a wire module reads them."""

    __slots__ = ("chars", "first", "last_results", "last_user", "messages", "results")

    def __init__(self) -> None:
        self.chars = 0
        self.messages = 0
        self.first = ""
        self.last_user = ""
        #: whether the last message was tool results, and their text
        self.last_results = False
        self.results = ""

    def tools(self, chars: int) -> None:
        """Tool definitions of `chars` characters: prompt tokens, as the real APIs bill them."""
        self.chars += chars

    def system(self, text: str) -> None:
        """A separate system prompt (Anthropic, Gemini); an empty one is no message at all."""
        if text:
            self.chars += len(text)
            self.messages += 1
            self.first = text

    def message(self, text: str, *, user: bool, results: bool = False) -> None:
        """One message; `results` = it carries tool results (then it is no user prompt)."""
        # the cacheable prefix is the system prompt, or failing one the first message
        if self.messages == 0:
            self.first = text
        self.chars += len(text)
        self.messages += 1
        if user and not results:
            self.last_user = text
        if results:  # consecutive result messages (OpenAI's, one per call) add up
            self.results = f"{self.results} {text}" if self.last_results else text
        self.last_results = results

    def request(
        self,
        model: str,
        max_tokens: int | None,
        *,
        wants_json: bool = False,
        json_schema: dict[str, Any] | None = None,
        cache_marked: bool = False,
        cache_ttl: str = "5m",
        tools: ToolAsk | None = None,
    ) -> SimRequest:
        if tools is not None:
            tools.after_results = self.last_results
            tools.result_text = self.results if self.last_results else ""
        return SimRequest(
            model=model,
            text_chars=self.chars,
            n_messages=self.messages,
            first_text=self.first,
            last_user_text=self.last_user,
            max_tokens=max_tokens,
            wants_json=wants_json,
            json_schema=json_schema,
            cache_marked=cache_marked,
            cache_ttl=cache_ttl,
            tools=tools,
        )


class WireFormat(ABC):
    """One provider's wire format; stateless, one instance serves every request."""

    name: ClassVar[str]
    """The route's name in stats and body digests."""
    error_statuses: ClassVar[tuple[int, ...]]
    """The statuses a drawn server error picks from."""
    error_messages: ClassVar[Mapping[int, str]]
    """The provider's own message for an error status."""
    server_error_text: ClassVar[str]
    """The message of any other 5xx; `{status}` is replaced by the status."""
    client_error_text: ClassVar[str]
    """The message of any other 4xx (a forced `[sim:error=...]`); `{status}` as above."""
    no_tools_text: ClassVar[str] = "{model} does not support tools"
    """The message of a request with tools to a model without them; `{model}` replaced."""
    explicit_cache: ClassVar[bool] = False
    """Caching applies only to a request that marks a block (Anthropic); else it is implicit."""
    stream_content_type: ClassVar[str] = "text/event-stream; charset=utf-8"
    """The Content-Type of a streamed answer."""

    def reports_cache_writes(self, model: str) -> bool:
        """Whether the provider bills, and reports, the prompt tokens a call writes to its cache.

        Anthropic does for every model (explicit caching); an implicit cache is free to
        write unless a format says otherwise for the model.
        """
        return self.explicit_cache

    # ------------------------------------------------------------------ the skeleton

    def parse_request(
        self, request: web.Request, body: bytes, invalid_keys: frozenset[str], rid: str
    ) -> SimRequest | web.Response:
        """Auth, then JSON, then the format's fields: the request, or the error to answer."""
        response = self._auth_error(request, invalid_keys, rid)
        if response is not None:
            return response
        data = self.read_object(body, rid)
        if isinstance(data, web.Response):
            return data
        return self._parse(data, request.match_info.get("model", ""), rid)

    def read_object(self, body: bytes, rid: str) -> dict[str, Any] | web.Response:
        """A body's JSON object, or the format's answer to a body that is not one."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._bad_json(rid)
        if not isinstance(data, dict):
            return self._not_an_object(rid)
        return data

    def parse_item(self, data: Any, path_model: str, rid: str) -> SimRequest | web.Response:
        """One batch item's body, already JSON: the request, or the error the synchronous
        route would answer for that body (its batch call passed auth; `path_model` is the
        model the batch's URL names, Gemini's, else "")."""
        if not isinstance(data, dict):
            return self._not_an_object(rid)
        if data.get("stream") is True:
            return self.invalid("stream: a batch item cannot be streamed", rid)
        return self._parse(data, path_model, rid)

    def stream_ask(
        self, request: web.Request, body: bytes, *, routed: bool = False
    ) -> StreamAsk | None:
        """The streamed request's `StreamAsk`, or None for one answered whole (the hot path:
        a body without `"stream"` is not parsed here). `routed` = it came by a streaming
        route (Gemini's); by default the body's `"stream": true` says it."""
        if b'"stream"' not in body:
            return None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("stream") is not True:
            return None
        del data["stream"]
        options = data.pop("stream_options", None)
        include = isinstance(options, dict) and options.get("include_usage") is True
        return StreamAsk(orjson.dumps(data), include_usage=include)

    def stream_headers(self, rid: str, ask: StreamAsk, latency_ms: int) -> dict[str, str]:
        """The headers of a streamed 200: the format's, as an event stream."""
        h = self._headers(rid)
        h["Content-Type"] = self.stream_content_type if ask.sse else h["Content-Type"]
        h["Cache-Control"] = "no-cache"
        return h

    def stream_cut_tail(self, rid: str) -> bytes:
        """What a cut stream ends with after its first write; nothing by default (the body
        just ends, without the final events)."""
        return b""

    def auth_error(
        self, request: web.Request, invalid_keys: frozenset[str], rid: str
    ) -> web.Response | None:
        """The answer to a call without a valid key (the batch routes check it as the
        synchronous route does), or None when it may pass."""
        return self._auth_error(request, invalid_keys, rid)

    def refuse(self, status: int, message: str, rid: str, **fields: Any) -> web.Response:
        """The format's error answer for `status` with `message` (the batch routes' own 400s
        and 404s); `fields` are the format's extra error fields (OpenAI's `param`, `code`)."""
        return self._error(status, rid, message, **fields)

    def reply(self, body: Any, rid: str, *, content_type: str | None = None) -> web.Response:
        """A 200 of the format's own (a batch object, a results file) with its headers: `body`
        as JSON, or as it is when it is bytes and `content_type` says what they are."""
        if isinstance(body, bytes):
            h = self._headers(rid)
            h["Content-Type"] = content_type or h["Content-Type"]
            return web.Response(status=200, body=body, headers=h)
        return self._json(200, body, rid)

    def tools_unsupported(self, model: str, rid: str) -> web.Response:
        """The 400 of a model without function calling asked to use tools."""
        return self._error(400, rid, self.no_tools_text.format(model=model))

    def invalid(self, message: str, rid: str) -> web.Response:
        """A 400 for a request the format accepts but the simulator does not (a bad directive)."""
        return self._error(400, rid, message)

    def error(self, status: int, model: str, rid: str) -> web.Response:
        """The provider's error answer for `status` (drawn, forced, or a hang's 504)."""
        message = self.error_messages.get(status)
        if message is None:
            template = self.server_error_text if status >= 500 else self.client_error_text
            message = template.format(status=status)
        return self._error(status, rid, message)

    def _json(
        self, status: int, body: Any, rid: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        """`body` as JSON with the format's headers, `headers` added or replacing theirs."""
        h = self._headers(rid)
        if headers:
            h.update(headers)
        return web.Response(status=status, body=orjson.dumps(body), headers=h)

    # ------------------------------------------------------------------ what each format says

    @abstractmethod
    def _headers(self, rid: str) -> dict[str, str]:
        """The headers of every answer, error or not."""

    @abstractmethod
    def _error(
        self, status: int, rid: str, message: str, *, headers: dict[str, str] | None = None
    ) -> web.Response:
        """The format's error body for `status` with `message`."""

    @abstractmethod
    def _auth_error(
        self, request: web.Request, invalid_keys: frozenset[str], rid: str
    ) -> web.Response | None:
        """The answer to a missing or invalid key, or None when the request may pass."""

    @abstractmethod
    def _bad_json(self, rid: str) -> web.Response:
        """The answer to a body that is not JSON."""

    @abstractmethod
    def _not_an_object(self, rid: str) -> web.Response:
        """The answer to a JSON body that is not an object."""

    @abstractmethod
    def _parse(self, body: dict[str, Any], path_model: str, rid: str) -> SimRequest | web.Response:
        """The format's fields read into a `SimRequest`, or the 400 the real API answers;
        `path_model` is the `{model}` of the URL (Gemini's), else ""."""

    @abstractmethod
    def unknown_model(self, model: str, rid: str) -> web.Response:
        """The 404 of a model the profile's `known_models` does not list."""

    @abstractmethod
    def context_exceeded(self, req: SimRequest, tokens: int, window: int, rid: str) -> web.Response:
        """The 400 of a prompt over the model's context window."""

    @abstractmethod
    def rate_limited(
        self, model: str, retry_after_s: float, rid: str, *, breach: Breach | None = None
    ) -> web.Response:
        """The 429, with the provider's way of saying when to retry.

        `breach` says which enforced budget refused the request (`limits`); without
        one the 429 is a drawn or forced fault and names a generic request limit.
        """

    def limit_headers(self, admission: Admission, reset_s: float) -> dict[str, str]:
        """The provider's rate-limit headers announcing a limited model's budget.

        `reset_s` is the seconds until the budget is full again. Only the budgets
        the model has are announced; a format without such headers (Gemini) says
        nothing, which is this default.
        """
        return {}

    @abstractmethod
    def success(self, req: SimRequest, reply: Reply, rid: str, latency_ms: int) -> web.Response:
        """The 200 carrying `reply`."""

    @abstractmethod
    def stream_writes(
        self, req: SimRequest, reply: Reply, rid: str, ask: StreamAsk, chunk_chars: int
    ) -> list[bytes]:
        """`reply` as the format's stream, in chunks of about `chunk_chars` characters, as
        `paced` groups them; its deltas add up to what `success` answers."""
