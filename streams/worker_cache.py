"""A tier worker's response cache, wired: the policy's `[cache]` rules, the feed that keeps
it warm, and the record that shares each new answer.

The rules come from the policy file the router reads (`router.policy`, reloaded when it
changes): workers read only its `[cache]` section here, and its `[trimming]` in the
candidate walk (`worker_policy` opens the file once for both). A new answer goes to
`tierline.cache` in the same publish as the response it belongs to (on Kafka with
transactions, the same transaction), and this worker keeps it only once that publish
has landed: an answer whose transaction aborted is never served from memory either.

At start the worker waits, up to `BOOT_WAIT_S`, for the feed to read the topic to its
end, so a restarted worker answers from the cache at once; past that it serves anyway,
and the feed catches up as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.policy import CacheRules, Policy
from tierline.processors.routing.policy_reload import PolicySource, open_policy_source
from tierline.processors.serving.response_cache import Hit, ResponseCache
from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import CachedAnswer, RoutedRequest, encode
from tierline.streams.cache_feed import CacheFeed
from tierline.streams.config import Settings
from tierline.streams.outgoing import Outgoing
from tierline.streams.topics import Topics

log = logging.getLogger("tierline.cache")

#: how long a starting worker waits for the cache topic to be read before it serves
BOOT_WAIT_S = 30.0
#: room left in a record for its key, headers and batch framing
_RECORD_OVERHEAD = 4096


@dataclass(frozen=True, slots=True)
class Kept:
    """A new answer to keep: the record sharing it, and its size in the store."""

    answer: CachedAnswer
    record: Outgoing

    @property
    def size(self) -> int:
        return len(self.record.value)


def worker_policy(settings: Settings, catalog: Catalog) -> PolicySource:
    """The policy file the router reads, as the workers read it (for `[cache]` and
    `[trimming]`), reloaded when it changes; a bad file at start raises."""
    return open_policy_source(
        settings.router.policy or None,
        defaults=Policy(),
        check_every_s=settings.router.policy_check_s,
        catalog=catalog,
    )


class WorkerCache:
    def __init__(
        self,
        cache: ResponseCache,
        bootstrap: str,
        topics: Topics,
        isolation_level: str,
        *,
        max_record_bytes: int,
    ) -> None:
        self.cache = cache
        self.topic = topics.cache
        self.max_record_bytes = max_record_bytes
        self.feed = CacheFeed(cache, bootstrap, topics.cache, isolation_level)

    @classmethod
    def open(
        cls,
        settings: Settings,
        topics: Topics,
        bootstrap: str,
        catalog: Catalog,
        policy: PolicySource | None = None,
    ) -> WorkerCache:
        """The cache under the rules of `policy`, else of `router.policy` (a bad file at
        start raises)."""
        source = policy or worker_policy(settings, catalog)

        def rules() -> CacheRules:
            return source.current().cache

        return cls(
            ResponseCache(rules),
            bootstrap,
            topics,
            settings.isolation_level,
            max_record_bytes=settings.kafka.max_message_bytes - _RECORD_OVERHEAD,
        )

    async def start(self, stop: asyncio.Event) -> asyncio.Task[None]:
        """Start the feed, and wait (up to `BOOT_WAIT_S`) until it is warm."""
        task = asyncio.create_task(self.feed.run(stop), name="cache feed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(BOOT_WAIT_S):
                await self.feed.warm.wait()
        if not self.feed.warm.is_set():
            log.warning("cache: %s not read to its end in %.0fs; serving", self.topic, BOOT_WAIT_S)
        return task

    def lookup(self, routed: RoutedRequest) -> Hit | None:
        """The kept answer to serve `routed` with; None on a miss, or when the lookup fails
        (the request is then served as if there were no cache)."""
        try:
            return self.cache.lookup(routed)
        except Exception:
            log.exception("cache: lookup of %s failed; serving it", routed.request.id)
            return None

    def to_keep(self, routed: RoutedRequest, outcome: ServeOutcome) -> Kept | None:
        """The answer of a miss to publish with it, and to keep once published."""
        try:
            answer = self.cache.answer_to_keep(routed, outcome)
        except Exception:
            log.exception("cache: could not remember the answer to %s", routed.request.id)
            return None
        if answer is None:
            return None
        value = encode(answer)
        if len(value) > min(self.max_record_bytes, self.cache.store.max_bytes):
            return None  # no worker could keep it, or the topic would refuse it
        return Kept(answer, Outgoing(self.topic, answer.key.encode(), value))

    def published(self, kept: Kept) -> None:
        """The answer's publish landed: keep it here too (the feed will read it again)."""
        self.cache.keep(kept.answer, kept.size)
