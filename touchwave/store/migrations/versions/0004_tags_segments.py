"""tag catalog, tag snapshots and named segments with refresh diffs

A tag snapshot's values live in a table of its own (`tag_snapshot_<id>`, one typed
column per tag), created by the import, not by a migration: its columns are the
catalog's at import time. These tables hold the bookkeeping around them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("type", _enum("tag_type", "number", "text", "enum", "bool", "date"), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tag_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("status", _enum("tag_snapshot_status", "loading", "current", "previous"), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("unknown_msisdns", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "segment_versions",
        sa.Column("segment_id", sa.Integer(), sa.ForeignKey("segments.id"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.Integer(), sa.ForeignKey("segments.id"), primary_key=True),
        sa.Column("subscriber_id", sa.BigInteger(), primary_key=True),
    )
    op.create_table(
        "segment_refreshes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("segment_id", sa.Integer(), sa.ForeignKey("segments.id"), nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("joined", sa.Integer(), nullable=False),
        sa.Column("left", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "segment_changes",
        sa.Column("refresh_id", sa.Integer(), sa.ForeignKey("segment_refreshes.id"), primary_key=True),
        sa.Column("subscriber_id", sa.BigInteger(), primary_key=True),
        sa.Column("change", sa.String(8), nullable=False),
    )


def downgrade() -> None:
    for table in ("segment_changes", "segment_refreshes", "segment_members", "segment_versions", "segments",
                  "tag_snapshots", "tags"):
        op.drop_table(table)
