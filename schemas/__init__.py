"""The data contracts of tierline: every message on every topic, and the ClickHouse DDL.

The bottom layer: imports nothing of ours.
"""

from schemas.codec import decode, encode
from schemas.cost import CostRecord
from schemas.dead_letter import DeadLetter
from schemas.errors import ErrorInfo, ErrorType
from schemas.feedback import Feedback
from schemas.messages import ChatMessage
from schemas.request import Hints, Metadata, Params, RouteRequest
from schemas.response import RouteResponse, RoutingDecision, Usage
from schemas.routed import Escalation, RoutedRequest
from schemas.tier import LatencyClass, Tier

__all__ = [
    "ChatMessage",
    "CostRecord",
    "DeadLetter",
    "ErrorInfo",
    "ErrorType",
    "Escalation",
    "Feedback",
    "Hints",
    "LatencyClass",
    "Metadata",
    "Params",
    "RouteRequest",
    "RouteResponse",
    "RoutedRequest",
    "RoutingDecision",
    "Tier",
    "Usage",
    "decode",
    "encode",
]
