"""The durable command inbox: "exactly one outcome" without trusting the broker to keep messages,
and the commands of one tenant applied in the order the bridge received them.

- `record_received` (the bridge, before it acks): the command's `CommandInbox` row.
- The dispatcher finishes the row in the transaction that writes the command's outcome, and
  parks a command whose tenant still has an earlier unfinished one (`handle_command` returns
  "waiting", holding no worker thread and no lock).
- `send_next` (the worker, after an outcome): sends the tenant's next command again if it is
  parked, so "send `tenant.provisioned` first" is enough for a `subscription.change` right after.
- `repair` (the scheduler, and `billing-sync inbox repair`): for each tenant's first unfinished
  command, sends it again when it is parked or was last sent more than `older_than_s` ago (the
  broker lost it, or a `send_next` was lost); after `REPAIR_LIMIT` re-sends it gives it its
  failed outcome (`bms_unavailable`) so that no command stays without one.

Nothing can deadlock: a command only ever waits for commands received before it, and the first
unfinished one of a tenant waits for nothing. Re-sending is always safe: the tenant lock and the
ledger make a second delivery of a command a "duplicate" that changes nothing. The caveat: a
command re-sent while its first delivery is merely slow (a backlog older than `older_than_s`)
is delivered twice, which costs one ledger lookup.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Callable

import structlog
from ..models import database_errors_are_transient, utcnow
from ..contract.commands import Command, readable_ids
from .dependencies import UowFactory

log = structlog.get_logger(__name__)

Send = Callable[[dict[str, Any]], None]

REPAIR_LIMIT = 30  # re-sends of one command before it is failed (≥ 30 × older_than_s without an outcome)
REPAIR_BATCH = 500  # commands re-sent per run at most; the next run takes the rest
KEEP_FINISHED = timedelta(days=7)  # finished rows are kept this long (redeliveries are answered from them)


def record_received(cmd: Command[Any], envelope: dict[str, Any], *, uow_factory: UowFactory) -> bool:
    """Record a valid command before the bridge acks it. Returns False when the command already
    has its outcome (a redelivery: nothing to send), True when it must be sent to the workers."""
    text = json.dumps(envelope, separators=(",", ":"))  # ASCII: storable whatever the strings hold
    with database_errors_are_transient(), uow_factory() as uow:
        row = uow.inbox.record(cmd.id, cmd.tenant_id, cmd.type, text)
        finished = row.finished_at is not None
        uow.commit()
    return not finished


def send_next(envelope: object, send: Send, *, uow_factory: UowFactory) -> bool:
    """After a command got its outcome: send its tenant's next command if it waits for its turn.
    Best effort (a failure is logged): `repair` sends a parked command that nobody sent."""
    tenant_id = readable_ids(envelope)[1]
    if tenant_id is None:
        return False
    try:
        with uow_factory() as uow:
            row = uow.inbox.next_parked(tenant_id)
            if row is None:
                return False
            command_id = row.command_id
            send(json.loads(row.envelope))
            uow.inbox.mark_sent(command_id, utcnow())
            uow.commit()
    except Exception as exc:
        log.warning("inbox.send_next_failed", tenant_id=tenant_id, error=type(exc).__name__)
        return False
    log.info("inbox.sent_next", tenant_id=tenant_id, command_id=command_id)
    return True


def repair(send: Send, *, older_than_s: float, uow_factory: UowFactory) -> dict[str, Any]:
    """Send again each tenant's first unfinished command that is parked or was last sent more
    than `older_than_s` ago; fail those re-sent `REPAIR_LIMIT` times already. Returns counts."""
    from .command_dispatch import fail_command

    now = utcnow()
    resent = failed = 0
    with database_errors_are_transient(), uow_factory() as uow:
        rows = uow.inbox.due_for_repair(now - timedelta(seconds=older_than_s), REPAIR_BATCH)
        due = [(row.command_id, row.tenant_id, row.repairs, json.loads(row.envelope)) for row in rows]
        pruned = uow.inbox.prune_finished_before(now - KEEP_FINISHED)
        uow.commit()
    for command_id, tenant_id, repairs, envelope in due:
        if repairs >= REPAIR_LIMIT:
            detail = f"no outcome after {repairs} re-sends to the workers"
            fail_command(envelope, "bms_unavailable", detail, uow_factory=uow_factory, dead_letter_source="inbox")
            send_next(envelope, send, uow_factory=uow_factory)
            failed += 1
            continue
        send(envelope)
        with database_errors_are_transient(), uow_factory() as uow:
            uow.inbox.mark_sent(command_id, utcnow(), repair=True)
            uow.commit()
        log.warning("inbox.resent", command_id=command_id, tenant_id=tenant_id, repairs=repairs + 1)
        resent += 1
    return {"resent": resent, "failed": failed, "pruned": pruned}
