"""Events into PostgreSQL: idempotent, projected, late events and gaps handled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from central.custody.model import gaps_after
from central.custody.projection import store_events
from mqtt_topics.examples import event

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
G = "09506000134352"


def lot_item(lot: str, q: int, src: Any, dst: Any) -> dict[str, Any]:
    return {
        "gtin": "04012345000016",
        "lot": lot,
        "quantity": q,
        "uom": "EA",
        "from": src,
        "to": dst,
    }


def loc(x: str) -> dict[str, str]:
    return {"type": "location", "id": x}


def party(x: str) -> dict[str, str]:
    return {"type": "party", "id": x}


def stock(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as c:
        rows = c.execute(text("SELECT lot, location, quantity FROM lot_stock WHERE quantity <> 0"))
        return {(r[0], r[1]): int(r[2]) for r in rows}


def test_events_are_stored_once_and_projected(engine: Engine) -> None:
    evs = [
        event(1, "receive", [lot_item("L1", 10, party("SUP"), loc("DOCK"))], 0),
        event(2, "putaway", [lot_item("L1", 6, loc("DOCK"), loc("A1"))], 5),
        event(3, "ship", [lot_item("L1", 2, loc("A1"), party("CUST"))], 9),
    ]
    with engine.begin() as c:
        first = store_events(c, evs, NOW)
    with engine.begin() as c:
        again = store_events(c, evs + evs, NOW)  # redelivered twice: nothing changes
    assert (first.stored, again.stored, again.duplicates) == (3, 0, 6)
    assert stock(engine) == {("L1", "DOCK"): 4, ("L1", "A1"): 4}


def test_a_late_older_event_does_not_move_a_serial_back(engine: Engine) -> None:
    serial = {"gtin": G, "serial": "S1", "quantity": 1, "uom": "EA"}
    newer = event(2, "ship", [{**serial, "from": loc("A1"), "to": party("CUST")}], 60)
    older = event(1, "putaway", [{**serial, "from": loc("DOCK"), "to": loc("A1")}], 10)
    with engine.begin() as c:
        store_events(c, [newer], NOW)
    with engine.begin() as c:
        store_events(c, [older], NOW + timedelta(days=1))  # a gateway offline for a day
    with engine.connect() as c:
        row = c.execute(text("SELECT state, holder, location FROM serial_state")).one()
    assert tuple(row) == ("shipped", "CUST", None)


def test_a_tie_at_the_millisecond_goes_by_the_gateways_seq(engine: Engine) -> None:
    """Event times are milliseconds: a put-away and the shipment right after it can share
    one. The shipment (the higher seq) was stored first, the put-away in a later batch:
    the serial and the pallet stay shipped."""
    serial = {"gtin": G, "serial": "S7", "quantity": 1, "uom": "EA"}
    sscc = "340123450000000017"
    putaway = event(
        5, "putaway", [{**serial, "from": loc("DOCK"), "to": loc("A1")},
                       {"sscc": sscc, "from": loc("DOCK"), "to": loc("A1")}], 10
    )  # fmt: skip
    ship = event(
        6, "ship", [{**serial, "from": loc("A1"), "to": party("CUST")},
                    {"sscc": sscc, "from": loc("A1"), "to": party("CUST")}], 10
    )  # fmt: skip
    putaway["event_time"] = ship["event_time"]
    with engine.begin() as c:
        store_events(c, [ship], NOW)
    with engine.begin() as c:
        store_events(c, [putaway], NOW)  # redelivered late
    with engine.connect() as c:
        unit = c.execute(text("SELECT state, holder, last_seq FROM serial_state")).one()
        pallet = c.execute(text("SELECT state, holder, last_seq FROM sscc_state")).one()
    assert tuple(unit) == tuple(pallet) == ("shipped", "CUST", 6)
    # from another gateway, the same millisecond cannot be ordered: the one stored last
    other = event(1, "return", [{**serial, "from": party("CUST"), "to": loc("R1")}], 10)
    other.update(gateway_id="gw-other", event_time=ship["event_time"])
    with engine.begin() as c:
        store_events(c, [other], NOW)
    with engine.connect() as c:
        unit = c.execute(text("SELECT state, location FROM serial_state")).one()
    assert tuple(unit) == ("at_site", "R1")


def test_gaps_are_recorded_and_closed_by_late_events(engine: Engine) -> None:
    evs = {n: event(n, "receive", [lot_item("L", 1, party("S"), loc("D"))], n) for n in range(1, 8)}
    with engine.begin() as c:
        store_events(c, [evs[1], evs[2], evs[5], evs[7]], NOW)
    with engine.connect() as c:
        open_gaps = c.execute(
            text("SELECT from_seq, to_seq FROM seq_gaps WHERE closed_at IS NULL ORDER BY 1")
        ).fetchall()
    assert [tuple(g) for g in open_gaps] == [(3, 4), (6, 6)]
    with engine.begin() as c:
        store_events(c, [evs[3], evs[6]], NOW)
    with engine.connect() as c:
        open_gaps = c.execute(
            text("SELECT from_seq, to_seq FROM seq_gaps WHERE closed_at IS NULL ORDER BY 1")
        ).fetchall()
        high = c.execute(text("SELECT seq_high FROM gateways")).scalar_one()
    assert [tuple(g) for g in open_gaps] == [(4, 4)]
    assert high == 7


def test_a_correction_undoes_the_corrected_quantities(engine: Engine) -> None:
    wrong = event(1, "receive", [lot_item("WRONG", 5, party("S"), loc("D"))], 0)
    fix = event(
        2,
        "receive",
        [lot_item("RIGHT", 5, party("S"), loc("D"))],
        1,
        corrects=[wrong["event_id"]],
        correction_reason="incorrect_data",
    )
    with engine.begin() as c:
        store_events(c, [wrong, fix], NOW)
    assert stock(engine) == {("RIGHT", "D"): 5}


def test_gaps_after() -> None:
    assert gaps_after(0, [1, 2, 3]) == []
    assert gaps_after(2, [5, 3, 9]) == [(4, 4), (6, 8)]
    assert gaps_after(10, [4, 5]) == []


def test_alerts_and_events_share_the_seq_space(engine: Engine) -> None:
    from central.ingest.route import Accepted
    from central.ingest.store import write_batch
    from mqtt_topics.examples import example_payloads

    alert = {**example_payloads()["traceway.alert"], "seq": 2}
    evs = [event(n, "receive", [lot_item("L", 1, party("S"), loc("D"))], n) for n in (1, 3)]
    with engine.begin() as c:
        write_batch(
            c,
            [
                Accepted("event", "t/events", evs[0], b""),
                Accepted("alert", "t/alerts", alert, b""),
                Accepted("event", "t/events", evs[1], b""),
            ],
            [],
            NOW,
        )
    with engine.connect() as c:
        gaps = c.execute(text("SELECT count(*) FROM seq_gaps WHERE closed_at IS NULL")).scalar_one()
        high = c.execute(text("SELECT seq_high FROM gateways")).scalar_one()
    assert (gaps, high) == (0, 3)


def test_events_go_to_monthly_partitions(engine: Engine) -> None:
    evs = [event(1, "receive", [lot_item("L", 1, party("S"), loc("D"))], 0)]
    with engine.begin() as c:
        store_events(c, evs, NOW)
    with engine.connect() as c:
        where = c.execute(text("SELECT tableoid::regclass::text FROM events")).scalar_one()
    assert where == "events_2026_11"
