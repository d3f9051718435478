"""Serve one routed request, cascade or not: the one entry point the tier workers call."""

from __future__ import annotations

from tierline.processors.serving.answer_check import Check, check_answer
from tierline.processors.serving.cascade import Serves, serve_with_cascade
from tierline.processors.serving.walk import ServeOutcome
from tierline.schemas import RoutedRequest


async def serve(
    dispatcher: Serves, routed: RoutedRequest, check: Check = check_answer
) -> ServeOutcome:
    """As a cascade when the router made the request one, else in one candidate walk."""
    if routed.cascade is None:
        return await dispatcher.serve(routed)
    return await serve_with_cascade(
        dispatcher,
        routed,
        routed.cascade.candidates,
        check,
        escalate_tier=routed.cascade.tier,
    )
