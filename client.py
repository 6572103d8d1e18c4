"""The product services' side of billing-sync: publish commands on `billing.commands`
(`publish_command`, `CommandPublisher`) and enforce entitlements from memory (`Entitlements`).

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

import math
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from kombu import Connection, Exchange, Producer, Queue
from kombu.common import maybe_declare

from .contract import bus_names as bus
from .contract import stream_wire as wire
from .contract.commands import InvalidMessage, parse_command
from .contract.stream_wire import TenantEntitlements


class Unroutable(Exception):
    """No queue is bound to the commands exchange: no bridge would ever see the command.
    Run `billing-sync bus declare` for the deployment (or check `queue_prefix`)."""


RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}
bus.register_cloudevents_serializer()


def _connect(url: str) -> Connection:
    """A publishing connection: publisher confirms on RabbitMQ, so a return or a refusal is seen."""
    confirm = url.startswith(("amqp://", "amqps://", "pyamqp://"))
    return Connection(url, transport_options={"confirm_publish": True} if confirm else {}, connect_timeout=5)


def _commands_exchange(prefix: str | None) -> Exchange:
    return Exchange(bus.commands_exchange_name(prefix), type="topic", durable=True)


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
        self.connection = _connect(url_or_connection) if isinstance(url_or_connection, str) else url_or_connection
        self.source = source
        self.validate = validate
        self.exchange = _commands_exchange(queue_prefix)
        self._declare: list[Exchange | Queue] = [self.exchange]
        if queue_prefix and declare_queue:
            self._declare.append(Queue(bus.bridge_queue_name(queue_prefix), self.exchange, routing_key="#",
                                        durable=True))
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


class BillingRefused(Exception):
    """billing-sync answered a usage request with a 4xx (bad input, unknown tenant): `status` and
    `body` say what; retrying the same request will not help."""

    def __init__(self, status: int, body: Any):
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


class Entitlements:
    """Every tenant's entitlements in memory, kept current by `GET /v1/stream`; use as a context
    manager (or `start()` / `stop()`).

        with Entitlements("http://billing:8000", token, max_staleness_s=30, fail_open=False) as ents:
            ents.wait_ready(10)
            if ents.check("acme", "sso"): ...
            answer = ents.consume("acme", "api_calls", 1)   # POST /v1/tenants/acme/usage

    A background thread follows the stream: the first connection asks for a snapshot of every
    tenant, a reconnection resumes after the last position it saw (`Last-Event-ID`), so no change is
    missed across cuts and ingress restarts; when the server cannot resume (`reset`), the snapshot
    replaces the cache. `refresh(tenant)` re-reads one tenant by ETag (304: nothing to do).

    `check` answers from memory, without I/O or locks. The cache is **stale** until the first
    `ready` and whenever nothing (not even a heartbeat, which the client asks for every third of the
    bound) arrived for `max_staleness_s`; then `check` answers `fail_open` for every tenant and
    feature. `consume` on an unreachable billing-sync (after one retry with the same idempotency
    key) answers `{"allowed": fail_open, "unavailable": True}` and records nothing.
    Caveat: an unknown tenant (none of its entitlements were ever written) is not entitled to anything.
    """

    def __init__(self, base_url: str, token: str, *, max_staleness_s: float = 30.0, fail_open: bool = False,
                 timeout_s: float = 5.0, on_change: Callable[[str, dict], None] | None = None,
                 transport: httpx.BaseTransport | None = None):
        self._http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                  timeout=timeout_s, transport=transport)
        self.max_staleness_s = max_staleness_s
        self.fail_open = fail_open
        self._heartbeat_s = min(max(max_staleness_s / 3, 1.0), 300.0)
        self._on_change = on_change
        self._tenants: dict[str, TenantEntitlements] = {}
        self._last_contact = -math.inf
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        self.position: str | None = None  # the last stream position applied (Last-Event-ID)
        self.reconnects = 0
        self._log = structlog.get_logger("billing_sync.client")

    # -- answers from memory ------------------------------------------------------------------

    def check(self, tenant_id: str, feature: str) -> bool:
        """Whether the tenant has the feature (or a positive limit of it); `fail_open` when stale."""
        if time.monotonic() - self._last_contact > self.max_staleness_s:
            return self.fail_open
        held = self._tenants.get(tenant_id)
        return held is not None and feature in held.enabled

    def get(self, tenant_id: str) -> TenantEntitlements | None:
        """The tenant's entitlements as held (also while stale; see `stale`)."""
        return self._tenants.get(tenant_id)

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._last_contact > self.max_staleness_s

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until the first snapshot (or resume) is complete; False on timeout."""
        return self._ready.wait(timeout_s)

    # -- calls ---------------------------------------------------------------------------------

    def consume(self, tenant_id: str, feature: str, quantity: int = 1, *, idempotency_key: str | None = None,
                mode: str = "hard") -> dict:
        """Check and record usage in one atomic step (`POST /v1/tenants/{id}/usage`); the answer's
        `allowed` says whether it fit. Raises `BillingRefused` on a 4xx."""
        body = {"feature": feature, "quantity": quantity, "idempotency_key": idempotency_key or str(uuid.uuid4()),
                "mode": mode}
        for attempt in range(2):
            try:
                response = self._http.post(f"/v1/tenants/{tenant_id}/usage", json=body)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code < 500:
                if response.status_code != 200:
                    raise BillingRefused(response.status_code, _json_or_text(response))
                return response.json()
            if attempt == 0:
                time.sleep(0.2)
        return {"allowed": self.fail_open, "unavailable": True, "feature": feature, "quantity": quantity}

    def refresh(self, tenant_id: str) -> TenantEntitlements | None:
        """Re-read one tenant now by ETag (`If-None-Match`; 304 keeps what is held)."""
        held = self._tenants.get(tenant_id)
        headers = {"If-None-Match": f'"{tenant_id}-v{held.version}"'} if held else {}
        response = self._http.get(f"/v1/tenants/{tenant_id}/entitlements", headers=headers)
        if response.status_code == 200:
            self._apply(TenantEntitlements.from_document(response.json()), self._tenants)
        elif response.status_code not in (304, 404):
            raise BillingRefused(response.status_code, _json_or_text(response))
        return self._tenants.get(tenant_id)

    # -- the stream ----------------------------------------------------------------------------

    def start(self) -> Entitlements:
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="billing-entitlements", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._response is not None:
            self._response.close()  # unblocks the read
        if self._thread is not None:
            self._thread.join(5)
        self._http.close()

    def __enter__(self) -> Entitlements:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _follow(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                self._read_stream()
                backoff = 0.2
            except Exception as exc:  # cut, refused, restarted: reconnect with the last position
                if self._stopping.is_set():
                    return
                self._log.info("entitlements.stream_lost", error=type(exc).__name__, position=self.position)
            self.reconnects += 1
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _read_stream(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.position is not None:
            headers["Last-Event-ID"] = self.position
        params = {"snapshot": "1", "heartbeat_s": f"{self._heartbeat_s:g}"}
        timeout = httpx.Timeout(self._http.timeout.connect, read=self._heartbeat_s * 2 + 1)
        with self._http.stream("GET", "/v1/stream", params=params, headers=headers, timeout=timeout) as response:
            self._response = response
            if response.status_code != 200:
                raise BillingRefused(response.status_code, response.read()[:200])
            decoder = wire.SSEDecoder()
            pending: dict[str, TenantEntitlements] = {}
            for line in response.iter_lines():
                if self._stopping.is_set():
                    return
                if self._ready.is_set():
                    self._last_contact = time.monotonic()
                message = decoder.feed(line)
                if message is not None:
                    pending = self._handle(message, pending)

    def _handle(self, message: wire.Message, pending: dict[str, TenantEntitlements]) -> dict:
        if message.event == wire.SNAPSHOT:
            self._apply(TenantEntitlements.from_document(message.json()), pending)
        elif message.event == wire.READY:
            if not message.json()["resumed"]:  # a snapshot (maybe empty) replaces what was held
                self._tenants = pending
            pending = {}
            self._last_contact = time.monotonic()
            self._ready.set()
        elif message.event == wire.RESET:
            self._log.info("entitlements.stream_reset", reason=message.json().get("reason"))
        elif message.event in wire.STREAMED_TYPES:
            event = message.json()
            if message.event == wire.ENTITLEMENTS_CHANGED:
                self._apply(TenantEntitlements.from_document(event["data"]), self._tenants)
            if self._on_change is not None:
                self._on_change(message.event, event)
        if message.id is not None:
            self.position = message.id
        return pending

    @staticmethod
    def _apply(entitlements: TenantEntitlements, into: dict[str, TenantEntitlements]) -> None:
        """Keep the highest version per tenant: a replayed or late event never goes back."""
        held = into.get(entitlements.tenant_id)
        if held is None or entitlements.version > held.version:
            into[entitlements.tenant_id] = entitlements


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


__all__ = ["BillingRefused", "CommandPublisher", "Entitlements", "InvalidMessage", "TenantEntitlements",
           "Unroutable", "command_envelope", "publish_command"]
