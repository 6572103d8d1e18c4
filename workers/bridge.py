"""The bridge: product commands from the `billing.commands` exchange to the `apply_command` actor.

Product services speak kombu/AMQP CloudEvents, workers speak Dramatiq; the bridge is the only
place where the two meet. It validates each message before a worker ever sees it:

- a valid command is recorded in the database inbox (`CommandInbox`), handed to
  `apply_command` and only then acked — if the database or the Dramatiq broker fails, the
  message is rejected back onto the queue and retried after a pause; if the broker loses it
  after the ack, the scheduler's inbox repair sends it again, so nothing is lost;
- a message that is not a valid command (over 256 KiB, compressed, not UTF-8 JSON, not a
  CloudEvent, an unknown type, bad data) is kept as a `DeadLetter` row and answered with
  `billing.command.failed` (reason `invalid`), both in one transaction, and only then acked. If
  the database is down it is requeued like any other message; if writing its failure keeps
  failing for another reason, the third attempt keeps it in a form that is always storable.

Bodies are read here as raw bytes, never by kombu: kombu's `Message` would decompress a body
with a `compression` header before we see it (unbounded: a small message can expand to
gigabytes) and its `on_decode_error` acks by default, dropping a malformed message without a
trace; its deserializers would happily unpickle. So the channel's messages are built by
`raw_message_class`, which keeps the `compression` header away from kombu, and a compressed
command is `invalid`.

Works on RabbitMQ and on kombu's Redis transport (and `memory://` inside `billing-sync up`).
"""
from __future__ import annotations

import hashlib
import threading
from typing import Callable, NamedTuple

import structlog
from kombu import Connection, Message
from kombu.mixins import ConsumerMixin

from ..config import bus as event_bus
from ..config import metrics
from ..contract.commands import MAX_COMMAND_BYTES, Command, decode_envelope, parse_command, readable_ids
from ..errors import InvalidMessage, TransientError
from ..handlers.command_dispatch import fail_command
from ..handlers.command_inbox import record_received
from ..handlers.messagebus import Bus
from ..models.text import db_text

log = structlog.get_logger(__name__)

DEFAULT_PREFETCH = 16
MAX_PAUSE_S = 10.0
MAX_INVALID_ATTEMPTS = 3  # deliveries of an invalid message whose failure could not be written
MEMORY_POLL_S = 0.02
# What structured-mode CloudEvents JSON may be labelled as; anything else (pickle, yaml, …) is invalid.
JSON_CONTENT_TYPES = ("application/json", event_bus.CLOUDEVENTS_CONTENT_TYPE, "text/plain", "")

Send = Callable[[dict], None]


def send_to_actor(envelope: dict) -> None:
    """Enqueue on the process's current Dramatiq broker (see workers.broker.make_broker)."""
    from .broker import send_command

    send_command(envelope)


class Bridge(ConsumerMixin):
    """Consume `billing.commands` until stopped. One Bridge runs in one thread.

    `send` is how a valid envelope reaches the workers (the `apply_command` actor by default;
    tests may pass another callable). `run(stop_event=…)` returns soon after the event is set,
    in every state: kombu's own reconnect loop (which retries forever and never looks at
    `should_stop`) is limited to one attempt, and `run` waits between attempts on the event.
    """

    connect_max_retries = 0  # one attempt per connect; run() owns the pause and the stop check

    def __init__(self, bus: Bus, *, url: str | None = None, send: Send | None = None, prefetch: int = DEFAULT_PREFETCH,
                 queue_prefix: str | None = None):
        self.bus = bus
        self.url = url or bus.settings.event_bus_url
        self.connection: Connection = event_bus.connect(self.url)
        if self.url.startswith("memory://"):
            # kombu polls in-process queues once a second by default: too slow for a command.
            self.connection.transport_options["polling_interval"] = MEMORY_POLL_S
        self.queue = event_bus.commands_queue(queue_prefix or bus.settings.queue_prefix)
        self.send = send or send_to_actor
        self.prefetch = prefetch
        self.ready = threading.Event()  # set once the consumer is attached to its queue
        self.counts: dict[str, int] = {}  # outcome → messages of this Bridge, for tests
        self._stop = threading.Event()
        self._pause_s = 0.0
        self._failed_attempts: dict[str, int] = {}  # body hash → failed writes of its failure
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
            with event_bus.connect(self.url) as conn:
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
        # Messages of this channel keep their raw body (see raw_message_class), and on_message
        # gets them undecoded: kombu neither decodes, decompresses nor acks a bad one.
        channel.Message = raw_message_class(channel.Message)
        return [Consumer(queues=[self.queue], on_message=self.on_message, prefetch_count=self.prefetch)]

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """kombu could not build the message (raw_message_class leaves it little to fail at: it
        never decompresses). Its default logs the whole body and acks; instead the message goes
        the way of every other one, and `process` fails it as invalid."""
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
        envelope, cmd, text, problem = read_command(message)
        if problem is not None:
            outcome = self._fail_invalid(envelope, text, problem)
            log.warning("bridge.invalid", command_id=readable_ids(envelope)[0], detail=db_text(problem, 200))
            return "invalid" if outcome == "failed" else outcome
        # Recorded before the ack, so a command the Dramatiq broker loses is still sent again
        # (handlers.command_inbox.repair); a redelivery of a finished command is not sent.
        if not self.bus.call(record_received, cmd, envelope):
            log.info("bridge.duplicate", command_id=cmd.id, command_type=cmd.type)
            return "duplicate"
        self.send(envelope)
        log.info("bridge.sent", command_id=cmd.id, command_type=cmd.type)
        return "sent"

    def _fail_invalid(self, envelope: object, text: str, problem: str) -> str:
        """`fail_command`, retried on the next deliveries while the database is down; after
        `MAX_INVALID_ATTEMPTS` failures for any other reason, the message is kept with its body
        escaped to ASCII and no ids, which any database stores, so it cannot block the queue."""
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        try:
            outcome = self.bus.call(fail_command, envelope, "invalid", problem, raw_body=text,
                                    dead_letter_source="bridge")
        except TransientError:
            raise
        except Exception as exc:
            if len(self._failed_attempts) > 10_000:  # a bound on memory, not a policy
                self._failed_attempts.clear()
            attempts = self._failed_attempts[key] = self._failed_attempts.get(key, 0) + 1
            if attempts < MAX_INVALID_ATTEMPTS:
                raise
            log.error("bridge.invalid_kept_escaped", attempts=attempts, error=type(exc).__name__)
            outcome = self.bus.call(fail_command, None, "invalid", f"{problem} (kept escaped after {attempts} failed "
                                    f"attempts to store it: {type(exc).__name__})", raw_body=ascii(text),
                                    dead_letter_source="bridge")
        self._failed_attempts.pop(key, None)
        return outcome

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        metrics.BRIDGE_MESSAGES.labels(outcome).inc()


