"""Settings: defaults, file, environment, in that order of precedence."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tierline.schemas import Tier
from tierline.streams.config import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_SINK_FETCH_WAIT_MS,
    load_settings,
)
from tierline.streams.runtime import _kafka


def test_nothing_configured_means_embedded_defaults() -> None:
    settings = load_settings(env={})
    assert settings.embedded_kafka
    assert settings.clickhouse_url.startswith("chdb://")
    assert settings.worker.max_in_flight == 512


def test_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "tierline.toml"
    config.write_text(
        '[kafka]\nbootstrap = "k1:9092"\n[worker]\nmax_in_flight = 64\ncall_timeout_s = 5\n'
    )
    env = {"TIERLINE_WORKER_MAX_IN_FLIGHT": "128", "TIERLINE_SIMULATOR_URL": "http://127.0.0.1:1"}
    settings = load_settings(config, env=env)
    assert settings.kafka.bootstrap == "k1:9092"
    assert settings.worker.max_in_flight == 128
    assert settings.worker.call_timeout_s == 5
    assert settings.simulator_url == "http://127.0.0.1:1"
    assert not settings.embedded_kafka


def test_environment_lists_tiers() -> None:
    settings = load_settings(env={"TIERLINE_WORKER_TIERS": "economy, premium"})
    assert settings.worker.tiers == [Tier.ECONOMY, Tier.PREMIUM]


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        load_settings(env={"TIERLINE_WORKER_MAX_IN_FLIGHT": "0"})


def test_a_config_with_models_is_its_own_catalog(tmp_path: Path) -> None:
    config = tmp_path / "tierline.toml"
    config.write_text('[models."m"]\nprovider = "openai"\n')
    assert load_settings(config, env={}).catalog == str(config)


def test_reply_topic_patterns_from_file_and_environment(tmp_path: Path) -> None:
    assert load_settings(env={}).replies.allowed == ["{tenant}.*"]
    config = tmp_path / "tierline.toml"
    config.write_text('[replies]\nallowed = []\n[replies.tenants]\nacme = ["acme-replies"]\n')
    settings = load_settings(config, env={})
    assert settings.replies.allowed == []
    assert settings.replies.tenants == {"acme": ["acme-replies"]}
    env = {"TIERLINE_REPLIES_ALLOWED": "{tenant}.*, shared-replies"}
    assert load_settings(env=env).replies.allowed == ["{tenant}.*", "shared-replies"]


def test_a_bootstrap_can_be_marked_as_an_embedded_broker() -> None:
    real = load_settings(env={"TIERLINE_KAFKA_BOOTSTRAP": "127.0.0.1:9092"})
    assert not real.embedded_kafka  # idempotent producer on
    env = {"TIERLINE_KAFKA_BOOTSTRAP": "127.0.0.1:5000", "TIERLINE_KAFKA_EMBEDDED": "true"}
    assert load_settings(env=env).embedded_kafka


def test_the_adaptive_in_flight_bound_can_be_turned_off() -> None:
    assert load_settings(env={}).worker.adaptive_in_flight
    env = {"TIERLINE_WORKER_ADAPTIVE_IN_FLIGHT": "false"}
    assert not load_settings(env=env).worker.adaptive_in_flight


def test_sink_fetches_wait_for_a_fill_but_never_longer_than_a_batch_may() -> None:
    settings = load_settings(env={})
    assert settings.sink.fetch_wait_ms == 500
    assert settings.sink.fetch_min_bytes == 256 * 1024
    quick = load_settings(env={"TIERLINE_SINK_FLUSH_INTERVAL_S": "0.2"})
    assert quick.sink.fetch_wait_ms == 200
    plain = load_settings(
        env={"TIERLINE_SINK_FETCH_MAX_WAIT_MS": "100", "TIERLINE_SINK_FETCH_MIN_BYTES": "1"}
    )
    assert (plain.sink.fetch_wait_ms, plain.sink.fetch_min_bytes) == (100, 1)


async def test_an_embedded_broker_gets_short_waits_and_no_minimum_fetch() -> None:
    settings = load_settings(
        env={"TIERLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1", "TIERLINE_KAFKA_EMBEDDED": "true"}
    )
    async with AsyncExitStack() as stack:
        assert await _kafka(settings, print, stack) == "127.0.0.1:1"
    assert settings.kafka.fetch_max_wait_ms == EMBEDDED_FETCH_MAX_WAIT_MS
    assert settings.sink.fetch_wait_ms == EMBEDDED_SINK_FETCH_WAIT_MS
    assert settings.sink.fetch_min_bytes == 1
    real = load_settings(env={"TIERLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    async with AsyncExitStack() as stack:
        await _kafka(real, print, stack)
    assert (real.kafka.fetch_max_wait_ms, real.sink.fetch_wait_ms) == (100, 500)
