"""sync budgets: each tenant's POST /v1/tenants/{id}/sync limit, shared by every ingress (see
models.billing_tables.SyncBudget); billing_accounts.pending_payment: the first payment of an
incomplete subscription, confirmed in-app

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sync_budgets',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('tat', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    with op.batch_alter_table('billing_accounts') as batch:
        batch.add_column(sa.Column('pending_payment', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('billing_accounts') as batch:
        batch.drop_column('pending_payment')
    op.drop_table('sync_budgets')
