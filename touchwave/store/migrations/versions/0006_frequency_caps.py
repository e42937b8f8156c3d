"""frequency caps: at most N marketing contacts per subscriber per period

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "frequency_caps",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(24), nullable=True),
        sa.Column("max_contacts", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("frequency_caps")
