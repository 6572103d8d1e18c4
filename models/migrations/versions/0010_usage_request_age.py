"""usage idempotency answers by age, for the scheduler's pruning (handlers/quota.prune_usage_keys_job)

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_usage_requests_created_at', 'usage_requests', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_usage_requests_created_at', table_name='usage_requests')
