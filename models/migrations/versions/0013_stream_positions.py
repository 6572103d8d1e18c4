"""Stream positions: `outbox.stream_seq`, given at commit to the rows `GET /v1/stream` serves, in
commit order (PostgreSQL: a deferred constraint trigger under a transaction advisory lock, plus a
NOTIFY on `billing_stream`; SQLite: the row id, since SQLite commits one writer at a time)

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# Keep in step with contract/stream_wire.py:STREAMED_TYPES (tests/integration/test_stream_positions.py
# checks that every streamed type gets a position).
STREAMED = "('billing.entitlements.changed', 'billing.account.changed')"

# Why at commit and under a lock: an id taken at INSERT (the outbox's own `id`) becomes visible at
# COMMIT, and commits overtake each other, so a reader that saw id 42 may later find id 41 and a
# cursor "> 42" would skip it. The deferred trigger runs as the transaction commits, takes one
# advisory lock (released only after the commit is visible) and only then draws the position, so
# positions become visible in the order they were drawn: a reader at position p never sees a
# smaller one appear later. The lock is held from the trigger to the end of the commit, only by
# transactions that wrote a streamed row.
PG_FUNCTION = """
CREATE FUNCTION outbox_stream_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('billing_sync'), hashtext('outbox_stream'));
    UPDATE outbox SET stream_seq = nextval('outbox_stream_seq') WHERE id = NEW.id;
    PERFORM pg_notify('billing_stream', '');
    RETURN NULL;
END
$$
"""
PG_TRIGGER = f"""
CREATE CONSTRAINT TRIGGER outbox_stream_position AFTER INSERT ON outbox
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.type IN {STREAMED})
EXECUTE FUNCTION outbox_stream_position()
"""
SQLITE_TRIGGER = f"""
CREATE TRIGGER outbox_stream_position AFTER INSERT ON outbox WHEN NEW.type IN {STREAMED}
BEGIN UPDATE outbox SET stream_seq = NEW.id WHERE id = NEW.id; END
"""


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('stream_seq', sa.BigInteger(), nullable=True))
        batch.create_index('ix_outbox_stream_seq', ['stream_seq'], unique=True)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("CREATE SEQUENCE outbox_stream_seq OWNED BY outbox.stream_seq")
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
        # Rows written before this migration are streamed too, in id order (they are all committed).
        op.execute(f"UPDATE outbox SET stream_seq = nextval('outbox_stream_seq') WHERE id IN "
                   f"(SELECT id FROM outbox WHERE type IN {STREAMED} ORDER BY id)")
    else:
        op.execute(SQLITE_TRIGGER)
        op.execute(f"UPDATE outbox SET stream_seq = id WHERE type IN {STREAMED}")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER outbox_stream_position ON outbox")
        op.execute("DROP FUNCTION outbox_stream_position()")
    else:
        op.execute("DROP TRIGGER outbox_stream_position")
    with op.batch_alter_table('outbox') as batch:
        batch.drop_index('ix_outbox_stream_seq')
        batch.drop_column('stream_seq')
