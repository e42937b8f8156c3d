"""order outbox: accepted offers on their way to BOSS

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

CHANNELS = ("sms", "outbound", "app", "hall", "hotline", "online_hall")
STATUSES = ("pending", "sending", "delivered", "failed")


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id", name="fk_orders_campaign_id_campaigns"),
                  nullable=False),
        sa.Column("subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("subscribers.id", name="fk_orders_subscriber_id_subscribers"), nullable=False),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("offer", sa.String(64), nullable=False),
        sa.Column("channel", sa.Enum(*CHANNELS, name="channel", native_enum=False, create_constraint=True, length=24),
                  nullable=False),
        sa.Column("idempotency_key", sa.String(120), nullable=False),
        sa.Column("status", sa.Enum(*STATUSES, name="order_status", native_enum=False, create_constraint=True,
                                    length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("boss_order_id", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_orders_idempotency_key"),
    )
    op.create_index("ix_orders_status_due", "orders", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_status_due", table_name="orders")
    op.drop_table("orders")
