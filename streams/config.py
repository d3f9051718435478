"""Settings: defaults, then a TOML file, then `TIERLINE_*` environment variables.

    TIERLINE_CONFIG=tierline.toml         the file (or --config)
    TIERLINE_KAFKA_BOOTSTRAP=host:9092    [kafka] bootstrap
    TIERLINE_WORKER_MAX_IN_FLIGHT=512     [worker] max_in_flight
    TIERLINE_SIMULATOR_URL=http://...     simulator_url (top level)
    TIERLINE_GATEWAY_KEYS='{"sha256:…": "acme"}'   [gateway] keys (a JSON object)

An environment variable names its section and key joined by underscores; a
name that starts with no section is a top-level key. Nothing is configured =
embedded defaults: an in-process Kafka-compatible broker, chDB on disk, and the
provider simulator.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from tierline.processors.gateway.api_keys import KeyTable
from tierline.processors.serving.batch_lane import BatchPolicy
from tierline.schemas import LatencyClass, Tier
from tierline.schemas.identifier import check_identifier

ENV_PREFIX = "TIERLINE_"
EMBEDDED_FETCH_MAX_WAIT_MS = 5
#: the sinks' fetch wait on the embedded broker (which holds a fetch for its full wait)
EMBEDDED_SINK_FETCH_WAIT_MS = 50


class KafkaSettings(BaseModel):
    #: empty = start the embedded broker (dev and demo only)
    bootstrap: str = ""
    #: the bootstrap is an embedded broker another process started (the bench's roles):
    #: no idempotent producer (it has no InitProducerId), short fetch waits
    embedded: bool = False
    topic_prefix: str = "tierline."
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    #: largest message accepted on the request and DLQ topics
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    #: how long a fetch may wait for data. Apache Kafka answers a waiting fetch as soon as
    #: data arrives, so a long wait costs no latency and saves CPU; the embedded broker does
    #: not, so it gets EMBEDDED_FETCH_MAX_WAIT_MS
    fetch_max_wait_ms: int = Field(default=100, ge=0)
    linger_ms: int = Field(default=2, ge=0)
    #: exactly once on Kafka transactions (streams/partition_outbox.py): "auto" = on for a
    #: real Kafka, off for the embedded broker (which has none; the done log is used there)
    transactions: Literal["auto", "on", "off"] = "auto"
    #: after a quiet spell, how long answers gather before a transaction publishes them
    #: (answers that queue while a transaction is in flight go in the next one at once)
    transaction_linger_ms: int = Field(default=5, ge=0)
    #: "process": one transactional producer per process, fenced by group generation
    #: (streams/process_outbox.py; Kafka >= 2.5); "partition": one per input partition,
    #: fenced by transactional id (streams/partition_outbox.py; more transactions, but a
    #: dead owner's open transaction is aborted at once by the next owner)
    transaction_scope: Literal["process", "partition"] = "process"
    #: the broker aborts a transaction left open this long. With the process scope this
    #: is how long a SIGKILLed owner's partitions (and the partitions it wrote to, for
    #: read_committed readers) wait; with the partition scope a new owner aborts it at once
    transaction_timeout_ms: int = Field(default=10_000, ge=1000)
    #: how soon a transaction begun while the coordinator still writes the last one's
    #: commit markers is retried (aiokafka's own: 20 ms; streams/txn_turnaround.py)
    transaction_retry_ms: int = Field(default=2, ge=1, le=100)


class ClickHouseSettings(BaseModel):
    #: http(s)://user:pass@host:8123/db, or chdb:///path; empty = chDB under state_dir
    url: str = ""


class RouterSettings(BaseModel):
    #: requests above this many bytes are rejected to the DLQ
    max_request_bytes: int = Field(default=1_000_000, ge=1024)
    #: "rules", or the path of a trained classifier artifact
    classifier: str = "rules"
    #: how often the router checks the classifier artifact for changes (hot swap)
    classifier_check_s: float = Field(default=5.0, gt=0)
    standard_threshold: float = Field(default=0.45, ge=0, le=1)
    premium_threshold: float = Field(default=0.7, ge=0, le=1)
    #: a policy file (deploy/policy.example.toml); empty = thresholds above, no other rules
    policy: str = ""
    #: how often the router checks the policy file for changes
    policy_check_s: float = Field(default=5.0, gt=0)
    #: "aiokafka" (a plain loop: measured 38% less router CPU per request than faust's
    #: agent at 250 req/s, and no second thread) or "faust" (its agent, for faust tables)
    engine: Literal["faust", "aiokafka"] = "aiokafka"


class WorkerSettings(BaseModel):
    tiers: list[Tier] = Field(default_factory=lambda: list(Tier))
    #: requests in flight per tier worker; partitions pause at this bound
    max_in_flight: int = Field(default=512, ge=1)
    #: lower the bound while the event loop lags (streams/adaptive_bound.py), so that past
    #: saturation throughput levels off instead of falling
    adaptive_in_flight: bool = True
    call_timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    commit_interval_s: float = Field(default=0.5, gt=0)
    #: how many finished request ids each worker remembers to drop duplicates
    dedupe_capacity: int = Field(default=200_000, ge=1000)
    max_connections: int = Field(default=1000, ge=1)


class BatchSettings(BaseModel):
    """The batch tier on the providers' batch APIs (processors/serving/batch_lane.py).

    A batch-tier request whose model's provider has a batch API (OpenAI, Anthropic,
    Gemini) goes into a provider batch, answered within hours at half the price; other
    models on the tier are called as usual.
    """

    #: off = the batch tier's models are called synchronously, at full price
    enabled: bool = True
    #: a batch is submitted at this many requests ...
    max_requests: int = Field(default=1000, ge=1, le=50_000)
    #: ... or once its oldest request has waited this long
    max_wait_s: float = Field(default=60.0, gt=0)
    #: how often an open batch's status is asked
    poll_s: float = Field(default=30.0, gt=0)
    #: an ended batch is closed this long after it ended, even if some of its requests
    #: never came back to be answered (they were answered before a crash)
    claim_grace_s: float = Field(default=600.0, gt=0)
    #: a batch not ended after this long is given up (providers promise 24 h)
    max_age_s: float = Field(default=25 * 3600.0, gt=0)
    #: an item the provider did not answer (expired, cancelled, failed batch): "sync" =
    #: call the model synchronously once, "error" = answer `unavailable`
    lost: Literal["sync", "error"] = "sync"
    #: batch-tier requests a workers process holds open at once (their partitions pause
    #: past it); replaces worker.max_in_flight for the batch tier
    max_open: int = Field(default=20_000, ge=1)


def batch_policy(batch: BatchSettings) -> BatchPolicy:
    """The lane's policy from `[batch]`."""
    return BatchPolicy(
        max_requests=batch.max_requests,
        max_wait_s=batch.max_wait_s,
        poll_s=batch.poll_s,
        claim_grace_s=batch.claim_grace_s,
        max_age_s=batch.max_age_s,
        lost=batch.lost,
    )


