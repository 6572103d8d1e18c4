"""The Dramatiq broker, chosen by `BILLING_BROKER_URL`, with our actors and middleware on it.

- `redis://…` → RedisBroker. Keys live under the `queue_prefix` namespace. A worker that dies
  holding messages is noticed once its heartbeat is older than `heartbeat_timeout_ms`
  (15 s here instead of Dramatiq's 60 s) *and* a maintenance pass runs on that queue;
  Dramatiq runs one on 0.1 % of broker commands, which on a quiet queue can take many minutes,
  so we run one on a quarter of them. A pass costs two sorted-set range reads while every
  worker is alive, so this is cheap; together the messages of a SIGKILLed worker come back
  within heartbeat + a few seconds.
- `amqp://…` → RabbitmqBroker with publisher confirms, so `send()` returns only once RabbitMQ
  has taken the message (and raises when it has not). RabbitMQ redelivers a dead worker's
  unacked messages as soon as its connection drops.
- `embedded` → StubBroker: in-process only, for `billing-sync up`.

`make_broker` never touches the network, so a process can start while the broker is down
(the ingress answers 503 until it is back). It declares our actors on the broker and, by
default, makes it the process's current broker (`current_broker()`, `dramatiq.get_broker()`),
which is what the Dramatiq CLI workers, the ingress, the bridge and the scheduler use.
"""
from __future__ import annotations

import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries, TimeLimit

from ..config.settings import Settings, get_settings
from ..handlers.messagebus import Bus
from .actors import actors_of, declare_actors
from .middleware import ActorMetrics, DeadLetters, install_log_redaction, make_retry_when

# Out of Dramatiq's scale of 1,000,000 broker commands (its default: 1,000).
REDIS_MAINTENANCE_CHANCE = 250_000
REDIS_SOCKET_TIMEOUT_S = 10
REDIS_CONNECT_TIMEOUT_S = 3

_current: dramatiq.Broker | None = None
_current_lock = threading.RLock()


def make_middleware(settings: Settings) -> list:
    """Retries only for transient errors, capped backoff; dead letters; metrics; time limits.

    Dramatiq's AgeLimit is left out (an old event must still be applied), and so are Callbacks,
    Pipelines and ShutdownNotifications (unused). Order matters: Dramatiq runs `after_*` hooks
    last-to-first, so ActorMetrics and DeadLetters see the message after Retries decided.
    """
    return [
        ActorMetrics(),
        DeadLetters(),
        TimeLimit(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
            retry_when=make_retry_when(settings.max_retries),
        ),
    ]


def pika_url(url: str) -> str:
    """The broker URL as pika reads it.

    kombu (the event bus) writes the default vhost as `amqp://host//`, which pika would read as
    the vhost "" — so an empty or `/` path becomes `/%2F`. Also adds pika defaults that keep a
    publisher from hanging: a connect timeout, and a limit on how long RabbitMQ may block us
    under a resource alarm."""
    parts = urlsplit(url)
    path = "/%2F" if parts.path in ("", "/", "//") else parts.path
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_timeout", "5")
    query.setdefault("blocked_connection_timeout", "30")
    return urlunsplit(parts._replace(path=path, query=urlencode(query)))


def make_broker(settings: Settings, *, make_current: bool = True, bus: Bus | None = None) -> dramatiq.Broker:
    """A broker for `settings.broker_url` with our middleware and actors declared on it; the actors
    run on `bus`, else on one built from `settings` on their first message (workers/actors.py)."""
    url = settings.broker_url
    middleware = make_middleware(settings)
    broker: dramatiq.Broker
    if settings.embedded_broker:
        broker = StubBroker(middleware=middleware)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        import redis
        from dramatiq.brokers.redis import RedisBroker

        # Our own client: RedisBroker(url=…) would build a pool without socket timeouts, and a
        # blackholed Redis would then hang an enqueue (and a webhook request) forever.
        client = redis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT_S,
                                      socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S, health_check_interval=30)
        broker = RedisBroker(client=client, namespace=settings.queue_prefix, middleware=middleware,
                             heartbeat_timeout=settings.heartbeat_timeout_ms,
                             maintenance_chance=REDIS_MAINTENANCE_CHANCE)
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=pika_url(url), confirm_delivery=True, middleware=middleware)
    else:
        raise ValueError("BILLING_BROKER_URL must be redis://…, amqp://… or 'embedded'")
    install_log_redaction()
    declare_actors(broker, settings.queue_prefix, settings=settings, bus=bus)
    if make_current:
        set_current_broker(broker)
    return broker


def set_current_broker(broker: dramatiq.Broker) -> None:
    global _current
    with _current_lock:
        _current = broker
        dramatiq.set_broker(broker)


def current_broker() -> dramatiq.Broker:
    """The process's broker; built from the environment's settings if nobody made one yet."""
    with _current_lock:
        return _current if _current is not None else make_broker(get_settings())


def send_command(envelope: dict) -> None:
    """Enqueue a command for `apply_command` on the process's current broker (the bridge, the
    inbox repair)."""
    actors_of(current_broker()).apply_command.send(envelope)


def enqueue_stripe_event(message: dict) -> None:
    """Enqueue `{"event", "received_at"}` for `process_stripe_event` on the process's current broker
    (`billing-sync catch-up`)."""
    actors_of(current_broker()).process_stripe_event.send(message)


def ping(broker: dramatiq.Broker) -> None:
    """Raise unless the broker's server answers (for /readyz); the stub always answers."""
    if isinstance(broker, StubBroker):
        return
    client = getattr(broker, "client", None)
    if client is not None:  # Redis
        client.ping()
        return
    import pika
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    if isinstance(broker, RabbitmqBroker):
        pika.BlockingConnection(parameters=broker.parameters).close()
