"""Start and stop tierline's roles in one process: router, tier workers, cost sink, gateway.

With nothing configured it also starts what is missing, and says so: the
embedded broker instead of Kafka, chDB instead of a ClickHouse server, and the
provider simulator instead of real provider APIs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tierline.processors.gateway.waiters import Waiters
from tierline.processors.health.board import HealthBoard
from tierline.processors.pricing.catalog import Catalog, load_catalog
from tierline.processors.providers.http_client import provider_client
from tierline.processors.providers.keys import KeyRing
from tierline.processors.routing.classifiers import Classifier
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_reload import open_policy_source
from tierline.processors.routing.tier_rules import Thresholds, TierRules
from tierline.processors.serving.batch_lane import BatchLane
from tierline.processors.serving.walk import Dispatcher, RetryPlan
from tierline.schemas import Tier
from tierline.streams.alert_sink import AlertSink
from tierline.streams.attempt_log import attempt_recorder
from tierline.streams.attempt_sink import AttemptSink
from tierline.streams.batch_journal import KafkaBatchJournal
from tierline.streams.budget_keeper import BudgetKeeper
from tierline.streams.config import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_SINK_FETCH_WAIT_MS,
    Settings,
    batch_policy,
)
from tierline.streams.cost_sink import CostSink
from tierline.streams.embedded import EmbeddedBroker
from tierline.streams.feature_sink import FeatureSink
from tierline.streams.feedback_sink import FeedbackSink
from tierline.streams.gateway import Gateway
from tierline.streams.gateway_replies import ReplyReader
from tierline.streams.health_feed import HealthFeed, replica_name
from tierline.streams.health_wiring import health_board, report_to, sample_gauges
from tierline.streams.metrics import Metrics, MetricsServer, process_metrics
from tierline.streams.router import RequestRouter, build_router_app
from tierline.streams.router_loop import PlainRouterLoop
from tierline.streams.tier_worker import TierWorker
from tierline.streams.topic_directory import TopicDirectory
from tierline.streams.topics import Topics, ensure_topics
from tierline.streams.tracing_setup import TracingError, start_tracing
from tierline.streams.worker_cache import WorkerCache, worker_policy

log = logging.getLogger("tierline")

#: the Kafka pipeline: what `start_pipeline` runs unless asked for more
PIPELINE_ROLES = ("router", "workers", "sink")
#: every role; the gateway is the HTTP front door before the pipeline (streams/gateway.py)
ROLES = (*PIPELINE_ROLES, "gateway")
SIMULATOR_KEY = "sim-key"


def load_classifier(spec: str, *, check_every_s: float = 5.0) -> Classifier:
    """`rules`, or the path of a trained artifact: reloaded when the file changes (checked
    every `check_every_s`); a bad artifact at start raises, a bad one later is refused."""
    if spec == "rules":
        from tierline.processors.routing.classifiers.rules import RulesClassifier

        return RulesClassifier()
    from tierline.processors.routing.classifiers.reloading import ReloadingClassifier

    return ReloadingClassifier(Path(spec), check_every_s=check_every_s)


@dataclass
class Pipeline:
    """The running parts; `stop` ends them in reverse order of start."""

    settings: Settings
    bootstrap: str
    topics: Topics
    catalog: Catalog
    simulator_url: str
    router: RequestRouter | None = None
    workers: dict[Tier, TierWorker] = field(default_factory=dict)
    sink: CostSink | None = None
    gateway: Gateway | None = None
    feedback_sink: FeedbackSink | None = None
    attempt_sink: AttemptSink | None = None
    feature_sink: FeatureSink | None = None
    alert_sink: AlertSink | None = None
    #: the providers' health as this process sees it (None: health loop off, or sink only)
    health: HealthBoard | None = None
    health_feed: HealthFeed | None = None
    metrics: Metrics = field(default_factory=process_metrics)
    metrics_server: MetricsServer | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    notices: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def stop(self) -> None:
        for component in self.metrics.ready()[1]:
            self.metrics.set_ready(component, False)  # /readyz says 503 while draining
        self.stop_event.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=self.settings.worker.call_timeout_s + 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                log.exception("role failed while stopping")
        await self._stack.aclose()

    def failed_roles(self) -> list[str]:
        return [t.get_name() for t in self._tasks if t.done() and t.exception() is not None]


async def start_pipeline(
    settings: Settings,
    roles: tuple[str, ...] = PIPELINE_ROLES,
    *,
    say: Callable[[str], None] = lambda _: None,
) -> Pipeline:
    """Start `roles` in this process; on any failure, stop what had started and raise.

    Raises `StartupError` (one line that says what could not start and why) for the
    failures an operator can fix: an unreachable broker, a state directory that cannot
    be made, a bad classifier path.
    """
    stack = AsyncExitStack()
    try:
        try:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create the state directory {settings.state_dir}: {exc}"
            ) from None
        return await _start(settings, roles, say, stack)
    except (KafkaError, OSError, ValueError) as exc:
        await stack.aclose()
        where = settings.kafka.bootstrap or "the embedded broker"
        why = str(exc) if type(exc).__name__ in str(exc) else f"{type(exc).__name__}: {exc}"
        raise StartupError(f"could not start {', '.join(roles)} (Kafka: {where}): {why}") from exc
    except BaseException:
        await stack.aclose()
        raise


class StartupError(RuntimeError):
    """A role could not start, for a reason the operator can fix; the message says which."""


async def _start(
    settings: Settings, roles: tuple[str, ...], say: Callable[[str], None], stack: AsyncExitStack
) -> Pipeline:
    """Broker, topics, providers, then each role asked for, in the order they depend."""
    if "gateway" in roles and not settings.gateway.configured:
        raise StartupError(
            "the gateway has no API keys: set [gateway.keys] (key or sha256:<hex> -> tenant; "
            "env TIERLINE_GATEWAY_KEYS as a JSON object), or [gateway] allow_anonymous_tenant "
            "to serve calls without a key as one tenant"
        )
    if settings.kafka.transactions == "on" and settings.embedded_kafka:
        raise StartupError(
            "kafka.transactions = on needs a Kafka with transactions; the embedded broker "
            "has none (set TIERLINE_KAFKA_BOOTSTRAP, or transactions = auto)"
        )
    _start_tracing(settings, stack)
    bootstrap = await _kafka(settings, say, stack)
    topics = await ensure_topics(settings.kafka, bootstrap)
    catalog, keys, simulator_url = _providers(settings, roles, say, stack)
    if "sink" in roles and not settings.clickhouse.url:
        say(f"No ClickHouse configured: costs go to embedded chDB at {settings.clickhouse_url}")

    pipeline = Pipeline(settings, bootstrap, topics, catalog, simulator_url, _stack=stack)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=settings.kafka.linger_ms,
        max_request_size=settings.kafka.max_message_bytes,
        # the embedded broker has no idempotent producer (InitProducerId)
        enable_idempotence=not settings.embedded_kafka,
        acks="all",
    )
    await producer.start()
    stack.push_async_callback(producer.stop)
    await _start_metrics(pipeline, roles, stack, say)
    if "workers" in roles or "router" in roles:
        _start_health(pipeline, producer if "workers" in roles else None)
    if "sink" in roles:
        _start_sinks(pipeline, producer)
    if "workers" in roles:
        _start_workers(pipeline, producer, keys, stack)
    if "router" in roles:
        await _start_router(pipeline, stack, producer)
    if "gateway" in roles:
        await _start_gateway(pipeline, stack, producer, say)
    for role in roles:
        pipeline.metrics.set_ready(role, True)
    if settings.prices.refresh_url and (pipeline.workers or pipeline.router):
        _start_price_refresh(pipeline, settings, stack, say)
    pipeline._stack = stack
    return pipeline


def _start_tracing(settings: Settings, stack: AsyncExitStack) -> None:
    """This process's spans (`[tracing]`): shut down, their last ones flushed, after every
    other part has stopped."""
    try:
        tracing = start_tracing(settings.tracing)
    except TracingError as exc:
        raise StartupError(str(exc)) from None
    stack.push_async_callback(tracing.shutdown)


def _short_fetch_waits(settings: Settings) -> None:
    """The embedded broker holds every fetch for its full wait: keep the waits short, and
    ask the sinks' fetches for no minimum size."""
    settings.kafka.fetch_max_wait_ms = min(
        settings.kafka.fetch_max_wait_ms, EMBEDDED_FETCH_MAX_WAIT_MS
    )
    settings.sink.fetch_max_wait_ms = min(
        settings.sink.fetch_max_wait_ms, EMBEDDED_SINK_FETCH_WAIT_MS
    )
    settings.sink.fetch_min_bytes = 1