class HealthSettings(BaseModel):
    """The provider health loop (processors/health): circuit breakers, latency limits,
    how long a request may be held during an outage, and how replicas share it."""

    #: off = no circuits, no holding: every failure is answered as it comes (the old way)
    enabled: bool = True
    #: consecutive failures of a model that open its circuit
    failures_to_open: int = Field(default=5, ge=1)
    #: or this share of failures over the window's calls (with at least min_calls_for_rate)
    error_rate_to_open: float = Field(default=0.5, gt=0, le=1)
    min_calls_for_rate: int = Field(default=20, ge=1)
    #: how long an open circuit waits before a probe; doubles per failed probe, up to max
    cooldown_s: float = Field(default=5.0, gt=0)
    max_cooldown_s: float = Field(default=60.0, gt=0)
    #: calls let through at once while half-open
    probes: int = Field(default=1, ge=1)
    #: the latency window: last N calls, none older than window_s
    window_calls: int = Field(default=200, ge=10)
    window_s: float = Field(default=60.0, gt=0)
    #: the router skips a candidate whose p95 is over its tier's limit (ms; absent = none)
    p95_limit_ms: dict[Tier, float] = Field(default_factory=dict)
    #: `latency=interactive` requests tighten every tier's limit to this (ms)
    interactive_p95_limit_ms: float | None = Field(default=None, gt=0)
    #: how long a request may wait for a usable provider, by latency class (seconds);
    #: a request's hints.deadline_s overrides it
    deadline_s: dict[LatencyClass, float] = Field(
        default_factory=lambda: {
            LatencyClass.INTERACTIVE: 30.0,
            LatencyClass.STANDARD: 300.0,
            LatencyClass.BATCH: 86400.0,
        }
    )
    #: past its deadline, a request may go one tier up (within its max_tier) before failing
    escalate_on_outage: bool = True
    #: how often each worker publishes its models' snapshots to tierline.health
    publish_interval_s: float = Field(default=2.0, gt=0)


