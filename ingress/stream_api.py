"""`GET /v1/stream`: every `billing.entitlements.changed` and `billing.account.changed` as
Server-Sent Events, for the product services' caches (`client.py:Entitlements`, or any SSE client).

Service tokens only (a tenant token would see every tenant): 401 otherwise. The wire format is the
README's ("Entitlement stream"); in short:

    retry: 1000
    id: 1841                                  the change's stream position (Last-Event-ID)
    event: billing.entitlements.changed       the CloudEvents type
    data: {"specversion":"1.0","id":"…",…}   the CloudEvent as on billing.events
    : keepalive                               every `stream_heartbeat_s` of silence

A connection resumes after `Last-Event-ID` (header, or `?last_event_id=`) when it can: the position
is in the database (`outbox.stream_seq`, given in commit order), so any ingress process, also after
a restart, continues exactly there. When it cannot (no id, an id that is not one of ours, or whose
next change is older than `stream_retention_s`), the stream says `reset` and, with `?snapshot=1`,
sends every tenant's entitlements (`snapshot`) before going on; `ready` says the client is caught
up. No Stripe call, no write.

A slow client costs no memory (stream_hub.py: connections are cursors into one shared ring) and
is disconnected when a write has not gone out within `stream_write_timeout_s`; it then reconnects
with its Last-Event-ID like after any cut.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..contract.stream_wire import KEEPALIVE, READY, RESET, SNAPSHOT, sse_message
from ..handlers.messagebus import Bus
from .read_api import _snapshot_json
from .service_auth import bearer_check, unauthorized
from .stream_hub import StreamHub, encode_row

log = structlog.get_logger(__name__)

RETRY_MS = 1000
SNAPSHOT_PAGE = 500
PARAMS = {"last_event_id", "snapshot", "heartbeat_s"}
MAX_POSITION_DIGITS = 19


class EventStream(Response):
    """text/event-stream from an async iterator of byte chunks; each write must go out within
    `write_timeout_s` (else the connection is dropped), and a client that hangs up ends it."""

    media_type = "text/event-stream"

    def __init__(self, chunks: AsyncIterator[bytes], write_timeout_s: float):
        # Not Response.__init__: it would render an empty body and announce Content-Length: 0.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._chunks = chunks
        self._write_timeout_s = write_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as tasks:
            async def hang_up() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tasks.cancel_scope.cancel()

            tasks.start_soon(hang_up)
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            try:
                async for chunk in self._chunks:
                    with anyio.fail_after(self._write_timeout_s):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:  # the client stopped reading: drop it (uvicorn closes the socket)
                log.info("stream.client_too_slow", write_timeout_s=self._write_timeout_s)
                tasks.cancel_scope.cancel()
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tasks.cancel_scope.cancel()


def routes(bus: Bus) -> list[Route]:
    settings = bus.settings
    authorized = bearer_check(settings)
    hub = StreamHub(bus)

    def bad_parameter(param: str, detail: str) -> JSONResponse:
        return JSONResponse({"error": "invalid_parameter", "param": param, "detail": detail}, status_code=400)

    async def stream(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        query = request.query_params
        for name in query:
            if name not in PARAMS or len(query.getlist(name)) > 1:
                return bad_parameter(name, "unknown or repeated parameter")
        snapshot = query.get("snapshot", "0")
        if snapshot not in ("0", "1", "true", "false"):
            return bad_parameter("snapshot", "1 or 0")
        heartbeat_s = settings.stream_heartbeat_s
        if "heartbeat_s" in query:
            try:
                heartbeat_s = float(query["heartbeat_s"])
            except ValueError:
                heartbeat_s = 0
            if not 1 <= heartbeat_s <= 300:
                return bad_parameter("heartbeat_s", "seconds, 1-300")
        last_event_id = request.headers.get("last-event-id", query.get("last_event_id"))
        await hub.start()
        chunks = _events(bus, hub, last_event_id, snapshot in ("1", "true"), heartbeat_s)
        return EventStream(chunks, settings.stream_write_timeout_s)

    return [Route("/v1/stream", stream, methods=["GET"])]


def _resume_point(bus: Bus, last_event_id: str | None) -> tuple[int, int | None, str | None]:
    """(head, where to resume or None, why not): a resume only from a position of ours whose next
    change is within the retention."""
    with bus.uow_factory() as uow:
        head = uow.stream_log.head()
        if last_event_id is None or last_event_id == "":
            return head, None, "no_position"
        text = last_event_id.strip()
        if not text.isascii() or not text.isdigit() or len(text) > MAX_POSITION_DIGITS:
            return head, None, "unknown_position"
        position = int(text)
        if position > head:  # not ours: another database, or one restored from a backup
            return head, None, "unknown_position"
        first = uow.stream_log.written_after(position)
        if first is not None and first < bus.now() - timedelta(seconds=bus.settings.stream_retention_s):
            return head, None, "retention"
        return head, position, None


def _snapshot_pages(bus: Bus, after: str | None) -> tuple[list[dict], str | None]:
    with bus.uow_factory() as uow:
        rows = uow.stream_log.snapshots(after, SNAPSHOT_PAGE)
        return [_snapshot_json(row) for row in rows], (rows[-1].tenant_id if len(rows) == SNAPSHOT_PAGE else None)


async def _events(bus: Bus, hub: StreamHub, last_event_id: str | None, snapshot: bool,
                  heartbeat_s: float) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    head, cursor, why = await run_in_threadpool(_resume_point, bus, last_event_id)
    if cursor is None:
        cursor = head
        if why != "no_position":
            yield sse_message({"reason": why, "position": str(head)}, event=RESET)
        if snapshot:  # read after the head: whatever it misses comes after the head, below
            after: str | None = None
            while True:
                documents, after = await run_in_threadpool(_snapshot_pages, bus, after)
                for document in documents:
                    yield sse_message(document, event=SNAPSHOT)
                if after is None:
                    break
    ready_at = max(head, cursor)  # `ready` once everything up to the head at connect went out
    ready_sent = False
    while True:
        if cursor >= ready_at and not ready_sent:
            yield sse_message({"position": str(cursor), "resumed": why is None}, event=READY, id=str(cursor))
            ready_sent = True
        changed = hub.changed
        if cursor < hub.base:  # older than the ring: catch up from the database
            rows = await run_in_threadpool(hub.read_page, cursor)
            for row in rows:
                yield encode_row(row)
            cursor = rows[-1].position if rows else hub.base
            continue
        messages = hub.after(cursor)
        if messages:
            cursor = hub.last_position(cursor, len(messages))
            yield b"".join(messages)
            continue
        if cursor < ready_at:  # the hub has not read up to the head we saw yet
            with anyio.move_on_after(0.05):
                await changed.wait()
            continue
        with anyio.move_on_after(heartbeat_s) as waited:
            await changed.wait()
        if waited.cancelled_caught:
            yield KEEPALIVE