async def _kafka(settings: Settings, say: Callable[[str], None], stack: AsyncExitStack) -> str:
    """The bootstrap address: the configured one, or an embedded broker started here."""
    if settings.kafka.bootstrap:
        if settings.kafka.embedded:
            _short_fetch_waits(settings)
        return settings.kafka.bootstrap
    _short_fetch_waits(settings)
    broker = EmbeddedBroker(settings.state_dir)
    bootstrap = await broker.start()
    stack.callback(broker.stop)
    say(
        f"No Kafka configured: started the EMBEDDED broker on {bootstrap} "
        "(memory only, for dev and demo; set TIERLINE_KAFKA_BOOTSTRAP for real Kafka)"
    )
    return bootstrap


def _providers(
    settings: Settings, roles: tuple[str, ...], say: Callable[[str], None], stack: AsyncExitStack
) -> tuple[Catalog, KeyRing, str]:
    """The catalog, the keys to call it with, and the simulator's URL when calls are faked.

    With no key set at all (and workers to run), a simulator is spawned and says so.
    """
    catalog = load_catalog(Path(settings.catalog) if settings.catalog else None)
    key_names = sorted({m.key_env for m in catalog.models.values() if m.key_env})
    env_keys = KeyRing.from_sources(key_names)  # environment, then $TIERLINE_SECRETS_FILE
    for warning in env_keys.warnings:
        say(f"warning: {warning}")
    simulator_url = settings.simulator_url
    if (
        not simulator_url
        and "workers" in roles
        and len(env_keys.missing(key_names)) == len(key_names)
    ):
        from tierline.processors.simulator import SimulatorProfile, spawn_simulator

        sim = spawn_simulator(SimulatorProfile(seed=1, latency_ms=300, latency_jitter=0.4))
        stack.callback(sim.stop)
        simulator_url = sim.url
        say(
            f"No provider API keys set ({', '.join(key_names)}): "
            f"providers are SIMULATED at {sim.url}"
        )
    if simulator_url:
        return (
            catalog.with_simulator(simulator_url),
            KeyRing({}, fallback=SIMULATOR_KEY),
            simulator_url,
        )
    for name in env_keys.missing(key_names):
        needing = sorted(m.name for m in catalog.models.values() if m.key_env == name)
        say(f"warning: {name} is not set; skipping {', '.join(needing)}")
    return catalog, env_keys, simulator_url


