"""The three Dramatiq actors: decode a message, get the process's Context, call the handler.

Nothing else happens here — the logic lives in `handlers/`, retries and dead-lettering in the
broker's middleware (`workers/middleware.py`). Handlers are imported inside each actor so
that this module imports (and a worker boots) independently of the handler modules.

Why actors are declared by `declare_actors(broker, prefix)` and not with `@dramatiq.actor`
at import time: a decorated actor binds to whatever global broker exists when its module is
first imported, and its queue name is fixed then. Here the broker (Redis, RabbitMQ or the
in-process stub) and the queue prefix come from settings, and tests run several brokers in
one process. So `workers.broker.make_broker(settings)` builds the broker, declares the actors
on it, and makes it the process's current broker. Code elsewhere may still write
`from billing_sync.workers.actors import apply_command; apply_command.send(envelope)`: the
module-level names resolve (PEP 562 `__getattr__`) to the actor bound to the current broker.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

import dramatiq
import structlog

from ..contract.ids import TENANT_ID_RULE, is_tenant_id
from ..errors import InvalidMessage
from .context import get_context

log = structlog.get_logger(__name__)

STRIPE_EVENTS_QUEUE = "stripe-events"
COMMANDS_QUEUE = "commands"
RECONCILE_QUEUE = "reconcile"

# A handler makes a few Stripe calls and one transaction; a minute means it is stuck (the
# TimeLimit middleware then interrupts it and the retry policy treats that as transient).
HANDLER_TIME_LIMIT_MS = 60_000
RECONCILE_TIME_LIMIT_MS = 300_000

_CAUSE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # reconcile, sweep, a command id: it ends up in outbox rows and logs


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _process_stripe_event(message: dict) -> None:
    """`message = {"event": <verified Stripe event>, "received_at": <ISO-8601>}` (from the ingress)."""
    from ..handlers.event_dispatch import handle_stripe_event
    from ..handlers.stripe_event import checked_event

    event = checked_event(message)  # before the handler: an unusable event fails for good here
    started = time.monotonic()
    outcome = handle_stripe_event(message, get_context())
    log.info("actor.processed", actor="process_stripe_event", event_id=event["id"], event_type=event["type"],
             outcome=outcome, ms=_elapsed_ms(started))


def _apply_command(envelope: dict) -> None:
    """A CloudEvents 1.0 command from `billing.commands` (handed over by the bridge)."""
    from ..handlers.command_dispatch import handle_command
    from ..handlers.command_inbox import send_next

    if not isinstance(envelope, dict) or not envelope.get("id") or not envelope.get("type"):
        raise InvalidMessage("not a CloudEvents command")
    started = time.monotonic()
    ctx = get_context()
    outcome = handle_command(envelope, ctx)
    if outcome != "waiting":  # the tenant's next command may be parked behind this one
        send_next(ctx, envelope, send_command)
    log.info("actor.processed", actor="apply_command", command_id=envelope["id"], command_type=envelope["type"],
             tenant_id=envelope.get("subject"), outcome=outcome, ms=_elapsed_ms(started))


def send_command(envelope: dict) -> None:
    """Enqueue a command on the process's current broker (the bridge, the inbox repair)."""
    from .broker import current_broker

    current_broker().billing_actors.apply_command.send(envelope)


def _reconcile_tenant(tenant_id: str, cause: str) -> None:
    """Re-read one tenant from Stripe and repair drift (sent by the scheduler or an operator)."""
    from ..handlers.reconcile import reconcile_tenant

    if not is_tenant_id(tenant_id):
        raise InvalidMessage(f"not a tenant id: {TENANT_ID_RULE}")
    if not isinstance(cause, str) or not _CAUSE.fullmatch(cause):
        raise InvalidMessage("cause is not an id such as reconcile, sweep or a command id")
    started = time.monotonic()
    outcome = reconcile_tenant(tenant_id, get_context(), cause=cause)
    log.info("actor.processed", actor="reconcile_tenant", tenant_id=tenant_id, cause=cause, outcome=outcome,
             ms=_elapsed_ms(started))


# name → (function, queue, time limit)
ACTOR_SPECS = {
    "process_stripe_event": (_process_stripe_event, STRIPE_EVENTS_QUEUE, HANDLER_TIME_LIMIT_MS),
    "apply_command": (_apply_command, COMMANDS_QUEUE, HANDLER_TIME_LIMIT_MS),
    "reconcile_tenant": (_reconcile_tenant, RECONCILE_QUEUE, RECONCILE_TIME_LIMIT_MS),
}


@dataclass(frozen=True)
class Actors:
    """Our actors as declared on one broker."""

    process_stripe_event: dramatiq.Actor
    apply_command: dramatiq.Actor
    reconcile_tenant: dramatiq.Actor


def queue_name(prefix: str, queue: str) -> str:
    """Queue names carry the prefix on every broker: RabbitMQ has no namespaces of its own."""
    return f"{prefix}.{queue}"


def declare_actors(broker: dramatiq.Broker, queue_prefix: str) -> Actors:
    """Declare our actors on `broker` (once per broker) and return them."""
    existing = getattr(broker, "billing_actors", None)
    if existing is not None:
        return existing
    declared = {
        name: dramatiq.actor(fn, actor_name=name, queue_name=queue_name(queue_prefix, queue), broker=broker,
                             time_limit=time_limit)
        for name, (fn, queue, time_limit) in ACTOR_SPECS.items()
    }
    actors = Actors(**declared)
    broker.billing_actors = actors
    return actors


# Where each actor's first argument keeps the business id and the type (a path of keys;
# an empty path is the argument itself). reconcile_tenant has no type.
_KEY_PATHS = {"process_stripe_event": ("event", "id"), "apply_command": ("id",), "reconcile_tenant": ()}
_TYPE_PATHS = {"process_stripe_event": ("event", "type"), "apply_command": ("type",)}


def _first_arg_field(args: tuple | list, path: tuple[str, ...] | None) -> str | None:
    if path is None:
        return None
    try:
        value = args[0]
        for key in path:
            value = value[key]
    except (IndexError, KeyError, TypeError):
        return None
    return None if value is None else str(value)  # may be garbage: the dead-letter writer stores it safely


def message_key(actor_name: str, args: tuple | list) -> str | None:
    """The business id of a message — Stripe event id, command id, tenant id — for logs and the DLQ."""
    return _first_arg_field(args, _KEY_PATHS.get(actor_name))


def message_type(actor_name: str, args: tuple | list) -> str | None:
    """The Stripe event type or command type, for logs (never the body)."""
    return _first_arg_field(args, _TYPE_PATHS.get(actor_name))


def __getattr__(name: str):
    """`actors.process_stripe_event` etc.: the actor declared on the process's current broker."""
    if name in ACTOR_SPECS:
        from .broker import current_broker

        return getattr(current_broker().billing_actors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
