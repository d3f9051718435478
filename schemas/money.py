"""`Money`: a Decimal that travels as a fixed-point string ("0.000000123", never "1.23E-7")."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer

Money = Annotated[
    Decimal,
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
]