async def _start_metrics(
    pipeline: Pipeline, roles: tuple[str, ...], stack: AsyncExitStack, say: Callable[[str], None]
) -> None:
    """/metrics, /healthz and /readyz for every role of this process, on one port."""
    settings = pipeline.settings
    for role in roles:
        pipeline.metrics.set_ready(role, False)
    if settings.metrics_port == "off":
        return
    server = MetricsServer(pipeline.metrics, settings.metrics_host, settings.metrics_port)
    try:
        await server.start()
    except RuntimeError as exc:
        raise StartupError(str(exc)) from None
    stack.push_async_callback(server.stop)
    pipeline.metrics_server = server
    say(f"metrics: {server.url}/metrics (health: /healthz, /readyz)")


def _start_health(pipeline: Pipeline, producer: AIOKafkaProducer | None) -> None:
    """The health board, shared by this process's router and workers, and its feed
    (publishing only where workers observe providers)."""
    settings = pipeline.settings
    board = health_board(settings.health, replica_name())
    if board is None:
        return
    report_to(board, pipeline.metrics)
    pipeline.health = board
    feed = HealthFeed(
        board,
        pipeline.bootstrap,
        pipeline.topics,
        producer=producer,
        publish_interval_s=settings.health.publish_interval_s,
    )
    pipeline.health_feed = feed
    pipeline._tasks.append(asyncio.create_task(feed.run(pipeline.stop_event), name="health"))


