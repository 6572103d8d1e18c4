"""The bridge: product commands from the `billing.commands` exchange to the `apply_command` actor.

Product services speak kombu/AMQP CloudEvents, workers speak Dramatiq; the bridge is the only
place where the two meet. It validates each message before a worker ever sees it:

- a valid command is recorded in the database inbox (`CommandInbox`), handed to
  `apply_command` and only then acked — if the database or the Dramatiq broker fails, the
  message is rejected back onto the queue and retried after a pause; if the broker loses it
  after the ack, the scheduler's inbox repair sends it again, so nothing is lost;
- a message that is not a valid command (not JSON, not a CloudEvent, an unknown type, bad
  data) is kept as a `DeadLetter` row and answered with `billing.command.failed` (reason
  `invalid`), both in one transaction, and only then acked. If the database is down it is
  requeued like any other message.

Bodies are decoded here, not by kombu: kombu's `on_decode_error` acks by default, which would
drop a malformed message without a trace, and its deserializers would happily unpickle.

Works on RabbitMQ and on kombu's Redis transport (and `memory://` inside `billing-sync up`).
"""
from __future__ import annotations

import json
import threading
from typing import Callable

import structlog
from kombu import Connection, Message
from kombu.mixins import ConsumerMixin

from ..config import bus, metrics
from ..errors import InvalidMessage
from ..handlers.command_dispatch import fail_command
from ..handlers.command_inbox import record_received
from ..handlers.command_schema import parse_command

log = structlog.get_logger(__name__)

DEFAULT_PREFETCH = 16
MAX_PAUSE_S = 10.0
MEMORY_POLL_S = 0.02
# What structured-mode CloudEvents JSON may be labelled as; anything else (pickle, yaml, …) is invalid.
JSON_CONTENT_TYPES = ("application/json", bus.CLOUDEVENTS_CONTENT_TYPE, "text/plain", "")

Send = Callable[[dict], None]


def send_to_actor(envelope: dict) -> None:
    """Enqueue on the process's current Dramatiq broker (see workers.broker.make_broker)."""
    from .actors import send_command

    send_command(envelope)


