"""Effect evaluation and CPC matching: control-group members, channel unit costs, the
BOSS feed of orders placed outside campaigns, and the fitted CPC rates

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_members") as batch:
        # held out by a hash of (campaign, subscriber): never contacted, outcomes tracked
        batch.add_column(sa.Column("control", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("channel_policies") as batch:
        # what one contact through the channel costs (an outbound call far more than an SMS)
        batch.add_column(sa.Column("unit_cost", sa.Numeric(12, 4), nullable=True))
    op.create_table(
        "boss_orders",
        # BOSS's own order number: the feed may repeat an order, it is kept once
        sa.Column("boss_order_id", sa.String(100), primary_key=True),
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_boss_orders_msisdn", "boss_orders", ["msisdn"])
    op.create_table(
        "cpc_fits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("acceptances", sa.Integer(), nullable=False),
        sa.Column("group_strength", sa.Float(), nullable=False),
        sa.Column("subscriber_strength", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
    )
    op.create_table(
        "cpc_rates",
        # channel | product | plan_channel | plan_product | product_channel
        sa.Column("kind", sa.String(24), primary_key=True),
        # the plan for plan_*, the product for product_channel, '' otherwise
        sa.Column("grp", sa.String(64), primary_key=True),
        sa.Column("item", sa.String(64), primary_key=True),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
    )
    for table, item in (("cpc_subscriber_channel", "channel"), ("cpc_subscriber_product", "product")):
        op.create_table(
            table,
            sa.Column("subscriber_id", sa.BigInteger(), primary_key=True),
            sa.Column(item, sa.String(64), primary_key=True),
            sa.Column("trials", sa.Integer(), nullable=False),
            sa.Column("successes", sa.Integer(), nullable=False),
            sa.Column("score", sa.Float(), nullable=False),
        )


def downgrade() -> None:
    for table in ("cpc_subscriber_product", "cpc_subscriber_channel", "cpc_rates", "cpc_fits"):
        op.drop_table(table)
    op.drop_index("ix_boss_orders_msisdn", "boss_orders")
    op.drop_table("boss_orders")
    with op.batch_alter_table("channel_policies") as batch:
        batch.drop_column("unit_cost")
    with op.batch_alter_table("campaign_members") as batch:
        batch.drop_column("control")
