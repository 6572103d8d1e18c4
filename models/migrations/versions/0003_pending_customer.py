"""tenants.pending_customer: a customer creation recorded before it is sent to Stripe

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:25:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_customer', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('pending_customer')
