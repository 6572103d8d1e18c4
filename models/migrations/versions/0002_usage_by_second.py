"""usage counted by the second it happened at, not by a period chosen when it was recorded

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:20:00

Existing counters keep their rows: a counter's `period_start` becomes its `used_at`, which lies
in the same period, so every quota check still counts it where it counted before.
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('usage_counters', schema=None) as batch_op:
        batch_op.alter_column('period_start', new_column_name='used_at')


def downgrade() -> None:
    with op.batch_alter_table('usage_counters', schema=None) as batch_op:
        batch_op.alter_column('used_at', new_column_name='period_start')
