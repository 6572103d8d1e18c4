"""The product commands, part of the external contract: a CloudEvents 1.0 envelope and, per
type, its `data` — one plain typed model per command type, which names its CloudEvents type
(`TYPE`). `parse_command` gives a `Command[<that model>]`; the command handlers are routed by the
model's class (handlers/registry.py), so a handler gets its own data type, no cast.

Validation happens twice on purpose: in the bridge, so a malformed message is failed and kept
before it ever reaches a worker, and again in `handle_command`, because actors can be fed by
other paths (a dead-letter replay, a test). Both use `decode_envelope` (bytes → JSON object) and
`parse_command` (JSON object → `Command`); `client.py` validates what it publishes with
`parse_command` too.

Strict: a value must already have its type (`"3"` is not a number, `true` is not 1, `"true"` is
not a boolean); only times are read from ISO-8601 text or Unix seconds, as JSON has no time type.
Text holds only printable characters (`str.isprintable`: no control, format, unassigned or
surrogate code points, no separator but the space), and every number has an upper bound
that Stripe and our columns can take, so a valid command cannot fail on a local write after its
Stripe calls. Unknown fields in `data` are ignored (a newer product may send more than this
version knows); wrong types, missing required fields and unknown command types are `invalid`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from ..errors import InvalidMessage as InvalidMessage  # re-exported: what parse_command raises
from . import strict_json
from .fields import (
    MAX_QUANTITY,
    MAX_SEATS,
    MAX_TRIAL_DAYS,
    AddressLine,
    CommandId,
    CountryCode,
    Email,
    EventSource,
    Moment,
    NonEmpty,
    PaymentMethodId,
    TypeName,
)
from .ids import TenantId, is_tenant_id
from .text import is_storable

# What the bridge reads at most; a larger message is `invalid` without being parsed.
MAX_COMMAND_BYTES = 256 * 1024
# How deeply a command's JSON may nest. Commands need 3 levels (envelope → data → address); the
# bound keeps recursion (ours, pydantic's, every JSON encoder downstream) far from Python's limit.
MAX_JSON_DEPTH = 16


class CommandData(BaseModel):
    """The `data` of one command type; `TYPE` is that type's CloudEvents `type`."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    TYPE: ClassVar[str]

    tenant_id: TenantId | None = None  # may be left out when the envelope's `subject` names the tenant


class Address(BaseModel):
    """Stripe's customer address fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    line1: AddressLine | None = None
    line2: AddressLine | None = None
    city: AddressLine | None = None
    state: AddressLine | None = None
    postal_code: AddressLine | None = None
    country: CountryCode | None = None


class TenantProvisioned(CommandData):
    TYPE = "billing.tenant.provisioned"

    name: NonEmpty
    email: Email
    plan: NonEmpty | None = None  # a catalog plan key (or its price lookup_key); the default plan if absent
    seats: Annotated[int, Field(ge=1, le=MAX_SEATS)] | None = None
    trial_days: Annotated[int, Field(ge=1, le=MAX_TRIAL_DAYS)] | None = None
    # A Stripe PaymentMethod id collected by the product's checkout (`pm_card_visa` in test mode).
    # Without one the subscription needs a trial, else the command fails with `payment_required`,
    # unless `first_payment` is `in_app`.
    payment_method: PaymentMethodId | None = None
    # `charge` (the default): the first invoice is charged now to `payment_method`. `in_app`: the
    # subscription starts `incomplete` and its first payment waits for the customer to confirm it
    # in the browser (Stripe.js, 3-D Secure when the bank asks): the SCA-correct path, no card needed
    # beforehand; the completed outcome and the billing document carry its `pending_payment`.
    first_payment: Literal["charge", "in_app"] = "charge"


class TenantUpdated(CommandData):
    TYPE = "billing.tenant.updated"

    name: NonEmpty | None = None
    email: Email | None = None
    address: Address | None = None


class SubscriptionChange(CommandData):
    TYPE = "billing.subscription.change"

    plan: NonEmpty | None = None
    seats: Annotated[int, Field(ge=1, le=MAX_SEATS)] | None = None
    # Unix seconds from `GET /v1/tenants/{id}/preview`: prorate from then, so the charge is the preview's.
    proration_date: Annotated[int, Field(ge=0, le=2**32)] | None = None


class SubscriptionCancel(CommandData):
    TYPE = "billing.subscription.cancel"

    at_period_end: bool = True


class SubscriptionResume(CommandData):
    TYPE = "billing.subscription.resume"


class TenantDeleted(CommandData):
    TYPE = "billing.tenant.deleted"


class UsageRecorded(CommandData):
    TYPE = "billing.usage.recorded"

    meter: NonEmpty
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
    # When the usage happened (Unix seconds or ISO-8601); the envelope's `time` if absent.
    timestamp: Moment | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


# Every command type of the contract (README's table), by its CloudEvents type.
COMMAND_DATA: dict[str, type[CommandData]] = {data.TYPE: data for data in (
    TenantProvisioned, TenantUpdated, SubscriptionChange, SubscriptionCancel, SubscriptionResume, TenantDeleted,
    UsageRecorded)}
COMMAND_TYPES = frozenset(COMMAND_DATA)


class Envelope(BaseModel):
    """CloudEvents 1.0 structured mode. Extension attributes are allowed and kept."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    specversion: Literal["1.0"]
    id: CommandId
    source: EventSource
    type: TypeName
    subject: TenantId | None = None
    time: Moment | None = None
    datacontenttype: TypeName | None = None
    data: dict[str, Any] = Field(default_factory=dict)

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


