"""The router: a faust agent on `tierline.requests` that sends each request to its tier.

Per message: admit (parse and validate), classify, decide the tier, attach the
tier's candidates cheapest first, and forward to `tierline.tier.<tier>` keyed by
request (tenant and id). Input that cannot be admitted goes to the DLQ byte for byte, and when
its id can be read, the client also gets an error response. A `reply_to` is
used only when the tenant may name it (`processors.routing.reply_topics`) and the
broker has it (`streams.topic_directory`); else the request is refused on the
shared response topic. The agent never stops on bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import faust
from opentelemetry.trace import Span

from tierline.processors.errors import TierlineError
from tierline.processors.health.board import HealthBoard
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.budget_gate import BudgetExceeded
from tierline.processors.routing.classifiers import Classifier
from tierline.processors.routing.classifiers.hashed_terms import HASHING
from tierline.processors.routing.classifiers.learned import DENSE_FEATURES
from tierline.processors.routing.classifiers.recorded import request_features
from tierline.processors.routing.decide import route
from tierline.processors.routing.health_screen import screen_by_health
from tierline.processors.routing.intake import Rejection, admit
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_reload import PolicySource, as_source
from tierline.processors.routing.reply_topics import rules_from
from tierline.processors.routing.tier_rules import TierRules
from tierline.processors.tracing import (
    MESSAGING_SYSTEM,
    TIERLINE_CANDIDATES,
    TIERLINE_REQUEST_ID,
    TIERLINE_SCORE,
    TIERLINE_TASK,
    TIERLINE_TENANT,
    TIERLINE_TIER,
    KafkaHeaders,
    failed,
    next_headers,
    start_consumer_span,
)
from tierline.schemas import ErrorInfo, ErrorType, FeatureRecord, RoutedRequest, encode
from tierline.streams.budget_keeper import BudgetKeeper
from tierline.streams.config import Settings
from tierline.streams.faust_transport import ShortWaitTransport
from tierline.streams.outgoing import Outgoing, Source, dead_letter
from tierline.streams.topic_directory import TopicDirectory
from tierline.streams.topics import Topics

log = logging.getLogger("tierline.router")
_ROUTE_ATTRIBUTES = {MESSAGING_SYSTEM: "kafka"}


@dataclass
class RouterStats:
    received: int = 0
    routed: int = 0
    rejected: int = 0


class RequestRouter:
    """The routing step, independent of faust: bytes in, sends out."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        classifier: Classifier,
        policy: PolicySource | Policy | TierRules,
        catalog: Catalog,
        directory: TopicDirectory,
        health: HealthBoard | None = None,
        budgets: BudgetKeeper | None = None,
    ) -> None:
        #: the budget ledgers of the partitions this router owns; None = budgets ignored
        self.budgets = budgets
        #: the providers' health as the workers report it (`tierline.health`); None = ignore
        self.health = health
        self.settings = settings
        self.topics = topics
        self.classifier = classifier
        self.policy = as_source(policy)
        self.catalog = catalog
        self.stats = RouterStats()
        self.directory = directory
        replies = settings.replies
        self.replies = rules_from(topics.prefix, topics.responses, replies.allowed, replies.tenants)

    async def decide(
        self,
        raw: bytes | None,
        source: tuple[str, int, int],
        headers: KafkaHeaders | None = None,
    ) -> list[Outgoing]:
        """What to send for one input message, read at `source` (topic, partition, offset)
        with `headers`; the forward carries their trace context on, the `route` span's."""
        span = start_consumer_span("route", headers, _ROUTE_ATTRIBUTES)
        try:
            return await self._decide(raw, source, span, headers)
        finally:
            span.end()

    async def _decide(
        self,
        raw: bytes | None,
        source: tuple[str, int, int],
        span: Span,
        headers: KafkaHeaders | None,
    ) -> list[Outgoing]:
        self.stats.received += 1
        read_at = Source(*source, raw)
        admitted = admit(raw, self.settings.router.max_request_bytes)
        if isinstance(admitted, Rejection):
            usable = await self._reply_refusal(admitted.tenant, admitted.reply_to) is None
            return self._reject(
                replace(admitted, reply_to=admitted.reply_to if usable else None), read_at, span
            )
        refusal = await self._reply_refusal(admitted.tenant, admitted.reply_to)
        if refusal is not None:
            error = ErrorInfo(type=ErrorType.INVALID_REQUEST, message=refusal)
            return self._reject(Rejection(error, admitted.id, admitted.tenant), read_at, span)
        extra: list[Outgoing] = []
        try:
            policy = self.policy.current()
            routed = route(
                admitted,
                self.classifier,
                policy,
                self.catalog,
                outage_escalation=self.health is not None
                and self.settings.health.escalate_on_outage,
            )
            if self.health is not None:
                routed = screen_by_health(routed, self.health, self.catalog)
            if self.budgets is not None and policy.budgets:
                routed, extra = self.budgets.admit(routed, source[1], policy, self.catalog)
        except BudgetExceeded as exc:
            rejection = Rejection(exc.info(), admitted.id, admitted.tenant, admitted.reply_to)
            assert self.budgets is not None
            refused = self._reject(rejection, read_at, span)
            return self.budgets.outgoing(exc.result, source[1]) + refused
        except TierlineError as exc:
            rejection = Rejection(exc.info(), admitted.id, admitted.tenant, admitted.reply_to)
            return self._reject(rejection, read_at, span)
        except Exception as exc:
            log.exception("router: routing %s failed", admitted.id)
            error = ErrorInfo(
                type=ErrorType.INTERNAL, message=f"internal error: {type(exc).__name__}"
            )
            rejection = Rejection(error, admitted.id, admitted.tenant, admitted.reply_to)
            return self._reject(rejection, read_at, span)
        self.stats.routed += 1
        decision = routed.decision
        tier_topic = self.topics.tier(decision.tier)
        key = admitted.key.encode()
        if span.is_recording():
            span.set_attributes(
                {
                    TIERLINE_TENANT: admitted.tenant,
                    TIERLINE_REQUEST_ID: admitted.id,
                    TIERLINE_TIER: str(decision.tier),
                    TIERLINE_TASK: decision.task,
                    TIERLINE_SCORE: decision.score,
                    TIERLINE_CANDIDATES: len(routed.candidates),
                }
            )
        if self.settings.learning.record_features:
            extra.append(Outgoing(self.topics.features, key, encode(self._record(routed))))
        # keyed by request, not tenant: a few big tenants would pin a tier to a few
        # partitions and so to one workers process; the same request always hashes to the
        # same partition, whose done log catches a copy the router forwarded twice
        forward = Outgoing(tier_topic, key, encode(routed), next_headers(span, headers) or None)
        return [forward, *extra]

    def _record(self, routed: RoutedRequest) -> FeatureRecord:
        """The decision and the hashed features of `routed`, for the quality loop."""
        request, decision = routed.request, routed.decision
        found = request_features(request)
        return FeatureRecord(
            request_id=request.id,
            tenant=request.tenant,
            feature=request.metadata.feature or "",
            task=decision.task,
            tier=decision.tier,
            classifier=self.classifier.name,
            artifact=str(getattr(self.classifier, "artifact_id", "")),
            score=decision.score,
            confidence=decision.confidence,
            hashing=HASHING,
            term_ids=list(found.term_ids),
            term_counts=list(found.term_counts),
            dense=list(found.dense),
            dense_names=list(DENSE_FEATURES),
            prompt=request.prompt_text() if self.settings.learning.store_prompts else None,
        )

    async def _reply_refusal(self, tenant: str | None, reply_to: str | None) -> str | None:
        """Why a request may not be answered on `reply_to`; None when it may (or names none)."""
        if reply_to is None:
            return None
        if tenant is None:
            return "reply_to needs a readable tenant"
        refusal = self.replies.refusal(tenant, reply_to)
        if refusal is None and not await self.directory.exists(reply_to):
            refusal = f"reply_to {reply_to!r} does not exist (tierline never creates reply topics)"
        return refusal

    def _reject(self, rejection: Rejection, source: Source, span: Span) -> list[Outgoing]:
        """The input to the DLQ as it came; and an error response when its id is known."""
        self.stats.rejected += 1
        failed(span, str(rejection.error.type), rejection.error.message)
        sends = [
            dead_letter(
                self.topics.dlq,
                source,
                rejection.error.message,
                rejection.error.type,
                request_id=rejection.request_id or "",
                tenant=rejection.tenant or "",
            )
        ]
        response = rejection.response()
        if response is not None:
            topic = rejection.reply_to or self.topics.responses
            sends.append(Outgoing(topic, response.id.encode(), encode(response)))
        return sends


