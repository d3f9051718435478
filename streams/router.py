"""The router: a faust agent on `tierline.requests` that sends each request to its tier.

Per message: admit (parse and validate), classify, decide the tier, attach the
tier's candidates cheapest first, and forward to `tierline.tier.<tier>` keyed by
tenant. Input that cannot be admitted goes to the DLQ byte for byte, and when
its id can be read, the client also gets an error response. The agent never
stops on bad input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust

from tierline.processors.errors import TierlineError
from tierline.processors.pricing.catalog import Catalog
from tierline.processors.routing.classifiers import Classifier
from tierline.processors.routing.decide import route
from tierline.processors.routing.intake import Rejection, admit
from tierline.processors.routing.policy import Policy
from tierline.processors.routing.policy_reload import PolicySource, as_source
from tierline.processors.routing.tier_rules import RoutingPolicy
from tierline.schemas import DeadLetter, ErrorInfo, ErrorType, RouteResponse, encode
from tierline.streams.config import Settings
from tierline.streams.faust_transport import ShortWaitTransport
from tierline.streams.topics import Topics

log = logging.getLogger("tierline.router")


@dataclass
class RouterStats:
    received: int = 0
    routed: int = 0
    rejected: int = 0


class Router:
    """The routing step, independent of faust: bytes in, sends out."""

    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        classifier: Classifier,
        policy: PolicySource | Policy | RoutingPolicy,
        catalog: Catalog,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.classifier = classifier
        self.policy = as_source(policy)
        self.catalog = catalog
        self.stats = RouterStats()
        self._internal_topics = frozenset(topics.all())

    def decide(self, raw: bytes | None, source: tuple[str, int, int]) -> list[dict[str, Any]]:
        """The messages to send for one input message (topic, key, value, headers)."""
        self.stats.received += 1
        admitted = admit(raw, self.settings.router.max_request_bytes)
        if isinstance(admitted, Rejection):
            return self._reject(raw, admitted, source)
        if admitted.reply_to in self._internal_topics:
            error = ErrorInfo(
                type=ErrorType.INVALID_REQUEST,
                message=f"reply_to may not name tierline's own topic {admitted.reply_to}",
            )
            return self._reject(raw, Rejection(error, admitted.id, admitted.tenant), source)
        try:
            routed = route(admitted, self.classifier, self.policy.current(), self.catalog)
        except TierlineError as exc:
            rejection = Rejection(exc.info(), admitted.id, admitted.tenant, admitted.reply_to)
            return self._reject(raw, rejection, source)
        except Exception as exc:
            log.exception("router: routing %s failed", admitted.id)
            error = ErrorInfo(
                type=ErrorType.INTERNAL, message=f"internal error: {type(exc).__name__}"
            )
            rejection = Rejection(error, admitted.id, admitted.tenant, admitted.reply_to)
            return self._reject(raw, rejection, source)
        self.stats.routed += 1
        return [
            {
                "topic": self.topics.tier(routed.decision.tier),
                "key": admitted.tenant.encode(),
                "value": encode(routed),
            }
        ]

    def _reject(
        self, raw: bytes | None, rejection: Rejection, source: tuple[str, int, int]
    ) -> list[dict[str, Any]]:
        self.stats.rejected += 1
        topic, partition, offset = source
        letter = DeadLetter(
            reason=rejection.error.message,
            error_type=str(rejection.error.type),
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            request_id=rejection.request_id or "",
            tenant=rejection.tenant or "",
        )
        sends: list[dict[str, Any]] = [
            {
                "topic": self.topics.dlq,
                "key": None,
                "value": raw or b"",
                "headers": letter.to_headers(),
            }
        ]
        if rejection.request_id is not None:
            response = RouteResponse(
                id=rejection.request_id,
                tenant=rejection.tenant or "",
                status="error",
                finish_reason="error",
                error=rejection.error,
            )
            sends.append(
                {
                    "topic": rejection.reply_to or self.topics.responses,
                    "key": rejection.request_id.encode(),
                    "value": encode(response),
                }
            )
        return sends


def build_router_app(router: Router, bootstrap: str, settings: Settings) -> faust.App:
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
            for send in router.decide(
                event.value, (message.topic, message.partition, message.offset)
            ):
                await output(send["topic"]).send(
                    key=send["key"], value=send["value"], headers=send.get("headers")
                )

    return app
