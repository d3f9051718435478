"""The data contracts of tierline: every message on every topic, and the ClickHouse DDL.

The bottom layer: imports nothing of ours.
"""

from tierline.schemas.alert import Alert, AlertKind
from tierline.schemas.attempt import Attempt
from tierline.schemas.batch import OpenBatch
from tierline.schemas.cache import CachedAnswer
from tierline.schemas.chunk import ResponseChunk, ToolCallPiece
from tierline.schemas.codec import decode, encode
from tierline.schemas.cost import CostRecord
from tierline.schemas.dead_letter import DeadLetter
from tierline.schemas.errors import ErrorInfo, ErrorType
from tierline.schemas.features import FeatureRecord
from tierline.schemas.feedback import Feedback
from tierline.schemas.health import CircuitState, HealthSnapshot
from tierline.schemas.messages import ChatMessage
from tierline.schemas.request import Hints, Metadata, Params, RouteRequest
from tierline.schemas.response import RouteResponse, RoutingDecision, Usage
from tierline.schemas.routed import Escalation, RoutedRequest
from tierline.schemas.settlement import Settlement
from tierline.schemas.tier import LatencyClass, Tier
from tierline.schemas.tools import (
    FunctionCall,
    FunctionDefinition,
    NamedToolChoice,
    Tool,
    ToolCall,
    ToolChoiceFunction,
)

__all__ = [
    "Alert",
    "AlertKind",
    "Attempt",
    "CachedAnswer",
    "ChatMessage",
    "CircuitState",
    "CostRecord",
    "DeadLetter",
    "ErrorInfo",
    "ErrorType",
    "Escalation",
    "FeatureRecord",
    "Feedback",
    "FunctionCall",
    "FunctionDefinition",
    "HealthSnapshot",
    "Hints",
    "LatencyClass",
    "Metadata",
    "NamedToolChoice",
    "OpenBatch",
    "Params",
    "ResponseChunk",
    "RouteRequest",
    "RouteResponse",
    "RoutedRequest",
    "RoutingDecision",
    "Settlement",
    "Tier",
    "Tool",
    "ToolCall",
    "ToolCallPiece",
    "ToolChoiceFunction",
    "Usage",
    "decode",
    "encode",
]
