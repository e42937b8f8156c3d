"""Store round trips, on SQLite and (when TOUCHWAVE_TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Enum, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from touchwave.errors import StoreUnavailable, UserError
from touchwave.store import Store, db
from touchwave.store.catalog import read_catalog, read_catalog_file, upsert_catalog
from touchwave.store.models import (
    Base,
    Campaign,
    CampaignMember,
    Channel,
    Contact,
    ContactStatus,
    FlowchartTemplate,
    MemberState,
    Offer,
    Outcome,
    Response,
    Subscriber,
    idempotency_key,
)
from touchwave.store.subscribers import SubscriberRow, bulk_load, counts, read_csv, synthetic
from touchwave.store.templates import get_template, list_templates, upload
from touchwave.templates.problems import TemplateInvalid

from .conftest import CATALOG_FILE, load_example


def test_migrations_create_exactly_the_models(store):
    assert db.current_revision(store.engine) == db.head_revision()
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_upgrade_twice_changes_nothing(store):
    before, after = db.upgrade(store.engine)
    assert before == after == db.head_revision()


def test_an_unmigrated_database_is_refused_with_the_fix(database_url):
    with pytest.raises(StoreUnavailable, match="run `touchwave db upgrade`"):
        Store.open(database_url)


def test_subscribers_load_set_wise_and_update_by_msisdn(store):
    rows = list(synthetic(3000, seed=1, today=date(2026, 11, 24)))
    assert bulk_load(store.engine, rows, batch_size=1000) == 3000
    assert len({r.msisdn for r in rows}) == 3000
    changed = SubscriberRow(rows[0].msisdn, "南京", "5G-229", {"arpu": 300})
    assert bulk_load(store.engine, [changed]) == 1
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 3000
        stored = session.scalars(select(Subscriber).where(Subscriber.msisdn == rows[0].msisdn)).one()
        assert (stored.region, stored.plan, stored.attributes) == ("南京", "5G-229", {"arpu": 300})
        other = session.scalars(select(Subscriber).where(Subscriber.msisdn == rows[1].msisdn)).one()
        assert other.attributes == rows[1].attributes
    assert counts(store.engine)["total"] == 3000


def test_a_duplicate_msisdn_loads_nothing(store):
    rows = [SubscriberRow("13800000001", "南京", "4G-58"), SubscriberRow("13800000001", "无锡", "4G-96")]
    with pytest.raises(UserError, match="13800000001 more than once"):
        bulk_load(store.engine, rows)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_csv_rows_become_subscribers_with_attributes(store, tmp_path):
    path = tmp_path / "subs.csv"
    path.write_text("msisdn,region,plan,arpu\n+86 138-0000-0002,南京,4G-96,101.5\n13900000003,无锡,4G-58,\n", encoding="utf-8")
    assert bulk_load(store.engine, read_csv(path)) == 2
    with store.session() as session:
        first = session.scalars(select(Subscriber).order_by(Subscriber.msisdn)).first()
    assert (first.msisdn, first.attributes) == ("13800000002", {"arpu": "101.5"})


def test_a_bad_csv_row_names_its_line_and_loads_nothing(store, tmp_path):
    path = tmp_path / "subs.csv"
    path.write_text("msisdn,region,plan\n13800000002,南京,4G-96\n12345,无锡,4G-58\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 3: '12345' is not a mainland mobile number"):
        bulk_load(store.engine, read_csv(path))
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_catalog_round_trip_and_update(store):
    catalog = read_catalog_file(CATALOG_FILE)
    with store.session.begin() as session:
        assert upsert_catalog(session, catalog) == (5, 16)
    catalog.offers[0].price = Decimal("6.00")
    with store.session.begin() as session:
        upsert_catalog(session, catalog)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Offer)) == 5
        assert session.scalars(select(Offer.price).where(Offer.code == "RBT_DOWNLOAD")).one() == Decimal("6.00")
        refs = read_catalog(session)
    assert "CONTRACT_168_504" in refs.offers
    assert (refs.scripts["RBT_HALL"].offer, refs.scripts["RBT_HALL"].channel) == ("RBT_DOWNLOAD", "hall")


def test_template_upload_versions_only_changed_content(store):
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
    document = load_example("ringback_tone_download.json")
    with store.session.begin() as session:
        first, created = upload(session, document, author="configurer-1")
    assert (first.version, created) == (1, True)
    with store.session.begin() as session:
        again, created = upload(session, load_example("ringback_tone_download.json"), author="configurer-2")
    assert (again.version, again.author, created) == (1, "configurer-1", False)
    document["nodes"][1]["wait"] = "P2D"
    with store.session.begin() as session:
        second, created = upload(session, document, author="configurer-2")
    assert (second.version, created) == (2, True)
    assert second.content_hash != first.content_hash
    with store.session() as session:
        assert get_template(session, "ringback-tone-download").plan.step("wait_sms").wait_seconds == 2 * 86_400
        assert get_template(session, "ringback-tone-download", 1).plan == first.plan
        [summary] = list_templates(session)
    assert (summary.latest_version, summary.versions, summary.title) == (2, 2, "彩铃下载多渠道协同营销")


def test_upload_with_an_unknown_offer_stores_nothing(store):
    with pytest.raises(TemplateInvalid, match='/nodes/0/offer: no offer "RBT_DOWNLOAD"'):
        with store.session.begin() as session:
            upload(session, load_example("ringback_tone_download.json"), author="x")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(FlowchartTemplate)) == 0
        with pytest.raises(UserError, match='no template named "ringback-tone-download"; none uploaded yet'):
            get_template(session, "ringback-tone-download")


@pytest.fixture
def campaign(store) -> Campaign:
    """A campaign on the ringback template with two members."""
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
        version, _ = upload(session, load_example("ringback_tone_download.json"), author="x")
    bulk_load(store.engine, synthetic(2, today=date(2026, 11, 24)))
    with store.session.begin() as session:
        template_id = session.scalars(select(FlowchartTemplate.id)).one()
        row = Campaign(name="rbt 2026-11", template_id=template_id, priority=40, business_line="value_added", created_by="x")
        session.add(row)
        session.flush()
        session.execute(
            text("INSERT INTO campaign_members (campaign_id, subscriber_id, cohort, state, updated_at) "
                 "SELECT :c, id, 0, 'pending', CURRENT_TIMESTAMP FROM subscribers"),
            {"c": row.id},
        )
    return row


def test_contact_ledger_refuses_the_same_idempotency_key_twice(store, campaign):
    with store.session() as session:
        subscriber_id = session.scalars(select(Subscriber.id).limit(1)).one()
    key = idempotency_key(campaign.id, "sms_broadcast", subscriber_id, 1)
    contact = {"campaign_id": campaign.id, "step_id": "sms_broadcast", "subscriber_id": subscriber_id,
               "channel": Channel.SMS, "attempt": 1, "idempotency_key": key, "status": ContactStatus.SENT}
    with store.session.begin() as session:
        session.add(Contact(**contact))
    with pytest.raises(IntegrityError):
        with store.session.begin() as session:
            session.add(Contact(**{**contact, "status": ContactStatus.CLAIMED}))
    with store.session() as session:
        assert session.scalars(select(Contact.status)).all() == [ContactStatus.SENT]


def test_member_state_and_responses_round_trip(store, campaign):
    with store.session.begin() as session:
        member = session.scalars(select(CampaignMember).limit(1)).one()
        member.state = MemberState.ACCEPTED
        session.add(Response(subscriber_id=member.subscriber_id, campaign_id=campaign.id, channel=Channel.HALL,
                             outcome=Outcome.ACCEPTED, agent="hall-007", note="开通"))
    with store.session() as session:
        states = sorted(session.scalars(select(CampaignMember.state)).all())
        response = session.scalars(select(Response)).one()
    assert states == [MemberState.ACCEPTED, MemberState.PENDING]
    assert MemberState.ACCEPTED.completed and not MemberState.CONSIDERING.completed
    assert (response.channel, response.outcome, response.agent) == (Channel.HALL, Outcome.ACCEPTED, "hall-007")


def test_every_enumerated_column_admits_exactly_its_values(store):
    # the migrations write these CHECKs by hand (as OR chains, `models._check_enums`):
    # each one, as the database holds it, is evaluated for every value and one more
    enums = [(table.name, column) for table in Base.metadata.sorted_tables for column in table.columns
             if isinstance(column.type, Enum)]
    assert len(enums) >= 10
    with store.engine.connect() as conn:
        inspector = inspect(conn)
        for table, column in enums:
            name = f"ck_{table}_{column.type.name}"
            check = next(c["sqltext"] for c in inspector.get_check_constraints(table) if c["name"] == name)
            for value in [*column.type.enums, "nonsense"]:
                admitted = conn.execute(text(f"SELECT CASE WHEN {check} THEN 1 ELSE 0 END "
                                             f"FROM (SELECT CAST(:v AS VARCHAR(24)) AS {column.name}) AS t"),
                                        {"v": value}).scalar_one()
                assert admitted == (value != "nonsense"), (table, column.name, value)


def test_the_database_rejects_a_state_that_does_not_exist(store, campaign):
    with pytest.raises((IntegrityError, StatementError)):
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE campaign_members SET state = 'maybe'"))
    with pytest.raises(StatementError):
        with store.session.begin() as session:
            session.scalars(select(CampaignMember).limit(1)).one().state = "maybe"
