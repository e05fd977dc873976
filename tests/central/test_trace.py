"""Trace at central: a day at two sites, scanned through the real gateway pipeline.

The events are the payloads the gateways published (``Site.events()``); central stores
them with ``store_events`` and traces lots, serials and a pallet through the pallets
they were on and the transformation that consumed them, backward and forward.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from central.cli import main
from central.custody.projection import store_events
from central.trace.model import KeyError_, Step, Trace, unit_key
from central.trace.queries import trace
from mqtt_topics.examples import event
from tests.central.trace_day import GLN_A, GLN_B, GLN_C, SUPPLIER, Day, X, run_day
from tests.scenarios.site import LOT_GTIN, PUMP, SALINE

NOW = datetime(2026, 12, 1, tzinfo=UTC)
XFORM_PREFIX = "urn:traceway:site-b:line:"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return run_day(tmp_path_factory.mktemp("day"))


@pytest.fixture
def db(engine: Engine, day: Day) -> Engine:
    with engine.begin() as c:
        assert store_events(c, day.all, NOW).stored == len(day.all)
    return engine


def show(p: Any) -> str | None:
    return None if p is None else str(p)


def moves(steps: list[Step]) -> list[tuple[Any, ...]]:
    """(gateway, movement, unit, quantity, from, to) of each step."""
    return [
        (
            s.gateway_id,
            s.movement,
            s.unit,
            None if s.quantity is None else int(s.quantity),
            show(s.source),
            show(s.destination),
        )
        for s in steps
    ]


L1 = f"{LOT_GTIN}/L1"
N1 = f"{SALINE}/N1"
P1 = f"{PUMP} #P1"
P2 = f"{PUMP} #P2"
PX = f"SSCC {X}"
B, C = f"party:{GLN_B}", f"party:{GLN_C}"

#: Lot L1's own chain, both sites (the pallet's shipment is a step of the lot on it).
L1_SELF = [
    ("gw-a", "receive", L1, 100, f"party:{SUPPLIER}", "DOCK-A"),
    ("gw-a", "putaway", L1, 100, "DOCK-A", "A-01"),
    ("gw-a", "ship", L1, 40, "A-01", B),
    ("gw-b", "receive", L1, 40, f"party:{GLN_A}", "DOCK-B"),
    ("gw-b", "pick", L1, 10, "DOCK-B", "STAGE"),
    ("gw-b", "pack", L1, 10, "STAGE", "STAGE"),
    ("gw-b", "consume", L1, 5, "DOCK-B", None),
    ("gw-b", "ship", PX, None, "STAGE", C),
    ("gw-b", "ship", L1, 10, "STAGE", C),
]
N1_SELF = [
    ("line-b", "consume", N1, 50, None, "PROD"),
    ("gw-b", "ship", N1, 20, "PROD", C),
]
P1_SELF = [
    ("gw-a", "receive", P1, 1, f"party:{SUPPLIER}", "DOCK-A"),
    ("gw-a", "putaway", P1, 1, "DOCK-A", "A-01"),
    ("gw-a", "ship", P1, 1, "A-01", B),
    ("gw-b", "receive", P1, 1, f"party:{GLN_A}", "DOCK-B"),
    ("gw-b", "pick", P1, 1, "DOCK-B", "STAGE"),
    ("gw-b", "pack", P1, 1, "STAGE", "STAGE"),
    ("gw-b", "ship", PX, None, "STAGE", C),
    ("gw-b", "ship", P1, 1, "STAGE", C),
]


def run(db: Engine, **key: str) -> Trace:
    with db.connect() as c:
        return trace(c, unit_key(**key))


def test_lot_forward_through_the_pallet_and_the_transformation(db: Engine) -> None:
    t = run(db, gtin=LOT_GTIN, lot="L1")
    assert moves(t.part("self")) == L1_SELF
    assert moves(t.part("backward")) == []
    assert moves(t.part("forward")) == N1_SELF
    xforms = {s.via_id for s in t.part("forward")}
    assert len(xforms) == 1 and str(xforms.pop()).startswith(XFORM_PREFIX)
    assert t.recipients == [GLN_B, GLN_C]
    pallet_step = t.part("self")[7]
    assert (pallet_step.via, pallet_step.site, pallet_step.recipient) == ("pallet", "site-b", GLN_C)
    # every step says when, where (site, gateway) and which event
    assert all(s.event_time.tzinfo and s.site and s.event_id for s in t.steps)
    times = [s.event_time for s in t.part("self")]
    assert times == sorted(times)


def test_a_product_traces_back_to_what_it_was_made_of(db: Engine, day: Day) -> None:
    t = run(db, gtin=SALINE, lot="N1")
    assert moves(t.part("self")) == N1_SELF
    # L1's history up to the consumption; its shipment to C came later and is not a source
    assert moves(t.part("backward")) == L1_SELF[:7]
    assert {s.depth for s in t.part("backward")} == {1}
    assert moves(t.part("forward")) == []


def test_serial_follows_its_pallet_to_the_customer(db: Engine) -> None:
    t = run(db, gtin=PUMP, serial="P1")
    assert moves(t.part("self")) == P1_SELF
    assert t.part("backward") == t.part("forward") == []
    assert t.recipients == [GLN_B, GLN_C]


def test_a_serial_lot_traces_all_its_serials(db: Engine) -> None:
    t = run(db, gtin=PUMP, lot="PL1")
    assert sorted(moves(t.part("self"))) == sorted(
        [
            *P1_SELF,
            ("gw-a", "receive", P2, 1, f"party:{SUPPLIER}", "DOCK-A"),
            ("gw-a", "putaway", P2, 1, "DOCK-A", "A-02"),
        ]
    )


def test_pallet_backward_is_where_its_contents_came_from(db: Engine) -> None:
    t = run(db, sscc=X)
    assert moves(t.part("self")) == [("gw-b", "ship", PX, None, "STAGE", C)]
    back = moves(t.part("backward"))
    # the contents' history up to packing, each unit in its own order
    assert [m for m in back if m[2] == L1] == L1_SELF[:6]
    assert [m for m in back if m[2] == P1] == P1_SELF[:6]
    assert len(back) == 12
    fwd = moves(t.part("forward"))
    assert [m for m in fwd if m[2] == P1] == [P1_SELF[5], P1_SELF[7]]
    # lot identity: from packing on, the lot's moves and what was made of it
    assert [m for m in fwd if m[2] in (L1, N1)] == [
        L1_SELF[5],
        L1_SELF[6],
        N1_SELF[0],
        L1_SELF[8],
        N1_SELF[1],
    ]


def test_one_direction_only(db: Engine) -> None:
    with db.connect() as c:
        back = trace(c, unit_key(gtin=SALINE, lot="N1"), "backward")
        fwd = trace(c, unit_key(gtin=LOT_GTIN, lot="L1"), "forward")
    assert back.part("forward") == [] and len(back.part("backward")) == 7
    assert fwd.part("backward") == [] and moves(fwd.part("forward")) == N1_SELF
    assert moves(fwd.part("self")) == L1_SELF


def test_depth_limit_stops_the_walk(db: Engine) -> None:
    with db.connect() as c:
        shallow = trace(c, unit_key(sscc=X), max_depth=1)
    # depth 1 reaches the contents, not what was made of them
    assert N1 not in {s.unit for s in shallow.steps}
    assert len(shallow.part("backward")) == 12


def test_late_site_gives_the_same_trace(engine: Engine, day: Day) -> None:
    """Site A's events arrive after site B's (its gateway was offline): same answer."""
    with engine.begin() as c:
        store_events(c, [*day.b, day.line], NOW)
    with engine.begin() as c:
        store_events(c, day.a, NOW)
    t = run(engine, gtin=LOT_GTIN, lot="L1")
    assert sorted(moves(t.part("self"))) == sorted(L1_SELF)
    assert moves(t.part("forward")) == N1_SELF


def test_unknown_unit_has_no_steps(db: Engine) -> None:
    assert run(db, gtin=LOT_GTIN, lot="NOPE").steps == ()


def test_keys_are_checked() -> None:
    with pytest.raises(KeyError_, match="check digit"):
        unit_key(gtin="09506000134353", lot="L1")
    with pytest.raises(KeyError_, match="either a lot or a serial"):
        unit_key(gtin=LOT_GTIN)
    with pytest.raises(KeyError_, match="on its own"):
        unit_key(sscc=X, gtin=LOT_GTIN)
    assert unit_key(gtin="9506000134352", lot="L1").gtin == LOT_GTIN
    assert unit_key(sscc="00" + X).sscc == X


# -- cycles in bad data -----------------------------------------------------------------


def _sscc(body: str) -> str:
    from gs1.keys import check_digit

    return body + str(check_digit(body))


PA, PB = _sscc("34012345000000024"), _sscc("34012345000000031")


def _loc(x: str) -> Any:
    return {"type": "location", "id": x}


def _cycle_events() -> list[dict[str, Any]]:
    """Pallet A holds B, B holds A (bad data); lot LC is on A; lots LC → LD → LC."""
    lc: Any = {"gtin": LOT_GTIN, "lot": "LC", "quantity": 4, "uom": "EA"}
    ld: Any = {"gtin": SALINE, "lot": "LD", "quantity": 2, "uom": "EA"}
    return [
        event(1, "receive", [{**lc, "from": {"type": "party", "id": "S"}, "to": _loc("D")}], 0),
        event(2, "pack", [{**lc, "from": _loc("D"), "to": _loc("D")}], 1, parent={"sscc": PA}),
        event(3, "pack", [{"sscc": PB, "from": _loc("D"), "to": _loc("D")}], 2, parent={"sscc": PA}),
        event(4, "pack", [{"sscc": PA, "from": _loc("D"), "to": _loc("D")}], 3, parent={"sscc": PB}),
        event(5, "ship", [{"sscc": PA, "from": _loc("D"), "to": {"type": "party", "id": "CUST"}}], 4),
        event(6, "consume", [], 5, inputs=[{**lc, "from": _loc("D"), "to": None}],
              outputs=[{**ld, "from": None, "to": _loc("D")}], transformation_id="X1"),
        event(7, "consume", [], 6, inputs=[{**ld, "from": _loc("D"), "to": None}],
              outputs=[{**lc, "from": None, "to": _loc("D")}], transformation_id="X2"),
    ]  # fmt: skip


def test_cycles_in_bad_data_terminate(engine: Engine) -> None:
    with engine.begin() as c:
        store_events(c, _cycle_events(), NOW)
    with engine.connect() as c:
        pallet = trace(c, unit_key(sscc=PA))
        lot = trace(c, unit_key(gtin=LOT_GTIN, lot="LC"))
    # each item of each event appears at most once per part
    for t in (pallet, lot):
        for part in ("self", "backward", "forward"):
            ids = [(s.event_id, s.unit) for s in t.part(part)]
            assert len(ids) == len(set(ids))
    lc, ld, pa, pb = f"{LOT_GTIN}/LC", f"{SALINE}/LD", f"SSCC {PA}", f"SSCC {PB}"

    def mu(steps: list[Step]) -> list[tuple[str, str]]:
        return [(s.movement, s.unit) for s in steps]

    # the lot and the pallet it is on (packed onto B while the lot was on it); B's own
    # packing onto A came before, and B's pallet A is where the walk stops
    assert mu(lot.part("self")) == [
        ("receive", lc),
        ("pack", lc),
        ("pack", pa),
        ("ship", pa),
        ("consume", lc),
        ("consume", lc),
    ]
    # LC → LD → LC: the walk stops where it would repeat
    assert mu(lot.part("forward")) == [("consume", ld), ("consume", ld)]
    assert mu(lot.part("backward")) == [("consume", ld), ("consume", ld)]
    assert lot.recipients == pallet.recipients == ["CUST"]
    assert mu(pallet.part("self")) == [("pack", pa), ("ship", pa)]
    assert mu(pallet.part("backward")) == [("receive", lc), ("pack", lc), ("pack", pb)]


# -- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def db_env(db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", db.url.render_as_string(hide_password=False))
    yield db


def test_cli_trace_json(db_env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--gtin", LOT_GTIN, "--lot", "L1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["subject"] == {
        "kind": "lot",
        "gtin": LOT_GTIN,
        "lot": "L1",
        "serial": None,
        "sscc": None,
    }
    assert doc["recipients"] == [GLN_B, GLN_C]
    ship = next(s for s in doc["steps"] if s["movement"] == "ship" and s["site"] == "site-a")
    assert ship["source"] == {"type": "location", "id": "A-01"}
    assert ship["destination"] == {"type": "party", "id": GLN_B}
    assert (ship["quantity"], ship["uom"], ship["recipient"], ship["gateway_id"]) == (
        40,
        "EA",
        GLN_B,
        "gw-a",
    )
    assert [s["direction"] for s in doc["steps"]].count("forward") == 2


def test_cli_trace_text(db_env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--gtin", PUMP, "--serial", "P1"]) == 0
    out = capsys.readouterr().out
    assert f"trace GTIN {PUMP} serial P1" in out
    assert "the unit itself (its serials, the pallets it was on): 8 step(s)" in out
    assert f"recipients: {GLN_B}, {GLN_C}" in out


def test_cli_trace_exit_codes(db_env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--gtin", LOT_GTIN, "--lot", "NONE"]) == 1
    assert main(["trace", "--gtin", "09506000134353", "--lot", "L1"]) == 2
    assert "check digit" in capsys.readouterr().err
    assert main(["trace", "--gtin", LOT_GTIN]) == 2


def test_cli_without_database_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["trace", "--sscc", X]) == 2
    assert "DATABASE_URL" in capsys.readouterr().err


def test_a_shipment_in_the_packings_own_millisecond_is_not_lost(engine: Engine, day: Day) -> None:
    """Event times are milliseconds: a pallet shipped in the millisecond it was packed
    (a gate reads both labels at once) still takes the lot with it in the trace. The
    windows include their bounds; a trace errs on the side of more."""
    events = json.loads(json.dumps(day.all))
    pack = next(e for e in events if e["movement"] == "pack" and e["items"][0].get("lot") == "L1")
    ship = next(
        e for e in events if e["movement"] == "ship" and any(i.get("sscc") == X for i in e["items"])
    )
    ship["event_time"] = pack["event_time"]
    with engine.begin() as c:
        assert store_events(c, events, NOW).stored == len(events)
    with engine.connect() as c:
        t = trace(c, unit_key(gtin=LOT_GTIN, lot="L1"))
    pallet_ship = [s for s in t.part("self") if s.unit == PX]
    assert [(s.movement, s.via, s.recipient) for s in pallet_ship] == [("ship", "pallet", GLN_C)]
    assert GLN_C in t.recipients
