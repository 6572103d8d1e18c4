"""What counts as a Stripe event here: the one check, used wherever an event comes in.

Events come in at the ingress (a signed webhook: refused with 400) and at the worker, which also
takes events the scheduler's catch-up read from `GET /v1/events` and events replayed from the
dead-letter table (refused there as a permanent `invalid` failure with one dead letter). A genuine
signature says who sent the bytes, not that they are usable, so both edges run `event_problem`.

The check covers what the handlers use and what reaches the database, a URL or a log line: the
event's `id` (`evt_…`), `type` and `created`, and in `data.object` its `id`, `object` and the
references the handlers follow (`customer`, `product`, `subscription`,
`parent.subscription_details.subscription`; each an id or an expanded object with one), plus the
type of `metadata`. A Stripe id is ASCII letters, digits and `_`, at most `STRIPE_ID_MAX_LENGTH`
characters: that keeps NUL, lone surrogates, slashes and over-long values out of columns and
Stripe paths. Other fields are not checked (Stripe adds fields all the time) and may hold any
text: the handlers re-read objects from Stripe and never store the payload. The nesting depth is
bounded too, so that no decoder further on (the broker's JSON, the dead-letter writer) recurses
too deep.

Caveat: Stripe documents ids of up to 255 characters; ours are stored in 64-character columns
(real ids are about 30), so a longer one is refused rather than cut.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from . import strict_json
from .ids import is_tenant_id

# Stripe's bound for object ids (a Checkout Session's id is 66 characters); the width of the
# columns that hold Stripe ids.
STRIPE_ID_MAX_LENGTH = 255
EVENT_TYPE_MAX_LENGTH = 128  # processed_messages.type
MAX_DEPTH = 32  # Stripe's events nest about a dozen levels, expanded objects included

StripeId = Annotated[str, StringConstraints(pattern=rf"^[A-Za-z0-9_]{{1,{STRIPE_ID_MAX_LENGTH}}}$")]
EventId = Annotated[str, StringConstraints(pattern=rf"^evt_[A-Za-z0-9_]{{1,{STRIPE_ID_MAX_LENGTH - 4}}}$")]
# `customer.subscription.updated`, `entitlements.active_entitlement_summary.updated`, `v1.billing.meter…`
DottedName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$", max_length=EVENT_TYPE_MAX_LENGTH)]


class _Shape(BaseModel):
    # strict: `"id": 5` is not the id "5"; extra fields pass unchecked.
    model_config = ConfigDict(strict=True, extra="allow")


class _Expanded(_Shape):
    id: StripeId


Reference = StripeId | _Expanded | None  # an id, or the object expanded in its place


class _SubscriptionDetails(_Shape):
    subscription: Reference = None


class _Parent(_Shape):
    subscription_details: _SubscriptionDetails | None = None


class _EventObject(_Shape):
    id: StripeId | None = None  # some objects (an active-entitlement summary) have none
    object: DottedName | None = None
    customer: Reference = None
    product: Reference = None
    subscription: Reference = None
    parent: _Parent | None = None
    metadata: dict[str, Any] | None = None  # its tenant_id follows contract.ids where it is read


class _EventData(_Shape):
    object: _EventObject


class _Event(_Shape):
    id: EventId
    object: Literal["event"]
    type: DottedName
    created: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    data: _EventData


def _depth_exceeds(value: object, limit: int) -> bool:
    """True when `value` nests lists/objects more than `limit` deep (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[object]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


@dataclass(frozen=True)
class StripeEventFacts:
    """What the handlers use of a usable Stripe event: its identity and the references of its
    `data.object`, read once from the checked shape (nobody indexes the payload after this)."""

    id: str
    type: str
    created: int | None
    object_type: str | None  # `data.object.object`: customer, subscription, invoice, price, …
    object_id: str | None
    customer_id: str | None  # the object itself for a customer, else its `customer` reference
    subscription_id: str | None  # `parent.subscription_details.subscription`, else `subscription`
    product_id: str | None  # the object's `product` reference (a price's product)
    # The metadata `tenant_id`, when it follows the tenant-id rule (contract/ids.py): anyone with
    # dashboard access can write metadata, and a value that breaks the rule was not written by us.
    metadata_tenant_id: str | None


class EventProblem(ValueError):
    """The event is not one the handlers can use; the message names the field, never its value."""


def read_event(event: object) -> StripeEventFacts:
    """The facts of a usable Stripe event; raises `EventProblem` otherwise (see `event_problem`)."""
    if not isinstance(event, dict):
        raise EventProblem("not a JSON object")
    if _depth_exceeds(event, MAX_DEPTH):
        raise EventProblem(f"nested more than {MAX_DEPTH} deep")
    try:
        checked = _Event.model_validate(event)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        message = first["msg"].split(" or instance of ")[0]  # not our private class names
        raise EventProblem(f"{_field_path(event, first) or 'event'}: {message}") from None
    obj = checked.data.object
    details = obj.parent.subscription_details if obj.parent else None
    tenant_id = (obj.metadata or {}).get("tenant_id")
    return StripeEventFacts(
        id=checked.id,
        type=checked.type,
        created=checked.created,
        object_type=obj.object,
        object_id=obj.id,
        customer_id=obj.id if obj.object == "customer" else _id_of(obj.customer),
        subscription_id=(_id_of(details.subscription) if details else None) or _id_of(obj.subscription),
        product_id=_id_of(obj.product),
        metadata_tenant_id=tenant_id if is_tenant_id(tenant_id) else None,
    )


def event_problem(event: object) -> str | None:
    """Why `event` is not a Stripe event the handlers can use, or None when it is.

    The answer names the field and the rule, never the value (it goes to logs and responses).
    """
    try:
        read_event(event)
    except EventProblem as exc:
        return str(exc)
    return None


def _id_of(ref: Reference) -> str | None:
    return ref.id if isinstance(ref, _Expanded) else ref


def _field_path(event: dict[str, Any], error: ErrorDetails) -> str:
    """The dotted path of the input field an error is about. pydantic's location also names the
    union branch it tried (`constrained-str`, `_Expanded`): only keys of the input are kept, and the
    name of a missing field."""
    node: object = event
    parts = []
    for part in error["loc"]:
        if isinstance(node, dict) and part in node:
            node = node[part]
            parts.append(str(part))
        elif error["type"] == "missing":
            parts.append(str(part))
            break
    return ".".join(parts)


class NotJSON(ValueError):
    """The body is not strict JSON (see `contract.strict_json`)."""


def loads(body: bytes) -> object:
    """Decode a webhook body as strict JSON; raises NotJSON otherwise."""
    try:
        return strict_json.loads(body)
    except strict_json.NotStrictJSON as exc:
        raise NotJSON(str(exc)) from None
