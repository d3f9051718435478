"""Routing hints by header: X-Tierline-Cache and X-Tierline-Trim reach the RouteRequest."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from tests.unit.policy_support import make_catalog
from tierline.processors.gateway.hint_headers import header_hints
from tierline.processors.gateway.model_names import AUTO
from tierline.processors.gateway.openai_request import to_route_request
from tierline.processors.gateway.statuses import GatewayError
from tierline.schemas import RouteRequest, Tier

CATALOG = make_catalog()
BODY = {"model": AUTO, "messages": [{"role": "user", "content": "Say hello"}]}


def routed(headers: dict[str, str], model: str = AUTO) -> RouteRequest:
    hints = header_hints(CIMultiDict(headers))
    return to_route_request(
        BODY | {"model": model}, request_id="r1", tenant="acme", catalog=CATALOG, hints=hints
    )


def test_the_headers_set_cache_and_trim_in_any_case_of_name_and_value() -> None:
    request = routed({"x-tierline-cache": "TRUE", "X-Tierline-Trim": " false "})
    assert request.hints.cache is True
    assert request.hints.trim is False


def test_without_the_headers_the_policy_decides() -> None:
    request = routed({})
    assert request.hints.cache is None
    assert request.hints.trim is True


def test_a_pinned_tier_keeps_its_bounds_beside_the_header_hints() -> None:
    request = routed({"X-Tierline-Cache": "false"}, model="tierline/economy")
    hints = request.hints
    assert (hints.min_tier, hints.max_tier, hints.cache) == (Tier.ECONOMY, Tier.ECONOMY, False)


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_a_value_other_than_true_or_false_is_a_400_naming_the_header(value: str) -> None:
    with pytest.raises(GatewayError) as refused:
        header_hints(CIMultiDict({"X-Tierline-Cache": value}))
    assert refused.value.status == 400
    assert "X-Tierline-Cache" in refused.value.message
