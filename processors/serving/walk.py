"""The candidate walk: serve one routed request, retrying and falling back.

Picture a ladder of candidate models, cheapest first. On each rung the call is
retried with backoff while its failures are retryable (timeouts, 429s, 5xx) and
retries remain; then the walk steps to the next rung, if another model can
help. The first success ends the walk. Every attempt that consumed tokens is
billed, in its own `CostRecord`; the response carries the total.

With a health board (`processors.health`), the walk skips models whose circuit
is open or whose rate budget is cooling (saying so in the reasons), spends each
call's RPM/TPM budget before it (waiting for the bucket only on the last
candidate), and tells the board every outcome. When no candidate is usable and
the trouble is the providers' (an open circuit or a cool-down among the
candidates, or no connection at all), the request is *held*: the walk waits for
a circuit to change or a timer to end, then walks again, until the request's
deadline (`hints.deadline_s`, else the latency class's default). Past it, a
request the router gave an `escalation` walks the next tier up once; otherwise
it is answered `unavailable`. Half-open circuits admit one probe call at a time,
so during an outage the held requests cost the provider one call per cool-down,
not one per request.

A model that answers a 4xx saying it lacks a capability the request needs
("does not support tools": `ProviderError.unsupported`) is passed over for the
next candidate, the reasons saying so; the same refusal of something the request
does not use is an ordinary, final `bad_request`.

A model whose context window the prompt overflows is skipped, unless the policy's
`[trimming]` lets the walk send it a trimmed history instead (`context_fit`):
then that model's calls, rate budget and cost estimate use the trimmed request,
and the response says how many messages it left out (`trimmed_messages`).

On the batch tier, a model whose provider has a batch API is not called: its
request goes into a provider batch (`batch_lane`) and the walk waits for the
item's result, billed at the batch price. An item's error walks on as a call's
would (no retries: the batch was the try); an item the provider never answered
(expired, cancelled) is called synchronously once, or answered `unavailable`, as
the lane's policy says.

A request that streams (`params.stream`, served with a `stream_to` hook) calls a
model whose provider streams in streaming mode, each piece told to the hook as it
comes. Until the first piece a failure walks on as usual; after it, the error is
final (`StreamBroken`): the client already holds part of the answer.

With each call the dispatcher's `on_attempt` hears of it (an `Attempt` in state
`started`, with its estimated cost; sent as the call starts, and awaited before the
call's outcome is used), and the outcome lists every attempt again as `settled`:
published with the answer, they show which calls a crash cut off.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from opentelemetry.trace import Span, SpanKind

from tierline.processors import tracing
from tierline.processors.errors import InputError, ProviderError, StreamBroken, TierlineError
from tierline.processors.health.board import HealthBoard
from tierline.processors.pricing.capabilities import Capability, needed
from tierline.processors.pricing.catalog import Catalog, ModelSpec
from tierline.processors.pricing.cost import cost_of
from tierline.processors.providers.base import Adapter, BilledReplyError, ProviderReply
from tierline.processors.providers.batch import ItemLost, ItemResult
from tierline.processors.providers.call import call_model, stream_model
from tierline.processors.providers.keys import KeyRing
from tierline.processors.providers.rate_headers import announced_limits
from tierline.processors.providers.registry import adapter_for
from tierline.processors.providers.streaming import StreamDelta, supports_streaming
from tierline.processors.providers.tokens import count_prompt_tokens
from tierline.processors.routing.cost_cap import estimate, output_tokens, prompt_tokens
from tierline.processors.routing.policy_reload import PolicySource
from tierline.processors.serving.backoff import Backoff
from tierline.processors.serving.batch_lane import BatchLane, custom_id_for
from tierline.processors.serving.context_fit import ContextFitter, Fit
from tierline.schemas import (
    Attempt,
    CostRecord,
    ErrorInfo,
    ErrorType,
    Escalation,
    RoutedRequest,
    RouteRequest,
    RouteResponse,
    RoutingDecision,
    Tier,
    Usage,
)

#: the error types that are the providers' trouble: waiting may cure them
_PROVIDER_TROUBLE = frozenset(
    {
        ErrorType.TIMEOUT,
        ErrorType.CONNECTION,
        ErrorType.SERVER_ERROR,
        ErrorType.OVERLOADED,
        ErrorType.RATE_LIMITED,
        ErrorType.INVALID_RESPONSE,
    }
)
#: a held request looks again at least this often, events or not
_HOLD_POLL_S = 5.0


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """How hard to try one model: retries after the first call, the call timeout, the backoff."""

    max_retries: int = 2
    call_timeout_s: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(slots=True)
class ServeOutcome:
    """What serving a request produced: its one response and its billed attempts."""

    response: RouteResponse
    costs: list[CostRecord]
    #: every provider call made, as `settled` (see the module docstring)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.response.status == "error"


Sleep = Callable[[float], Awaitable[None]]
#: told each piece of a streamed answer, with the model writing it
StreamHook = Callable[[ModelSpec, StreamDelta], Awaitable[None]]
#: told of each provider call before it is made; returns once the record is durable
AttemptHook = Callable[[Attempt], Awaitable[None]]


class Dispatcher:
    """Serves routed requests: walks their candidates with one HTTP client, keys and retry plan."""

    def __init__(
        self,
        catalog: Catalog,
        client: httpx.AsyncClient,
        keys: KeyRing,
        retry: RetryPlan | None = None,
        *,
        seed: int | None = None,
        sleep: Sleep = asyncio.sleep,
        on_attempt: AttemptHook | None = None,
        health: HealthBoard | None = None,
        policy: PolicySource | None = None,
        batches: BatchLane | None = None,
    ) -> None:
        self.health = health
        #: the batch lane on the providers' batch APIs, when the workers run one
        self.batches = batches
        self.catalog = catalog
        self.client = client
        self.keys = keys
        self.retry = retry or RetryPlan()
        self._rng = random.Random(seed)
        self._sleep = sleep
        self.on_attempt = on_attempt
        #: whether each model's window takes the prompt, trimmed or not (`[trimming]`)
        self.fitter = ContextFitter(policy)

    async def serve(
        self, routed: RoutedRequest, stream_to: StreamHook | None = None
    ) -> ServeOutcome:
        """Walk the candidates; never raises: a bug of ours becomes an `internal` error response.

        With `stream_to`, a request that asks to stream (`params.stream`) is called in
        streaming mode where the model's provider streams, each piece of the answer told
        to `stream_to` as it comes."""
        started = time.monotonic()
        walk = _Walk(routed)
        if routed.request.params.stream:
            walk.stream_to = stream_to
        try:
            return await self._walk(routed, walk, started)
        except Exception as exc:  # noqa: BLE001 - the request must still get its one response
            return self._internal(walk, exc, started)

    def internal_failure(self, routed: RoutedRequest, exc: BaseException) -> ServeOutcome:
        """The `internal` error response for a request that something of ours failed on."""
        return self._internal(_Walk(routed), exc, time.monotonic())

    def _internal(self, walk: _Walk, exc: BaseException, started: float) -> ServeOutcome:
        walk.note(TierlineError(f"internal error: {type(exc).__name__}: {exc}"))
        walk.last_error = None
        return walk.failure(_ms_since(started), self.keys.redact)

    async def _walk(self, routed: RoutedRequest, walk: _Walk, started: float) -> ServeOutcome:
        health = self.health
        deadline = self._deadline(routed)
        while True:
            models = self._usable_models(routed.candidates, routed, walk)
            answer = await self._first_answer(models, routed, walk)
            if answer is not None:
                return walk.success(*answer, _ms_since(started))
            final = walk.last_error is not None and not walk.last_error.kind.next_model_helps
            if final or health is None or not self._worth_holding(models, walk):
                return walk.failure(_ms_since(started), self.keys.redact)
            left = deadline - health.clock()
            if left <= 0:
                break
            wait = health.next_change_in(models)
            await self._hold(
                routed, models, min(left, _HOLD_POLL_S if wait is None else wait + 0.01)
            )
            walk.held_rounds += 1
        return await self._past_deadline(routed, walk, started)

    async def _first_answer(
        self, models: list[ModelSpec], routed: RoutedRequest, walk: _Walk
    ) -> tuple[ModelSpec, ProviderReply] | None:
        """One pass over `models`: the first that answers, skipping blocked ones; None when
        none did, or when an error no other model can help with ended the pass."""
        for nth, model in enumerate(models):
            blocked = self.health.blocked(model) if self.health is not None else None
            if blocked is not None:
                walk.skip(model, blocked)
                continue
            reply = await self._try_model(model, routed, walk, last=nth == len(models) - 1)
            if reply is not None:
                return model, reply
            if walk.last_error is not None and not walk.last_error.kind.next_model_helps:
                return None
        return None

    def _usable_models(
        self, names: list[str], routed: RoutedRequest, walk: _Walk
    ) -> list[ModelSpec]:
        """The candidates the catalog knows, that fit the prompt and have a key."""
        models = []
        for name in names:
            try:
                model = self.catalog.model(name)
            except InputError as exc:
                walk.note(exc)
                continue
            if self._fits(model, routed, walk) and not self._key_missing(model, walk):
                models.append(model)
        return models

    def _deadline(self, routed: RoutedRequest) -> float:
        """Wall-clock time until which the request may be held for a usable provider."""
        now = time.time()
        if self.health is None:
            return now
        request = routed.request
        seconds = request.hints.deadline_s
        if seconds is None:
            seconds = self.health.policy.deadline_s.get(request.hints.latency, 300.0)
        # a replayed dead letter (`tierline dlq replay`) starts a new wait from now
        created = request.created_at if request.replay == 0 else None
        start = created.timestamp() if created is not None else now
        return min(start, now) + seconds

    def _worth_holding(self, models: list[ModelSpec], walk: _Walk) -> bool:
        """Hold when the providers are in trouble, not this request: some candidate is
        blocked now (circuit open, cooling) or the last call found no connection; and at
        least one candidate may recover (not an auth failure pinned open). A request whose
        calls keep failing while every circuit is closed (a 500 only it provokes) is
        answered with its error, as without a board: one request never holds a tier."""
        health = self.health
        assert health is not None
        if not models or not any(health.recoverable(m) for m in models):
            return False
        error = walk.last_error
        if error is not None and error.error_type not in _PROVIDER_TROUBLE:
            return False
        blocked = any(health.blocked(m) is not None for m in models)
        return blocked or (error is not None and error.error_type == ErrorType.CONNECTION)

    async def _hold(self, routed: RoutedRequest, models: list[ModelSpec], seconds: float) -> None:
        assert self.health is not None
        with self.health.holding(routed.decision.tier, models):
            await self.health.wait_change(seconds)

    async def _past_deadline(
        self, routed: RoutedRequest, walk: _Walk, started: float
    ) -> ServeOutcome:
        """The deadline passed with no usable candidate: the escalation tier, once, or
        `unavailable`."""
        waited = walk.held_rounds
        escalation: Escalation | None = routed.escalation
        if escalation is not None and not walk.escalated:
            walk.escalated = True
            walk.reason(
                f"{routed.decision.tier} unavailable until the deadline: escalated to "
                f"{escalation.tier}"
            )
            walk.routed = routed.model_copy(
                update={
                    "decision": routed.decision.model_copy(update={"tier": escalation.tier}),
                    "candidates": list(escalation.candidates),
                    "escalation": None,
                }
            )
            models = self._usable_models(escalation.candidates, walk.routed, walk)
            answer = await self._first_answer(models, walk.routed, walk)
            if answer is not None:
                return walk.success(*answer, _ms_since(started))
        cause = walk.last_error.message if walk.last_error is not None else "no usable candidate"
        walk.last_error = None
        walk.note(
            TierlineError(
                f"no usable candidate until the request's deadline ({waited} holds; last: {cause})",
                ErrorType.UNAVAILABLE,
            )
        )
        return walk.failure(_ms_since(started), self.keys.redact)

    def _fits(self, model: ModelSpec, routed: RoutedRequest, walk: _Walk) -> bool:
        """Whether `model`'s window takes the prompt, whole or trimmed (`context_fit`)."""
        fit = self.fitter.fit(model, routed.request)
        walk.fitted(model, fit)
        if not fit.ok:
            walk.note(
                InputError(
                    f"{model.name}: prompt of ~{fit.tokens} tokens exceeds its "
                    f"{model.context_window}-token window",
                    ErrorType.NO_CANDIDATE,
                )
            )
        return fit.ok

    def _key_missing(self, model: ModelSpec, walk: _Walk) -> bool:
        """A model whose key is not set is skipped, not called; the walk notes why."""
        if not model.key_env or self.keys.get(model.key_env) is not None:
            return False
        walk.note(
            InputError(
                f"{model.name}: skipped, its API key {model.key_env} is not set",
                ErrorType.NO_CANDIDATE,
            )
        )
        return True

    async def _try_model(
        self, model: ModelSpec, routed: RoutedRequest, walk: _Walk, *, last: bool = True
    ) -> ProviderReply | None:
        batches = self.batches
        if batches is not None and walk.routed.decision.tier is Tier.BATCH and batches.takes(model):
            batched = await self._try_batch(batches, model, routed, walk)
            if not isinstance(batched, _CallNow):
                return batched
        adapter = adapter_for(model.provider)
        key = self.keys.get(model.key_env)
        health = self.health
        for nth in range(self.retry.max_retries + 1):
            if health is not None and not await self._claim(model, routed, walk, last):
                return None
            attempt = walk.attempt(model)
            # the record and the call go out together; the call's outcome is used only
            # once the record is durable (its ack takes ms, the call hundreds)
            recorded = asyncio.ensure_future(self.on_attempt(attempt)) if self.on_attempt else None
            call_started = time.monotonic()
            span = _attempt_span(model, walk.request_for(model), len(walk.settled))
            try:
                reply = await self._call(model, adapter, walk, key, span)
            except ProviderError as exc:
                if recorded is not None:
                    await recorded
                exc = walk.broken(model, exc)
                self._failed_call(model, routed, walk, exc, call_started, span)
                span.end()
                if health is not None:
                    health.observe(
                        model,
                        str(exc.error_type),
                        retry_after_s=exc.retry_after_s,
                        why=exc.cause or self.keys.redact(exc.message)[:200],
                    )
                if not exc.kind.retryable or nth == self.retry.max_retries:
                    return None
                if not self.retry.backoff.waits_for(exc.retry_after_s):
                    return None
                if health is not None and exc.error_type == ErrorType.RATE_LIMITED and not last:
                    return None  # a capacity signal: the next candidate, not a wait
                await self._sleep(self.retry.backoff.delay(nth, self._rng, exc.retry_after_s))
                continue
            except BaseException as exc:
                tracing.failed(span, type(exc).__name__)
                span.end()
                if recorded is not None:
                    recorded.cancel()
                if health is not None:
                    health.release(model)
                raise
            if recorded is not None:
                await recorded
            latency = _ms_since(call_started)
            if health is not None:
                health.observe(model, "ok", latency)
            walk.billed_attempt(model, reply.usage, latency)
            _attempt_answered(span, model, reply, walk)
            span.end()
            return reply
        return None

    async def _call(
        self, model: ModelSpec, adapter: Adapter, walk: _Walk, key: str | None, span: Span
    ) -> ProviderReply:
        """One call of `model`: streamed to the walk's `stream_to` when the request streams
        and the provider can, else whole; with `span`'s trace context in its headers."""
        heard = self._heard(model) if self.health is not None else None
        headers = tracing.http_headers(span)
        request = walk.request_for(model)
        stream_to = walk.stream_to
        if stream_to is not None and supports_streaming(model.provider):

            async def relay(delta: StreamDelta) -> None:
                walk.streamed += 1
                await stream_to(model, delta)

            timeout = self.retry.call_timeout_s
            return await stream_model(
                self.client, model, request, key, timeout, relay, heard, headers
            )
        return await call_model(
            self.client,
            adapter,
            model,
            request,
            key,
            self.retry.call_timeout_s,
            heard=heard,
            headers=headers,
        )

    async def _try_batch(
        self, batches: BatchLane, model: ModelSpec, routed: RoutedRequest, walk: _Walk
    ) -> ProviderReply | None | _CallNow:
        """`model`'s answer through its batch API (`batch_lane`), billed at the batch price;
        None when it answered an error; `_CALL_NOW` when the item was lost and the lane's
        policy says to call the model synchronously once instead."""
        request = walk.request_for(model)
        custom_id = custom_id_for(model, request)
        # the same id on every delivery: an answer after a restart settles the first record
        attempt = walk.attempt(model, attempt_id=f"{request.id}#batch:{custom_id}")
        recorded = asyncio.ensure_future(self.on_attempt(attempt)) if self.on_attempt else None
        started = time.monotonic()
        span = _attempt_span(model, request, len(walk.settled), batch=True)
        try:
            result = await batches.answer(model, request)
        except BaseException as exc:
            tracing.failed(span, type(exc).__name__)
            span.end()
            if recorded is not None:
                recorded.cancel()
            raise
        if recorded is not None:
            await recorded
        try:
            return self._batch_result(batches, model, routed, walk, result, started, span)
        finally:
            span.end()

    def _batch_result(
        self,
        batches: BatchLane,
        model: ModelSpec,
        routed: RoutedRequest,
        walk: _Walk,
        result: ItemResult,
        started: float,
        span: Span,
    ) -> ProviderReply | None | _CallNow:
        """What a batch item's `result` makes of the walk (see `_try_batch`), said on `span`."""
        if isinstance(result, ProviderReply):
            walk.reason(f"{model.name}: answered by its batch API, at the batch price")
            walk.billed_attempt(model, result.usage, _ms_since(started), batch=True)
            _attempt_answered(span, model, result, walk)
            return result
        if isinstance(result, ItemLost):
            walk.reason(f"{model.name}: batch item {result.reason}")
            if batches.policy.lost == "sync":
                walk.reason(f"{model.name}: called synchronously instead")
                return _CALL_NOW
            walk.failed_attempt(
                ProviderError(
                    ErrorType.UNAVAILABLE,
                    f"{model.name}: the provider's batch did not answer the request "
                    f"({result.reason})",
                )
            )
            tracing.failed(span, str(ErrorType.UNAVAILABLE), f"batch item {result.reason}")
            return None
        self._failed_call(model, routed, walk, result, started, span, batch=True)
        return None

    def _failed_call(
        self,
        model: ModelSpec,
        routed: RoutedRequest,
        walk: _Walk,
        error: ProviderError,
        started: float,
        span: Span,
        *,
        batch: bool = False,
    ) -> None:
        """Note a call (or batch item) `model` answered with `error`: a capability it
        refused, and the attempt, billed when the provider charged for the tokens."""
        if error.unsupported is not None:
            _capability_refused(error, model, routed, walk)
        if isinstance(error, BilledReplyError):
            # refused or empty, but the provider charged for the tokens: bill them
            walk.billed_attempt(model, error.usage, _ms_since(started), error=error, batch=batch)
            _attempt_usage(span, error.usage, walk)
        else:
            walk.failed_attempt(error)
        tracing.failed(span, str(error.error_type), self.keys.redact(error.message))

    async def _claim(
        self, model: ModelSpec, routed: RoutedRequest, walk: _Walk, last: bool
    ) -> bool:
        """Take a call on `model` from its circuit and its rate budget; False (noted in the
        walk) when the circuit refuses, or when the budget has no room and a later
        candidate may (the last candidate waits for its bucket instead)."""
        health = self.health
        assert health is not None
        blocked = health.blocked(model)
        if blocked is not None or not health.admit(model):
            walk.skip(model, blocked or "circuit open")
            return False
        budget = health.of(model).budget
        request = walk.request_for(model)  # what is sent: the trimmed history, if trimmed
        tokens = prompt_tokens(request) + output_tokens(request)
        if budget.has_room(tokens, health.clock()):
            await budget.spend(tokens)
            return True
        if not last:
            health.release(model)
            walk.skip(model, f"over its rate budget ({budget.rpm} rpm / {budget.tpm} tpm)")
            return False
        await budget.spend(tokens)
        return True

    def _heard(self, model: ModelSpec) -> Callable[[Mapping[str, str]], None]:
        health = self.health
        assert health is not None

        def heard(headers: Mapping[str, str]) -> None:
            limits = announced_limits(headers)
            if limits is not None:
                health.announced(model, limits)

        return heard


