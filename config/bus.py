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

import uuid
from datetime import UTC, datetime

from kombu import Connection, Exchange, Queue

from .settings import DEFAULT_QUEUE_PREFIX

SOURCE = "billing-sync"
REDIS_VISIBILITY_TIMEOUT_S = 60


def _namespaced(prefix: str | None, name: str) -> str:
    prefix = prefix or DEFAULT_QUEUE_PREFIX
    return name if prefix == DEFAULT_QUEUE_PREFIX else f"{prefix}.{name}"


def commands_exchange(prefix: str | None = None) -> Exchange:
    """The exchange product services publish commands to, for the deployment `prefix`."""
    return Exchange(_namespaced(prefix, "billing.commands"), type="topic", durable=True)


def events_exchange(prefix: str | None = None) -> Exchange:
    """The exchange our outcomes and entitlement events go to, for the deployment `prefix`."""
    return Exchange(_namespaced(prefix, "billing.events"), type="topic", durable=True)


# The default deployment's exchanges (BILLING_QUEUE_PREFIX unset).
COMMANDS_EXCHANGE = commands_exchange()
EVENTS_EXCHANGE = events_exchange()


def routing_key(event_type: str) -> str:
    return event_type.removeprefix("billing.")


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
    """The queue the bridge consumes: every command type of its deployment. Not
    `<prefix>.commands`: that is the Dramatiq queue of the apply_command actor, and on a shared
    RabbitMQ the names would collide."""
    return Queue(f"{prefix}.bridge.commands", commands_exchange(prefix), routing_key="#", durable=True)


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


def cloudevent(type: str, subject: str | None, data: dict, *, id: str | None = None,
               time: datetime | None = None, source: str = SOURCE) -> dict:
    """A CloudEvents 1.0 structured-mode envelope."""
    event = {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        event["subject"] = subject
    return event


# CloudEvents structured mode travels as `application/cloudevents+json`. Registering it with kombu
# lets any consumer in this codebase call `message.decode()` (or use `accept=[CLOUDEVENTS]`) and
# get the envelope dict back, and lets the relay publish with `serializer=CLOUDEVENTS`.
CLOUDEVENTS = "cloudevents"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


def _register_cloudevents_serializer() -> None:
    import json

    from kombu.serialization import register

    register(CLOUDEVENTS, lambda obj: json.dumps(obj, separators=(",", ":")), json.loads,
             content_type=CLOUDEVENTS_CONTENT_TYPE, content_encoding="utf-8")


_register_cloudevents_serializer()
