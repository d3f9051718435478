"""An incremental `text/event-stream` decoder: bytes in, whole events out.

The rules are the WHATWG HTML standard's "event stream interpretation"
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
the stream is UTF-8 (one leading byte-order mark ignored); lines end in CRLF, LF
or a lone CR, which may arrive split across chunks; a line starting with `:` is a
comment; `field: value` (one space after the colon dropped; a line without a
colon is a field with an empty value); `event` sets the event's type, each
`data` line adds a line to its data (joined with `\n`), `id` and `retry` and
unknown fields are ignored; a blank line dispatches the event when it has data
(the type resets either way). An event without an `event:` field has type "",
not the browser's "message", so a caller can tell an unnamed event (OpenAI,
Gemini) from a named one (Anthropic).

At the end of the stream (`close`), an event whose lines all ended but which
lacked its blank line is dispatched (a server that ends the body right after
the last `data:` line loses nothing); a last line without its line end is
dropped, as it may be cut.
"""

from __future__ import annotations

import codecs
import re

from tierline.processors.providers.streaming.base import SseEvent

_EOL = re.compile(r"\r\n|\r|\n")


class SseDecoder:
    """Incremental text/event-stream decoder (WHATWG rules: lines, `event:`, `data:`
    (joined with \\n), blank line ends an event, `:` comments ignored, \\r\\n or \\n)."""

    __slots__ = ("_after_cr", "_data", "_event", "_fresh", "_rest", "_utf8")

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._rest = ""  # the start of a line whose end has not come yet
        self._after_cr = False  # the last chunk ended in CR: a LF starting the next is its
        self._fresh = True  # nothing decoded yet: a byte-order mark may come
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events `chunk` completes, in order (none while an event is still open)."""
        return self._lines(self._utf8.decode(chunk))

    def close(self) -> list[SseEvent]:
        """Whatever complete event is left once the stream has ended."""
        events = self._lines(self._utf8.decode(b"", final=True))
        self._rest = ""  # a last line without its line end may be cut: dropped
        if self._data:
            events.append(SseEvent(self._event, "\n".join(self._data)))
        self._event, self._data = "", []
        return events

    def _lines(self, text: str) -> list[SseEvent]:
        if not text:
            return []
        if self._fresh:
            self._fresh = False
            text = text.removeprefix("\ufeff")
        if self._after_cr:
            self._after_cr = False
            text = text.removeprefix("\n")  # the CRLF split across two chunks
        buffer = self._rest + text if self._rest else text
        events: list[SseEvent] = []
        start = 0
        for end in _EOL.finditer(buffer):
            self._line(buffer[start : end.start()], events)
            start = end.end()
        if start and start == len(buffer) and buffer[-1] == "\r":
            self._after_cr = True
        self._rest = buffer[start:]
        return events

    def _line(self, line: str, events: list[SseEvent]) -> None:
        if not line:  # a blank line ends the event
            if self._data:
                events.append(SseEvent(self._event, "\n".join(self._data)))
                self._data = []
            self._event = ""
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
