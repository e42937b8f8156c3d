"""Named segments over tags: typed rules, versions, preview, refresh diffs, and a running
campaign's audience following the tags (joiners as a cohort, leavers stopped)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from touchwave import campaigns
from touchwave.errors import UserError
from touchwave.segments import named
from touchwave.segments.catalog import parse_catalog, upsert_tags
from touchwave.segments.snapshots import import_rows
from touchwave.segments.synthetic import load_population
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.store.models import CampaignStatus
from touchwave.store.subscribers import SubscriberRow, bulk_load
from touchwave.store.templates import upload

from .conftest import CATALOG_FILE, load_example

TODAY = date(2026, 11, 25)
CATALOG = {"tags": [
    {"name": "arpu", "type": "number"},
    {"name": "star", "type": "enum", "values": ["silver", "gold"]},
    {"name": "vip", "type": "bool"},
    {"name": "contract_end", "type": "date"},
]}
NUMBERS = [f"1380000000{i}" for i in range(6)]


def drop(store, rows: dict[str, tuple[str, str, str, str]]) -> None:
    """Import `msisdn → (arpu, star, vip, contract_end)` as the current tags."""
    import_rows(store.engine, ["msisdn", "arpu", "star", "vip", "contract_end"],
                ((i + 2, [msisdn, *values]) for i, (msisdn, values) in enumerate(rows.items())), source="test")


@pytest.fixture
def tagged(store):
    bulk_load(store.engine, [SubscriberRow(n, "南京" if i % 2 else "无锡", "4G-58") for i, n in enumerate(NUMBERS)])
    upsert_tags(store.engine, parse_catalog(CATALOG))
    drop(store, {NUMBERS[0]: ("90", "gold", "true", "2026-12-10"),
                 NUMBERS[1]: ("40", "silver", "false", "2027-06-01"),
                 NUMBERS[2]: ("120", "gold", "false", ""),
                 NUMBERS[3]: ("", "", "", "2026-11-30")})
    return store


GOLD_OR_RICH = {"any": [{"field": "star", "op": "eq", "value": "gold"}, {"field": "arpu", "op": "ge", "value": 100}]}


@pytest.mark.parametrize(("rule", "message"), [
    ({"field": "shoe_size", "op": "eq", "value": 42},
     "/field: 'shoe_size' is neither a subscriber field (msisdn, plan, region) nor a tag in the catalog"),
    ({"all": [{"field": "arpu", "op": "ge", "value": "100"}]}, "/all/0/value: '100' is not a number"),
    ({"not": {"field": "star", "op": "eq", "value": "bronze"}}, "/not/value: 'bronze' is not one of the tag's values"),
    ({"field": "arpu", "op": "within_days", "value": 30}, "/op: within_days compares dates; this field is a number"),
    ({"field": "vip", "op": "gt", "value": True}, "/op: gt needs an ordered field"),
    ({"field": "contract_end", "op": "lt", "value": "next week"}, "/value: 'next week' is not a date (YYYY-MM-DD)"),
    ({"field": "star", "op": "in", "value": []}, "/value: in takes a non-empty list"),
    ({"field": "arpu", "op": "between", "value": [1]}, "/value: between takes [low, high]"),
])
def test_a_rule_that_does_not_fit_the_catalog_is_refused_with_its_path(tagged, rule, message):
    with pytest.raises(UserError) as refused:
        named.preview(tagged.engine, rule)
    assert message in str(refused.value)


def test_a_tag_in_the_catalog_without_values_yet_says_so(tagged):
    upsert_tags(tagged.engine, parse_catalog({"tags": [{"name": "last_top_up", "type": "date"}]}))
    with pytest.raises(UserError, match="'last_top_up' has no values: the current tag snapshot predates it"):
        named.preview(tagged.engine, {"field": "last_top_up", "op": "more_than_days_ago", "value": 30})


def test_preview_counts_and_shows_a_masked_sample(tagged):
    preview = named.preview(tagged.engine, {"all": [GOLD_OR_RICH, {"field": "region", "op": "eq", "value": "无锡"}]},
                            today=TODAY)
    assert preview.count == 2
    assert [row["msisdn"] for row in preview.sample] == ["138****0000", "138****0002"]
    assert preview.sample[0]["star"] == "gold" and preview.sample[1]["arpu"] == 120


def test_relative_dates_count_from_today(tagged):
    def count(rule):
        return named.preview(tagged.engine, rule, today=TODAY).count

    assert count({"field": "contract_end", "op": "within_days", "value": 20}) == 2   # 11-30, 12-10
    assert count({"field": "contract_end", "op": "within_days", "value": 5}) == 1
    assert count({"field": "contract_end", "op": "more_than_days_ago", "value": 0}) == 0
    assert count({"field": "contract_end", "op": "is_null"}) == 3  # no value (2), and no tags at all (4, 5)
    assert count({"not": {"field": "arpu", "op": "lt", "value": 100}}) == 1  # a missing ARPU is unknown


def test_relative_dates_include_their_boundary_days(tagged):
    # subscriber 3's contract ends 2026-11-30: 5 days after TODAY
    def selects(op, days):
        return named.preview(tagged.engine, {"field": "contract_end", "op": op, "value": days}, today=TODAY).count

    assert (selects("within_days", 5), selects("within_days", 4)) == (1, 0)
    later = date(2026, 12, 5)  # 5 days after 11-30
    assert named.preview(tagged.engine, {"field": "contract_end", "op": "within_last_days", "value": 5},
                         today=later).count == 1
    assert named.preview(tagged.engine, {"field": "contract_end", "op": "more_than_days_ago", "value": 5},
                         today=later).count == 0
    assert named.preview(tagged.engine, {"field": "contract_end", "op": "more_than_days_ago", "value": 4},
                         today=later).count == 1


def test_segments_are_versioned_and_an_unchanged_rule_is_not_a_new_version(tagged):
    assert named.save(tagged.engine, "gold", GOLD_OR_RICH, "ana") == (1, True)
    assert named.save(tagged.engine, "gold", GOLD_OR_RICH, "bo") == (1, False)
    assert named.save(tagged.engine, "gold", {"field": "star", "op": "eq", "value": "gold"}, "bo") == (2, True)
    with tagged.engine.connect() as conn:
        assert named.get(conn, "gold", 1).rule == GOLD_OR_RICH
        assert named.get(conn, "gold").author == "bo"
    with pytest.raises(UserError, match="'arpu' is not a tag|is not a number"):
        named.save(tagged.engine, "broken", {"field": "arpu", "op": "eq", "value": "high"}, "ana")


def test_a_refresh_records_who_joined_and_who_left(tagged):
    named.save(tagged.engine, "gold", GOLD_OR_RICH, "ana")
    first = named.refresh(tagged.engine, "gold", TODAY)
    assert (first.members, first.joined, first.left) == (2, 2, 0)
    # the next day: subscriber 0 drops to silver and a low ARPU, 3 becomes gold, 2 stays rich
    drop(tagged, {NUMBERS[0]: ("30", "silver", "true", ""), NUMBERS[2]: ("120", "silver", "", ""),
                  NUMBERS[3]: ("10", "gold", "", "")})
    second = named.refresh(tagged.engine, "gold", TODAY)
    assert (second.members, second.joined, second.left) == (2, 1, 1)
    ids = subscriber_ids(tagged)
    assert named.changes(tagged.engine, second.refresh_id) == {"joined": [ids[NUMBERS[3]]], "left": [ids[NUMBERS[0]]]}
    assert named.refresh(tagged.engine, "gold", TODAY).joined == 0


def test_only_the_latest_refreshes_keep_their_lists_of_joiners_and_leavers(tagged, monkeypatch):
    monkeypatch.setattr(named, "KEEP_CHANGES", 2)
    named.save(tagged.engine, "gold", GOLD_OR_RICH, "ana")
    first = named.refresh(tagged.engine, "gold", TODAY)
    assert len(named.changes(tagged.engine, first.refresh_id)["joined"]) == first.joined == 2
    named.refresh(tagged.engine, "gold", TODAY)
    assert len(named.changes(tagged.engine, first.refresh_id)["joined"]) == 2  # one of the latest two
    named.refresh(tagged.engine, "gold", TODAY)
    assert named.changes(tagged.engine, first.refresh_id) == {"joined": [], "left": []}
    assert named.list_segments(tagged.engine)[0]["members"] == 2


def subscriber_ids(store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT msisdn, id FROM subscribers")).all())


def member_states(store, campaign_id: int) -> dict[str, tuple[int, str]]:
    with store.engine.connect() as conn:
        return {msisdn: (cohort, state) for msisdn, cohort, state in conn.execute(text(
            "SELECT s.msisdn, m.cohort, m.state FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
            "WHERE m.campaign_id = :c"), {"c": campaign_id})}


@pytest.mark.parametrize("on_leave", ["stop", "finish"])
def test_a_running_campaign_on_a_segment_takes_in_joiners_and_lets_leavers_go(store, on_leave):
    load_population(store.engine, 400, seed=2, today=TODAY)
    named.save(store.engine, "rbt_targets", {"all": [{"field": "has_ringback_tone", "op": "eq", "value": False},
                                                     {"field": "arpu", "op": "ge", "value": 30}]}, "ana")
    template = load_example("ringback_tone_download.json")
    template["audience"] = {"segment": "rbt_targets", "on_leave": on_leave}
    template.pop("control_share")  # joiners held out would join as `suppressed`: tested in test_effect
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
        upload(session, template, author="ana")
    campaign = campaigns.create(store, template["name"], created_by="ana", today=TODAY)
    launch = member_states(store, campaign.id)
    assert len(launch) == campaign.members > 0
    campaigns.set_status(store.engine, campaign.id, CampaignStatus.RUNNING)

    # a new drop: everyone gives up their ringback tone, and one launch member takes one
    leaver = sorted(launch)[0]
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {current_table(conn)} SET has_ringback_tone = (subscriber_id = "
                          "(SELECT id FROM subscribers WHERE msisdn = :m))"), {"m": leaver})
    named.refresh(store.engine, "rbt_targets", TODAY)
    synced = campaigns.sync(store, campaign.id, TODAY)

    after = member_states(store, campaign.id)
    joiners = set(after) - set(launch)
    assert synced.cohort == 1 and synced.joined == len(joiners) > 0
    assert {after[m] for m in joiners} == {(1, "pending")}
    assert after[leaver] == ((0, "left") if on_leave == "stop" else (0, "pending"))
    assert synced.left == (1 if on_leave == "stop" else 0)
    again = campaigns.sync(store, campaign.id, TODAY)
    assert (again.joined, again.left) == (0, 0)


def current_table(conn) -> str:
    snapshot = conn.execute(text("SELECT id FROM tag_snapshots WHERE status = 'current'")).scalar_one()
    return f"tag_snapshot_{snapshot}"
