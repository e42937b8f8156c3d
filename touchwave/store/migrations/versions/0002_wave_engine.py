"""wave engine: contact statuses open/sending, gateway ids, offer windows, split routes, step-status index

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_STATUSES = ("claimed", "sent", "delivered", "failed", "withdrawn", "suppressed")
NEW_STATUSES = ("claimed", "sending", "open", "sent", "delivered", "failed", "withdrawn", "suppressed")


def _status(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="contact_status", native_enum=False, create_constraint=True, length=24)


def upgrade() -> None:
    with op.batch_alter_table("contact_ledger") as batch:
        batch.add_column(sa.Column("external_id", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("status", type_=_status(NEW_STATUSES), existing_type=_status(OLD_STATUSES),
                           existing_nullable=False)
        batch.create_index("ix_contact_ledger_status_window", ["subscriber_id", "channel", "status"])
        batch.drop_index("ix_contact_ledger_campaign_step")
        batch.create_index("ix_contact_ledger_campaign_step_status", ["campaign_id", "step_id", "status", "id"])
    with op.batch_alter_table("campaign_members") as batch:
        batch.add_column(sa.Column("route", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_members") as batch:
        batch.drop_column("route")
    with op.batch_alter_table("contact_ledger") as batch:
        batch.drop_index("ix_contact_ledger_status_window")
        batch.drop_index("ix_contact_ledger_campaign_step_status")
        batch.create_index("ix_contact_ledger_campaign_step", ["campaign_id", "step_id"])
        batch.alter_column("status", type_=_status(OLD_STATUSES), existing_type=_status(NEW_STATUSES),
                           existing_nullable=False)
        batch.drop_column("window_ends_at")
        batch.drop_column("external_id")
