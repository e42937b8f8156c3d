"""do-not-disturb entries (global, per channel, per business line)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dnd_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("source", sa.Enum("customer_request", "complaint", "regulator", "bounced", name="dnd_source",
                                    native_enum=False, create_constraint=True, length=24), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("msisdn", "scope", name="uq_dnd_entries_msisdn_scope"),
    )


def downgrade() -> None:
    op.drop_table("dnd_entries")
