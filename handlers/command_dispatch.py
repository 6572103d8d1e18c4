"""Entry point for one product command taken off the broker, and the way a command fails.

    validate → lock the tenant → ledger check → wait for an earlier command of the tenant? →
    handler (Stripe calls) → ledger row + exactly one billing.command.completed | failed
    + the inbox row finished → commit

The ledger row and the outcome event commit together, so a command has one outcome however
often it is delivered: a redelivery finds the ledger row and returns "duplicate" without
calling Stripe or publishing anything. A `PermanentError` (declined card, unknown plan, …) is
such an outcome too and commits at once. A `TransientError` rolls everything back and
propagates, so the worker retries; when its retries run out the worker calls `fail_command`,
which ledgers the command as failed (`bms_unavailable`) — also exactly once.

Commands of one tenant are applied in the order the bridge received them (`handlers.command_inbox`):
while an earlier one has no outcome, a command is parked ("waiting") and sent again once it
has (by the worker that finished the earlier one, or else by the scheduler's repair job).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from ..contract.events import COMMAND_COMPLETED, COMMAND_FAILED
from ..contract.ids import is_tenant_id
from ..contract.reasons import documented_reason
from ..errors import InvalidMessage, PermanentError, StateMoved
from ..models import Tenant, UnitOfWork, database_errors_are_transient
from ..models.text import db_text
from ..contract.commands import Command, CommandData, parse_command, readable_ids
from .dependencies import UowFactory

log = structlog.get_logger(__name__)

# A command type's handler, its dependencies injected: (command, its locked tenant, the unit of
# work) -> the details of billing.command.completed.
CommandHandler = Callable[[Command[Any], Tenant, UnitOfWork], dict[str, Any] | None]

KIND = "command"
COMPLETED = COMMAND_COMPLETED
FAILED = COMMAND_FAILED
MAX_EVENT_DETAIL = 1000  # characters of `detail` in a failure event; the dead letter keeps it all


def handle_command(envelope: dict[str, Any], *, uow_factory: UowFactory,
                   command_handlers: Mapping[type[CommandData], CommandHandler]) -> str:
    """Apply one command; returns completed, failed, duplicate, or waiting (parked behind an
    earlier command of its tenant that has no outcome yet: the caller acks it, nothing else)."""
    try:
        cmd = parse_command(envelope)
    except InvalidMessage as exc:
        return fail_command(envelope, "invalid", str(exc), uow_factory=uow_factory)
    handler = command_handlers[type(cmd.data)]
    try:
        with database_errors_are_transient(), uow_factory() as uow:
            tenant = uow.tenants.lock(cmd.tenant_id)
            if uow.ledger.contains(cmd.id):
                log.info("command.duplicate", command_id=cmd.id, command_type=cmd.type)
                uow.inbox.finish(cmd.id)  # e.g. a row recorded again after its outcome: done
                uow.commit()
                return "duplicate"
            earlier = uow.inbox.earlier_unfinished(cmd.id, cmd.tenant_id)
            if earlier is not None:  # not its turn: park it, send_next brings it back
                uow.inbox.park(cmd.id)
                uow.commit()
                log.info("command.waiting", command_id=cmd.id, command_type=cmd.type, tenant_id=cmd.tenant_id,
                         waits_for=earlier)
                return "waiting"
            try:
                details = _decide_and_apply(handler, cmd, tenant, uow)
            except PermanentError as exc:
                details = {"stripe_customer_id": tenant.stripe_customer_id}
                _record_outcome(uow, cmd.id, cmd.tenant_id, cmd.type, FAILED, reason=exc.reason, detail=str(exc),
                                details=details)
                outcome = "failed"
                log.info("command.failed", command_id=cmd.id, command_type=cmd.type, tenant_id=cmd.tenant_id,
                         reason=exc.reason)
            else:
                _record_outcome(uow, cmd.id, cmd.tenant_id, cmd.type, COMPLETED, details=details)
                outcome = "completed"
            uow.commit()
    except IntegrityError as exc:
        # Two deliveries raced past the ledger check (no row lock on a tenant id that is new to
        # both), or local data contradicts Stripe (a customer already linked to another tenant).
        if _already_processed(uow_factory, cmd.id):
            return "duplicate"
        raise PermanentError(f"local state conflicts with the command: {exc.orig}", reason="invalid") from exc
    return outcome


# How often a command decides again when Stripe moved under it before the worker's retries
# (with backoff) take over: staff rarely change one subscription twice within a second.
REDECISIONS = 3


def _decide_and_apply(handler: CommandHandler, cmd: Command[Any], tenant: Tenant, uow: UnitOfWork) -> dict[str, Any]:
    """Run the handler; when it reports that Stripe's state moved between its read and its
    write (`StateMoved`), run it again: it reads afresh and decides anew (the local writes it
    made before are idempotent assignments, and its Stripe writes carry the keys of their
    decision)."""
    attempt = 1
    while True:
        try:
            return handler(cmd, tenant, uow) or {}
        except StateMoved as exc:
            if attempt >= REDECISIONS:
                raise
            log.info("command.redecide", command_id=cmd.id, command_type=cmd.type, tenant_id=cmd.tenant_id,
                     attempt=attempt, detail=str(exc)[:200])
            attempt += 1


def fail_command(envelope: object, reason: str, detail: str, *, uow_factory: UowFactory, raw_body: str | None = None,
                 dead_letter_source: str | None = None) -> str:
    """Give a command its failed outcome, once: the ledger row and the billing.command.failed
    event (and, from the bridge, the dead-letter row keeping the message) in one transaction.

    Used by the worker when retries are exhausted (reason `bms_unavailable`) or a permanent
    error escaped the handler, and by the bridge for messages that are not valid commands
    (reason `invalid`). Returns "failed", or "duplicate" when the command already has an outcome.

    A message that is not a valid command does not use up its id: its ledger row is keyed by
    its content (`ledger_key`), so the same message redelivered fails once, and a corrected
    command sent later under the same id is applied. Its failure event still names the id.
    """
    command_id, tenant_id, command_type = readable_ids(envelope)
    body = raw_body if raw_body is not None else _dump(envelope)
    key = ledger_key(envelope, body)
    detail = db_text(detail) or ""
    try:
        with database_errors_are_transient(), uow_factory() as uow:
            if is_tenant_id(tenant_id):  # serialize with a handler that may still be working on this tenant
                uow.tenants.lock(tenant_id)
            if key is not None and uow.ledger.contains(key):
                log.info("command.duplicate", command_id=command_id, command_type=command_type)
                if key == command_id:
                    uow.inbox.finish(command_id)
                    uow.commit()
                return "duplicate"
            _record_outcome(uow, command_id, tenant_id, command_type, FAILED, reason=reason,
                            detail=detail[:MAX_EVENT_DETAIL], ledger_key=key)
            if dead_letter_source is not None:
                uow.dead_letters.add(source=dead_letter_source, message_id=command_id, reason=reason,
                                    detail=detail, body=body)
            uow.commit()
    except IntegrityError:
        if key is not None and _already_processed(uow_factory, key):
            return "duplicate"
        raise
    log.warning("command.failed", command_id=command_id, command_type=command_type, tenant_id=tenant_id,
                reason=reason, detail=detail[:200])
    return "failed"


def ledger_key(envelope: object, body: str) -> str | None:
    """Where a failed message's outcome is ledgered: a valid command under its id; an invalid
    message with a readable id under `invalid:<sha256 of its body>` (the same message again is a
    duplicate, and the id stays free for a corrected command); one without a readable id nowhere,
    as nothing tells a redelivery from another message with the same bytes: each gets an outcome."""
    try:
        return parse_command(envelope).id
    except InvalidMessage:
        if readable_ids(envelope)[0] is None:
            return None
        return "invalid:" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _record_outcome(uow: UnitOfWork, command_id: str | None, tenant_id: str | None, command_type: str | None,
                    outcome_type: str, *, reason: str | None = None, detail: str | None = None,
                    details: dict[str, Any] | None = None, ledger_key: str | None = None) -> None:
    """The ledger row (under `ledger_key`, else the command id), the outcome event and the
    finished inbox row: always written together. A message ledgered under another key than its
    id is not a valid command and has no inbox row; one of a valid command with its id stays open."""
    outcome = "completed" if outcome_type == COMPLETED else "failed"
    if outcome_type == FAILED and documented_reason(reason) != reason:
        detail = f"{reason}: {detail}"
        reason = documented_reason(reason)
    key = ledger_key or command_id
    if command_id is not None and key == command_id:
        uow.inbox.finish(command_id)
    if key is not None:
        uow.ledger.record(key, kind=KIND, type=(command_type or "unknown")[:128],
                             tenant_id=(tenant_id or None) and tenant_id[:128], outcome=outcome, reason=reason)
    data = {"command_id": command_id, "tenant_id": tenant_id, "type": command_type}
    for key, value in (details or {}).items():
        data.setdefault(key, value)
    if outcome_type == FAILED:
        data["reason"] = reason
        data["detail"] = detail
    uow.outbox.add(outcome_type, tenant_id, data)


def _already_processed(uow_factory: UowFactory, command_id: str) -> bool:
    with uow_factory() as uow:
        return uow.ledger.contains(command_id)


def _dump(envelope: object) -> str:
    try:
        return json.dumps(envelope, default=str)
    except (TypeError, ValueError):
        return repr(envelope)


__all__ = ["handle_command", "fail_command", "Command", "COMPLETED", "FAILED"]
