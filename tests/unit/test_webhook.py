"""The alert webhook against a real local HTTP server: retries with backoff, giving up,
never blocking the caller, dropping the oldest when full, and no secret in the logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiohttp import web

from tierline.schemas import Alert
from tierline.streams.config import AlertsSettings
from tierline.streams.webhook import AlertWebhook, redact_url


@dataclass
class Receiver:
    """A webhook receiver: answers `status` to the first `failures` posts, then 200."""

    failures: int = 0
    status: int = 503
    delay_s: float = 0.0
    bodies: list[bytes] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        await asyncio.sleep(self.delay_s)
        if len(self.bodies) <= self.failures:
            return web.Response(status=self.status)
        return web.Response(status=200)


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[str]:
    """The receiver on a free local port; its base URL."""
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=0.2
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def alert(n: int = 1) -> Alert:
    return Alert(
        alert_id=f"soft_limit_crossed:acme:day:{n}",
        kind="soft_limit_crossed",
        tenant="acme",
        period="day",
        window_start=datetime(2026, 1, 5, tzinfo=UTC),
        spent_usd=Decimal("80.5"),
        limit_usd=Decimal("100"),
        created_at=datetime(2026, 1, 5, 14, tzinfo=UTC),
    )


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_webhook_that_fails_twice_then_succeeds_delivers_the_alert() -> None:
    receiver = Receiver(failures=2)
    async with serving(receiver) as base:
        hook = AlertWebhook(f"{base}/hook", timeout_s=2, retries=3, backoff_s=0.01)
        hook.start()
        hook.submit(alert())
        await until(lambda: hook.stats.delivered == 1)
        await hook.close()
    assert len(receiver.bodies) == 3
    assert Alert.model_validate_json(receiver.bodies[-1]) == alert()
    assert receiver.keys == [alert().alert_id] * 3
    assert (hook.stats.retried, hook.stats.failed) == (2, 0)


async def test_a_webhook_that_always_fails_gives_up_after_its_retries_never_blocking() -> None:
    receiver = Receiver(failures=10**9, status=500)
    async with serving(receiver) as base:
        hook = AlertWebhook(f"{base}/hook", timeout_s=2, retries=2, backoff_s=0.05)
        hook.start()
        began = time.monotonic()
        hook.submit(alert())
        assert time.monotonic() - began < 0.01
        await until(lambda: hook.stats.failed == 1)
        await asyncio.sleep(0.2)  # no try after the last
        await hook.close()
    assert len(receiver.bodies) == 3  # the first try and two retries
    assert (hook.stats.delivered, hook.stats.retried) == (0, 2)


async def test_a_refusal_is_not_retried() -> None:
    receiver = Receiver(failures=10**9, status=400)
    async with serving(receiver) as base:
        hook = AlertWebhook(f"{base}/hook", retries=3, backoff_s=0.01)
        hook.start()
        hook.submit(alert())
        await until(lambda: hook.stats.failed == 1)
        await hook.close()
    assert len(receiver.bodies) == 1


async def test_an_unreachable_webhook_is_retried_then_given_up() -> None:
    async with serving(Receiver()) as base:
        url = f"{base}/hook"  # the port is free again once the server is gone
    hook = AlertWebhook(url, timeout_s=1, retries=2, backoff_s=0.01)
    hook.start()
    hook.submit(alert())
    await until(lambda: hook.stats.failed == 1)
    await hook.close()
    assert hook.stats.retried == 2


async def test_a_slow_webhook_never_blocks_and_a_full_queue_drops_the_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver(delay_s=30)
    async with serving(receiver) as base:
        hook = AlertWebhook(f"{base}/hook", timeout_s=5, retries=0, queue_size=3)
        hook.start()
        began = time.monotonic()
        for n in range(10):
            hook.submit(alert(n))
        assert time.monotonic() - began < 0.05
        assert hook.stats.dropped == 7
        assert "7 dropped so far" in caplog.text
        await until(lambda: len(receiver.bodies) == 1)
        assert Alert.model_validate_json(receiver.bodies[0]).alert_id == alert(7).alert_id
        began = time.monotonic()
        await hook.close(grace_s=0.2)  # the receiver still holds the first post
        assert time.monotonic() - began < 2


async def test_an_alert_id_is_posted_once() -> None:
    receiver = Receiver()
    async with serving(receiver) as base:
        hook = AlertWebhook(f"{base}/hook")
        hook.start()
        hook.submit_all([alert(1), alert(1), alert(2)])
        await until(lambda: hook.stats.delivered == 2)
        hook.submit(alert(1))  # read again later: a redelivery
        await hook.close()
    assert receiver.keys == [alert(1).alert_id, alert(2).alert_id]


async def test_the_logs_never_show_the_urls_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # its request lines name the URL
    receiver = Receiver(failures=1)
    async with serving(receiver) as base:
        host = base.removeprefix("http://")
        url = f"http://hooker:pw-s3cret@{host}/services/T0/B0/path-s3cret?token=q-s3cret"
        hook = AlertWebhook(url, retries=1, backoff_s=0.01)
        hook.start()
        hook.submit(alert())
        await until(lambda: hook.stats.delivered == 1)
        await hook.close()
    assert "HTTP Request" in caplog.text  # httpx did log the posts ...
    assert f"http://{host}" in caplog.text
    assert "s3cret" not in caplog.text  # ... without the secrets
    assert not [r for r in caplog.records if "s3cret" in r.getMessage()]


def test_redact_url_keeps_scheme_host_and_port_only() -> None:
    assert redact_url("https://u:p@hooks.example.com:8443/T/B/x?token=t#f") == (
        "https://hooks.example.com:8443"
    )
    assert redact_url("https://hooks.slack.com/services/T0/B0/XXXX") == "https://hooks.slack.com"
    assert redact_url("http://[::1]:99999/x") == "<unparseable URL>"


def test_a_bad_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValueError, match="http") as refused:
        AlertWebhook("ftp://u:secret@example.com/x")
    assert "secret" not in str(refused.value)


def test_the_webhook_is_built_only_when_configured() -> None:
    assert AlertWebhook.from_settings(AlertsSettings()) is None
    settings = AlertsSettings(webhook_url="https://example.com/h", webhook_retries=5)
    hook = AlertWebhook.from_settings(settings)
    assert hook is not None and hook.retries == 5 and hook.timeout_s == 5
    assert "example.com/h" not in repr(settings)
