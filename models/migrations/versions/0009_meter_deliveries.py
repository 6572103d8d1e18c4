"""metering by window: usage_counters.metered (what metering claimed of each second) with a
partial index on the unclaimed rows, and meter_deliveries (one meter event per tenant, meter and
minute window; see models.metering_tables)

Usage counted before this revision is taken as metered: billing.usage.recorded sent its own meter
event per command until now, so metering it again would bill it twice (what the usage endpoint
counted before it was never sent; `billing-sync reconcile --usage` shows that difference).

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

import billing_sync.models.tables

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

UTC = billing_sync.models.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('usage_counters') as batch:
        batch.add_column(sa.Column('metered', sa.BigInteger(), server_default='0', nullable=False))
    op.execute("UPDATE usage_counters SET metered = used")
    op.create_index('ix_usage_counters_unmetered', 'usage_counters', ['used_at'], unique=False,
                    postgresql_where=sa.text('used <> metered'), sqlite_where=sa.text('used <> metered'))
    op.create_table('meter_deliveries',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('meter', sa.String(length=64), nullable=False),
    sa.Column('window_start', UTC, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('identifier', sa.String(length=100), nullable=False),
    sa.Column('customer_id', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('sent_at', UTC, nullable=True),
    sa.PrimaryKeyConstraint('tenant_id', 'meter', 'window_start', 'seq')
    )
    op.create_index('ix_meter_deliveries_state', 'meter_deliveries', ['state', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_meter_deliveries_state', table_name='meter_deliveries')
    op.drop_table('meter_deliveries')
    op.drop_index('ix_usage_counters_unmetered', table_name='usage_counters')
    with op.batch_alter_table('usage_counters') as batch:
        batch.drop_column('metered')
