"""One reader of the stream log per ingress process, shared by every `GET /v1/stream` connection.

The hub reads each new row once (woken by PostgreSQL's NOTIFY from migration 0013's trigger, and
every `stream_poll_interval_s` anyway: SQLite, or a lost LISTEN connection), encodes it once as an
SSE message, and keeps the newest `RING_SIZE` of them in a ring. A connection is nothing but a
cursor (a position) into that ring: the hub keeps no queue per client, so a client that reads
slowly costs no memory; it just falls behind. A cursor older than the ring is served from the
database in pages (`uow.stream_log.after`) until it catches up. So memory is bounded by the ring,
whatever the number or speed of the clients.
"""
from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import deque

import anyio
import structlog
from starlette.concurrency import run_in_threadpool

from ..contract.stream_wire import sse_message
from ..handlers.messagebus import Bus
from ..models.stream_log import StreamRow, listen_for_changes

log = structlog.get_logger(__name__)

RING_SIZE = 4096
READ_BATCH = 500
LISTEN_RETRY_S = 5.0


def encode_row(row: StreamRow) -> bytes:
    """A stream row as its SSE message: `id` = the position, `event` = the CloudEvents type, `data`
    = the CloudEvent exactly as the relay publishes it on billing.events."""
    from ..config.bus import cloudevent

    envelope = cloudevent(row.type, row.subject, row.data, id=row.event_id, time=row.created_at)
    return sse_message(envelope, event=row.type, id=str(row.position))


class StreamHub:
    """Reads new rows in the background (started by the first connection, on the app's loop)."""

    def __init__(self, bus: Bus):
        self._bus = bus
        self._poll_s = bus.settings.stream_poll_interval_s
        self._positions: deque[int] = deque()
        self._messages: deque[bytes] = deque()
        self.base = 0  # every row with base < position <= head is in the ring
        self.head = 0
        self._changed = asyncio.Event()
        self._starting = asyncio.Lock()
        self._task: asyncio.Task | None = None

    # -- for the connections -------------------------------------------------------------------

    async def start(self) -> None:
        """Idempotent; the first call reads the head and starts the reader task."""
        async with self._starting:
            if self._task is not None:
                return
            self.head = self.base = await run_in_threadpool(self._read_head)
            self._task = asyncio.get_running_loop().create_task(self._run())

    def covers(self, position: int) -> bool:
        return position >= self.base

    def after(self, position: int) -> list[bytes]:
        """The messages after `position` (which `covers` must hold for)."""
        start = bisect.bisect_right(self._positions, position)
        return [self._messages[i] for i in range(start, len(self._messages))]

    def last_position(self, position: int, count: int) -> int:
        """The position of the `count`-th message after `position` (what the cursor moves to)."""
        start = bisect.bisect_right(self._positions, position)
        return self._positions[start + count - 1]

    @property
    def changed(self) -> asyncio.Event:
        """Set when new rows arrive (take it before looking, then wait on it)."""
        return self._changed

    def read_head(self) -> int:
        return self._read_head()

    def read_page(self, position: int) -> list[StreamRow]:
        with self._bus.uow_factory() as uow:
            return uow.stream_log.after(position, READ_BATCH)

    # -- the reader ----------------------------------------------------------------------------

    def _read_head(self) -> int:
        with self._bus.uow_factory() as uow:
            return uow.stream_log.head()

    async def _run(self) -> None:
        wait = None
        engine = self._bus.engine  # None: a bus without a database of its own (tests); poll
        listen_failed_at = -LISTEN_RETRY_S
        while True:
            try:
                if wait is None and engine is not None and anyio.current_time() - listen_failed_at >= LISTEN_RETRY_S:
                    try:
                        wait = await run_in_threadpool(listen_for_changes, engine)
                    except Exception as exc:  # the database is down: poll, listen again later
                        listen_failed_at = anyio.current_time()
                        log.warning("stream.listen_failed", error=type(exc).__name__)
                await self._read_new()
                if wait is None:
                    await anyio.sleep(self._poll_s)
                    continue
                try:
                    await anyio.to_thread.run_sync(wait, self._poll_s, abandon_on_cancel=True)
                except Exception as exc:
                    log.warning("stream.listen_lost", error=type(exc).__name__)
                    _close(wait)
                    wait, listen_failed_at = None, anyio.current_time()
            except anyio.get_cancelled_exc_class():
                _close(wait)
                raise
            except Exception as exc:  # a read failed (database down): try again after a poll interval
                log.warning("stream.read_failed", error=type(exc).__name__)
                await anyio.sleep(self._poll_s)

    async def _read_new(self) -> None:
        while True:
            rows = await run_in_threadpool(self.read_page, self.head)
            if not rows:
                return
            for row in rows:
                self._positions.append(row.position)
                self._messages.append(encode_row(row))
            self.head = rows[-1].position
            while len(self._positions) > RING_SIZE:
                self.base = self._positions.popleft()
                self._messages.popleft()
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            if len(rows) < READ_BATCH:
                return


def _close(wait) -> None:
    if wait is not None:
        with contextlib.suppress(Exception):  # already broken
            wait.close()