class _CallNow:
    """The batch lane lost the item: call the model synchronously instead."""


_CALL_NOW = _CallNow()


def _capability_refused(
    exc: ProviderError, model: ModelSpec, routed: RoutedRequest, walk: _Walk
) -> None:
    """`model` refused a capability: the next candidate, when the request needs it."""
    refused = Capability(exc.unsupported or "")
    if refused in needed(routed.request):
        walk.reason(f"{model.name} does not support {refused.described}: next candidate")
    else:
        exc.unsupported = None  # the request does not use it: an ordinary bad request


def _attempt_span(
    model: ModelSpec, request: RouteRequest, attempt: int, *, batch: bool = False
) -> Span:
    """The CLIENT span of one call of `model` (a child of the current span: `serve`), with
    the GenAI semantic conventions' request attributes."""
    params = request.params
    attributes: dict[str, str | int | float | bool] = {
        tracing.GEN_AI_OPERATION_NAME: tracing.CHAT,
        tracing.GEN_AI_PROVIDER_NAME: tracing.provider_name(model.provider),
        tracing.GEN_AI_SYSTEM: tracing.provider_name(model.provider),
        tracing.GEN_AI_REQUEST_MODEL: model.model_id,
        tracing.TIERLINE_REQUEST_ID: request.id,
        tracing.TIERLINE_TENANT: request.tenant,
        tracing.TIERLINE_ATTEMPT: attempt,
    }
    if params.max_tokens is not None:
        attributes[tracing.GEN_AI_REQUEST_MAX_TOKENS] = params.max_tokens
    if params.temperature is not None:
        attributes[tracing.GEN_AI_REQUEST_TEMPERATURE] = params.temperature
    if params.top_p is not None:
        attributes[tracing.GEN_AI_REQUEST_TOP_P] = params.top_p
    if batch:
        attributes[tracing.TIERLINE_BATCH] = True
    return tracing.tracer.start_span(
        f"{tracing.CHAT} {model.model_id}", kind=SpanKind.CLIENT, attributes=attributes
    )


