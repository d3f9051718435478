"""`AnswerStore`: a worker's response cache in memory, bounded by entries and by bytes.

Picture a shelf of answers, the one used last at the front. A new answer goes in
at the front; when the shelf holds more than `max_entries` answers or more than
`max_bytes` of them, answers fall off the back (the least recently used) until it
fits. An answer bigger than the whole shelf is not kept at all. An answer past its
`expires_at` is never handed out: it is dropped when asked for.

Sizes are what an answer weighs on the wire (its JSON on `tierline.cache`), a fair
stand-in for its memory. The clock (epoch seconds) is injectable for tests.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from tierline.schemas import CachedAnswer

Clock = Callable[[], float]


class AnswerStore:
    def __init__(self, max_entries: int, max_bytes: int, *, clock: Clock = time.time) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._shelf: OrderedDict[str, tuple[CachedAnswer, int]] = OrderedDict()
        self._bytes = 0
        #: answers pushed off the shelf to make room (not those that expired)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._shelf)

    def __contains__(self, key: str) -> bool:
        return key in self._shelf

    @property
    def bytes(self) -> int:
        """The sizes of the answers held, summed."""
        return self._bytes

    def get(self, key: str) -> CachedAnswer | None:
        """The answer under `key`, moved to the front; None if absent or expired."""
        held = self._shelf.get(key)
        if held is None:
            return None
        if self.expired(held[0]):
            self.drop(key)
            return None
        self._shelf.move_to_end(key)
        return held[0]

    def put(self, answer: CachedAnswer, size: int) -> bool:
        """Keep `answer` (`size` bytes) at the front, replacing one under its key; False
        when it is expired or larger than the shelf."""
        if self.expired(answer) or size > self.max_bytes or self.max_entries <= 0:
            return False
        self.drop(answer.key)
        self._shelf[answer.key] = (answer, size)
        self._bytes += size
        self._fit()
        return True

    def drop(self, key: str) -> None:
        held = self._shelf.pop(key, None)
        if held is not None:
            self._bytes -= held[1]

    def resize(self, max_entries: int, max_bytes: int) -> None:
        """New bounds (a reloaded policy): what no longer fits falls off the back."""
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._fit()

    def expired(self, answer: CachedAnswer) -> bool:
        return answer.expires_at.timestamp() <= self.clock()

    def _fit(self) -> None:
        while self._shelf and (len(self._shelf) > self.max_entries or self._bytes > self.max_bytes):
            _, (_, size) = self._shelf.popitem(last=False)
            self._bytes -= size
            self.evicted += 1
