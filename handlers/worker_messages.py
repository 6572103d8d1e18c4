"""The bus handlers of the workers' own messages (handlers/messages.py): each a thin step over a
pipeline — the command pipeline (command_dispatch) with the tenant's turn (command_inbox), the
reconciliation, and the dead letters of messages that failed for good."""
from __future__ import annotations

from typing import Any, Mapping

import structlog

from ..bms.port import BillingGateway
from ..config.catalog import Catalog
from ..contract.commands import CommandData
from .command_dispatch import CommandHandler, fail_command, handle_command
from .command_inbox import send_next
from .dependencies import Clock, SendCommand, UowFactory
from .messages import CommandFailed, CommandReceived, MessageFailed, ReconcileRequested
from .reconcile import reconcile_tenant

log = structlog.get_logger(__name__)


def apply_command(message: CommandReceived, *, uow_factory: UowFactory,
                  command_handlers: Mapping[type[CommandData], CommandHandler],
                  send_command: SendCommand) -> str:
    """`handle_command`, then (unless the command was parked behind an earlier one) its tenant's
    next command, which may have waited for this one."""
    outcome = handle_command(message.envelope, uow_factory=uow_factory, command_handlers=command_handlers)
    if outcome != "waiting":
        send_next(message.envelope, send_command, uow_factory=uow_factory)
    return outcome


def reconcile_requested(message: ReconcileRequested, *, uow_factory: UowFactory, gateway: BillingGateway,
                        catalog: Catalog, now: Clock) -> dict[str, Any]:
    return reconcile_tenant(message.tenant_id, cause=message.cause, dry_run=message.dry_run, uow_factory=uow_factory,
                            gateway=gateway, catalog=catalog, now=now)


def keep_dead_letter(message: MessageFailed, *, uow_factory: UowFactory) -> None:
    """Write a `DeadLetter` row holding what `dlq replay` needs to send the message again.

    If the database is unreachable too, the message still ends in the broker's own dead-letter
    queue (Redis/RabbitMQ `<queue>.XQ`, kept 7 days); the log line says so.
    """
    try:
        with uow_factory() as uow:
            uow.dead_letters.add(source=message.source, message_id=message.message_id, body=message.body,
                                reason=message.reason, detail=message.detail)
            uow.commit()
    except Exception:
        log.exception("dead_letter.write_failed", source=message.source, message_id=message.message_id,
                      reason=message.reason)


def command_failed(message: CommandFailed, *, uow_factory: UowFactory, send_command: SendCommand) -> None:
    """The command's one billing.command.failed and its dead letter, in one transaction; then the
    tenant's next command, which may have waited for this one. A message that is not even a
    command (no id) only becomes a dead letter."""
    envelope, failure = message.envelope, message.failure
    if not isinstance(envelope, dict) or not envelope.get("id"):
        keep_dead_letter(failure, uow_factory=uow_factory)
        return
    try:
        fail_command(envelope, failure.reason, failure.detail, uow_factory=uow_factory, raw_body=failure.body,
                     dead_letter_source=failure.source)
        send_next(envelope, send_command, uow_factory=uow_factory)
        return
    except Exception:  # still keep the message, below
        log.exception("command.fail_hook_failed", command_id=failure.message_id)
    keep_dead_letter(failure, uow_factory=uow_factory)