def _attempt_usage(span: Span, usage: Usage, walk: _Walk) -> None:
    """A billed call's tokens and cost (the walk's last cost record) on its span."""
    if not span.is_recording():
        return
    span.set_attributes(
        {
            tracing.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
            tracing.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
            tracing.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cached_input_tokens,
            tracing.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: usage.cache_write_tokens,
        }
    )
    if walk.costs:
        span.set_attribute(tracing.TIERLINE_COST_USD, float(walk.costs[-1].cost_usd))


def _attempt_answered(span: Span, model: ModelSpec, reply: ProviderReply, walk: _Walk) -> None:
    """An answered call's response attributes on its span."""
    if not span.is_recording():
        return
    _attempt_usage(span, reply.usage, walk)
    span.set_attribute(tracing.GEN_AI_RESPONSE_MODEL, model.model_id)
    span.set_attribute(tracing.GEN_AI_RESPONSE_FINISH_REASONS, [reply.finish_reason])
    if reply.request_id:
        span.set_attribute(tracing.GEN_AI_RESPONSE_ID, reply.request_id)


def estimate_prompt_tokens(routed: RoutedRequest, family: str = "") -> int:
    """The prompt's tokens as `processors.tokens` counts them for a model of `family`."""
    return count_prompt_tokens(routed.request, family)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


