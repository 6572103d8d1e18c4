"""Leadership: which scheduler of the fleet acts (see `workers/scheduler.py`).

On PostgreSQL the leader holds a session-level advisory lock (`pg_try_advisory_lock`) on a
connection of its own: if the leader dies or its connection drops, PostgreSQL releases the lock
and a standby takes it within a tick (PostgreSQL frees it when the old session's backend exits,
a moment after the connection closed, so the first tick after a loss may still find it taken).
The key derives from the deployment's `BILLING_QUEUE_PREFIX` (`make_lock`) and advisory locks are
per database, so two deployments never compete for one leadership (each has its own database
anyway: its tables and its Stripe account pin are the deployment's own).
On SQLite one process is the whole fleet and always leads.
"""
from __future__ import annotations

import contextlib
import hashlib

import structlog
from sqlalchemy import Connection, Engine, text

log = structlog.get_logger(__name__)


# How the PostgreSQL server notices a leader that vanished without closing its connection (its
# machine died, a partition): TCP keepalives on the lock's session, idle 10 s, then 3 probes 5 s
# apart, so the lock is free for a standby within about 25 s. The server's defaults follow the
# OS's (Linux: 2 h idle), and for that long no scheduler would act.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """Fleet-wide leadership through a PostgreSQL session-level advisory lock.

    The lock lives as long as the connection that took it, so it is held on a connection of its
    own, kept out of the pool; `try_acquire()` on every tick also checks that connection is still
    alive, so a leader that lost its database stops acting. The session asks the server for TCP
    keepalives (`KEEPALIVE_IDLE_S`…), so a leader that vanished frees the lock within about 25 s.
    Caveat: over a Unix socket there are no keepalives, and the leader's host must be gone for
    them to fail: a leader that is alive but stuck keeps the lock.
    """

    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("scheduler.lock_lost", lock=self.name)
                self._close()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        try:
            conn.execute(text("SELECT set_config('tcp_keepalives_idle', :idle, false), "
                              "set_config('tcp_keepalives_interval', :interval, false), "
                              "set_config('tcp_keepalives_count', :count, false)"),
                         {"idle": str(KEEPALIVE_IDLE_S), "interval": str(KEEPALIVE_INTERVAL_S),
                          "count": str(KEEPALIVE_COUNT)})
        except Exception:
            self._close()  # and the lock with its session
            raise
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):  # the connection is gone, and the lock with it
            self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()  # never hand a lock-holding session back to the pool
            conn.close()
        except Exception:
            pass


class ProcessLock:
    """For SQLite: one process is the whole fleet, so it is always the leader."""

    held = True

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def make_lock(engine: Engine, prefix: str):
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, f"{prefix}:scheduler")
    return ProcessLock()
