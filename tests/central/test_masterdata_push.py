"""Master data reaches the gateways: in each site's snapshot, as ordered deltas after an
import, and — for a large import — as a snapshot the pusher sends (never a delta chain)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from central.config import BrokerConfig
from central.custody.projection import store_events
from central.masterdata.catalog import parse_despatch_advices, parse_serials
from central.masterdata.holds import (
    Unit,
    deltas_since,
    record_gateway_version,
    release_block,
    site_snapshot,
    start_block,
)
from central.masterdata.importer import parse_lots, parse_products
from central.masterdata.publish import DELTA_WEIGHT, Parsed, site_changes, store_and_publish
from central.masterdata.push import CachePusher
from mqtt_topics.cache import build_cache_version, validate_delta, validate_snapshot
from mqtt_topics.examples import event
from mqtt_topics.topics import GatewayTopics
from tests.central.test_masterdata_import import (
    ADVICES,
    BOX,
    PARA,
    PRODUCTS,
    PUMP,
    SERIALS,
    SSCC1,
    SSCC2,
    sscc,
)
from tests.central.test_push import FakeGateway
from tests.conftest import Broker

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
LOTS = f"gtin,lot,expiry,status\n{PARA},LOTA,2027-01-31,active\n{PARA},LOTB,,hold\n"


def load(engine: Engine, *, snapshot_above: int = 5000, **csv: str) -> Any:  # -> Imported
    parsed = Parsed(
        products=parse_products(csv["products"]) if "products" in csv else [],
        lots=parse_lots(csv["lots"]) if "lots" in csv else [],
        serials=parse_serials(csv["serials"]) if "serials" in csv else [],
        advices=parse_despatch_advices(csv["advices"]) if "advices" in csv else [],
    )
    with engine.begin() as c:
        return store_and_publish(c, parsed, who="qa", now=NOW, snapshot_above=snapshot_above)


def outbox(engine: Engine) -> list[tuple[str, int, int, str, dict[str, Any]]]:
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT site, from_version, version, action, payload FROM cache_outbox ORDER BY id"
            )
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def gateways(engine: Engine, *sites: str) -> None:
    with engine.begin() as c:
        for i, site in enumerate(sites):
            record_gateway_version(c, f"gw{i}", site, 1, NOW)


def test_site_snapshot_carries_every_kind_of_master_data_and_validates(engine: Engine) -> None:
    load(engine, products=PRODUCTS, lots=LOTS, serials=SERIALS)
    far = sscc(3)
    load(engine, advices=ADVICES + f"{far},DA-2,{BOX},,,1\n")
    with engine.begin() as c:
        c.execute(text("INSERT INTO sites(site, name) VALUES ('a', 'A'), ('b', 'B')"))
        c.execute(text("UPDATE despatch_advices SET ship_to = 'b' WHERE sscc = :s"), {"s": far})
        start_block(c, "recall", Unit.parse(PUMP, serial="SN2"), reason="x", who="qa", now=NOW)
        snap_a = site_snapshot(c, "a", "req", NOW)
        snap_b = site_snapshot(c, "b", None, NOW)
    [chunk] = snap_a
    assert validate_snapshot(chunk) == []
    assert chunk["schema"]["version"] == "1.1"
    assert {
        p["gtin"]: (p["serialised"], p["lot_tracked"], p["expiry_warning_days"])
        for p in chunk["products"]
    } == {
        PUMP: (True, False, 10),
        PARA: (False, True, 45),
        BOX: (False, False, 30),
    }
    assert chunk["lots"] == [
        {"gtin": PARA, "lot": "LOTA", "expiry": "2027-01-31", "status": "released"},
        {"gtin": PARA, "lot": "LOTB", "expiry": None, "status": "quarantined"},
    ]
    assert chunk["serials"] == [
        {"gtin": PUMP, "serial": "SN1", "lot": "PL1", "state": "commissioned"},
        {"gtin": PUMP, "serial": "SN2", "lot": "PL1", "state": "recalled"},  # the recall wins
        {"gtin": PUMP, "serial": "SN3", "state": "destroyed"},
    ]
    advices = {a["sscc"]: a for a in chunk["despatch_advices"]}
    assert set(advices) == {SSCC1, SSCC2}  # the third is shipped to site b
    assert advices[SSCC1] == {
        "sscc": SSCC1,
        "desadv_id": "DA-1",
        "items": [
            {"gtin": PUMP, "lot": "PL1", "serial": "SN1", "quantity": 1},
            {"gtin": PARA, "lot": "LOTA", "quantity": 12},
            {"gtin": BOX, "quantity": 3},
        ],
    }
    assert {a["sscc"] for a in snap_b[0]["despatch_advices"]} == {SSCC1, SSCC2, far}
    # once central has an event of the pallet it is no longer expected anywhere
    item = {"sscc": SSCC1, "quantity": 1, "from": {"type": "party", "id": "SUP"}}
    item["to"] = {"type": "location", "id": "DOCK"}
    with engine.begin() as c:
        store_events(c, [event(1, "receive", [item], 0)], NOW)
        again = site_snapshot(c, "a", None, NOW)
    assert {a["sscc"] for a in again[0]["despatch_advices"]} == {SSCC2}


def test_a_big_snapshot_is_chunked_by_rows_and_advice_lines(engine: Engine) -> None:
    serials = "gtin,serial\n" + "".join(f"{PUMP},S{i}\n" for i in range(4500))
    lines = "".join(f"{sscc(7)},DA-7,{PUMP},,T{i},1\n" for i in range(1500))
    load(engine, products=PRODUCTS, serials=serials)
    load(engine, advices="sscc,desadv,gtin,lot,serial,quantity\n" + lines)
    with engine.begin() as c:
        chunks = site_snapshot(c, "a", None, NOW)
    assert [c["chunk"] for c in chunks] == [{"index": i, "count": 4} for i in range(4)]
    for c in chunks:
        assert validate_snapshot(c) == []
    assert sum(len(c["serials"]) for c in chunks) == 4500
    assert [len(c["despatch_advices"]) for c in chunks] == [0, 0, 0, 1]  # 1,500 lines alone


def test_an_import_becomes_ordered_deltas_for_every_site(engine: Engine) -> None:
    gateways(engine, "a", "b")
    done = load(engine, products=PRODUCTS, lots=LOTS)
    assert (done.published.mode, done.published.sites) == ("deltas", {"a": 2, "b": 2})
    site, frm, to, action, delta = outbox(engine)[0]
    assert (site, frm, to, action) == ("a", 1, 2, "import")
    assert validate_delta(delta) == []
    assert [(c["entity"], c["record"].get("lot")) for c in delta["changes"]] == [
        ("product", None),
        ("product", None),
        ("product", None),
        ("lot", "LOTA"),
        ("lot", "LOTB"),
    ]
    pump = next(c["record"] for c in delta["changes"] if c["record"]["gtin"] == PUMP)
    assert pump["expiry_warning_days"] == 10 and pump["serialised"] is True

    # a held lot re-imported stays quarantined for the gateways (the hold wins)
    with engine.begin() as c:
        start_block(c, "hold", Unit.parse(PARA, "LOTA"), reason="lab", who="qa", now=NOW)
    load(engine, lots=LOTS)
    last = outbox(engine)[-1][4]
    assert {c["record"]["lot"]: c["record"]["status"] for c in last["changes"]} == {
        "LOTA": "quarantined",
        "LOTB": "quarantined",
    }

    # more than DELTA_WEIGHT records: several deltas per site, contiguous (the hold: v3,
    # the lots: v4)
    serials = "gtin,serial,lot\n" + "".join(
        f"{PUMP},S{i},PL1\n" for i in range(2 * DELTA_WEIGHT + 1)
    )
    done = load(engine, serials=serials)
    assert done.published.mode == "deltas" and done.published.sites == {"a": 7, "b": 7}
    with engine.begin() as c:
        chain = deltas_since(c, "a", 4)
    assert chain is not None
    assert [(d["from_version"], d["version"], len(d["changes"])) for d in chain] == [
        (4, 5, DELTA_WEIGHT),
        (5, 6, DELTA_WEIGHT),
        (6, 7, 1),
    ]
    for d in chain:
        assert validate_delta(d) == []
    assert chain[0]["changes"][0]["record"] == {
        "gtin": PUMP,
        "serial": "S0",
        "lot": "PL1",
        "state": "commissioned",
    }


def test_despatch_advices_follow_their_ship_to(engine: Engine) -> None:
    gateways(engine, "a", "b")
    load(engine, products=PRODUCTS)
    head = "sscc,desadv,gtin,lot,serial,quantity,ship_to\n"
    load(engine, advices=head + f"{SSCC1},DA-1,{BOX},,,3,a\n{SSCC2},DA-1,{BOX},,,4,\n")
    rows = outbox(engine)[2:]
    got = {site: d["changes"] for site, _f, _t, _a, d in rows}
    assert [c["record"]["sscc"] for c in got["a"]] == [SSCC1, SSCC2]
    assert [c["record"]["sscc"] for c in got["b"]] == [SSCC2]
    # re-addressed to b: a is told to forget it, b gets it
    load(engine, advices=head + f"{SSCC1},DA-1,{BOX},,,3,b\n")
    got = {site: d["changes"] for site, _f, _t, _a, d in outbox(engine)[4:]}
    assert got["a"] == [{"op": "delete", "entity": "despatch_advice", "key": {"sscc": SSCC1}}]
    assert got["b"][0]["op"] == "upsert" and got["b"][0]["record"]["items"][0]["quantity"] == 3
    for *_x, d in outbox(engine):
        assert validate_delta(d) == []


def test_site_changes_is_pure() -> None:
    rec = {"sscc": SSCC1, "items": [{"gtin": BOX, "quantity": 1}]}
    got = site_changes(["a", "b", "c"], [], {SSCC1: ("c", rec)}, {SSCC1: "a"})
    assert got == {
        "a": [{"op": "delete", "entity": "despatch_advice", "key": {"sscc": SSCC1}}],
        "b": [],
        "c": [{"op": "upsert", "entity": "despatch_advice", "record": rec}],
    }


def test_a_serial_recall_lifted_restores_the_master_data_state(engine: Engine) -> None:
    gateways(engine, "a")
    load(engine, products=PRODUCTS, serials=SERIALS)
    with engine.begin() as c:
        start_block(c, "recall", Unit.parse(PUMP, serial="SN1"), reason="x", who="qa", now=NOW)
        release_block(c, "R-1", reason="ok", who="qa", now=NOW)
    lifted = outbox(engine)[-1][4]["changes"]
    assert lifted == [
        {
            "op": "upsert",
            "entity": "serial",
            "record": {"gtin": PUMP, "serial": "SN1", "lot": "PL1", "state": "commissioned"},
        }
    ]


def test_a_large_import_goes_by_snapshot(engine: Engine, broker: Broker) -> None:
    """Above the threshold each site's version is bumped with a snapshot marker: the pusher
    sends a snapshot at commit, and a gateway that was away gets a snapshot as well."""
    gateways(engine, "s1", "s2")
    load(engine, products=PRODUCTS)  # deltas: 1 → 2
    serials = "gtin,serial,lot\n" + "".join(f"{PUMP},S{i},PL1\n" for i in range(5001))
    fake = FakeGateway(broker.port, GatewayTopics("s1", "gw0"))
    pusher = CachePusher(engine, BrokerConfig(port=broker.port, client_id="c-md"), poll_s=0.2)
    pusher.start()
    try:
        done = load(engine, serials=serials)
        assert (done.published.mode, done.published.records) == ("snapshot", 5001)
        assert done.published.sites == {"s1": 3, "s2": 3}
        rows = outbox(engine)
        assert [(r[0], r[1], r[2], r[3]) for r in rows[-2:]] == [
            ("s1", 2, 3, "snapshot"),
            ("s2", 2, 3, "snapshot"),
        ]
        with engine.begin() as c:
            assert deltas_since(c, "s1", 2) is None  # never a delta across the marker
            assert deltas_since(c, "s1", 1) is None
            assert deltas_since(c, "s1", 3) == []
        got = fake.wait(1)
        kinds = [(k, m.get("version"), m.get("chunk")) for k, m in got]
        assert kinds[0][0] == "snapshot" and kinds[0][1] == 3, kinds
        chunks = [m for k, m in fake.wait(kinds[0][2]["count"]) if k == "snapshot"]
        assert sum(len(m["serials"]) for m in chunks) == 5001
        for m in chunks:
            assert validate_snapshot(m) == []
        # a later small change is a delta again, continuing the snapshot's version
        with engine.begin() as c:
            start_block(c, "hold", Unit.parse(PARA, "LOTA"), reason="lab", who="qa", now=NOW)
        deadline_got = fake.wait(len(chunks) + 1)
        kind, d = deadline_got[-1]
        assert (kind, d["from_version"], d["version"]) == ("delta", 3, 4)
        # a gateway of s2 back at version 2 gets a snapshot (the chain crosses the marker)
        topics = GatewayTopics("s2", "gw9")
        other = FakeGateway(broker.port, topics)
        try:
            now = datetime.now(UTC)
            report = build_cache_version(
                gateway_id="gw9", site="s2", time=now, version=2, counts={}
            )
            other.publish(topics.cache_version, report)
            kind, m = other.wait(1)[0]
            assert (kind, m["version"]) == ("snapshot", 4)
        finally:
            other.client.publish(topics.cache_version, b"", qos=1, retain=True)
            other.stop()
    finally:
        pusher.stop()
        fake.stop()
