"""session answers: the first answer of each self-serve session request under its Idempotency-Key
(see models.tables.SessionAnswer)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:20:00.000000
"""
import sqlalchemy as sa
from alembic import op

import billing_sync.models.tables

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('session_answers',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('endpoint', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('request_digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', billing_sync.models.tables.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'endpoint', 'idempotency_key')
    )


def downgrade() -> None:
    op.drop_table('session_answers')
