"""Enumerated columns' CHECKs as `col = 'a' OR col = 'b' …` instead of `col IN (…)`:
SQLite builds an IN list's lookup table anew for every row it checks, a cost paid on
every write of a contact and a member (see `models._check_enums`)

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

CHANNELS = ("sms", "outbound", "app", "hall", "hotline", "online_hall")
#: (table, column, constraint name, values) as they stand at this revision
ENUMS = (
    ("api_tokens", "role", "role", ("agent", "configurer", "approver", "operator", "analyst", "admin", "producer")),
    ("dnd_entries", "source", "dnd_source", ("customer_request", "complaint", "regulator", "bounced")),
    ("tag_snapshots", "status", "tag_snapshot_status", ("loading", "current", "previous")),
    ("tags", "type", "tag_type", ("number", "text", "enum", "bool", "date")),
    ("campaigns", "status", "campaign_status",
     ("draft", "pending_approval", "approved", "running", "paused", "finished", "cancelled")),
    ("scripts", "channel", "channel", CHANNELS),
    ("campaign_members", "state", "member_state",
     ("pending", "contacted", "accepted", "declined", "considering", "suppressed", "left")),
    ("contact_ledger", "channel", "channel", CHANNELS),
    ("contact_ledger", "status", "contact_status",
     ("claimed", "sending", "open", "sent", "delivered", "failed", "withdrawn", "suppressed")),
    ("orders", "channel", "channel", CHANNELS),
    ("orders", "status", "order_status", ("pending", "sending", "delivered", "failed")),
    ("responses", "channel", "channel", CHANNELS),
    ("responses", "outcome", "outcome", ("accepted", "declined", "considering")),
)


def _rewrite(condition) -> None:
    """Replace every enumerated column's CHECK by `condition(column, values)`; on SQLite
    one table rebuild per table."""
    tables: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
    for table, column, name, values in ENUMS:
        tables.setdefault(table, []).append((column, name, values))
    for table, checks in tables.items():
        with op.batch_alter_table(table) as batch:
            for column, name, values in checks:
                constraint = op.f(f"ck_{table}_{name}")
                batch.drop_constraint(constraint, type_="check")
                batch.create_check_constraint(constraint, condition(column, values))


def upgrade() -> None:
    _rewrite(lambda column, values: " OR ".join(f"{column} = '{value}'" for value in values))


def downgrade() -> None:
    _rewrite(lambda column, values: f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")")
