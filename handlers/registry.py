"""Which handler serves which message: the one place to read to follow a message's path.

`ROUTES` is what the bus routes by message type (handlers/messages.py). Two of those handlers
route further, through tables that `bootstrap()` gives them as dependencies: a Stripe event by
its family (`STRIPE_EVENT_FAMILIES`: every event of a family goes through the one pipeline,
stripe_pipeline.py, with the family's strategy, stripe_family.py, since the object is re-read
whatever the event says), a command by its data type (`COMMAND_HANDLERS`, keyed by the
contract's command classes: plain functions `handler(cmd, tenant, uow, **their dependencies) ->
details`, injected by the bus too).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..contract.commands import (CommandData, SubscriptionCancel, SubscriptionChange, SubscriptionResume,
                                 TenantDeleted, TenantProvisioned, TenantUpdated, UsageRecorded)
from . import (
    active_entitlements,
    catalog,
    checkout,
    commands,
    customers,
    invoices,
    job_messages,
    payment_methods,
    setup_intents,
    subscription_commands,
    subscriptions,
    worker_messages,
)
from .event_dispatch import handle_stripe_event
from .messages import (CatchUpDue, CommandFailed, CommandReceived, InboxRepairDue, MessageFailed, MeterFlushDue,
                       ReconcileRequested, RefreshDue, StripeEventReceived, SweepDue)
from .stripe_family import StripeFamily

ROUTES: dict[type, Callable[..., Any]] = {
    StripeEventReceived: handle_stripe_event,
    CommandReceived: worker_messages.apply_command,
    ReconcileRequested: worker_messages.reconcile_requested,
    MessageFailed: worker_messages.keep_dead_letter,
    CommandFailed: worker_messages.command_failed,
    CatchUpDue: job_messages.catch_up_due,
    SweepDue: job_messages.sweep_due,
    RefreshDue: job_messages.refresh_due,
    InboxRepairDue: job_messages.inbox_repair_due,
    MeterFlushDue: job_messages.meter_flush_due,
}

# Longest matching prefix wins; an event type matching none is recorded and ignored.
STRIPE_EVENT_FAMILIES: dict[str, StripeFamily] = {
    "customer.subscription.": subscriptions.SUBSCRIPTION_EVENTS,
    "customer.": customers.CUSTOMER_EVENTS,
    "invoice.": invoices.INVOICE_EVENTS,
    "payment_method.": payment_methods.PAYMENT_METHOD_EVENTS,
    "setup_intent.": setup_intents.SETUP_INTENT_EVENTS,
    "checkout.session.": checkout.CHECKOUT_EVENTS,
    "entitlements.active_entitlement_summary.": active_entitlements.SUMMARY_EVENTS,
    "product.": catalog.CATALOG_EVENTS,
    "price.": catalog.CATALOG_EVENTS,
}

# By the command's data type (contract/commands.py; each names its CloudEvents type).
COMMAND_HANDLERS: dict[type[CommandData], Callable[..., dict[str, Any]]] = {
    TenantProvisioned: commands.tenant_provisioned,
    TenantUpdated: commands.tenant_updated,
    SubscriptionChange: subscription_commands.subscription_change,
    SubscriptionCancel: subscription_commands.subscription_cancel,
    SubscriptionResume: subscription_commands.subscription_resume,
    TenantDeleted: commands.tenant_deleted,
    UsageRecorded: commands.usage_recorded,
}

