"""Event-triggered campaigns: the event catalog, received events, where each member of a
trigger campaign is on its own timeline, and the `producer` role that posts events

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


ROLES = ("agent", "configurer", "approver", "operator", "analyst", "admin")


def _roles(roles: tuple[str, ...]) -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("role", type_="check")
        batch.create_check_constraint("role", sa.column("role").in_(roles))


def upgrade() -> None:
    _roles((*ROLES, "producer"))
    op.create_table(
        "event_types",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("payload_schema", sa.JSON(), nullable=False),
    )
    op.create_table(
        "events",
        # the producer's id: a duplicate is ignored
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("msisdn", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_events_msisdn", "events", ["msisdn"])
    with op.batch_alter_table("campaign_members") as batch:
        # trigger campaigns: the n-th time the subscriber entered (a contact's attempt),
        # the node they are due at and when; bulk campaigns leave these at 1 / NULL
        batch.add_column(sa.Column("entry", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("at_node", sa.String(64), nullable=True))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("entered_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("event_id", sa.String(100), nullable=True))
    op.create_index("ix_campaign_members_due", "campaign_members", ["campaign_id", "due_at"],
                    postgresql_where=sa.text("due_at IS NOT NULL"), sqlite_where=sa.text("due_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_campaign_members_due", "campaign_members")
    with op.batch_alter_table("campaign_members") as batch:
        for column in ("event_id", "entered_at", "due_at", "at_node", "entry"):
            batch.drop_column(column)
    op.drop_index("ix_events_msisdn", "events")
    op.drop_index("ix_events_received_at", "events")
    op.drop_table("events")
    op.drop_table("event_types")
    _roles(ROLES)
