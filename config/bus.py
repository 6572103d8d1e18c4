"""The event bus that product services share with us: two kombu topic exchanges.

`billing.commands` carries product → billing commands, `billing.events` carries our outcome and
entitlement events; routing key = the CloudEvents type without the `billing.` prefix. On Redis,
kombu emulates topic exchanges with lists (durable), unlike its PUB/SUB fanout (lossy), so both
exchanges are of type topic. RabbitMQ gets publisher confirms.

The exchanges belong to one deployment, named by `BILLING_QUEUE_PREFIX`: the default prefix
keeps the documented names `billing.commands` / `billing.events`; any other prefix `P` uses
`P.billing.commands` / `P.billing.events`. Two deployments on one RabbitMQ vhost or Redis
database therefore never see each other's commands (a shared exchange would hand every
command to every deployment's bridge, which would apply it to its own Stripe account).
"""
from __future__ import annotations

from kombu import Connection, Exchange, Queue

from ..contract.bus_names import (
    CLOUDEVENTS,
    CLOUDEVENTS_CONTENT_TYPE,
    SOURCE,
    bridge_queue_name,
    cloudevent,
    commands_exchange_name,
    events_exchange_name,
    register_cloudevents_serializer,
    routing_key,
)

REDIS_VISIBILITY_TIMEOUT_S = 60


def commands_exchange(prefix: str | None = None) -> Exchange:
    """The exchange product services publish commands to, for the deployment `prefix`."""
    return Exchange(commands_exchange_name(prefix), type="topic", durable=True)


def events_exchange(prefix: str | None = None) -> Exchange:
    """The exchange our outcomes and entitlement events go to, for the deployment `prefix`."""
    return Exchange(events_exchange_name(prefix), type="topic", durable=True)


# The default deployment's exchanges (BILLING_QUEUE_PREFIX unset).
COMMANDS_EXCHANGE = commands_exchange()
EVENTS_EXCHANGE = events_exchange()


def connect(url: str) -> Connection:
    options: dict = {}
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        options["confirm_publish"] = True
    elif url.startswith(("redis://", "rediss://")):
        # kombu's Redis transport returns a dead consumer's unacked messages after this long
        # (default an hour); the bridge acks within milliseconds, so a minute is plenty.
        options["visibility_timeout"] = REDIS_VISIBILITY_TIMEOUT_S
    return Connection(url, transport_options=options, connect_timeout=5)


def commands_queue(prefix: str) -> Queue:
    """The queue the bridge consumes (`contract/bus_names.py:bridge_queue_name`)."""
    return Queue(bridge_queue_name(prefix), commands_exchange(prefix), routing_key="#", durable=True)


def declare_topology(connection: Connection, prefix: str) -> list[str]:
    """Declare the deployment's two exchanges, the bridge's queue and its binding (idempotent).

    Run by `billing-sync bus declare` before any product service publishes: an exchange with no
    queue bound drops what it gets. Returns what was declared, for the operator."""
    channel = connection.default_channel
    events, queue = events_exchange(prefix), commands_queue(prefix)
    events(channel).declare()
    queue(channel).declare()  # declares the commands exchange, the queue and the binding
    return [f"exchange {queue.exchange.name}", f"exchange {events.name}",
            f"queue {queue.name} bound to {queue.exchange.name} with '#'"]


# Registering the CloudEvents serializer with kombu lets any consumer in this codebase call
# `message.decode()` (or use `accept=[CLOUDEVENTS]`) and lets the relay publish with it.
register_cloudevents_serializer()

__all__ = ["CLOUDEVENTS", "CLOUDEVENTS_CONTENT_TYPE", "COMMANDS_EXCHANGE", "EVENTS_EXCHANGE", "SOURCE", "cloudevent",
           "commands_exchange", "commands_queue", "connect", "declare_topology", "events_exchange", "routing_key"]