def _start_sinks(pipeline: Pipeline, producer: AIOKafkaProducer) -> None:
    settings, topics, bootstrap = pipeline.settings, pipeline.topics, pipeline.bootstrap
    sink = CostSink(settings, topics, bootstrap, producer)
    pipeline.sink = sink
    pipeline._tasks.append(asyncio.create_task(sink.run(pipeline.stop_event), name="sink"))
    feedback = FeedbackSink(settings, topics, bootstrap, producer)
    pipeline.feedback_sink = feedback
    pipeline._tasks.append(
        asyncio.create_task(feedback.run(pipeline.stop_event), name="feedback_sink")
    )
    attempts = AttemptSink(settings, topics, bootstrap, producer)
    pipeline.attempt_sink = attempts
    pipeline._tasks.append(
        asyncio.create_task(attempts.run(pipeline.stop_event), name="attempt_sink")
    )
    features = FeatureSink(settings, topics, bootstrap, producer)
    pipeline.feature_sink = features
    pipeline._tasks.append(
        asyncio.create_task(features.run(pipeline.stop_event), name="feature_sink")
    )
    alerts = AlertSink(settings, topics, bootstrap, producer)
    pipeline.alert_sink = alerts
    pipeline._tasks.append(asyncio.create_task(alerts.run(pipeline.stop_event), name="alert_sink"))


def _start_workers(
    pipeline: Pipeline, producer: AIOKafkaProducer, keys: KeyRing, stack: AsyncExitStack
) -> None:
    settings = pipeline.settings
    client = provider_client(settings.worker.max_connections, settings.worker.call_timeout_s)
    stack.push_async_callback(client.aclose)
    retry = RetryPlan(
        max_retries=settings.worker.max_retries, call_timeout_s=settings.worker.call_timeout_s
    )
    on_attempt = attempt_recorder(producer, pipeline.topics)
    # the policy file's [cache] and [trimming] sections, which the workers read
    policy = worker_policy(settings, pipeline.catalog)
    dispatcher = Dispatcher(
        pipeline.catalog,
        client,
        keys,
        retry,
        on_attempt=on_attempt,
        health=pipeline.health,
        policy=policy,
    )
    dispatcher.batches = _batch_lane(pipeline, producer, client, dispatcher, keys)
    # one consumer (and one transactional producer) for every tier this process serves
    worker = TierWorker(
        settings.worker.tiers, settings, pipeline.topics, pipeline.bootstrap, dispatcher, producer
    )
    worker.metrics = pipeline.metrics
    # the response cache: `[cache]` of the policy file, warm from tierline.cache
    worker.cache = WorkerCache.open(
        settings, pipeline.topics, pipeline.bootstrap, pipeline.catalog, policy
    )
    for tier in worker.tiers:
        pipeline.workers[tier] = worker
    pipeline._tasks.append(asyncio.create_task(worker.run(pipeline.stop_event), name="workers"))
    gauges = sample_gauges(
        pipeline.metrics, worker.tiers, worker.in_flight, pipeline.health, pipeline.stop_event
    )
    pipeline._tasks.append(asyncio.create_task(gauges, name="gauges"))


def _batch_lane(
    pipeline: Pipeline,
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
    dispatcher: Dispatcher,
    keys: KeyRing,
) -> BatchLane | None:
    """The batch tier on the providers' batch APIs (`[batch]`), journaled on Kafka; None
    when it is off or this process serves no batch tier."""
    settings = pipeline.settings
    if not settings.batch.enabled or Tier.BATCH not in settings.worker.tiers:
        return None
    journal = KafkaBatchJournal(
        producer, pipeline.bootstrap, pipeline.topics.batches, settings.isolation_level
    )
    lane = BatchLane(
        client,
        batch_policy(settings.batch),
        journal,
        model_of=lambda name: dispatcher.catalog.models.get(name),  # the newest prices
        key_of=lambda model: keys.get(model.key_env),
    )
    journal.lane = lane
    return lane


