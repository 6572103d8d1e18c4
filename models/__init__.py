"""Persistence: SQLAlchemy models, the unit of work, migrations."""
from .billing_tables import BillingAccount, Invoice, PlanPrice, SyncBudget
from .db import make_engine, make_session_factory
from .history_tables import EntitlementVersion
from .metering_tables import MeterDelivery
from .quota_tables import QuotaCounter, UsageRequest, UsageReservation, UsageThreshold
from .tables import (
    Base,
    CommandInbox,
    DeadLetter,
    EntitlementSnapshot,
    OutboxMessage,
    ProcessedMessage,
    Product,
    Subscription,
    SubscriptionItem,
    SyncCursor,
    Tenant,
    UsageCounter,
    utcnow,
)
from .unit_of_work import UnitOfWork, database_errors_are_transient, unit_of_work_factory

__all__ = [
    "Base", "BillingAccount", "Invoice", "MeterDelivery", "PlanPrice", "SyncBudget",
    "CommandInbox", "DeadLetter", "EntitlementSnapshot", "EntitlementVersion", "OutboxMessage",
    "ProcessedMessage", "Product",
    "QuotaCounter", "Subscription", "SubscriptionItem", "SyncCursor", "Tenant", "UnitOfWork", "UsageCounter",
    "UsageRequest", "UsageReservation", "UsageThreshold",
    "database_errors_are_transient", "make_engine", "make_session_factory",
    "unit_of_work_factory", "utcnow",
]
