"""What the usage endpoints accept, checked once here at the edge (strict JSON, strict types, no
unknown fields; `ingress/session_requests.py`'s parsing): 400 `invalid_request` naming the field."""
from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from ..contract.fields import MAX_QUANTITY, Moment
from .session_requests import _Request

Feature = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,200}$")]
MAX_TTL_S = 86_400  # a reservation is for one piece of work, not a standing allowance
RESERVATION_ID = r"^rsv_[0-9a-f]{32}$"
# A timestamp without a zone is UTC (as billing.usage.recorded's).
UtcMoment = Annotated[Moment, AfterValidator(lambda at: at if at.tzinfo else at.replace(tzinfo=UTC))]


class ConsumeRequest(_Request):
    feature: Feature
    quantity: Quantity
    idempotency_key: IdempotencyKey
    mode: Literal["hard", "soft"] = "hard"
    timestamp: UtcMoment | None = None


class ReserveRequest(_Request):
    feature: Feature
    quantity: Quantity
    ttl_s: Annotated[int, Field(ge=1, le=MAX_TTL_S)]


class CommitRequest(_Request):
    quantity: Annotated[int, Field(ge=0, le=MAX_QUANTITY)] | None = None


class ReleaseRequest(_Request):
    pass
