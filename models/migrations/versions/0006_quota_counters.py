"""atomic consumption: a counter per (tenant, feature, period), idempotency answers, reservations
and the threshold notices sent (see models.quota_tables)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

import billing_sync.models.tables

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

UTC = billing_sync.models.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('quota_counters',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('feature', sa.String(length=64), nullable=False),
    sa.Column('period_start', UTC, nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.Column('reserved', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'feature', 'period_start')
    )
    op.create_table('usage_requests',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('answer', sa.JSON(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'idempotency_key')
    )
    op.create_table('usage_reservations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('feature', sa.String(length=64), nullable=False),
    sa.Column('period_start', UTC, nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_usage_reservations_held', 'usage_reservations', ['state', 'expires_at'], unique=False)
    op.create_table('usage_thresholds',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('feature', sa.String(length=64), nullable=False),
    sa.Column('period_start', UTC, nullable=False),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'feature', 'period_start', 'threshold')
    )


def downgrade() -> None:
    op.drop_table('usage_thresholds')
    op.drop_index('ix_usage_reservations_held', table_name='usage_reservations')
    op.drop_table('usage_reservations')
    op.drop_table('usage_requests')
    op.drop_table('quota_counters')
