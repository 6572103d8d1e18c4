"""Stripe ids up to 255 characters (Stripe's bound; a Checkout Session's id is 66, over the
64 these columns had)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# (table, column, nullable) of every column that holds a Stripe object's id.
STRIPE_ID_COLUMNS = [
    ("tenants", "stripe_customer_id", True),
    ("subscriptions", "id", False),
    ("subscriptions", "payment_method_id", True),
    ("subscription_items", "id", False),
    ("subscription_items", "subscription_id", False),
    ("subscription_items", "price_id", False),
    ("subscription_items", "product_id", True),
    ("products", "id", False),
    ("billing_accounts", "payment_method_id", True),
    ("invoices", "id", False),
    ("invoices", "subscription_id", True),
    ("plan_prices", "price_id", True),
]


def _widen(old: int, new: int) -> None:
    for table, column, nullable in STRIPE_ID_COLUMNS:
        with op.batch_alter_table(table) as batch:  # SQLite rebuilds the table; PostgreSQL alters the type
            batch.alter_column(column, type_=sa.String(length=new), existing_type=sa.String(length=old),
                               existing_nullable=nullable)


def upgrade() -> None:
    _widen(64, 255)


def downgrade() -> None:
    _widen(255, 64)