class _Walk:
    """What happened so far on one request's walk: attempts, bills, the last error."""

    def __init__(self, routed: RoutedRequest) -> None:
        self.routed = routed
        self.attempts = 0
        self.costs: list[CostRecord] = []
        self.usage = Usage()
        self.last_error: ProviderError | None = None
        self.notes: list[TierlineError] = []
        #: this serving's nonce: a request served again after a crash gets new attempt ids
        self.serving = uuid.uuid4().hex[:12]
        self.settled: list[Attempt] = []
        #: what the walk decided along the way, added to the decision's reasons
        self.reasons: list[str] = []
        self._skipped: set[str] = set()
        #: times the request was held for a usable provider
        self.held_rounds = 0
        self.escalated = False
        #: the models that take the request only trimmed, and how (`context_fit`)
        self.trims: dict[str, Fit] = {}
        #: where a streamed answer's pieces go, when the request streams; how many went
        self.stream_to: StreamHook | None = None
        self.streamed = 0

    def broken(self, model: ModelSpec, error: ProviderError) -> ProviderError:
        """`error` as the walk must treat it: once pieces of the answer were streamed, a
        final `StreamBroken` (no retry, no other model), else as it is."""
        if not self.streamed:
            return error
        return StreamBroken(
            error.error_type,
            f"{model.name}: the stream failed after {self.streamed} pieces were sent "
            f"({error.message}); not retried or sent to another model, as the client "
            "already has part of the answer",
            status=error.status,
            cause=error.cause,
        )

    def skip(self, model: ModelSpec, why: str) -> None:
        """`model` was not called: say why, once per model."""
        if model.name not in self._skipped:
            self._skipped.add(model.name)
            self.reasons.append(f"skipped {model.name}: {why}")
        self.note(InputError(f"{model.name}: skipped, {why}", ErrorType.NO_CANDIDATE))

    def reason(self, text: str) -> None:
        self.reasons.append(text)

    def fitted(self, model: ModelSpec, fit: Fit) -> None:
        """Remember whether `model` is sent a trimmed history."""
        if fit.trimmed is not None:
            self.trims[model.name] = fit
        else:
            self.trims.pop(model.name, None)

    def request_for(self, model: ModelSpec) -> RouteRequest:
        """The request as `model` is sent it: trimmed to its window, or whole."""
        fit = self.trims.get(model.name)
        trimmed = fit.trimmed if fit is not None else None
        return trimmed.request if trimmed is not None else self.routed.request

    def decision(self) -> RoutingDecision:
        """The routing decision with what the walk added to it."""
        decision = self.routed.decision
        extra = list(self.reasons)
        if self.held_rounds:
            extra.append(f"held {self.held_rounds} times for a usable provider")
        if not extra:
            return decision
        return decision.model_copy(update={"reasons": [*decision.reasons, *extra]})

    def attempt(self, model: ModelSpec, attempt_id: str | None = None) -> Attempt:
        """The next call, as `started`; its `settled` twin is kept for the outcome. Its id
        is new on each serving, unless given (a batch item's is the same on every one)."""
        request = self.request_for(model)
        trim = self.trims.get(model.name)
        if trim is not None and trim.reason not in self.reasons:
            self.reasons.append(trim.reason)  # said once, when the trimmed history is sent
        started = Attempt(
            attempt_id=attempt_id or f"{request.id}#{len(self.settled) + 1}@{self.serving}",
            request_id=request.id,
            tenant=request.tenant,
            tier=self.routed.decision.tier,
            model=model.name,
            provider=model.provider,
            state="started",
            estimated_cost_usd=estimate(request, model),
            created_at=datetime.now(UTC),
        )
        self.settled.append(started.model_copy(update={"state": "settled"}))
        return started

    def note(self, error: TierlineError) -> None:
        self.notes.append(error)

    def failed_attempt(self, error: ProviderError) -> None:
        self.attempts += 1
        self.last_error = error

    def billed_attempt(
        self,
        model: ModelSpec,
        usage: Usage,
        latency_ms: float,
        error: ProviderError | None = None,
        *,
        batch: bool = False,
    ) -> None:
        """Bill one call's usage (at `model`'s batch prices when it went through a batch)."""
        self.attempts += 1
        if error is not None:
            self.last_error = error
        request, decision = self.routed.request, self.routed.decision
        self.usage = self.usage + usage
        self.costs.append(
            CostRecord(
                record_id=CostRecord.make_id(request.id, self.attempts),
                request_id=request.id,
                attempt=self.attempts,
                tenant=request.tenant,
                feature=request.metadata.feature or "",
                user=request.metadata.user or "",
                task=decision.task,
                tier=decision.tier,
                model=model.name,
                provider=model.provider,
                status="ok" if error is None else "error",
                error_type="" if error is None else str(error.error_type),
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=cost_of(usage, model.price, batch=batch),
                latency_ms=latency_ms,
                reasons=decision.reasons,
                created_at=datetime.now(UTC),
            )
        )

    def _settled_now(self) -> list[Attempt]:
        now = datetime.now(UTC)
        return [a.model_copy(update={"created_at": now}) for a in self.settled]

    def total_cost(self) -> Decimal:
        return sum((c.cost_usd for c in self.costs), Decimal(0))

    def success(self, model: ModelSpec, reply: ProviderReply, latency_ms: float) -> ServeOutcome:
        request = self.routed.request
        response = RouteResponse(
            id=request.id,
            tenant=request.tenant,
            status="ok",
            content=reply.content,
            tool_calls=list(reply.tool_calls) or None,
            finish_reason=reply.finish_reason,
            model=model.name,
            provider=model.provider,
            tier=self.routed.decision.tier,
            usage=self.usage,
            cost_usd=self.total_cost(),
            latency_ms=latency_ms,
            attempts=self.attempts,
            decision=self.decision(),
            created_at=datetime.now(UTC),
            trimmed_messages=self._dropped(model),
        )
        return ServeOutcome(response, self.costs, self._settled_now())

    def _dropped(self, model: ModelSpec) -> int:
        trim = self.trims.get(model.name)
        return trim.trimmed.dropped if trim is not None and trim.trimmed is not None else 0

    def failure(self, latency_ms: float, redact: Callable[[str], str]) -> ServeOutcome:
        request = self.routed.request
        error = self.last_error or (self.notes[-1] if self.notes else None)
        if error is None:
            info = ErrorInfo(type=ErrorType.NO_CANDIDATE, message="no candidate model to try")
        else:
            base = error.info()
            info = ErrorInfo(
                type=base.type,
                message=redact(base.message),
                retryable=base.retryable,
                cause=base.cause,
            )
        response = RouteResponse.from_error(
            request.id,
            request.tenant,
            info,
            tier=self.routed.decision.tier,
            usage=self.usage,
            cost_usd=self.total_cost(),
            latency_ms=latency_ms,
            attempts=self.attempts,
            decision=self.decision(),
            created_at=datetime.now(UTC),
        )
        return ServeOutcome(response, self.costs, self._settled_now())