class SinkSettings(BaseModel):
    """How the sinks gather records for ClickHouse.

    A sink inserts a batch when it is full or `flush_interval_s` old, so it has no use for
    a fetch that returns the moment one record arrives: its fetches ask the broker to hold
    them until `fetch_min_bytes` have gathered or `fetch_max_wait_ms` (at most the flush
    interval) has passed. At low rates that is one fetch per wait instead of one per
    transaction marker the workers write (each wakes a `read_committed` fetch), and at high
    rates fuller fetches."""

    batch_size: int = Field(default=5000, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0)
    fetch_max_wait_ms: int = Field(default=500, ge=0)
    fetch_min_bytes: int = Field(default=256 * 1024, ge=1)

    @property
    def fetch_wait_ms(self) -> int:
        """The fetch wait the sinks use: never longer than a batch may wait."""
        return min(self.fetch_max_wait_ms, int(self.flush_interval_s * 1000))


class PricesSettings(BaseModel):
    #: a LiteLLM-format price catalog to fetch at start and every interval; empty = bundled only
    refresh_url: str = ""
    refresh_interval_s: float = Field(default=3600.0, ge=10)


class RepliesSettings(BaseModel):
    """Which topics a request's `reply_to` may name (processors/routing/reply_topics.py)."""

    #: shell-style patterns; `{tenant}` is the requesting tenant, taken literally
    allowed: list[str] = Field(default_factory=lambda: ["{tenant}.*"])
    #: per tenant, patterns that replace `allowed` for it
    tenants: dict[str, list[str]] = Field(default_factory=dict)


class AlertsSettings(BaseModel):
    """Spend alerts (`tierline.alerts`): the webhook the alert sink posts them to, and the
    cost sink's spend-rate anomaly detector (processors/spend/anomaly.py)."""

    #: POST each alert's JSON here; empty = no webhook (alerts still land in ClickHouse).
    #: Treated as a secret: logs name only its host
    webhook_url: str = Field(default="", repr=False)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    #: tries after the first, with exponential backoff, before an alert is given up
    webhook_retries: int = Field(default=3, ge=0)
    anomaly_enabled: bool = True
    #: spend is summed and judged per bucket of this many seconds
    anomaly_bucket_s: float = Field(default=300.0, ge=10)
    #: a bucket is anomalous above the baseline mean plus k standard deviations
    anomaly_k: float = Field(default=4.0, gt=0)
    #: and only with at least this much spend in the bucket (USD)
    anomaly_floor_usd: Decimal = Field(default=Decimal("1.00"), ge=0)


class LearningSettings(BaseModel):
    """What the router records for the quality loop (`tierline.features`, ClickHouse
    `request_features`): per routed request its decision and hashed features."""

    #: record the decision and the hashed features of every routed request
    record_features: bool = True
    #: also store the prompt text with them (off: only hashed terms, never raw text)
    store_prompts: bool = False


