"""`/readyz` for the roles that have no ingress (worker, bridge, relay, scheduler): the role can
do its work when its database and its message broker answer.

Served beside `/metrics` on the role's metrics port (config/metrics_http.py), so that Docker's
`HEALTHCHECK`, compose's `healthcheck` and Kubernetes' readiness probe ask the same question of
every role. Each answer is cached for `CACHE_S`: a probe every second from several places must
not open a connection each time. The caveat: "ready" means the dependencies answered a ping
just now, not that the role's loop is making progress; liveness (`/healthz`) only says the
process serves HTTP, and a stuck loop shows in the role's metrics (queue age, outbox backlog).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, text

from ..config.settings import Settings
from ..models import make_engine

CACHE_S = 1.0
CHECK_TIMEOUT_S = 2.0

Check = Callable[[], None]


class DependencyReadiness:
    """Callable: `(ready, {"database": "ok" | "unavailable (…)", "broker": …})`."""

    def __init__(self, checks: dict[str, Check]):
        self._checks = checks
        self._lock = threading.Lock()
        self._answer: tuple[bool, dict[str, str]] = (False, {})
        self._at = float("-inf")

    def __call__(self) -> tuple[bool, dict[str, str]]:
        with self._lock:
            if time.monotonic() - self._at >= CACHE_S:
                states = {name: _state(check) for name, check in self._checks.items()}
                self._answer = (all(state == "ok" for state in states.values()), states)
                self._at = time.monotonic()
            return self._answer


def role_readiness(settings: Settings) -> DependencyReadiness:
    """The database and, unless embedded, the event bus and the broker of `settings`."""
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    checks: dict[str, Check] = {"database": lambda: _ping_database(engine)}
    if not settings.embedded_broker:
        checks["broker"] = lambda: _ping_broker(settings.broker_url)
        if settings.event_bus_url != settings.broker_url:
            checks["event_bus"] = lambda: _ping_broker(settings.event_bus_url)
    return DependencyReadiness(checks)


def _state(check: Check) -> str:
    try:
        check()
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the name says which kind
        return f"unavailable ({type(exc).__name__})"


def _ping_database(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _ping_broker(url: str) -> None:
    """Redis answers PING; for amqp:// kombu opens (and closes) a connection. (kombu's Redis
    transport takes a second to say yes, hence redis-py for Redis.)"""
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
        return
    from kombu import Connection

    with Connection(url, connect_timeout=CHECK_TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)
