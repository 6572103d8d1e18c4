"""The shape of a product command: a CloudEvents 1.0 envelope and, per type, its `data`.

Validation happens twice on purpose: in the bridge, so a malformed message is failed and kept
before it ever reaches a worker, and again in `handle_command`, because actors can be fed by
other paths (a dead-letter replay, a test). Both use `parse_command`.

Unknown fields in `data` are ignored (a newer product may send more than this version knows);
wrong types, missing required fields and unknown command types are `invalid`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from ..contract.ids import TenantId
from ..errors import InvalidMessage

# Stripe idempotency keys are at most 255 characters and we append ":<step>" to the command id.
CommandId = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=320, strip_whitespace=True,
                                         pattern=r"^[^@\s]+@[^@\s]+$")]


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: TenantId | None = None  # may be left out when the envelope's `subject` names the tenant


class Address(BaseModel):
    """Stripe's customer address fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: Annotated[str, StringConstraints(min_length=2, max_length=2)] | None = None


class TenantProvisioned(_Data):
    name: NonEmpty
    email: Email
    plan: NonEmpty | None = None  # a catalog plan key (or its price lookup_key); the default plan if absent
    seats: Annotated[int, Field(ge=1, le=100_000)] | None = None
    trial_days: Annotated[int, Field(ge=1, le=730)] | None = None
    # A Stripe PaymentMethod id collected by the product's checkout (`pm_card_visa` in test mode).
    # Without one the subscription needs a trial, else the command fails with `payment_required`.
    payment_method: Annotated[str, StringConstraints(min_length=3, max_length=255)] | None = None


class TenantUpdated(_Data):
    name: NonEmpty | None = None
    email: Email | None = None
    address: Address | None = None


class SubscriptionChange(_Data):
    plan: NonEmpty | None = None
    seats: Annotated[int, Field(ge=1, le=100_000)] | None = None


class SubscriptionCancel(_Data):
    at_period_end: bool = True


class SubscriptionResume(_Data):
    pass


class TenantDeleted(_Data):
    pass


class UsageRecorded(_Data):
    meter: NonEmpty
    quantity: Annotated[int, Field(ge=1)]
    # When the usage happened (Unix seconds or ISO-8601); the envelope's `time` if absent.
    timestamp: datetime | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


DATA_MODELS: dict[str, type[_Data]] = {
    "billing.tenant.provisioned": TenantProvisioned,
    "billing.tenant.updated": TenantUpdated,
    "billing.subscription.change": SubscriptionChange,
    "billing.subscription.cancel": SubscriptionCancel,
    "billing.subscription.resume": SubscriptionResume,
    "billing.tenant.deleted": TenantDeleted,
    "billing.usage.recorded": UsageRecorded,
}
COMMAND_TYPES = frozenset(DATA_MODELS)


class Envelope(BaseModel):
    """CloudEvents 1.0 structured mode. Extension attributes are allowed and kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: CommandId
    source: Annotated[str, StringConstraints(min_length=1)]
    type: str
    subject: TenantId | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    data: dict = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in COMMAND_TYPES:
            raise ValueError(f"unknown command type {value!r}")
        return value

    @field_validator("datacontenttype")
    @classmethod
    def _json(cls, value: str | None) -> str | None:
        if value is not None and "json" not in value:
            raise ValueError("data must be JSON")
        return value


class Command(BaseModel):
    """A validated command: the envelope's attributes, its typed data and the tenant it is about."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    source: str
    tenant_id: str
    time: datetime | None
    data: _Data

    @property
    def short_type(self) -> str:
        return self.type.removeprefix("billing.")


def parse_command(envelope: object) -> Command:
    """Validate a received envelope; raise `InvalidMessage` with a readable reason if it is not one."""
    if not isinstance(envelope, dict):
        raise InvalidMessage("not a CloudEvents JSON object")
    try:
        event = Envelope.model_validate(envelope)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc)) from exc
    try:
        data = DATA_MODELS[event.type].model_validate(event.data)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc, prefix="data")) from exc
    tenant_id = data.tenant_id or event.subject
    if not tenant_id:
        raise InvalidMessage("no tenant: set data.tenant_id or subject")
    if data.tenant_id and event.subject and data.tenant_id != event.subject:
        raise InvalidMessage(f"subject {event.subject!r} and data.tenant_id {data.tenant_id!r} disagree")
    time = event.time if event.time is None or event.time.tzinfo else event.time.replace(tzinfo=timezone.utc)
    return Command(id=event.id, type=event.type, source=event.source, tenant_id=tenant_id, time=time, data=data)


def readable_ids(envelope: object) -> tuple[str | None, str | None, str | None]:
    """(command id, tenant id, type) of an envelope that may be invalid, for the failure event.

    Each is kept only if it is a plausible value, so garbage never becomes a ledger key.
    """
    if not isinstance(envelope, dict):
        return None, None, None

    def text(value: object, limit: int) -> str | None:
        return value.strip() if isinstance(value, str) and 0 < len(value.strip()) <= limit else None

    data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
    tenant = text(data.get("tenant_id"), 128) or text(envelope.get("subject"), 128)
    return text(envelope.get("id"), 200), tenant, text(envelope.get("type"), 128)


def _describe(exc: ValidationError, prefix: str | None = None) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in ([prefix] if prefix else []) + list(error["loc"])) or "envelope"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
