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
from typing import Callable, TextIO

from sqlalchemy import delete, select, update

from ..models import make_session_factory, utcnow
from ..models.tables import DeadLetter
from .actors import ACTOR_SPECS


def _context(ctx):
    if ctx is not None:
        return ctx
    from .context import get_context

    return get_context()


def _out(out: TextIO | None) -> TextIO:
    return out or sys.stdout


def list_dead_letters(limit: int = 50, *, ctx=None, out: TextIO | None = None) -> int:
    """Print the newest dead letters as a table; returns how many were shown."""
    ctx, out = _context(ctx), _out(out)
    with make_session_factory(ctx.engine)() as session:
        rows = session.execute(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)).scalars().all()
    if not rows:
        print("no dead letters", file=out)
        return 0
    header = f"{'ID':>6}  {'FAILED AT (UTC)':19}  {'SOURCE':20}  {'MESSAGE':32}  {'REASON':18}  {'REPLAYED':8}  DETAIL"
    print(header, file=out)
    for row in rows:
        print(
            f"{row.id:>6}  {row.failed_at:%Y-%m-%d %H:%M:%S}  {row.source[:20]:20}  {(row.message_id or '-')[:32]:32}"
            f"  {row.reason[:18]:18}  {'yes' if row.replayed_at else 'no':8}  {(row.detail or '')[:80]}",
            file=out,
        )
    return len(rows)


def _to_replay(session, ids: list[int], everything: bool) -> list[DeadLetter]:
    """The given dead letters, or (`everything`) every one not replayed yet."""
    query = select(DeadLetter).order_by(DeadLetter.id)
    if everything:
        query = query.where(DeadLetter.replayed_at.is_(None))
    else:
        query = query.where(DeadLetter.id.in_(ids))
    return list(session.execute(query).scalars())


def decode_body(body: str) -> tuple[list, dict]:
    """A stored body → (args, kwargs); a bare JSON list is taken as the args."""
    data = json.loads(body)
    if isinstance(data, dict) and "args" in data:
        return list(data["args"]), dict(data.get("kwargs") or {})
    if isinstance(data, list):
        return data, {}
    return [data], {}


def replay(ids: list[int], replay_all: bool = False, *, ctx=None, broker=None,
           out: TextIO | None = None) -> int:
    """Send dead letters back to their actors (`--all`: every one not replayed yet).

    Returns 0 when every selected dead letter was replayed, 1 otherwise.
    """
    ctx, out = _context(ctx), _out(out)
    if not ids and not replay_all:
        print("nothing to replay: give dead-letter ids or --all", file=out)
        return 1
    send = _sender(ctx, broker)
    failures = 0
    sessions = make_session_factory(ctx.engine)
    # Read first and let go of the database: an embedded replay runs the handler right here,
    # and on SQLite an open transaction would hold the write lock it needs.
    with sessions() as session:
        rows = [(row.id, row.source, row.message_id, row.body)
                for row in _to_replay(session, ids, replay_all)]
    for dead_id in sorted(set(ids) - {row[0] for row in rows}):
        print(f"{dead_id}: no such dead letter", file=out)
        failures += 1
    for dead_id, source, message_id, body in rows:
        if source not in ACTOR_SPECS:
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
        with sessions() as session, session.begin():  # one by one: a later failure keeps this mark
            session.execute(update(DeadLetter).where(DeadLetter.id == dead_id).values(replayed_at=utcnow()))
        print(f"{dead_id}: replayed {source} {message_id or ''}".rstrip(), file=out)
    return 1 if failures else 0


def _sender(ctx, broker) -> Callable[[str, list, dict], None]:
    """How a replay reaches its actor: the shared broker, or (embedded) a direct call here."""
    if broker is None and ctx.settings.embedded_broker:
        from .context import set_context

        set_context(ctx)

        def run_here(actor_name: str, args: list, kwargs: dict) -> None:
            fn = ACTOR_SPECS[actor_name][0]
            fn(*args, **kwargs)

        return run_here
    if broker is None:
        from .broker import make_broker

        broker = make_broker(ctx.settings)

    def enqueue(actor_name: str, args: list, kwargs: dict) -> None:
        broker.get_actor(actor_name).send(*args, **kwargs)

    return enqueue


def purge(ids: list[int], purge_all: bool = False, *, ctx=None, out: TextIO | None = None) -> int:
    """Delete dead letters (`--all`: every one). Returns 0, or 1 when an id did not exist."""
    ctx, out = _context(ctx), _out(out)
    if not ids and not purge_all:
        print("nothing to purge: give dead-letter ids or --all", file=out)
        return 1
    missing: set[int] = set()
    with make_session_factory(ctx.engine)() as session, session.begin():
        query = delete(DeadLetter)
        if not purge_all:
            existing = set(session.execute(select(DeadLetter.id).where(DeadLetter.id.in_(ids))).scalars())
            missing = set(ids) - existing
            query = query.where(DeadLetter.id.in_(ids))
        count = session.execute(query).rowcount
    for dead_id in sorted(missing):
        print(f"{dead_id}: no such dead letter", file=out)
    print(f"purged {count} dead letter(s)", file=out)
    return 1 if missing else 0
