"""What the self-serve session endpoints accept, checked once here at the edge: strict JSON
bodies (`contract/strict_json.py`), strict types, no unknown fields, bounded text without control
characters, absolute http(s) URLs kept exactly as sent (Stripe fills `{CHECKOUT_SESSION_ID}` in a
success URL), and the `Idempotency-Key` header (1–200 printable ASCII characters: our key is
`<tenant>:<endpoint>:<key>`, and Stripe's keys are at most 255)."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ..contract import strict_json

MAX_SEATS = 100_000      # as billing.subscription.change takes them (a 32-bit item quantity)
MAX_TRIAL_DAYS = 730     # Stripe's limit for trial_period_days
MAX_BODY_BYTES = 16 * 1024
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

Url = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s/?#\x00-\x1f\x7f]+[^\s\x00-\x1f\x7f]*$")]
Plan = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Seats = Annotated[int, Field(ge=1, le=MAX_SEATS)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CheckoutSessionRequest(_Request):
    plan: Plan
    seats: Seats = 1
    trial_days: Annotated[int, Field(ge=1, le=MAX_TRIAL_DAYS)] | None = None
    success_url: Url
    cancel_url: Url


class PortalSessionRequest(_Request):
    return_url: Url
    flow: Literal["payment_method_update", "subscription_cancel", "subscription_update"] | None = None


class SetupIntentRequest(_Request):
    pass


class PreviewQuery(_Request):
    plan: Plan | None = None
    seats: Seats | None = None


class BadRequest(ValueError):
    """400 `invalid_request`, with a detail that names the field (never its value)."""


def parse_body(model: type[_Request], raw: bytes) -> _Request:
    """The body as `model`; `raw` was read within MAX_BODY_BYTES (sessions_api.read_body)."""
    try:
        data = strict_json.loads(raw) if raw.strip() else {}
    except strict_json.NotStrictJSON as exc:
        raise BadRequest(f"body is not strict JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return _validated(model, data)


def parse_preview_query(params: dict[str, str]) -> PreviewQuery:
    data: dict[str, object] = {}
    for name, value in params.items():
        if name == "seats":
            if not value.isascii() or not value.isdigit() or len(value) > 6:
                raise BadRequest("seats: must be a whole number from 1 to 100000")
            data[name] = int(value)
        else:
            data[name] = value
    query = _validated(PreviewQuery, data)
    assert isinstance(query, PreviewQuery)
    if query.plan is None and query.seats is None:
        raise BadRequest("give plan and/or seats")
    return query


def idempotency_key(header: str | None) -> str | None:
    if header is None:
        return None
    if not IDEMPOTENCY_KEY.match(header):
        raise BadRequest("Idempotency-Key: 1-200 printable ASCII characters, no spaces")
    return header


def _validated(model: type[_Request], data: dict) -> _Request:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadRequest(f"{field}: {first['msg']}") from exc
