"""channel policies: quiet hours and daily capacity; the capacity queue's index

Revision ID: 0007
Revises: 0006
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

QUEUED_SQL = "status = 'claimed' AND channel IN ('outbound', 'hall', 'hotline', 'online_hall')"


def upgrade() -> None:
    policies = op.create_table(
        "channel_policies",
        sa.Column("channel", sa.String(24), primary_key=True),
        sa.Column("quiet_from", sa.String(5), nullable=True),
        sa.Column("quiet_until", sa.String(5), nullable=True),
        sa.Column("daily_capacity", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # no marketing SMS, call or push at night unless an operator says otherwise
    op.bulk_insert(policies, [
        {"channel": channel, "quiet_from": "21:00", "quiet_until": "08:00", "daily_capacity": None,
         "updated_at": datetime.now(UTC)}
        for channel in ("sms", "outbound", "app")
    ])
    op.create_table(
        "channel_usage",
        sa.Column("channel", sa.String(24), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("used", sa.Integer(), nullable=False),
    )
    op.create_index("ix_contact_ledger_queued", "contact_ledger", ["channel", "campaign_id"],
                    sqlite_where=sa.text(QUEUED_SQL), postgresql_where=sa.text(QUEUED_SQL))


def downgrade() -> None:
    op.drop_index("ix_contact_ledger_queued", table_name="contact_ledger")
    op.drop_table("channel_usage")
    op.drop_table("channel_policies")
