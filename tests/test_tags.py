"""The tag catalog and the daily drop: typed storage, atomic swap, errors that say where."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from touchwave.errors import UserError
from touchwave.segments.catalog import parse_catalog, upsert_tags
from touchwave.segments.snapshots import DropInvalid, current_snapshot, import_drop
from touchwave.store.models import Subscriber
from touchwave.store.subscribers import SubscriberRow, bulk_load

CATALOG = {"tags": [
    {"name": "arpu", "type": "number", "group": "billing"},
    {"name": "star", "type": "enum", "values": ["silver", "gold", "diamond"]},
    {"name": "vip", "type": "bool"},
    {"name": "contract_end", "type": "date"},
    {"name": "handset", "type": "text"},
]}
HEADER = "msisdn,arpu,star,vip,contract_end,handset"
GOOD = [
    "13800000001,58.5,gold,true,2026-12-31,iPhone 15",
    "13800000002,,silver,0,,",
    "13800000003,120,diamond,Y,2027-03-01,\"Mate 60, Pro\"",
    "13900000009,10,silver,false,2026-01-01,unknown subscriber",
]


def write_drop(folder: Path, lines: list[str], header: str = HEADER, name: str = "tags.csv.gz") -> Path:
    path = folder / name
    body = "\n".join([header, *lines]) + "\n"
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def tagged(store):
    """Three subscribers and the catalog above."""
    bulk_load(store.engine, [SubscriberRow(f"1380000000{i}", "南京", "4G-58") for i in (1, 2, 3)])
    upsert_tags(store.engine, parse_catalog(CATALOG))
    return store


def tag_values(store) -> dict[str, tuple]:
    with store.engine.connect() as conn:
        t = current_snapshot(conn).table
        rows = conn.execute(select(Subscriber.msisdn, t.c.arpu, t.c.star, t.c.vip, t.c.contract_end, t.c.handset)
                            .join(t, t.c.subscriber_id == Subscriber.id).order_by(Subscriber.msisdn)).all()
    return {row[0]: tuple(str(v) if v is not None else None for v in row[1:]) for row in rows}


def snapshot_tables(store) -> list[str]:
    return sorted(t for t in inspect(store.engine).get_table_names() if t.startswith("tag_snapshot_"))


def test_a_gzip_drop_becomes_the_current_typed_snapshot(tagged, tmp_path):
    report = import_drop(tagged.engine, write_drop(tmp_path, GOOD))
    assert (report.rows, report.tags, report.unknown_msisdns) == (3, 5, 1)
    values = tag_values(tagged)
    assert values["13800000001"][:2] == ("58.5", "gold")
    assert values["13800000002"] == (None, "silver", "False", None, None)
    assert values["13800000003"][2:] == ("True", "2027-03-01", "Mate 60, Pro")


def test_a_new_drop_replaces_the_old_one_whole(tagged, tmp_path):
    first = import_drop(tagged.engine, write_drop(tmp_path, GOOD))
    second = import_drop(tagged.engine, write_drop(tmp_path, ["13800000001,70,gold,true,2026-12-31,x"],
                                                   name="next.csv"))
    assert set(tag_values(tagged)) == {"13800000001"}
    with tagged.engine.connect() as conn:
        assert current_snapshot(conn).id == second.snapshot_id != first.snapshot_id
    # the previous snapshot is kept (rules running against it finish), older ones go
    third = import_drop(tagged.engine, write_drop(tmp_path, GOOD, name="third.csv"))
    assert snapshot_tables(tagged) == sorted([f"tag_snapshot_{second.snapshot_id}",
                                              f"tag_snapshot_{third.snapshot_id}"])


def corrupt_gzip(folder: Path) -> Path:
    whole = write_drop(folder, GOOD * 2000, name="whole.csv.gz").read_bytes()
    path = folder / "truncated.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    return path


@pytest.mark.parametrize(("broken", "where"), [
    (lambda d: write_drop(d, [GOOD[0], "13800000002,cheap,silver,0,,"]), "line 3, column arpu: 'cheap' is not a number"),
    (lambda d: write_drop(d, [GOOD[0], "13800000002,1,bronze,0,,"]), "line 3, column star: 'bronze' is not one of"),
    (lambda d: write_drop(d, [GOOD[0], "13800000002,1,gold,maybe,,"]), "line 3, column vip: 'maybe' is not a boolean"),
    (lambda d: write_drop(d, [GOOD[0], "13800000002,1,gold,1,31/12/2026,"]),
     "line 3, column contract_end: '31/12/2026' is not a date"),
    (lambda d: write_drop(d, [GOOD[0], "13800000002,nan,gold,1,,"]), "line 3, column arpu: 'nan' is not a finite"),
    (lambda d: write_drop(d, [GOOD[0], "13800000002,1,gold"]), "line 3: 3 values where the header has 6"),
    (lambda d: write_drop(d, [GOOD[0], GOOD[0]]), "line 3, column msisdn: 13800000001 appears twice"),
    (lambda d: write_drop(d, ["138,1,gold,1,,"]), "line 2, column msisdn: '138' is not a mainland mobile number"),
    (lambda d: write_drop(d, [line.rsplit(",", 1)[0] for line in GOOD], header=HEADER.rsplit(",", 1)[0]),
     "the drop lacks the catalog tag(s) handset"),
    (lambda d: write_drop(d, [line + ",x" for line in GOOD], header=HEADER + ",shoe_size"),
     "column 7 (shoe_size): not a tag in the catalog"),
    (corrupt_gzip, "the file is damaged or ends early"),
])
def test_a_corrupt_drop_leaves_the_previous_snapshot_and_says_where(tagged, tmp_path, broken, where):
    before = import_drop(tagged.engine, write_drop(tmp_path, GOOD, name="yesterday.csv"))
    values = tag_values(tagged)
    with pytest.raises(DropInvalid) as refused:
        import_drop(tagged.engine, broken(tmp_path))
    assert where in str(refused.value)
    assert tag_values(tagged) == values
    with tagged.engine.connect() as conn:
        assert current_snapshot(conn).id == before.snapshot_id
    assert snapshot_tables(tagged) == [f"tag_snapshot_{before.snapshot_id}"]


def test_the_catalog_refuses_names_that_cannot_be_columns():
    with pytest.raises(UserError, match="/tags/0/name: 'Star Level' is not a tag name"):
        parse_catalog({"tags": [{"name": "Star Level", "type": "text"}]})
    with pytest.raises(UserError, match="/tags/0/name: 'region' is reserved"):
        parse_catalog({"tags": [{"name": "region", "type": "text"}]})
    with pytest.raises(UserError, match="/tags/0/values: an enum tag lists its values"):
        parse_catalog({"tags": [{"name": "star", "type": "enum"}]})
    with pytest.raises(UserError, match="/tags/1/type: 'float' is not one of"):
        parse_catalog({"tags": [{"name": "a", "type": "number"}, {"name": "b", "type": "float"}]})
