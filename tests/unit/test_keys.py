"""Keys from the environment or a secrets file, never shown; a model without its key is skipped."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tierline.processors.pricing.catalog import Catalog
from tierline.processors.providers.keys import (
    REDACTED,
    KeyRing,
    SecretsFileError,
    read_secrets_file,
)
from tierline.processors.serving.walk import Dispatcher
from tierline.processors.simulator import RunningSimulator, SimulatorProfile, start_simulator
from tierline.schemas import ErrorType, RoutedRequest, RouteRequest, RoutingDecision, Tier

NAMES = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"]


def secrets(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_environment_wins_over_the_secrets_file(tmp_path: Path) -> None:
    path = secrets(tmp_path, 'OPENAI_API_KEY = "sk-from-file"\nANTHROPIC_API_KEY = "sk-ant-file"\n')
    ring = KeyRing.from_sources(NAMES, {"OPENAI_API_KEY": "sk-from-env"}, path)
    assert ring.get("OPENAI_API_KEY") == "sk-from-env"
    assert ring.get("ANTHROPIC_API_KEY") == "sk-ant-file"
    assert ring.missing(NAMES) == ["GEMINI_API_KEY"]
    assert ring.describe() == {
        "ANTHROPIC_API_KEY": "secrets file",
        "OPENAI_API_KEY": "environment",
    }
    assert ring.warnings == []


def test_the_file_path_may_come_from_tierline_secrets_file(tmp_path: Path) -> None:
    path = secrets(tmp_path, "[keys]\nGEMINI_API_KEY = 'AIza-file-key'\n")
    ring = KeyRing.from_sources(NAMES, {"TIERLINE_SECRETS_FILE": str(path)})
    assert ring.get("GEMINI_API_KEY") == "AIza-file-key"


def test_env_style_files(tmp_path: Path) -> None:
    path = secrets(
        tmp_path,
        "# provider keys\n"
        "export OPENAI_API_KEY=sk-plain-value\n"
        "ANTHROPIC_API_KEY='sk-ant quoted'\n"
        "GEMINI_API_KEY=AIza-key # a comment\n"
        "\n",
    )
    assert read_secrets_file(path) == {
        "OPENAI_API_KEY": "sk-plain-value",
        "ANTHROPIC_API_KEY": "sk-ant quoted",
        "GEMINI_API_KEY": "AIza-key",
    }


def test_a_bad_secrets_file_error_never_shows_its_content(tmp_path: Path) -> None:
    path = secrets(tmp_path, "OPENAI_API_KEY=sk-fine\nthis line holds sk-secret-value\n")
    with pytest.raises(SecretsFileError) as caught:
        read_secrets_file(path)
    assert "line 2" in str(caught.value)
    assert "sk-secret-value" not in str(caught.value) and "sk-fine" not in str(caught.value)
    with pytest.raises(SecretsFileError, match="cannot read"):
        read_secrets_file(tmp_path / "absent")


def test_a_world_readable_secrets_file_is_warned_about(tmp_path: Path) -> None:
    path = secrets(tmp_path, 'OPENAI_API_KEY = "sk-x"\n', mode=0o644)
    ring = KeyRing.from_sources(NAMES, {}, path)
    assert ring.get("OPENAI_API_KEY") == "sk-x"
    assert len(ring.warnings) == 1 and "chmod 600" in ring.warnings[0]


def test_keys_never_show() -> None:
    ring = KeyRing.from_sources(NAMES, {"OPENAI_API_KEY": "sk-live-1234567890"})
    assert "sk-live" not in repr(ring) and "OPENAI_API_KEY" in repr(ring)
    assert "sk-live" not in str(ring.describe())
    message = "HTTP 401: Incorrect API key provided: sk-live-1234567890"
    assert ring.redact(message) == f"HTTP 401: Incorrect API key provided: {REDACTED}"


def test_empty_names_and_values_are_not_keys() -> None:
    ring = KeyRing.from_sources(["", "OPENAI_API_KEY"], {"OPENAI_API_KEY": ""})
    assert ring.missing(["", "OPENAI_API_KEY"]) == ["OPENAI_API_KEY"]
    assert ring.get("OPENAI_API_KEY") is None


# --------------------------------------------------------------------------- the dispatcher

CATALOG = {
    "models": {
        "claude-haiku-4-5": {"provider": "anthropic"},
        "gpt-4.1-nano": {"provider": "openai"},
        "local": {"provider": "ollama", "price": {"input": "0", "output": "0"}},
    },
    "tiers": {
        "economy": ["claude-haiku-4-5", "gpt-4.1-nano"],
        "standard": ["claude-haiku-4-5"],
        "premium": ["claude-haiku-4-5"],
    },
}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimulatorProfile(seed=2))
    yield running
    await running.stop()


def routed(candidates: list[str]) -> RoutedRequest:
    return RoutedRequest(
        request=RouteRequest.model_validate(
            {"id": "k1", "tenant": "acme", "messages": [{"role": "user", "content": "hi"}]}
        ),
        decision=RoutingDecision(task="qa", tier=Tier.ECONOMY, score=0.1),
        candidates=candidates,
        routed_at=datetime.now(UTC),
    )


async def test_a_model_without_its_key_is_skipped_not_called(sim: RunningSimulator) -> None:
    catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
    keys = KeyRing.from_sources(NAMES, {"OPENAI_API_KEY": "sim-openai-key"})
    async with httpx.AsyncClient() as client:
        outcome = await Dispatcher(catalog, client, keys).serve(
            routed(["claude-haiku-4-5", "gpt-4.1-nano"])
        )
    assert outcome.response.status == "ok"
    assert outcome.response.model == "gpt-4.1-nano" and outcome.response.provider == "openai"
    assert outcome.response.attempts == 1
    assert sim.stats.by_route == {"openai": 1}  # Anthropic was never called


async def test_when_every_key_is_missing_the_error_says_which(sim: RunningSimulator) -> None:
    catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
    async with httpx.AsyncClient() as client:
        outcome = await Dispatcher(catalog, client, KeyRing.from_sources(NAMES, {})).serve(
            routed(["claude-haiku-4-5"])
        )
    error = outcome.response.error
    assert error is not None and error.type == ErrorType.NO_CANDIDATE
    assert "ANTHROPIC_API_KEY is not set" in error.message
    assert sim.stats.requests == 0


async def test_a_self_hosted_model_needs_no_key(sim: RunningSimulator) -> None:
    catalog = Catalog.from_config(CATALOG).with_simulator(sim.url)
    async with httpx.AsyncClient() as client:
        outcome = await Dispatcher(catalog, client, KeyRing({}, fallback="sim-key")).serve(
            routed(["local"])
        )
    assert outcome.response.status == "ok" and outcome.response.provider == "ollama"