def raw_message_class(transport_message: type[Message]) -> type[Message]:
    """The transport's Message class with `_RawBody` between it and kombu's `Message`."""
    if issubclass(transport_message, _RawBody):
        return transport_message
    cls = _RAW_CLASSES.get(transport_message)
    if cls is None:
        cls = _RAW_CLASSES[transport_message] = type(f"RawBody{transport_message.__name__}",
                                                     (transport_message, _RawBody), {})
    return cls


class _RawBody(Message):
    """Sits between a transport's Message (pyamqp's, the Redis/memory transports') and kombu's
    `Message`, whose constructor decompresses the body when the headers name a `compression`:
    that header is hidden from it and restored after, so `body` stays the bytes as received.
    (The transports pass `headers=` by keyword, which is what this relies on.)"""

    def __init__(self, *args, headers=None, **kwargs):
        headers = headers or {}
        super().__init__(*args, headers={k: v for k, v in headers.items() if k != "compression"}, **kwargs)
        self.headers = headers


_RAW_CLASSES: dict[type, type] = {}


class Received(NamedTuple):
    envelope: object  # the decoded JSON, or None when it could not be decoded
    command: Command | None  # None when the message is not a valid command
    text: str  # the body as text, for its dead letter (bytes that are not UTF-8 as \\xNN)
    problem: str | None  # what is wrong, None for a valid command


def read_command(message: Message) -> Received:
    """What a message holds. Never raises: a message that cannot be read, whatever the reason,
    is an invalid command (and a bug in validation shows up as dead letters, not as a stalled
    queue)."""
    raw = _raw_bytes(message.body)
    text = raw[:MAX_COMMAND_BYTES].decode("utf-8", errors="backslashreplace")
    envelope = None
    try:
        compression = (message.headers or {}).get("compression")
        if compression:
            raise InvalidMessage(f"compressed ({str(compression)[:64]!r}); commands are plain CloudEvents JSON")
        content_type = str(message.content_type or "").split(";")[0].strip().lower()
        if content_type not in JSON_CONTENT_TYPES:
            raise InvalidMessage(f"unsupported content type {content_type[:64]!r}; commands are CloudEvents JSON")
        envelope = decode_envelope(raw)
        return Received(envelope, parse_command(envelope), text, None)
    except InvalidMessage as exc:
        return Received(envelope, None, text, str(exc))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.error("bridge.unreadable", error=type(exc).__name__)
        return Received(envelope, None, text, f"could not be read ({type(exc).__name__})")


def _raw_bytes(body: object) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return b"" if body is None else str(body).encode("utf-8", "surrogatepass")


def run_bridge() -> None:
    """`billing-sync bridge`: one consumer, until SIGINT/SIGTERM."""
    from ..bootstrap import bootstrap
    from ..config.settings import get_settings
    from .broker import make_broker
    from .shutdown import stop_on_signals

    settings = get_settings()
    stop = stop_on_signals(threading.Event(), settings.shutdown_grace_s)  # first: start-up hears it too
    make_broker(settings)  # the Dramatiq broker that apply_command.send() publishes to
    bridge = Bridge(bootstrap(settings))
    bridge.run(stop_event=stop)
