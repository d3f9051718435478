"""Alerts to a webhook, off the caller's path: a bounded queue and a task of its own.

`submit` never waits: it puts the alert on a bounded queue and returns. When the
queue is full the oldest alert is dropped, counted and logged, so a receiver that
is slow or down costs memory up to the bound and nothing else. One task posts
each queued alert's JSON (the `tierline.alerts` wire form), one at a time, and
retries a failure that may pass (a transport error, a timeout, 5xx, 408, 425, 429)
with exponential backoff, `retries` times after the first try; then the alert is
given up, counted and logged. Any other answer (a 4xx, a redirect) is the
receiver's refusal and is not retried.

An alert id is posted once per process: the sink may read an alert twice (a
redelivery), the receiver hears of it once. Across restarts it may hear of it
again; the `Idempotency-Key` header (the alert id) lets it tell.

The URL is a secret: Slack-style hooks carry their token in the path, others in
the query string or as user:password. Logs name only `scheme://host:port`, and
while the webhook runs, httpx's own request lines (at INFO, when libraries log
that low) have the URL replaced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from tierline.schemas import Alert, encode
from tierline.streams.config import AlertsSettings

log = logging.getLogger("tierline.webhook")

#: answers worth another try: the receiver is busy, slow or briefly broken
RETRYABLE = frozenset({408, 425, 429})
#: alert ids remembered as posted (or being posted), to post each once
REMEMBERED = 10_000


@dataclass
class WebhookStats:
    delivered: int = 0
    #: tries after a failure
    retried: int = 0
    #: alerts given up after their last try, or refused
    failed: int = 0
    #: alerts dropped from a full queue, never tried
    dropped: int = 0


def redact_url(url: str) -> str:
    """`url` fit for a log line: scheme, host and port; no user, password, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme or '?'}://{host}{port}"


class AlertWebhook:
    """POSTs alerts to `url`; `start` in the running loop, `submit` any time, `close` at the end."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        retries: int = 3,
        *,
        queue_size: int = 1000,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.where = redact_url(url)
        if urlsplit(url).scheme not in ("http", "https") or self.where.startswith("<"):
            raise ValueError(f"alerts.webhook_url must be an http(s) URL (got {self.where})")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = WebhookStats()
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._scrub = _Scrub(url, self.where)

    @classmethod
    def from_settings(cls, settings: AlertsSettings) -> AlertWebhook | None:
        """The configured webhook, or None when `webhook_url` is empty."""
        if not settings.webhook_url:
            return None
        return cls(settings.webhook_url, settings.webhook_timeout_s, settings.webhook_retries)

    # ------------------------------------------------------------------ the caller's side

    def start(self) -> None:
        """Start the posting task (in the running event loop)."""
        if self._task is None:
            logging.getLogger("httpx").addFilter(self._scrub)
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
            self._task = asyncio.create_task(self._run(), name="alert-webhook")

    def submit(self, alert: Alert) -> None:
        """Queue `alert` to be posted (once per id), dropping the oldest queued one if full."""
        if alert.alert_id in self._seen:
            return
        self._seen[alert.alert_id] = None
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        if self._queue.full():
            dropped = self._queue.get_nowait()
            self._queue.task_done()
            self.stats.dropped += 1
            log.warning(
                "alert webhook %s: queue full (%d); dropped alert %s (%d dropped so far)",
                self.where,
                self._queue.maxsize,
                dropped.alert_id,
                self.stats.dropped,
            )
        self._queue.put_nowait(alert)

    def submit_all(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.submit(alert)

    async def close(self, grace_s: float | None = None) -> None:
        """Post what is queued for up to `grace_s` (default: one timeout), then stop."""
        if self._task is None:
            return
        grace_s = self.timeout_s if grace_s is None else grace_s
        try:
            await asyncio.wait_for(self._queue.join(), grace_s)
        except TimeoutError:
            log.warning(
                "alert webhook %s: stopping with %d alerts queued, not posted",
                self.where,
                self._queue.qsize(),
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._client is not None:
            await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._scrub)

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            except Exception:  # one bad alert must not stop the webhook
                log.exception("alert webhook %s: alert %s failed", self.where, alert.alert_id)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: Alert) -> bool:
        """Post one alert, retrying with backoff; whether it was delivered."""
        body = encode(alert)
        headers = {"content-type": "application/json", "idempotency-key": alert.alert_id}
        delay, tries = self.backoff_s, 0
        while True:
            tries += 1
            failure = await self._post(body, headers)
            if failure is None:
                self.stats.delivered += 1
                return True
            reason, retryable = failure
            if not retryable or tries > self.retries:
                break
            self.stats.retried += 1
            log.info("alert webhook %s: %s; retrying in %.1fs", self.where, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
        self.stats.failed += 1
        log.warning(
            "alert webhook %s: gave up on alert %s after %d tries (%s)",
            self.where,
            alert.alert_id,
            tries,
            reason,
        )
        return False

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[str, bool] | None:
        """None when the receiver took it; else why not, and whether a retry may help."""
        assert self._client is not None
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # the message may hold the URL: name the error only
            return type(exc).__name__, isinstance(exc, httpx.TransportError)
        if response.is_success:
            return None
        status = response.status_code
        return f"HTTP {status}", status >= 500 or status in RETRYABLE


class _Scrub(logging.Filter):
    """Replaces the webhook's URL in httpx's log lines by its redacted form."""

    def __init__(self, url: str, shown: str) -> None:
        super().__init__()
        self.url = httpx.URL(url)
        self.shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._scrubbed(arg) for arg in record.args)
        return True

    def _scrubbed(self, arg: object) -> object:
        if isinstance(arg, httpx.URL) and (arg.scheme, arg.host, arg.port) == (
            self.url.scheme,
            self.url.host,
            self.url.port,
        ):
            return self.shown
        if isinstance(arg, str) and self.url.host and self.url.host in arg:
            return self.shown
        return arg
