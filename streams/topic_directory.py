"""Which topics exist, as the broker says: so a reply topic is checked, never auto-created.

The router answers on a request's `reply_to` only when that topic exists. Producing to a
missing topic would make a broker with `auto.create.topics.enable` create it (one test
run created a topic named `__transaction_state`). The directory lists the broker's
topics, remembers them, and asks again on a miss, at most once per `min_interval_s`, so
a flood of requests naming missing topics costs one metadata call per interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

Lister = Callable[[], Awaitable[Iterable[str]]]


class TopicDirectory:
    def __init__(
        self,
        lister: Lister,
        min_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lister = lister
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._known: set[str] = set()
        self._listed_at: float | None = None
        self._lock = asyncio.Lock()
        self.listings = 0

    @classmethod
    def fixed(cls, names: Iterable[str]) -> TopicDirectory:
        """A directory of a known set of topics (tests, and brokers one may not list)."""
        frozen = tuple(names)

        async def lister() -> Iterable[str]:
            return frozen

        return cls(lister)

    async def exists(self, name: str) -> bool:
        """Whether the broker has `name`, listing its topics again if it is not known yet."""
        if name in self._known:
            return True
        async with self._lock:
            now = self._clock()
            if self._listed_at is None or now - self._listed_at >= self.min_interval_s:
                self._listed_at = now
                self.listings += 1
                self._known = set(await self._lister())
        return name in self._known