def build_router_app(router: RequestRouter, bootstrap: str, settings: Settings) -> faust.App:
    """The faust app running `router` as an agent on the request topic."""
    kafka = settings.kafka
    app = faust.App(
        f"{kafka.topic_prefix}router",
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=False,
        web_enabled=False,
        autodiscover=False,
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.3, kafka.session_timeout_ms / 5000),
        broker_commit_interval=0.5,
        producer_linger_ms=kafka.linger_ms,
        producer_max_request_size=kafka.max_message_bytes,
        consumer_max_fetch_size=kafka.max_message_bytes,
        stream_wait_empty=False,
        # faust's own transactions, one producer per input partition, as in partition_outbox
        processing_guarantee="exactly_once" if settings.transactional else "at_least_once",
    )
    app.fetch_max_wait_ms = kafka.fetch_max_wait_ms  # type: ignore[attr-defined]
    app.transport = ShortWaitTransport(app.conf.broker_consumer, app)
    requests = app.topic(router.topics.requests, value_serializer="raw", key_serializer="raw")
    outputs: dict[str, faust.TopicT] = {}

    def output(name: str) -> faust.TopicT:
        if name not in outputs:
            outputs[name] = app.topic(name, value_serializer="raw", key_serializer="raw")
        return outputs[name]

    @app.agent(requests, name="route")  # type: ignore[misc]
    async def route_requests(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            headers = message.headers
            if isinstance(headers, Mapping):
                headers = list(headers.items())
            for send in await router.decide(
                event.value, (message.topic, message.partition, message.offset), headers
            ):
                # faust's own producer, not `streams.sender`: faust flushes it before it
                # commits the input's offset, which is what makes the router at least once
                # without waiting for each send's ack
                await output(send.topic).send(
                    key=send.key,
                    value=send.payload,
                    headers=send.header_list(),
                    partition=send.partition,
                )

    return app
