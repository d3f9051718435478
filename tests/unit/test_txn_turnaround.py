"""The retry of a transaction begun while the coordinator still writes the last commit."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiokafka.producer import sender

from tierline.streams.config import KafkaSettings
from tierline.streams.partition_outbox import transactional_producers
from tierline.streams.txn_turnaround import set_concurrent_transaction_retry


@pytest.fixture
def knob() -> Iterator[float]:
    before = sender.BACKOFF_OVERRIDE
    yield before
    sender.BACKOFF_OVERRIDE = before


def test_the_setting_reaches_the_sender_that_aiokafka_retries_with(knob: float) -> None:
    assert set_concurrent_transaction_retry(3) is True
    assert round(sender.BACKOFF_OVERRIDE, 6) == 0.003
    transactional_producers("127.0.0.1:1", KafkaSettings(transaction_retry_ms=7))
    assert round(sender.BACKOFF_OVERRIDE, 6) == 0.007


def test_the_default_is_shorter_than_aiokafkas_own() -> None:
    assert KafkaSettings().transaction_retry_ms < 20


def test_an_aiokafka_without_the_knob_is_said_and_left_alone(
    knob: float, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(sender, "BACKOFF_OVERRIDE")
    with caplog.at_level(logging.WARNING, logger="tierline.kafka"):
        assert set_concurrent_transaction_retry(2) is False
    assert not hasattr(sender, "BACKOFF_OVERRIDE")
    assert "has no sender.BACKOFF_OVERRIDE" in caplog.text
