"""The transactional outbox relay: publishes committed outbox rows on `billing.events`.

Handlers write an event as an `OutboxMessage` row in the same transaction as the change it
announces, so an event exists if and only if its change committed. This relay is the other half:
it reads unpublished rows in id order, publishes each as a CloudEvent on the `billing.events`
topic exchange, and marks them published.

Guarantees, and their price:

- **At least once.** A row is marked published only after the broker took it (RabbitMQ: a
  publisher confirm, since `config.bus.connect` turns `confirm_publish` on; Redis: the LPUSH
  returned; memory: the put returned). A crash between the publish and the commit publishes the
  row again on the next pass, with the same CloudEvents `id`. Consumers deduplicate by `id`,
  and for `billing.entitlements.changed` keep the highest `version` per tenant, which also makes
  a late duplicate harmless.
- **Nothing lost or skipped.** A failed publish leaves that row and every later one of the pass
  unpublished (rows confirmed before the failure are marked, to limit duplicates); the relay
  backs off and retries from the first unpublished row.
- **Per-tenant order.** Rows are published in id order. Several relays may run at once on
  PostgreSQL: each claims a batch with `FOR UPDATE SKIP LOCKED`, so no row is published twice
  by two relays, and a relay leaves a tenant's rows alone while another relay holds an earlier
  row of the same tenant, so one tenant's events never overtake each other. (A handler writes a
  tenant's rows while holding that tenant's row lock, so their ids follow commit order.)
- Publishing to an exchange with no bound queue drops the message, on RabbitMQ and on kombu's
  Redis emulation alike: a consumer declares its durable queue, bound to `billing.events`,
  before it relies on receiving events.

On SQLite (embedded mode) every transaction already holds the database write lock, so a pass is
trivially exclusive. With `memory://` (embedded) kombu's in-process transport carries the events
to consumers in the same process.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

import structlog

from ..config import metrics
from ..config.bus import CLOUDEVENTS, cloudevent, connect, events_exchange, routing_key
from ..config.urls import redact
from ..handlers.messagebus import Bus
from ..models import utcnow
from ..models.tables import OutboxMessage

if TYPE_CHECKING:
    from kombu import Connection, Producer

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 30.0
PUBLISH_TIMEOUT_S = 30.0


class PublishFailed(Exception):
    """The event bus did not take a row; it and the rows after it stay unpublished."""


class Relay:
    """Publishes outbox rows; `publish_pending()` is one pass, `run()` the loop.

    One Relay is used by one thread; several Relays (threads or processes) may share a database.
    """

    def __init__(self, bus: Bus, connection_url: str | None = None, *, batch: int = 100):
        self.uow_factory = bus.uow_factory
        self.url = connection_url or bus.settings.event_bus_url
        self.batch = batch
        self.poll_interval_s = bus.settings.relay_poll_interval_s
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self.exchange = events_exchange(bus.settings.queue_prefix)

    # -- one pass -----------------------------------------------------------------------------

    def publish_pending(self, batch: int | None = None) -> int:
        """Publish up to `batch` unpublished rows in id order; return how many were published.

        Raises `PublishFailed` when the event bus refused; rows confirmed before that are
        marked published, the rest stay for the next pass.
        """
        batch = batch or self.batch
        failure: Exception | None = None
        with self.uow_factory() as uow:
            rows = uow.outbox.claim_unpublished(batch)
            published: list[OutboxMessage] = []
            if rows:
                try:
                    producer = self._get_producer()
                    for row in rows:
                        self._publish(producer, row)
                        published.append(row)
                except Exception as exc:  # any bus error: keep what was confirmed, retry the rest
                    failure = exc
                    self._reset_connection()
                if published:
                    uow.outbox.mark_published([row.id for row in published], utcnow())
            uow.commit()
        for row in published:
            metrics.OUTBOX_PUBLISHED.labels(row.type).inc()
        if failure is not None:
            metrics.OUTBOX_PUBLISH_FAILURES.inc()
            raise PublishFailed(f"{type(failure).__name__}: {failure}") from failure
        return len(published)

    def _publish(self, producer, row: OutboxMessage) -> None:
        envelope = cloudevent(row.type, row.subject, row.data, id=row.event_id, time=row.created_at)
        producer.publish(
            envelope,
            exchange=self.exchange,
            routing_key=routing_key(row.type),
            serializer=CLOUDEVENTS,  # application/cloudevents+json (registered in config.bus)
            delivery_mode=2,  # persistent
            message_id=row.event_id,  # lets AMQP consumers deduplicate without parsing the body
            retry=False,  # the relay loop backs off and retries the whole remainder
            timeout=PUBLISH_TIMEOUT_S,
            confirm_timeout=PUBLISH_TIMEOUT_S,  # a RabbitMQ that never confirms must not hang us
        )

    # -- the event bus connection ----------------------------------------------------------------

    def _get_producer(self):
        if self._producer is None:
            from kombu import Producer

            connection = connect(self.url)
            try:
                connection.ensure_connection(max_retries=0)  # one attempt: the loop owns retrying
                producer = Producer(connection.default_channel, exchange=self.exchange, auto_declare=True)
            except Exception:
                connection.release()
                raise
            self._connection, self._producer = connection, producer
        return self._producer

    def _reset_connection(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken; nothing more to do
                connection.release()

    def close(self) -> None:
        self._reset_connection()

    # -- observation ----------------------------------------------------------------------------

    def oldest_unpublished_age_s(self) -> float:
        """Outbox lag: the age of the oldest unpublished row, 0 when everything is out."""
        with self.uow_factory() as uow:
            created = uow.outbox.oldest_unpublished_at()
        age = max(0.0, (utcnow() - created).total_seconds()) if created else 0.0
        metrics.OUTBOX_LAG_SECONDS.set(age)
        return age

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Publish until `stop_event` is set: again at once after a full batch, else every
        `relay_poll_interval_s`; after a failure, back off exponentially up to 30 s."""
        stop = stop_event or threading.Event()
        failures = 0
        log.info("relay.started", bus=redact(self.url), batch=self.batch)
        try:
            while not stop.is_set():
                try:
                    count = self.publish_pending(self.batch)
                except Exception as exc:  # bus or database down: never skip, just wait and retry
                    failures += 1
                    delay = min(MAX_BACKOFF_S, self.poll_interval_s * 2 ** failures)
                    log.warning("relay.publish_failed", error=type(exc).__name__, detail=str(exc)[:200],
                                retry_in_s=round(delay, 2), attempt=failures)
                    self._observe_lag()  # during a bus outage is when the lag must keep rising
                    stop.wait(delay)
                    continue
                if failures:
                    log.info("relay.recovered", after_failures=failures)
                    failures = 0
                if count:
                    log.debug("relay.published", count=count)
                self._observe_lag()
                if count < self.batch:
                    stop.wait(self.poll_interval_s)
        finally:
            self.close()
            log.info("relay.stopped")

    def _observe_lag(self) -> None:
        try:
            self.oldest_unpublished_age_s()
        except Exception:  # metrics must never stop the relay
            log.debug("relay.lag_unavailable")


def run_relay() -> None:
    """`billing-sync relay`: publish outbox rows until SIGINT/SIGTERM."""
    from ..bootstrap import bootstrap
    from ..config.settings import get_settings
    from .shutdown import stop_on_signals

    settings = get_settings()
    stop = stop_on_signals(threading.Event(), settings.shutdown_grace_s)
    bus = bootstrap(settings)
    started = time.monotonic()
    Relay(bus).run(stop)
    log.info("relay.exit", uptime_s=round(time.monotonic() - started, 1))
