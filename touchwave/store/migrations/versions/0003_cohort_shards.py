"""cohort shards and a lighter contact ledger

Members are read by (campaign, cohort, subscriber-id range) and updated by their primary
key; their state is in no index any more (planners walked it instead of the key). Contacts
are read by range too: the
ledger's unique key becomes (campaign, step, subscriber, attempt) as columns, which both
guards idempotency and serves a shard's range scans; the string key stays for gateways
(unique by construction) without an index of its own. The ledger keeps the address each
contact went to, and its status is in no index: a contact changes status three times
(claimed → sending → sent), and each change used to rewrite two indexes.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_campaign_members_cohort", "campaign_members", ["campaign_id", "cohort", "subscriber_id"])
    op.drop_index("ix_campaign_members_campaign_state", table_name="campaign_members")
    with op.batch_alter_table("contact_ledger") as batch:
        batch.add_column(sa.Column("address", sa.String(length=32), nullable=True))
        batch.drop_constraint("uq_contact_ledger_idempotency_key", type_="unique")
        batch.create_unique_constraint("uq_contact_ledger_contact", ["campaign_id", "step_id", "subscriber_id", "attempt"])
        batch.drop_index("ix_contact_ledger_campaign_step_status")
        batch.drop_index("ix_contact_ledger_status_window")
        batch.drop_index("ix_contact_ledger_subscriber_id")
        batch.create_index("ix_contact_ledger_subscriber_channel", ["subscriber_id", "channel"])


def downgrade() -> None:
    with op.batch_alter_table("contact_ledger") as batch:
        batch.drop_index("ix_contact_ledger_subscriber_channel")
        batch.create_index("ix_contact_ledger_subscriber_id", ["subscriber_id"])
        batch.create_index("ix_contact_ledger_status_window", ["subscriber_id", "channel", "status"])
        batch.create_index("ix_contact_ledger_campaign_step_status", ["campaign_id", "step_id", "status", "id"])
        batch.drop_constraint("uq_contact_ledger_contact", type_="unique")
        batch.create_unique_constraint("uq_contact_ledger_idempotency_key", ["idempotency_key"])
        batch.drop_column("address")
    op.create_index("ix_campaign_members_campaign_state", "campaign_members", ["campaign_id", "state"])
    op.drop_index("ix_campaign_members_cohort", table_name="campaign_members")
