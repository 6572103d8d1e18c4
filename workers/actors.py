"""The three Dramatiq actors: decode a message, get the process's Context, call the handler.

Nothing else happens here — the logic lives in `handlers/`, retries and dead-lettering in the
broker's middleware (`workers/middleware.py`). What the middleware needs to know about an
actor's messages (their business id and type, what to do when one fails for good) it gets
from the actor's options (`message_fields`, `on_dead_letter`), never from the actor's name.
Handlers are imported inside each actor so that this module imports (and a worker boots)
independently of the handler modules.

Why actors are declared by `declare_actors(broker, prefix)` and not with `@dramatiq.actor`
at import time: a decorated actor binds to whatever global broker exists when its module is
first imported, and its queue name is fixed then. Here the broker (Redis, RabbitMQ or the
in-process stub) and the queue prefix come from settings, and tests run several brokers in
one process. So `workers.broker.make_broker(settings)` builds the broker and declares the
actors on it; code that sends uses that broker's actors (`broker.billing_actors`).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

import dramatiq
import structlog

from ..contract.ids import TENANT_ID_RULE, is_tenant_id
from ..errors import InvalidMessage
from .context import get_context
from .middleware import FailedForGood, record_dead_letter

log = structlog.get_logger(__name__)

STRIPE_EVENTS_QUEUE = "stripe-events"
COMMANDS_QUEUE = "commands"
RECONCILE_QUEUE = "reconcile"

# A handler makes a few Stripe calls and one transaction; a minute means it is stuck (the
# TimeLimit middleware then interrupts it and the retry policy treats that as transient).
HANDLER_TIME_LIMIT_MS = 60_000
RECONCILE_TIME_LIMIT_MS = 300_000

_CAUSE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # reconcile, sweep, a command id: it ends up in outbox rows and logs

Send = Callable[[dict], None]


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


def _apply_command(envelope: dict, send_command: Send) -> None:
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


# -- when a message fails for good (the `on_dead_letter` option) ---------------------------------


def _keep_dead_letter(failure: FailedForGood) -> None:
    """Any actor: the message becomes a dead letter (`billing-sync dlq`)."""
    record_dead_letter(get_context(), source=failure.actor, message_id=failure.message_id, body=failure.body,
                       reason=failure.reason, detail=failure.detail)


def _fail_command(failure: FailedForGood, send_command: Send) -> None:
    """`apply_command`: the command's one billing.command.failed and its dead letter, in one
    transaction; then the tenant's next command, which may have waited for this one. A message
    that is not even a command (no id) only becomes a dead letter."""
    from ..handlers.command_dispatch import fail_command
    from ..handlers.command_inbox import send_next

    envelope = failure.args[0] if failure.args else None
    if not isinstance(envelope, dict) or not envelope.get("id"):
        _keep_dead_letter(failure)
        return
    ctx = get_context()
    try:
        fail_command(envelope, failure.reason, failure.detail, ctx, raw_body=failure.body,
                     dead_letter_source=failure.actor)
        send_next(ctx, envelope, send_command)
        return
    except Exception:  # still keep the message, below
        log.exception("command.fail_hook_failed", command_id=failure.message_id)
    _keep_dead_letter(failure)


# -- what the middleware logs about a message (the `message_fields` option) ----------------------


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


def _fields_at(key_path: tuple[str, ...], type_path: tuple[str, ...] | None):
    """`message_fields(args) -> (business id, type)`, read from the first argument along these
    paths of keys (an empty path is the argument itself; no type path: no type)."""

    def message_fields(args: tuple | list) -> tuple[str | None, str | None]:
        return _first_arg_field(args, key_path), _first_arg_field(args, type_path)

    return message_fields


# The actors' names: what a dead letter's `source` holds and `dlq replay` sends to.
ACTOR_NAMES = ("process_stripe_event", "apply_command", "reconcile_tenant")


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
    """Declare our actors on `broker` (once per broker) and return them.

    `apply_command` sends a tenant's next command to the same broker's `apply_command`."""
    existing = getattr(broker, "billing_actors", None)
    if existing is not None:
        return existing

    def declare(fn, name: str, queue: str, time_limit: int, fields, on_dead_letter) -> dramatiq.Actor:
        return dramatiq.actor(fn, actor_name=name, queue_name=queue_name(queue_prefix, queue), broker=broker,
                              time_limit=time_limit, message_fields=fields, on_dead_letter=on_dead_letter)

    def send_command(envelope: dict) -> None:
        apply_command.send(envelope)

    def apply_command_fn(envelope: dict) -> None:
        _apply_command(envelope, send_command)

    def fail_command_hook(failure: FailedForGood) -> None:
        _fail_command(failure, send_command)

    apply_command_fn.__doc__ = _apply_command.__doc__
    apply_command = declare(apply_command_fn, "apply_command", COMMANDS_QUEUE, HANDLER_TIME_LIMIT_MS,
                            _fields_at(("id",), ("type",)), fail_command_hook)
    actors = Actors(
        process_stripe_event=declare(_process_stripe_event, "process_stripe_event", STRIPE_EVENTS_QUEUE,
                                     HANDLER_TIME_LIMIT_MS, _fields_at(("event", "id"), ("event", "type")),
                                     _keep_dead_letter),
        apply_command=apply_command,
        reconcile_tenant=declare(_reconcile_tenant, "reconcile_tenant", RECONCILE_QUEUE, RECONCILE_TIME_LIMIT_MS,
                                 _fields_at((), None), _keep_dead_letter),
    )
    broker.billing_actors = actors
    return actors
