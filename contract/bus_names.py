"""The bus as the product sees it: exchange and queue names, routing keys and the CloudEvents
envelope. Pure names and dicts, so the product services' client (`client.py`) can speak the wire
without importing billing-sync's configuration; `config/bus.py` builds the kombu objects from them.

The exchanges belong to one deployment, named by `BILLING_QUEUE_PREFIX`: the default prefix keeps
the documented names `billing.commands` / `billing.events`; any other prefix `P` uses
`P.billing.commands` / `P.billing.events`.
"""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

DEFAULT_QUEUE_PREFIX = "billing-sync"
SOURCE = "billing-sync"

# CloudEvents structured mode travels as `application/cloudevents+json`; kombu knows it by this
# serializer name once `register_cloudevents_serializer()` ran.
CLOUDEVENTS = "cloudevents"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


def namespaced(prefix: str | None, name: str) -> str:
    prefix = prefix or DEFAULT_QUEUE_PREFIX
    return name if prefix == DEFAULT_QUEUE_PREFIX else f"{prefix}.{name}"


def commands_exchange_name(prefix: str | None = None) -> str:
    return namespaced(prefix, "billing.commands")


def events_exchange_name(prefix: str | None = None) -> str:
    return namespaced(prefix, "billing.events")


def bridge_queue_name(prefix: str) -> str:
    """The bridge's queue: every command type of its deployment. Not `<prefix>.commands`: that is
    the Dramatiq queue of the apply_command actor, and on a shared RabbitMQ the names would collide."""
    return f"{prefix}.bridge.commands"


def routing_key(event_type: str) -> str:
    return event_type.removeprefix("billing.")


def cloudevent(type: str, subject: str | None, data: dict[str, Any], *, id: str | None = None,
               time: datetime | None = None, source: str = SOURCE) -> dict[str, Any]:
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


def _dumps(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, separators=(",", ":"))


def register_cloudevents_serializer() -> None:
    """Let kombu publish with `serializer=CLOUDEVENTS` and `message.decode()` the envelope back
    (idempotent; kombu's registry is process-wide)."""
    from kombu.serialization import register

    options = {"content_type": CLOUDEVENTS_CONTENT_TYPE, "content_encoding": "utf-8"}
    register(CLOUDEVENTS, _dumps, json.loads, **options)  # type: ignore[no-untyped-call]
