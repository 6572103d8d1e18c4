"""`billing-sync dlq list | replay | purge`: the operator's view of messages that failed for good.

A dead letter holds the actor (`source`), the business id (Stripe event or command id), why it
failed, and the message's arguments, so that `replay` can send the very same message to its
actor again once the cause is fixed. The handlers' ledger makes a replay safe even if the
message had in fact been applied. A replay that fails again becomes a new dead letter.

With a shared broker (Redis, RabbitMQ) `replay` enqueues for the running workers. With the
embedded broker no worker can be reached from here, so the message runs once, synchronously,
in this process; if it fails, the dead letter stays un-replayed and the error is printed.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from ..handlers.messagebus import Bus
from ..models import utcnow
from ..workers.actors import ACTOR_NAMES


def _bus(bus: Bus | None) -> Bus:
    if bus is not None:
        return bus
    from ..bootstrap import bootstrap

    return bootstrap()


def _out(out: TextIO | None) -> TextIO:
    return out or sys.stdout


def _summary(row) -> dict:
    return {"id": row.id, "failed_at": row.failed_at.isoformat(), "source": row.source, "message_id": row.message_id,
            "reason": row.reason, "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
            "detail": row.detail}


def dead_letter_rows(limit: int = 50, *, reason: str | None = None, source: str | None = None,
                     since: datetime | None = None, bus: Bus | None = None) -> list[dict]:
    """The newest dead letters (of that reason, source, failed since), as plain dicts."""
    bus = _bus(bus)
    with bus.uow_factory() as uow:  # read the rows inside: leaving a unit of work expires them
        return [_summary(row) for row in uow.dead_letters.newest(limit, reason=reason, source=source, since=since)]


def dead_letter(dead_id: int, *, bus: Bus | None = None) -> dict | None:
    """One dead letter with its body (JSON when it is JSON, else the stored text), or None."""
    bus = _bus(bus)
    with bus.uow_factory() as uow:
        row = uow.dead_letters.get(dead_id)
        if row is None:
            return None
        document, body = _summary(row), row.body
    try:
        document["body"] = json.loads(body)
    except ValueError:
        document["body"] = body
    return document


def dead_letter_counts(*, bus: Bus | None = None) -> tuple[int, int]:
    """(in total, never replayed)."""
    with _bus(bus).uow_factory() as uow:
        return uow.dead_letters.counts()


def list_dead_letters(limit: int = 50, *, reason: str | None = None, source: str | None = None,
                      since: datetime | None = None, bus: Bus | None = None, out: TextIO | None = None) -> int:
    """Print the newest dead letters as a table; returns how many were shown."""
    rows = dead_letter_rows(limit, reason=reason, source=source, since=since, bus=bus)
    out = _out(out)
    if not rows:
        print("no dead letters", file=out)
        return 0
    header = f"{'ID':>6}  {'FAILED AT (UTC)':25}  {'SOURCE':20}  {'MESSAGE':32}  {'REASON':18}  {'REPLAYED':8}  DETAIL"
    print(header, file=out)
    for row in rows:
        print(
            f"{row['id']:>6}  {row['failed_at'][:25]:25}  {row['source'][:20]:20}  {(row['message_id'] or '-')[:32]:32}"
            f"  {row['reason'][:18]:18}  {'yes' if row['replayed_at'] else 'no':8}  {(row['detail'] or '')[:80]}",
            file=out,
        )
    return len(rows)


def decode_body(body: str) -> tuple[list, dict]:
    """A stored body → (args, kwargs); a bare JSON list is taken as the args."""
    data = json.loads(body)
    if isinstance(data, dict) and "args" in data:
        return list(data["args"]), dict(data.get("kwargs") or {})
    if isinstance(data, list):
        return data, {}
    return [data], {}


def replay(ids: list[int], replay_all: bool = False, *, bus: Bus | None = None, broker=None,
           out: TextIO | None = None) -> int:
    """Send dead letters back to their actors (`--all`: every one not replayed yet).

    Returns 0 when every selected dead letter was replayed, 1 otherwise.
    """
    bus, out = _bus(bus), _out(out)
    if not ids and not replay_all:
        print("nothing to replay: give dead-letter ids or --all", file=out)
        return 1
    send = actor_sender(bus, broker)
    failures = 0
    # Read first and let go of the database: an embedded replay runs the handler right here,
    # and on SQLite an open transaction would hold the write lock it needs.
    with bus.uow_factory() as uow:
        rows = [(row.id, row.source, row.message_id, row.body)
                for row in uow.dead_letters.selected(ids, everything=replay_all)]
    for dead_id in sorted(set(ids) - {row[0] for row in rows}):
        print(f"{dead_id}: no such dead letter", file=out)
        failures += 1
    for dead_id, source, message_id, body in rows:
        if source not in ACTOR_NAMES:
            print(f"{dead_id}: source {source!r} is not an actor; cannot replay", file=out)
            failures += 1
            continue
        try:
            args, kwargs = decode_body(body)
            send(source, args, kwargs)
        except Exception as exc:
            print(f"{dead_id}: replay failed: {type(exc).__name__}: {exc}", file=out)
            failures += 1
            continue
        with bus.uow_factory() as uow:  # one by one: a later failure keeps this mark
            uow.dead_letters.mark_replayed(dead_id, utcnow())
            uow.commit()
        print(f"{dead_id}: replayed {source} {message_id or ''}".rstrip(), file=out)
    return 1 if failures else 0


def actor_sender(bus: Bus, broker) -> Callable[[str, list, dict], None]:
    """How a replay reaches its actor: the shared broker, or (embedded) a direct call here."""
    if broker is None and bus.settings.embedded_broker:
        from ..workers.broker import make_broker

        # The embedded broker, in this process, its actors on this bus.
        here = make_broker(bus.settings, make_current=False, bus=bus)

        def run_here(actor_name: str, args: list, kwargs: dict) -> None:
            here.get_actor(actor_name)(*args, **kwargs)  # calls the actor's function, right here

        return run_here
    if broker is None:
        from ..workers.broker import make_broker

        broker = make_broker(bus.settings)

    def enqueue(actor_name: str, args: list, kwargs: dict) -> None:
        broker.get_actor(actor_name).send(*args, **kwargs)

    return enqueue


def purge(ids: list[int], purge_all: bool = False, *, bus: Bus | None = None, out: TextIO | None = None) -> int:
    """Delete dead letters (`--all`: every one). Returns 0, or 1 when an id did not exist."""
    bus, out = _bus(bus), _out(out)
    if not ids and not purge_all:
        print("nothing to purge: give dead-letter ids or --all", file=out)
        return 1
    missing: set[int] = set()
    with bus.uow_factory() as uow:
        if not purge_all:
            missing = set(ids) - uow.dead_letters.existing(ids)
        count = uow.dead_letters.delete(None if purge_all else ids)
        uow.commit()
    for dead_id in sorted(missing):
        print(f"{dead_id}: no such dead letter", file=out)
    print(f"purged {count} dead letter(s)", file=out)
    return 1 if missing else 0
