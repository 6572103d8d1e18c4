"""entitlement history: every version of a tenant's entitlements with its cause, not only the
latest (see models.history_tables); each tenant's current snapshot becomes its first kept version

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

import billing_sync.models.tables

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

UTC = billing_sync.models.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('entitlement_versions',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('plan', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('limits', sa.JSON(), nullable=False),
    sa.Column('period_end', UTC, nullable=True),
    sa.Column('cause', sa.String(length=128), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'version')
    )
    # The versions before this migration are gone; the current one is known, with its cause.
    op.execute("INSERT INTO entitlement_versions (tenant_id, version, plan, status, features, limits, period_end, "
               "cause, created_at) SELECT tenant_id, version, plan, status, features, limits, period_end, cause, "
               "updated_at FROM entitlement_snapshots")


def downgrade() -> None:
    op.drop_table('entitlement_versions')
