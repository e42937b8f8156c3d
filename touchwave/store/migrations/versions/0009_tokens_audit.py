"""API tokens with roles; the campaign lifecycle's audit log

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ROLES = ("agent", "configurer", "approver", "operator", "analyst", "admin")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_name", sa.String(100), nullable=False),
        sa.Column("role", sa.Enum(*ROLES, name="role", native_enum=False, create_constraint=True, length=24),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "campaign_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign_id", sa.Integer(),
                  sa.ForeignKey("campaigns.id", name="fk_campaign_audit_campaign_id_campaigns"), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=True),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_campaign_audit_campaign_id", "campaign_audit", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_audit_campaign_id", table_name="campaign_audit")
    op.drop_table("campaign_audit")
    op.drop_table("api_tokens")