class Bridge(ConsumerMixin):
    """Consume `billing.commands` until stopped. One Bridge runs in one thread.

    `send` is how a valid envelope reaches the workers (the `apply_command` actor by default;
    tests may pass another callable). `run(stop_event=…)` returns soon after the event is set,
    in every state: kombu's own reconnect loop (which retries forever and never looks at
    `should_stop`) is limited to one attempt, and `run` waits between attempts on the event.
    """

    connect_max_retries = 0  # one attempt per connect; run() owns the pause and the stop check

    def __init__(self, ctx, *, url: str | None = None, send: Send | None = None, prefetch: int = DEFAULT_PREFETCH,
                 queue_prefix: str | None = None):
        self.ctx = ctx
        self.url = url or ctx.settings.event_bus_url
        self.connection: Connection = bus.connect(self.url)
        if self.url.startswith("memory://"):
            # kombu polls in-process queues once a second by default: too slow for a command.
            self.connection.transport_options["polling_interval"] = MEMORY_POLL_S
        self.queue = bus.commands_queue(queue_prefix or ctx.settings.queue_prefix)
        self.send = send or send_to_actor
        self.prefetch = prefetch
        self.ready = threading.Event()  # set once the consumer is attached to its queue
        self.counts: dict[str, int] = {}  # outcome → messages of this Bridge, for tests
        self._stop = threading.Event()
        self._pause_s = 0.0
        self.declare_queue()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def should_stop(self) -> bool:  # read by ConsumerMixin's loops
        return self._stop.is_set()

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if value:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def declare_queue(self) -> bool:
        """Declare the durable queue and its binding now, so commands published before the
        consumer starts are kept (an exchange drops what no queue is bound to). Best effort:
        `run` declares again when it connects."""
        try:
            with bus.connect(self.url) as conn:
                self.queue.bind(conn.default_channel).declare()
            return True
        except Exception as exc:  # the bus may be down at start; run() retries
            log.warning("bridge.declare_failed", error=type(exc).__name__)
            return False

    def run(self, stop_event: threading.Event | None = None, **kwargs) -> None:
        """Consume until stopped, reconnecting with a pause whenever the bus goes away."""
        if stop_event is not None:
            self._stop = stop_event
        log.info("bridge.starting", queue=self.queue.name)
        pause = 0.5
        while not self.should_stop:
            try:
                for _ in self.consume(**kwargs):
                    pause = 0.5
            except Exception as exc:  # connection lost or refused: try again after a pause
                self.ready.clear()
                log.warning("bridge.connection_lost", error=type(exc).__name__)
                self._stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_S)
        self.connection.release()
        log.info("bridge.stopped")

    # -- kombu hooks --------------------------------------------------------------------------

    def get_consumers(self, Consumer, channel):
        # on_message gets the raw message: kombu neither decodes it nor acks a bad one.
        return [Consumer(queues=[self.queue], on_message=self.on_message, prefetch_count=self.prefetch)]

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """kombu could not undo the message's encoding before handing it over (e.g. an unknown
        `compression` header). Its default logs the whole body and acks; instead the message
        goes the way of every other one, and `process` fails it as invalid."""
        self.on_message(message)

    def on_consume_ready(self, connection, channel, consumers, **kwargs) -> None:
        self.ready.set()
        log.info("bridge.consuming", queue=self.queue.name, prefetch=self.prefetch)

    def on_connection_error(self, exc, interval) -> None:
        log.warning("bridge.connection_error", error=type(exc).__name__, retry_in_s=interval)

    def on_message(self, message: Message) -> None:
        try:
            outcome = self.process(message)
        except Exception as exc:
            # The database or the Dramatiq broker is unavailable (or a bug): put the message
            # back and pause, rather than ack and lose it or spin on it.
            log.warning("bridge.requeued", error=type(exc).__name__, detail=str(exc)[:200])
            self._count("requeued")
            message.requeue()
            self._pause_s = min(max(self._pause_s * 2, 0.2), MAX_PAUSE_S)
            self._stop.wait(self._pause_s)
            return
        self._pause_s = 0.0
        message.ack()
        self._count(outcome)

    # -- one message --------------------------------------------------------------------------

    def process(self, message: Message) -> str:
        """Send a valid command on, or fail an invalid one; returns "sent", "invalid" or "duplicate".

        Raises when the message must be requeued (infrastructure down)."""
        text, problem = decode_body(message)
        envelope = None
        if problem is None:
            try:
                envelope = json.loads(text)
            except ValueError as exc:
                problem = f"not JSON: {exc}"
        cmd = None
        if problem is None:
            try:
                cmd = parse_command(envelope)
            except InvalidMessage as exc:
                problem = str(exc)
        if problem is not None:
            outcome = fail_command(envelope, "invalid", problem, self.ctx, raw_body=text,
                                   dead_letter_source="bridge")
            log.warning("bridge.invalid", command_id=_id_of(envelope), detail=problem[:200])
            return "invalid" if outcome == "failed" else outcome
        # Recorded before the ack, so a command the Dramatiq broker loses is still sent again
        # (handlers.command_inbox.repair); a redelivery of a finished command is not sent.
        if not record_received(self.ctx, cmd, envelope):
            log.info("bridge.duplicate", command_id=cmd.id, command_type=cmd.type)
            return "duplicate"
        self.send(envelope)
        log.info("bridge.sent", command_id=cmd.id, command_type=cmd.type)
        return "sent"

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        metrics.BRIDGE_MESSAGES.labels(outcome).inc()


def decode_body(message: Message) -> tuple[str, str | None]:
    """The body as text, and what is wrong with it (None when it may be a JSON command)."""
    body = message.body
    problem = None
    compression = (message.headers or {}).get("compression")
    if compression:
        try:
            from kombu.compression import decompress

            body = decompress(body, compression)
        except Exception as exc:
            problem = f"cannot decompress ({compression}): {type(exc).__name__}"
    content_type = (message.content_type or "").split(";")[0].strip().lower()
    if problem is None and content_type not in JSON_CONTENT_TYPES:
        problem = f"unsupported content type {content_type!r}; commands are CloudEvents JSON"
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        try:
            return raw.decode("utf-8"), problem
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace"), problem or "body is not UTF-8"
    return str(body), problem


def _id_of(envelope: object) -> str | None:
    return envelope.get("id") if isinstance(envelope, dict) and isinstance(envelope.get("id"), str) else None


def run_bridge() -> None:
    """`billing-sync bridge`: one consumer, until SIGINT/SIGTERM."""
    from ..bootstrap import build_context
    from ..config.settings import get_settings
    from .broker import make_broker
    from .shutdown import stop_on_signals

    settings = get_settings()
    stop = stop_on_signals(threading.Event(), settings.shutdown_grace_s)  # first: start-up hears it too
    make_broker(settings)  # the Dramatiq broker that apply_command.send() publishes to
    bridge = Bridge(build_context(settings))
    bridge.run(stop_event=stop)
