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


def list_dead_letters(limit: int = 50, *, bus: Bus | None = None, out: TextIO | None = None) -> int:
    """Print the newest dead letters as a table; returns how many were shown."""
    bus, out = _bus(bus), _out(out)
    with bus.uow_factory() as uow:  # read the rows inside: leaving a unit of work expires them
        rows = [(row.id, row.failed_at, row.source, row.message_id, row.reason, row.replayed_at, row.detail)
                for row in uow.dead_letters.newest(limit)]
    if not rows:
        print("no dead letters", file=out)
        return 0
    header = f"{'ID':>6}  {'FAILED AT (UTC)':19}  {'SOURCE':20}  {'MESSAGE':32}  {'REASON':18}  {'REPLAYED':8}  DETAIL"
    print(header, file=out)
    for dead_id, failed_at, source, message_id, reason, replayed_at, detail in rows:
        print(
            f"{dead_id:>6}  {failed_at:%Y-%m-%d %H:%M:%S}  {source[:20]:20}  {(message_id or '-')[:32]:32}"
            f"  {reason[:18]:18}  {'yes' if replayed_at else 'no':8}  {(detail or '')[:80]}",
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
    send = _sender(bus, broker)
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


def _sender(bus: Bus, broker) -> Callable[[str, list, dict], None]:
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