D = TypeVar("D", bound=CommandData, covariant=True)


@dataclass(frozen=True)
class Command(Generic[D]):
    """A validated command: the envelope's attributes, its typed data and the tenant it is about."""

    id: str
    type: str
    source: str
    tenant_id: str
    time: datetime | None
    data: D


def parse_command(envelope: object) -> Command[CommandData]:
    """Validate a received envelope (a decoded JSON value, see `decode_envelope`); raise
    `InvalidMessage` with a readable reason if it is not a command. Raises nothing else."""
    if not isinstance(envelope, dict):
        raise InvalidMessage("not a CloudEvents JSON object")
    _check_nesting_and_text(envelope)
    try:
        event = Envelope.model_validate(envelope)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc)) from exc
    try:
        data = COMMAND_DATA[event.type].model_validate(event.data)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc, prefix="data")) from exc
    tenant_id = data.tenant_id or event.subject
    if not tenant_id:
        raise InvalidMessage("no tenant: set data.tenant_id or subject")
    if data.tenant_id and event.subject and data.tenant_id != event.subject:
        raise InvalidMessage(f"subject {event.subject!r} and data.tenant_id {data.tenant_id!r} disagree")
    time = event.time if event.time is None or event.time.tzinfo else event.time.replace(tzinfo=UTC)
    return Command(id=event.id, type=event.type, source=event.source, tenant_id=tenant_id, time=time, data=data)


def readable_ids(envelope: object) -> tuple[str | None, str | None, str | None]:
    """(command id, tenant id, type) of an envelope that may be invalid, for the failure event.

    Each is kept only if it follows the rule a valid command's would (a command id, the tenant-id
    rule, a plain type name), so garbage (NUL, lone surrogates, over-long text) never reaches an
    event, a log line or a database key; the rest is `None`.
    """
    if not isinstance(envelope, dict):
        return None, None, None
    data = envelope.get("data")
    if not isinstance(data, dict):
        data = {}
    tenant = next((t for t in (data.get("tenant_id"), envelope.get("subject")) if is_tenant_id(t)), None)
    command_id = envelope.get("id")
    command_id = command_id.strip() if isinstance(command_id, str) and _valid(_COMMAND_ID, command_id) else None
    command_type = envelope.get("type")
    command_type = command_type if isinstance(command_type, str) and _TYPE_NAME.fullmatch(command_type) else None
    return command_id, tenant, command_type


_TYPE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def decode_envelope(body: bytes | str) -> object:
    """The JSON value of a command's body (for `parse_command`), or `InvalidMessage` saying why
    there is none: more than `MAX_COMMAND_BYTES`, not UTF-8, not JSON, NaN or Infinity, or nested
    too deep for Python's parser. Raises nothing else."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_COMMAND_BYTES:
        raise InvalidMessage(f"message of {len(raw)} bytes is over the limit of {MAX_COMMAND_BYTES}")
    try:
        return strict_json.loads(raw)
    except strict_json.NotStrictJSON as exc:
        raise InvalidMessage(str(exc)) from None


def _check_nesting_and_text(value: object) -> None:
    """Walk the envelope without recursion: at most `MAX_JSON_DEPTH` deep, and no text anywhere
    (ignored fields too) that a database or JSON column cannot store (NUL, lone surrogates), so
    that the envelope can be passed on, stored and encoded again downstream."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidMessage(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                pending.append((key, depth))
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and not is_storable(item):
            raise InvalidMessage("text holds a NUL character or a lone surrogate")


def _valid(adapter: TypeAdapter[str], value: object) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


_COMMAND_ID = TypeAdapter(CommandId, config=ConfigDict(strict=True))


def _describe(exc: ValidationError, prefix: str | None = None) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in ([prefix] if prefix else []) + list(error["loc"])) or "envelope"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