async def _start_router(
    pipeline: Pipeline, stack: AsyncExitStack, producer: AIOKafkaProducer
) -> None:
    settings = pipeline.settings
    thresholds = Thresholds(settings.router.standard_threshold, settings.router.premium_threshold)
    policy = open_policy_source(
        settings.router.policy or None,
        defaults=Policy(routing=TierRules(thresholds)),
        check_every_s=settings.router.policy_check_s,
        catalog=pipeline.catalog,
    )
    # the router asks the broker whether a reply_to exists; it never produces to a guess
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap, request_timeout_ms=30_000)
    await admin.start()
    stack.push_async_callback(admin.close)
    router = RequestRouter(
        settings,
        pipeline.topics,
        load_classifier(
            settings.router.classifier, check_every_s=settings.router.classifier_check_s
        ),
        policy,
        pipeline.catalog,
        TopicDirectory(admin.list_topics),
        health=pipeline.health,
        # budgets need the plain loop: it reads settlements with the requests, in range
        budgets=(
            BudgetKeeper(
                pipeline.topics,
                pipeline.bootstrap,
                settings.isolation_level,
                metrics=pipeline.metrics,
            )
            if settings.router.engine == "aiokafka"
            else None
        ),
    )
    if router.budgets is None and policy.current().budgets:
        log.warning("router.engine = faust: the policy's [[budgets]] are NOT enforced")
    pipeline.router = router
    if settings.router.engine == "aiokafka":
        loop = PlainRouterLoop(router, pipeline.bootstrap, producer)
        pipeline._tasks.append(asyncio.create_task(loop.run(pipeline.stop_event), name="router"))
        return
    app = build_router_app(router, pipeline.bootstrap, settings)
    await app.start()
    stack.push_async_callback(app.stop)


async def _start_gateway(
    pipeline: Pipeline,
    stack: AsyncExitStack,
    producer: AIOKafkaProducer,
    say: Callable[[str], None],
) -> None:
    """The reply reader at the response topic's end, then the HTTP server: a call accepted
    is never answered before the gateway reads where its answer will land."""
    settings = pipeline.settings
    gateway_settings = settings.gateway
    waiters = Waiters(gateway_settings.remember_answers)
    reader = ReplyReader(waiters)
    await reader.start(
        pipeline.bootstrap,
        pipeline.topics.responses,
        settings.isolation_level,
        settings.kafka.fetch_max_wait_ms,
    )
    stack.push_async_callback(reader.close)
    gateway = Gateway(
        gateway_settings,
        max_body_bytes=gateway_settings.max_body_bytes or settings.router.max_request_bytes,
        catalog=pipeline.catalog,
        producer=producer,
        requests_topic=pipeline.topics.requests,
        waiters=waiters,
        metrics=pipeline.metrics,
        stopping=pipeline.stop_event,
    )
    try:
        await gateway.start()
    except RuntimeError as exc:
        raise StartupError(str(exc)) from None
    stack.push_async_callback(gateway.stop)
    pipeline.gateway = gateway
    # calls in flight at a stop wait for their answers as long as workers finish theirs
    drain_s = settings.worker.call_timeout_s
    pipeline._tasks.append(
        asyncio.create_task(reader.run(pipeline.stop_event, drain_s), name="gateway")
    )
    tenants = "anonymous only" if not gateway_settings.keys else f"{len(gateway.keys)} API keys"
    say(f"gateway: OpenAI API at {gateway.url} ({tenants})")


def _start_price_refresh(
    pipeline: Pipeline, settings: Settings, stack: AsyncExitStack, say: Callable[[str], None]
) -> None:
    """Fetch prices now and every interval; a new book reprices the catalogs in place."""
    import httpx

    from tierline.processors.pricing.prices import PriceBook
    from tierline.processors.pricing.prices.refresh import (
        PriceFeed,
        PriceRefreshError,
        refresh_forever,
    )

    client = httpx.AsyncClient(timeout=30)
    stack.push_async_callback(client.aclose)
    feed = PriceFeed(settings.prices.refresh_url)

    def apply(book: PriceBook) -> None:
        pipeline.catalog = pipeline.catalog.with_price_book(book)
        for worker in set(pipeline.workers.values()):
            worker.dispatcher.catalog = pipeline.catalog
        if pipeline.router is not None:
            pipeline.router.catalog = pipeline.catalog
        log.info("prices refreshed: %d models", len(book))

    def on_error(error: PriceRefreshError) -> None:
        log.warning("price refresh failed, keeping the current prices: %s", error)

    say(
        f"prices: refreshing from {_without_secrets(settings.prices.refresh_url)} "
        f"every {settings.prices.refresh_interval_s:g}s"
    )
    pipeline._tasks.append(
        asyncio.create_task(
            refresh_forever(
                feed,
                client,
                settings.prices.refresh_interval_s,
                apply,
                on_error,
                stop=pipeline.stop_event,
            ),
            name="prices",
        )
    )


def _without_secrets(url: str) -> str:
    """A URL fit for a log line: no user:password, no query string (tokens live there)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
