"""The bus handlers of the scheduler's jobs (handlers/messages.py), which `billing-sync reconcile`
and `inbox repair` run too: each hands its message to the job's module with the dependencies
that job needs."""
from __future__ import annotations

from typing import Any

from ..bms.port import BillingGateway
from ..config.catalog import Catalog
from ..config.settings import Settings
from . import catch_up, command_inbox, lapses, metering, sweep
from .dependencies import Clock, Progress, SendCommand, UowFactory, no_progress
from .messages import CatchUpDue, InboxRepairDue, MeterFlushDue, RefreshDue, SweepDue


def catch_up_due(message: CatchUpDue, *, enqueue_stripe_event: SendCommand, uow_factory: UowFactory,
                 gateway: BillingGateway, now: Clock, progress: Progress = no_progress) -> int:
    return catch_up.catch_up(enqueue_stripe_event, uow_factory=uow_factory, gateway=gateway, now=now,
                             progress=progress)


def sweep_due(message: SweepDue, *, uow_factory: UowFactory, gateway: BillingGateway, catalog: Catalog, now: Clock,
              settings: Settings, progress: Progress = no_progress) -> dict[str, Any]:
    return sweep.sweep(message.dry_run, allow_mass_change=message.allow_mass_change, uow_factory=uow_factory,
                       gateway=gateway, catalog=catalog, now=now, settings=settings, progress=progress)


def refresh_due(message: RefreshDue, *, uow_factory: UowFactory, catalog: Catalog, now: Clock) -> int:
    return lapses.refresh_due(message.cause, uow_factory=uow_factory, catalog=catalog, now=now)


def inbox_repair_due(message: InboxRepairDue, *, send_command: SendCommand, uow_factory: UowFactory) -> dict[str, Any]:
    return command_inbox.repair(send_command, older_than_s=message.older_than_s, uow_factory=uow_factory)


def meter_flush_due(message: MeterFlushDue, *, uow_factory: UowFactory, gateway: BillingGateway, catalog: Catalog,
                    now: Clock, settings: Settings) -> dict[str, Any]:
    return metering.flush(uow_factory=uow_factory, gateway=gateway, catalog=catalog, now=now, settings=settings)