class GatewaySettings(BaseModel):
    """The OpenAI-compatible HTTP front door (`tierline run --role gateway`, streams/gateway.py).

    `keys` maps API keys to tenants: each key is the key itself or, better,
    `sha256:<hex digest of the key>`, so the file holds no usable secret. Keys never
    appear in a repr (`repr=False`) or an error message (`load_settings` tells errors of
    the table without their input, and the table's own checks name entries by position).
    """

    #: the interface and port the HTTP server listens on; port 0 = any free port (logged)
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    #: how long an HTTP call waits for its answer before a 504 (the request stays queued,
    #: and is still answered and billed)
    timeout_s: float = Field(default=600.0, gt=0)
    #: request bodies above this many bytes get a 413; unset = router.max_request_bytes
    max_body_bytes: int | None = Field(default=None, ge=1024)
    #: API key (or "sha256:<hex>") -> tenant. In the environment, TIERLINE_GATEWAY_KEYS as
    #: a JSON object
    keys: dict[str, str] = Field(default_factory=dict, repr=False)
    #: serve calls without an Authorization header (with no keys at all: every call) as
    #: this tenant, for dev and demos; with neither, the gateway refuses to start
    allow_anonymous_tenant: str | None = Field(default=None, min_length=1, max_length=128)
    #: answers kept per gateway for ids asked again after they were answered (or timed out)
    remember_answers: int = Field(default=1000, ge=0)

    @field_validator("keys", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        """The environment gives the table as a JSON object string; its text is never echoed."""
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ValueError("gateway.keys must be a JSON object of key -> tenant") from None
        if not isinstance(parsed, dict):
            raise ValueError("gateway.keys must be a JSON object of key -> tenant")
        return parsed

    @field_validator("keys")
    @classmethod
    def _valid_table(cls, keys: dict[str, str]) -> dict[str, str]:
        KeyTable.from_config(keys)  # KeyTableError (a ValueError) names entries by position
        return keys

    @field_validator("allow_anonymous_tenant")
    @classmethod
    def _identifier(cls, tenant: str | None) -> str | None:
        return None if tenant is None else check_identifier(tenant)

    @property
    def configured(self) -> bool:
        """Whether the gateway knows whom it serves: API keys, or an anonymous tenant."""
        return bool(self.keys) or self.allow_anonymous_tenant is not None


class TracingSettings(BaseModel):
    """OpenTelemetry traces (streams/tracing_setup.py): where the spans go.

    "none" installs no SDK: spans go to whatever tracer provider the process already
    has (normally the API's no-op one), and an incoming `traceparent` is still carried
    through Kafka to the providers unchanged. "otlp" exports over OTLP/HTTP (needs
    `pip install tierline[otlp]`); "console" prints each span (debugging).
    """

    exporter: Literal["none", "otlp", "console"] = "none"
    #: the OTLP/HTTP traces URL (http://collector:4318/v1/traces; a bare host:port gets
    #: /v1/traces); empty = the exporter's own default, or $OTEL_EXPORTER_OTLP_ENDPOINT
    endpoint: str = ""
    #: `service.name` of the spans
    service_name: str = Field(default="tierline", min_length=1)
    #: share of new traces kept; a trace the caller sampled is always kept (parent-based)
    sample_ratio: float = Field(default=1.0, ge=0, le=1)


class Settings(BaseModel):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    prices: PricesSettings = Field(default_factory=PricesSettings)
    replies: RepliesSettings = Field(default_factory=RepliesSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    #: Prometheus /metrics, /healthz and /readyz on this port (every role of the process);
    #: 0 = pick a free port, "off" = no endpoint
    metrics_port: int | Literal["off"] = 9464
    #: the interface the metrics endpoint listens on
    metrics_host: str = "0.0.0.0"
    #: send every provider call to this simulator instead of the real APIs
    simulator_url: str = ""
    #: where embedded state lives (chDB files, broker logs)
    state_dir: Path = Path(".tierline")
    #: the file holding [models] and [tiers]; empty = the config file, else the bundled one
    catalog: str = ""
    source: str = Field(default="defaults", exclude=True)

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        """Made absolute once, at load: the embedded chDB engine changes the process's
        working directory when it starts, so a path resolved later would point elsewhere."""
        return path.expanduser().absolute()

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka.bootstrap or self.kafka.embedded

    @property
    def transactional(self) -> bool:
        """Whether the roles publish in Kafka transactions (else: at least once + done log)."""
        mode = self.kafka.transactions
        return mode == "on" or (mode == "auto" and not self.embedded_kafka)

    @property
    def isolation_level(self) -> str:
        """How tierline's own consumers read: only committed transactions, when there are any."""
        return "read_committed" if self.transactional else "read_uncommitted"

    @property
    def clickhouse_url(self) -> str:
        return self.clickhouse.url or f"chdb://{(self.state_dir / 'chdb').resolve()}"


SECTIONS = (
    "kafka",
    "clickhouse",
    "router",
    "worker",
    "sink",
    "prices",
    "replies",
    "health",
    "alerts",
    "learning",
    "gateway",
    "batch",
    "tracing",
)
#: settings given as comma-separated lists in the environment
LISTS = {("worker", "tiers"), ("replies", "allowed")}


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section in SECTIONS and key:
            field = key
            if (section, field) in LISTS:
                out.setdefault(section, {})[field] = [
                    t.strip() for t in value.split(",") if t.strip()
                ]
            else:
                out.setdefault(section, {})[field] = value
        else:
            out[rest] = value
    return out


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, the file (`path` or $TIERLINE_CONFIG), and the environment."""
    env = os.environ if env is None else env
    path = path or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    merged: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        raw = tomllib.loads(path.read_text())
        merged = {k: v for k, v in raw.items() if k not in ("models", "tiers")}
        if ("models" in raw) and not merged.get("catalog"):
            merged["catalog"] = str(path)
        source = str(path)
    for key, value in env_overrides(env).items():
        if isinstance(value, dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise _without_keys(exc) from None
    settings.source = source
    return settings


def _without_keys(exc: ValidationError) -> ValueError | ValidationError:
    """`exc`, or when it concerns `gateway.keys`, its errors told without the keys: pydantic
    prints each error's input and the dict key it failed at, and those are API keys."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if not any(tuple(e["loc"][:2]) == ("gateway", "keys") for e in errors):
        return exc
    lines = []
    for error in errors:
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if loc[:2] != ("gateway", "keys"):
            lines.append(f"{'.'.join(map(str, loc))}: {message}")
        elif len(loc) > 2:  # loc[2] is the key itself
            lines.append("gateway.keys: every tenant must be a string")
        else:
            lines.append(
                message if message.startswith("gateway.keys") else f"gateway.keys: {message}"
            )
    return ValueError(f"invalid settings: {'; '.join(lines)}")
