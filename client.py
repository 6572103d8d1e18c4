"""The product services' side of the command contract: publish a command on `billing.commands`.

    from billing_sync.client import publish_command

    command_id = publish_command("redis://broker:6379/0", "billing.subscription.change",
                                 "tenant-42", {"plan": "pro", "seats": 5})

The command's outcome arrives later on `billing.events` as `billing.command.completed` or
`billing.command.failed` with `data.command_id == command_id`. Publishing the same command again
with the same `id` is safe: billing-sync applies it once and reports one outcome.

A service that sends many commands keeps one connection with `CommandPublisher`. Services in
other languages publish the same CloudEvents JSON themselves (see the README).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from kombu import Connection, Producer

from .config import bus
from .errors import InvalidMessage
from .handlers.command_schema import parse_command

RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}


def command_envelope(type: str, tenant_id: str, data: dict, *, id: str | None = None, source: str = "product",
                     time: datetime | None = None) -> dict:
    """The CloudEvent for a command; `type` may leave out the `billing.` prefix."""
    type = type if type.startswith("billing.") else f"billing.{type}"
    return bus.cloudevent(type, tenant_id, {"tenant_id": tenant_id, **data}, id=id or str(uuid.uuid4()),
                          time=time or datetime.now(timezone.utc), source=source)


class CommandPublisher:
    """A connection to the event bus that publishes commands; use as a context manager.

    `queue_prefix`: when given, the bridge's queue (`<prefix>.commands`) is declared before the
    first publish, so commands sent before any bridge ever ran are kept rather than dropped by
    an exchange with no queue bound to it.
    """

    def __init__(self, url_or_connection: str | Connection, *, source: str = "product",
                 queue_prefix: str | None = None, validate: bool = True):
        self._own = isinstance(url_or_connection, str)
        self.connection = bus.connect(url_or_connection) if self._own else url_or_connection
        self.source = source
        self.validate = validate
        self._declare = [bus.COMMANDS_EXCHANGE]
        if queue_prefix:
            self._declare.append(bus.commands_queue(queue_prefix))
        self._producer: Producer | None = None

    def publish(self, type: str, tenant_id: str, data: dict | None = None, *, id: str | None = None) -> str:
        """Publish one command; returns its id (the idempotency key). Raises `InvalidMessage`
        if the command would be rejected by billing-sync anyway (with `validate=True`)."""
        envelope = command_envelope(type, tenant_id, dict(data or {}), id=id, source=self.source)
        if self.validate:
            parse_command(envelope)
        if self._producer is None:
            self._producer = Producer(self.connection.default_channel, exchange=bus.COMMANDS_EXCHANGE)
        self._producer.publish(
            envelope,
            routing_key=bus.routing_key(envelope["type"]),
            serializer=bus.CLOUDEVENTS,
            delivery_mode=2,  # persistent
            declare=self._declare,
            retry=True,
            retry_policy=RETRY_POLICY,
        )
        return envelope["id"]

    def close(self) -> None:
        self._producer = None
        if self._own:
            self.connection.release()

    def __enter__(self) -> "CommandPublisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def publish_command(url: str, type: str, tenant_id: str, data: dict | None = None, *, id: str | None = None,
                    source: str = "product", queue_prefix: str | None = None) -> str:
    """Publish one command on a fresh connection; returns the command id."""
    with CommandPublisher(url, source=source, queue_prefix=queue_prefix) as publisher:
        return publisher.publish(type, tenant_id, data, id=id)


__all__ = ["CommandPublisher", "InvalidMessage", "command_envelope", "publish_command"]
