"""The capacity queue's partial index with its channels as an OR chain instead of an IN
list: SQLite evaluates the predicate on every write of a contact, and builds the IN
list's lookup table anew each time (as it did for the enum CHECKs, 0012)

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

#: the capacity-limited channels as they stand at this revision
CHANNELS = ("outbound", "hall", "hotline", "online_hall")
AS_IN = "status = 'claimed' AND channel IN (" + ", ".join(f"'{c}'" for c in CHANNELS) + ")"
AS_OR = "status = 'claimed' AND (" + " OR ".join(f"channel = '{c}'" for c in CHANNELS) + ")"


def _index(predicate: str) -> None:
    op.drop_index("ix_contact_ledger_queued", table_name="contact_ledger")
    op.create_index("ix_contact_ledger_queued", "contact_ledger", ["channel", "campaign_id"],
                    sqlite_where=sa.text(predicate), postgresql_where=sa.text(predicate))


def upgrade() -> None:
    _index(AS_OR)


def downgrade() -> None:
    _index(AS_IN)
