"""The product services' side of the command contract: publish a command on `billing.commands`.

    from billing_sync.client import publish_command

    command_id = publish_command("redis://broker:6379/0", "billing.subscription.change",
                                 "tenant-42", {"plan": "pro", "seats": 5})

The command's outcome arrives later on `billing.events` as `billing.command.completed` or
`billing.command.failed` with `data.command_id == command_id`. Publishing the same command again
with the same `id` is safe: billing-sync applies it once and reports one outcome.

A service that sends many commands keeps one connection with `CommandPublisher`. Services in
other languages publish the same CloudEvents JSON themselves (see the README).

A deployment with its own `BILLING_QUEUE_PREFIX` has its own exchange: pass the same value as
`queue_prefix`. A command nobody would receive raises `Unroutable` instead of vanishing
(RabbitMQ: published `mandatory`; Redis: the exchange has no binding). Run
`billing-sync bus declare` (or start the bridge) once before the first command.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from kombu import Connection, Exchange, Producer, Queue
from kombu.common import maybe_declare

from .config import bus
from .contract.commands import parse_command
from .errors import InvalidMessage


class Unroutable(Exception):
    """No queue is bound to the commands exchange: no bridge would ever see the command.
    Run `billing-sync bus declare` for the deployment (or check `queue_prefix`)."""


RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}


def command_envelope(type: str, tenant_id: str, data: dict, *, id: str | None = None, source: str = "product",
                     time: datetime | None = None) -> dict:
    """The CloudEvent for a command; `type` may leave out the `billing.` prefix."""
    type = type if type.startswith("billing.") else f"billing.{type}"
    return bus.cloudevent(type, tenant_id, {"tenant_id": tenant_id, **data}, id=id or str(uuid.uuid4()),
                          time=time or datetime.now(UTC), source=source)


class CommandPublisher:
    """A connection to the event bus that publishes commands; use as a context manager.

    `queue_prefix` (= the deployment's `BILLING_QUEUE_PREFIX`): selects the deployment's
    commands exchange, and the bridge's queue (`<prefix>.bridge.commands`) is declared before
    the first publish (unless `declare_queue=False`), so commands sent before any bridge ever
    ran are kept. Without it the default deployment's `billing.commands` is used and nothing
    but the exchange is declared.
    """

    def __init__(self, url_or_connection: str | Connection, *, source: str = "product",
                 queue_prefix: str | None = None, validate: bool = True, declare_queue: bool = True):
        self._own = isinstance(url_or_connection, str)
        self.connection = bus.connect(url_or_connection) if isinstance(url_or_connection, str) else url_or_connection
        self.source = source
        self.validate = validate
        self.exchange = bus.commands_exchange(queue_prefix)
        self._declare: list[Exchange | Queue] = [self.exchange]
        if queue_prefix and declare_queue:
            self._declare.append(bus.commands_queue(queue_prefix))
        self._producer: Producer | None = None
        self._returned: list[str] = []

    def publish(self, type: str, tenant_id: str, data: dict | None = None, *, id: str | None = None) -> str:
        """Publish one command; returns its id (the idempotency key). Raises `InvalidMessage`
        if the command would be rejected by billing-sync anyway (with `validate=True`)."""
        envelope = command_envelope(type, tenant_id, dict(data or {}), id=id, source=self.source)
        if self.validate:
            parse_command(envelope)
        amqp = self.connection.transport.driver_type == "amqp"
        if self._producer is None:
            self._producer = Producer(self.connection.default_channel, exchange=self.exchange,
                                      on_return=self._on_return if amqp else None)
        if not amqp:
            self._check_bound()
        self._returned.clear()
        self._producer.publish(
            envelope,
            routing_key=bus.routing_key(envelope["type"]),
            serializer=bus.CLOUDEVENTS,
            delivery_mode=2,  # persistent
            declare=self._declare,
            retry=True,
            retry_policy=RETRY_POLICY,
            mandatory=amqp,  # RabbitMQ returns it (before the confirm) when no queue is bound
        )
        if self._returned:
            raise Unroutable(f"command {envelope['id']} was returned by {self.exchange.name!r}: "
                             f"{self._returned[0]}; run `billing-sync bus declare`")
        return envelope["id"]

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        self._returned.append(str(exc))

    def _check_bound(self) -> None:
        """kombu's Redis (and memory) transport parks a message no queue is bound for in a
        list nobody reads; it has no `mandatory`, so look at the exchange's bindings first."""
        channel = self.connection.default_channel
        for entity in self._declare:
            maybe_declare(entity, channel)
        if not channel.get_table(self.exchange.name):
            raise Unroutable(f"no queue is bound to {self.exchange.name!r}; run `billing-sync bus declare`")

    def close(self) -> None:
        self._producer = None
        if self._own:
            self.connection.release()

    def __enter__(self) -> CommandPublisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def publish_command(url: str, type: str, tenant_id: str, data: dict | None = None, *, id: str | None = None,
                    source: str = "product", queue_prefix: str | None = None) -> str:
    """Publish one command on a fresh connection; returns the command id."""
    with CommandPublisher(url, source=source, queue_prefix=queue_prefix) as publisher:
        return publisher.publish(type, tenant_id, data, id=id)


__all__ = ["CommandPublisher", "InvalidMessage", "Unroutable", "command_envelope", "publish_command"]
