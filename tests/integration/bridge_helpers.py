"""What the bridge tests share: a Bridge running in a thread, publishing raw bytes on a
deployment's commands exchange, and reading the outcomes and dead letters it left."""
from __future__ import annotations

import threading

from kombu import Producer
from sqlalchemy import select

from billing_sync.config import bus as event_bus
from billing_sync.models import DeadLetter, OutboxMessage
from billing_sync.workers.bridge import Bridge


class Running:
    """A Bridge in a thread, with what it sent to the workers."""

    def __init__(self, bus, url: str, send=..., ):
        self.sent: list[dict] = []
        self.bridge = Bridge(bus, url=url, send=self.sent.append if send is ... else send, prefetch=4)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.bridge.run, kwargs={"stop_event": self.stop_event}, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        assert self.bridge.ready.wait(10), "bridge never started consuming"
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "bridge did not stop"


def delete_commands_queue(url: str, prefix: str) -> None:
    """Remove a test deployment's commands queue and exchange (what a bridge declared)."""
    try:
        with event_bus.connect(url) as conn:
            event_bus.commands_queue(prefix).bind(conn.default_channel).delete()
            event_bus.commands_exchange(prefix).bind(conn.default_channel).delete()
    except Exception:
        pass


def failed_events(bus) -> list[dict]:
    with bus.uow_factory() as uow:
        rows = uow.session.execute(select(OutboxMessage).where(OutboxMessage.type == "billing.command.failed")
                                   .order_by(OutboxMessage.id)).scalars().all()
        return [dict(r.data) for r in rows]


def dead_letters(bus) -> list[dict]:
    with bus.uow_factory() as uow:
        rows = uow.session.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars().all()
        return [{"source": r.source, "message_id": r.message_id, "body": r.body, "reason": r.reason,
                 "detail": r.detail} for r in rows]


def raw_publish(bus, body, **kwargs) -> None:
    """Publish anything on the commands exchange of `bus`'s deployment, bypassing the client."""
    exchange = event_bus.commands_exchange(bus.settings.queue_prefix)
    with event_bus.connect(bus.settings.event_bus_url) as conn:
        producer = Producer(conn.default_channel, exchange=exchange)
        producer.publish(body, routing_key=kwargs.pop("routing_key", "tenant.provisioned"),
                         declare=[exchange], **kwargs)
