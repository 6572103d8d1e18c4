"""The Dramatiq actors: decode a message, hand it to the bus, log the outcome.

Nothing else happens here — the logic lives in `handlers/` (reached through the bus,
handlers/messagebus.py), retries and dead-lettering in the broker's middleware
(`workers/middleware.py`). What the middleware needs to know about an actor's messages (their
business id and type, what to do when one fails for good) it gets from the actor's options
(`message_fields`, `on_dead_letter`), never from the actor's name.

Why actors are declared by `declare_actors(broker, prefix)` and not with `@dramatiq.actor`
at import time: a decorated actor binds to whatever global broker exists when its module is
first imported, and its queue name is fixed then. Here the broker (Redis, RabbitMQ or the
in-process stub) and the queue prefix come from settings, and tests run several brokers in
one process. So `workers.broker.make_broker(settings)` builds the broker and declares the
actors on it; code that sends uses that broker's actors (`broker.billing_actors`).

The bus belongs to the broker too (`broker.billing_actors.bus`, a `BusSlot`): `up` and tests
install theirs; otherwise it is built from the settings on the first message. Caveat: built
lazily on purpose — `billing-sync worker` declares the actors in Dramatiq's worker processes
after they were forked, and a bus built before a fork would share its database connections
(and the Stripe client's) across processes. Do not build it eagerly in a process that forks.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import dramatiq
import structlog

from ..config.settings import Settings
from ..contract.ids import TENANT_ID_RULE, is_tenant_id
from ..errors import InvalidMessage
from ..handlers.messagebus import Bus
from ..handlers.messages import (
    CommandFailed,
    CommandReceived,
    MessageFailed,
    MeterFlushDue,
    ReconcileRequested,
    StripeEventReceived,
)
from ..handlers.stripe_event import parse
from .middleware import FailedForGood

log = structlog.get_logger(__name__)

STRIPE_EVENTS_QUEUE = "stripe-events"
COMMANDS_QUEUE = "commands"
RECONCILE_QUEUE = "reconcile"
METERING_QUEUE = "metering"

# A handler makes a few Stripe calls and one transaction; a minute means it is stuck (the
# TimeLimit middleware then interrupts it and the retry policy treats that as transient).
HANDLER_TIME_LIMIT_MS = 60_000
RECONCILE_TIME_LIMIT_MS = 300_000

_CAUSE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # reconcile, sweep, a command id: it ends up in outbox rows and logs

Send = Callable[[dict], None]


class BusSlot:
    """The bus one broker's actors run on: installed (`install`), or built by `build` on first
    use, in the process that takes the messages (see the module's caveat on forking). Either way
    its command sender is this broker's `apply_command`."""

    def __init__(self, build: Callable[[Send], Bus], send_command: Send):
        self._build = build
        self._send_command = send_command
        self._bus: Bus | None = None
        self._lock = threading.Lock()

    def install(self, bus: Bus | None) -> None:
        """Run this broker's actors on `bus` (None: build one from the settings again)."""
        with self._lock:
            self._bus = None if bus is None else bus.replace(send_command=self._send_command)

    def get(self) -> Bus:
        bus = self._bus
        if bus is not None:
            return bus
        with self._lock:  # several worker threads may take their first message at once
            if self._bus is None:
                self._bus = self._build(self._send_command)
            return self._bus


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _process_stripe_event(bus: Bus, message: dict) -> None:
    """`message = {"event": <verified Stripe event>, "received_at": <ISO-8601>}` (from the ingress)."""
    # The one check, before any handler: an unusable event fails for good here (InvalidMessage).
    event = parse(message, now=bus.now, settings=bus.settings)
    started = time.monotonic()
    outcome = bus.handle(StripeEventReceived(event))
    log.info("actor.processed", actor="process_stripe_event", event_id=event.id, event_type=event.type,
             outcome=outcome, ms=_elapsed_ms(started))


def _apply_command(bus: Bus, envelope: dict) -> None:
    """A CloudEvents 1.0 command from `billing.commands` (handed over by the bridge)."""
    if not isinstance(envelope, dict) or not envelope.get("id") or not envelope.get("type"):
        raise InvalidMessage("not a CloudEvents command")
    started = time.monotonic()
    outcome = bus.handle(CommandReceived(envelope))
    log.info("actor.processed", actor="apply_command", command_id=envelope["id"], command_type=envelope["type"],
             tenant_id=envelope.get("subject"), outcome=outcome, ms=_elapsed_ms(started))


def _reconcile_tenant(bus: Bus, tenant_id: str, cause: str) -> None:
    """Re-read one tenant from Stripe and repair drift (sent by the scheduler or an operator)."""
    if not is_tenant_id(tenant_id):
        raise InvalidMessage(f"not a tenant id: {TENANT_ID_RULE}")
    if not isinstance(cause, str) or not _CAUSE.fullmatch(cause):
        raise InvalidMessage("cause is not an id such as reconcile, sweep or a command id")
    started = time.monotonic()
    outcome = bus.handle(ReconcileRequested(tenant_id, cause))
    log.info("actor.processed", actor="reconcile_tenant", tenant_id=tenant_id, cause=cause, outcome=outcome,
             ms=_elapsed_ms(started))


def _flush_meter(bus: Bus) -> None:
    """Send the closed usage windows to Stripe (sent by the scheduler; handlers/metering.py).
    No dead letter when it fails for good: the scheduler sends the next one within seconds."""
    started = time.monotonic()
    outcome = bus.handle(MeterFlushDue())
    log.info("actor.processed", actor="flush_meter", outcome=outcome, ms=_elapsed_ms(started))


# -- when a message fails for good (the `on_dead_letter` option) ---------------------------------


def _failed(failure: FailedForGood) -> MessageFailed:
    return MessageFailed(source=failure.actor, message_id=failure.message_id, body=failure.body,
                         reason=failure.reason, detail=failure.detail)


def _keep_dead_letter(bus: Bus, failure: FailedForGood) -> None:
    """Any actor: the message becomes a dead letter (`billing-sync dlq`)."""
    bus.handle(_failed(failure))


def _fail_command(bus: Bus, failure: FailedForGood) -> None:
    """`apply_command`: the command's failed outcome and dead letter (handlers.worker_messages)."""
    bus.handle(CommandFailed(failure.args[0] if failure.args else None, _failed(failure)))


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
    """Our actors as declared on one broker, and the bus they run on."""

    process_stripe_event: dramatiq.Actor
    apply_command: dramatiq.Actor
    reconcile_tenant: dramatiq.Actor
    flush_meter: dramatiq.Actor
    bus: BusSlot


def actors_of(broker: dramatiq.Broker) -> Actors:
    """The actors `declare_actors` declared on `broker` (kept on it as `billing_actors`)."""
    actors = getattr(broker, "billing_actors", None)
    if not isinstance(actors, Actors):
        raise RuntimeError("no billing-sync actors on this broker: make_broker declares them")
    return actors


def queue_name(prefix: str, queue: str) -> str:
    """Queue names carry the prefix on every broker: RabbitMQ has no namespaces of its own."""
    return f"{prefix}.{queue}"


def declare_actors(broker: dramatiq.Broker, queue_prefix: str, *, settings: Settings | None = None,
                   bus: Bus | None = None) -> Actors:
    """Declare our actors on `broker` (once per broker) and return them.

    They run on `bus` if given (installed with this broker's `apply_command` as its command
    sender), else on one built from `settings` on the first message. `apply_command` sends a
    tenant's next command to the same broker's `apply_command`."""
    existing = getattr(broker, "billing_actors", None)
    if existing is not None:
        if bus is not None:
            existing.bus.install(bus)
        return existing

    def build_bus(send_command: Send) -> Bus:
        from ..bootstrap import bootstrap

        return bootstrap(settings, send_command=send_command)

    def send_command(envelope: dict) -> None:
        apply_command.send(envelope)

    slot = BusSlot(build_bus, send_command)
    if bus is not None:
        slot.install(bus)

    def on_bus(fn):
        def run(*args, **kwargs):
            return fn(slot.get(), *args, **kwargs)

        run.__name__ = fn.__name__.lstrip("_")
        run.__doc__ = fn.__doc__
        return run

    def declare(fn, name: str, queue: str, time_limit: int, fields, on_dead_letter) -> dramatiq.Actor:
        return dramatiq.actor(on_bus(fn), actor_name=name, queue_name=queue_name(queue_prefix, queue), broker=broker,
                              time_limit=time_limit, message_fields=fields, on_dead_letter=on_bus(on_dead_letter))

    apply_command = declare(_apply_command, "apply_command", COMMANDS_QUEUE, HANDLER_TIME_LIMIT_MS,
                            _fields_at(("id",), ("type",)), _fail_command)
    actors = Actors(
        process_stripe_event=declare(_process_stripe_event, "process_stripe_event", STRIPE_EVENTS_QUEUE,
                                     HANDLER_TIME_LIMIT_MS, _fields_at(("event", "id"), ("event", "type")),
                                     _keep_dead_letter),
        apply_command=apply_command,
        reconcile_tenant=declare(_reconcile_tenant, "reconcile_tenant", RECONCILE_QUEUE, RECONCILE_TIME_LIMIT_MS,
                                 _fields_at((), None), _keep_dead_letter),
        flush_meter=dramatiq.actor(on_bus(_flush_meter), actor_name="flush_meter", broker=broker,
                                   queue_name=queue_name(queue_prefix, METERING_QUEUE),
                                   time_limit=HANDLER_TIME_LIMIT_MS),
        bus=slot,
    )
    broker.billing_actors = actors
    return actors
