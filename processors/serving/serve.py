"""Serve one routed request, cascade or not: the one entry point the tier workers call."""

from __future__ import annotations

from tierline.processors.serving.answer_check import Check, check_answer
from tierline.processors.serving.cascade import serve_with_cascade
from tierline.processors.serving.walk import Dispatcher, ServeOutcome, StreamHook
from tierline.schemas import RoutedRequest


async def serve(
    dispatcher: Dispatcher,
    routed: RoutedRequest,
    check: Check = check_answer,
    stream_to: StreamHook | None = None,
) -> ServeOutcome:
    """As a cascade when the router made the request one, else in one candidate walk
    (streamed to `stream_to` when the request streams). The router never makes a streamed
    request a cascade: a cascade's first answer may be taken back, a stream's cannot; one
    that comes as a cascade all the same (an older router) is answered whole."""
    if routed.cascade is None:
        return await dispatcher.serve(routed, stream_to)
    return await serve_with_cascade(
        dispatcher,
        routed,
        routed.cascade.candidates,
        check,
        escalate_tier=routed.cascade.tier,
    )
