"""SQLAlchemy 2 models: the local mirror of billing state and the sync's own bookkeeping.

Stripe is the source of truth for billing state; these rows are a cache that handlers refresh
from Stripe. The product is the source of truth for tenant identity. Timestamps are UTC.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ..contract.stripe_event import STRIPE_ID_MAX_LENGTH

STRIPE_ID = String(STRIPE_ID_MAX_LENGTH)  # a column holding a Stripe object's id


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite stores naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


# BigInteger primary keys autoincrement on PostgreSQL; SQLite only autoincrements INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON, list: JSON}


class Tenant(Base):
    """A product tenant and its Stripe customer. Also the per-tenant lock row."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(STRIPE_ID, unique=True)
    name: Mapped[str | None] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # A customer creation under way: {"idempotency_key", "params"}, committed before the Stripe
    # call and cleared once the customer is linked. Stripe's search lags (up to a minute), so a
    # later command that finds no customer replays this request instead of making a second one.
    pending_customer: Mapped[dict | None]
    # Feature lookup_keys from Stripe Entitlements (active entitlements of the customer).
    stripe_features: Mapped[list] = mapped_column(default=list)
    # When the customer and its active entitlements were last read from Stripe.
    customer_synced_at: Mapped[datetime | None]
    entitlements_synced_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    subscriptions: Mapped[list["Subscription"]] = relationship(back_populates="tenant")


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(STRIPE_ID, primary_key=True)  # sub_…
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_at: Mapped[datetime | None]
    current_period_start: Mapped[datetime | None]
    current_period_end: Mapped[datetime | None]
    trial_end: Mapped[datetime | None]
    # When Stripe first saw it go past_due, to measure the grace period from.
    past_due_since: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    # The subscription's own default payment method (it beats the customer's at renewal).
    payment_method_id: Mapped[str | None] = mapped_column(STRIPE_ID)
    stripe_created: Mapped[datetime]
    # When this copy was read from Stripe: an event received before it is already reflected.
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)

    tenant: Mapped[Tenant] = relationship(back_populates="subscriptions")
    items: Mapped[list["SubscriptionItem"]] = relationship(
        back_populates="subscription", cascade="all, delete-orphan", order_by="SubscriptionItem.id"
    )


class SubscriptionItem(Base):
    __tablename__ = "subscription_items"

    id: Mapped[str] = mapped_column(STRIPE_ID, primary_key=True)  # si_…
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    price_id: Mapped[str] = mapped_column(STRIPE_ID)
    price_lookup_key: Mapped[str | None] = mapped_column(String(200))
    product_id: Mapped[str | None] = mapped_column(STRIPE_ID)
    quantity: Mapped[int] = mapped_column(Integer, default=1)

    subscription: Mapped[Subscription] = relationship(back_populates="items")


class Product(Base):
    """A Stripe product as read from Stripe: its metadata and its Entitlements features."""

    __tablename__ = "products"

    id: Mapped[str] = mapped_column(STRIPE_ID, primary_key=True)  # prod_…
    name: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict] = mapped_column("metadata", default=dict)
    features: Mapped[list] = mapped_column(default=list)  # lookup_keys of attached features
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntitlementsColumns:
    """A tenant's entitlements as `billing.entitlements.changed` announces them, and their cause:
    the snapshot's columns and each kept version's (`models/history_tables.py`)."""

    plan: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    features: Mapped[list] = mapped_column(default=list)
    limits: Mapped[dict] = mapped_column(default=dict)
    period_end: Mapped[datetime | None]
    cause: Mapped[str | None] = mapped_column(String(128))


class EntitlementSnapshot(EntitlementsColumns, Base):
    """What a tenant may do now; `version` only ever grows, and only on a real change."""

    __tablename__ = "entitlement_snapshots"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UsageCounter(Base):
    """Local usage per tenant, meter and second it happened at (its own timestamp, UTC), for
    quota checks: which billing period a second belongs to is decided when asked
    (handlers/usage.py), so a lagging copy of the subscription cannot misfile it."""

    __tablename__ = "usage_counters"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    # How much of `used` metering has claimed into a meter delivery (models/metering.py); only
    # rows with unclaimed usage are in the partial index, so finding them stays cheap.
    metered: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (Index("ix_usage_counters_unmetered", "used_at", postgresql_where=text("used <> metered"),
                            sqlite_where=text("used <> metered")),)


class ProcessedMessage(Base):
    """The idempotency ledger: a Stripe event id or command id, written with its effects."""

    __tablename__ = "processed_messages"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "stripe_event" | "command"
    type: Mapped[str] = mapped_column(String(128))
    tenant_id: Mapped[str | None] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(32), default="applied")  # applied|ignored|completed|failed
    reason: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommandInbox(Base):
    """Every valid product command the bridge took off `billing.commands`, written before the
    bridge acks it, so that a command lost by the Dramatiq broker (a Redis restart without
    persistence) is still known and is sent again by the scheduler's repair job.

    `seq` is the bridge's receive order: commands of one tenant are applied in that order (a later
    one waits, `waiting_since`, until every earlier one has its outcome). `finished_at` is set in
    the transaction that writes the command's outcome (ledger row + outcome event)."""

    __tablename__ = "command_inbox"
    __table_args__ = (
        Index("ix_command_inbox_tenant_seq", "tenant_id", "seq"),
        Index("ix_command_inbox_unfinished", "finished_at", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    command_id: Mapped[str] = mapped_column(String(255), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(128))
    envelope: Mapped[str] = mapped_column(Text)  # the command as received (ASCII JSON), to send again
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)  # last handed to the workers
    repairs: Mapped[int] = mapped_column(Integer, default=0)  # times the repair job sent it again
    waiting_since: Mapped[datetime | None]  # parked behind an earlier command of its tenant
    finished_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """An event to publish on billing.events, committed with the change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "id"),
                      Index("ix_outbox_stream_seq", "stream_seq", unique=True))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)  # CloudEvents id
    type: Mapped[str] = mapped_column(String(128))  # e.g. billing.entitlements.changed
    subject: Mapped[str | None] = mapped_column(String(128))  # tenant id
    data: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    # The row's place in GET /v1/stream, given at commit in commit order (migration 0013's
    # trigger; models/stream_log.py); None for the types the stream does not carry.
    stream_seq: Mapped[int | None] = mapped_column(BigInteger)


class DeadLetter(Base):
    """A message whose retries ran out, or that could never be processed; `dlq` lists and replays."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))  # actor name, or "bridge" for undecodable commands
    message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    body: Mapped[str] = mapped_column(Text)  # the message as received, for replay
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]


class SessionAnswer(Base):
    """The first answer to a self-serve session request (checkout, portal, setup intent) under its
    `Idempotency-Key`, so that a repeat gets the same session back, also after a restart."""

    __tablename__ = "session_answers"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(32), primary_key=True)  # checkout-sessions, …
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))  # of the validated request body
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncCursor(Base):
    """Named positions of the scheduler: the newest Stripe event seen, the last sweep."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
