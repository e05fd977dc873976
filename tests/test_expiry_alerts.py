"""Expiry alerts: the pure decision exhaustively, then the check through the real writer."""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.expiry_check import ExpiryCheck, check_expiry
from gateway.pipeline import ScanProcessor
from gateway.rules.expiry import ExpiryAlert, LotStock, classify, expiry_alerts
from gateway.store import expiry as expiry_sql
from gateway.writer import Writer
from tests.scenarios.site import LOT_GTIN, PUMP, SALINE, TODAY, Site, lot_code

D = date(2026, 11, 21)


def row(
    expiry: date | None,
    days: int = 30,
    *,
    gtin: str = LOT_GTIN,
    lot: str = "L1",
    location: str = "A1",
    quantity: int = 10,
    status: str = "active",
) -> LotStock:
    return LotStock(gtin, lot, location, quantity, expiry, days, status)


def kinds(alerts: list[ExpiryAlert]) -> list[tuple[str, str, str, int]]:
    return [(a.kind, a.lot, a.location, a.days_left) for a in alerts]


# -- the day boundaries -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offset", "days", "expected"),
    [
        (-400, 30, "expired_in_stock"),
        (-1, 30, "expired_in_stock"),  # expired yesterday
        (0, 30, "expiry_warning"),  # expires today: still usable, last day
        (1, 30, "expiry_warning"),
        (29, 30, "expiry_warning"),
        (30, 30, "expiry_warning"),  # the last day of the window
        (31, 30, None),  # the day before the window opens
        (60, 60, "expiry_warning"),  # the product's own warning days
        (61, 60, None),
        (0, 0, "expiry_warning"),  # no warning days: warned on the expiry day only
        (1, 0, None),
        (-1, 0, "expired_in_stock"),
        (1, -5, None),  # nonsense warning days count as none
        (0, -5, "expiry_warning"),
    ],
)
def test_window_boundaries(offset: int, days: int, expected: str | None) -> None:
    assert classify(D + timedelta(days=offset), days, D) == expected
    got = expiry_alerts([row(D + timedelta(days=offset), days)], D)
    assert [a.kind for a in got] == ([expected] if expected else [])
    if got:
        assert got[0].days_left == offset


def test_no_expiry_or_no_stock_raises_nothing() -> None:
    assert classify(None, 30, D) is None
    assert expiry_alerts([row(None)], D) == []
    assert expiry_alerts([row(D - timedelta(days=3), quantity=0)], D) == []
    assert expiry_alerts([row(D - timedelta(days=3), quantity=-2)], D) == []


def test_warning_days_are_per_product() -> None:
    exp = D + timedelta(days=45)
    rows = [row(exp, 60, gtin=LOT_GTIN), row(exp, 30, gtin=SALINE)]
    assert [(a.gtin, a.kind) for a in expiry_alerts(rows, D)] == [(LOT_GTIN, "expiry_warning")]


def test_once_per_kind_lot_and_location_per_day() -> None:
    exp = D + timedelta(days=3)
    rows = [row(exp, location="A1"), row(exp, location="A2"), row(exp, lot="L2")]
    first = expiry_alerts(rows, D)
    assert kinds(first) == [
        ("expiry_warning", "L1", "A1", 3),
        ("expiry_warning", "L1", "A2", 3),
        ("expiry_warning", "L2", "A1", 3),
    ]
    done = {a.key for a in first}
    assert expiry_alerts(rows, D, done) == []  # the next check the same day: nothing
    partly = expiry_alerts(rows, D, {first[1].key})
    assert kinds(partly) == [("expiry_warning", "L1", "A1", 3), ("expiry_warning", "L2", "A1", 3)]
    # what was alerted yesterday does not count today (the caller passes today's keys only)
    assert len(expiry_alerts(rows, D + timedelta(days=1))) == 3


def test_expired_is_not_suppressed_by_a_warning_of_the_same_day() -> None:
    # the cache's expiry changed during the day (cache sync): the lot is now expired
    warned = ("expiry_warning", LOT_GTIN, "L1", "A1")
    got = expiry_alerts([row(D - timedelta(days=1))], D, {warned})
    assert kinds(got) == [("expired_in_stock", "L1", "A1", -1)]


def test_rows_of_one_key_are_added_up_and_order_is_most_urgent_first() -> None:
    rows = [
        row(D + timedelta(days=5), lot="LATE"),
        row(D - timedelta(days=2), lot="OLD", quantity=3),
        row(D - timedelta(days=2), lot="OLD", quantity=4),  # serials of the same lot, same place
        row(D + timedelta(days=5), lot="LATE", location=""),
    ]
    got = expiry_alerts(rows, D)
    assert [(a.lot, a.location, a.quantity) for a in got] == [
        ("OLD", "A1", 7),
        ("LATE", "", 10),
        ("LATE", "A1", 10),
    ]


def test_status_is_kept_and_held_or_recalled_stock_is_still_alerted() -> None:
    got = expiry_alerts([row(D - timedelta(days=1), status="recalled")], D)
    assert [(a.kind, a.status) for a in got] == [("expired_in_stock", "recalled")]


def test_messages_and_severity() -> None:
    [w] = expiry_alerts([row(D + timedelta(days=1))], D)
    assert w.severity == "warning"
    assert w.message() == f"lot L1 of {LOT_GTIN} at A1: 10 EA expire on 2026-11-22 (in 1 day)"
    [t] = expiry_alerts([row(D, location="")], D)
    assert (
        t.message()
        == f"lot L1 of {LOT_GTIN} at the site (not put away): 10 EA expire today (2026-11-21)"
    )
    [e] = expiry_alerts([row(D - timedelta(days=1))], D)
    assert e.severity == "error"
    assert e.message().endswith("expired on 2026-11-20 (yesterday) and are still in stock")
    [e2] = expiry_alerts([row(D - timedelta(days=9))], D)
    assert "(9 days ago)" in e2.message()


@given(
    offsets=st.lists(st.integers(-100, 100), min_size=1, max_size=12),
    days=st.integers(0, 90),
    today=st.dates(date(2020, 1, 1), date(2040, 1, 1)),
)
def test_property_every_due_key_once(offsets: list[int], days: int, today: date) -> None:
    rows = [
        row(today + timedelta(days=o), days, lot=f"L{i % 4}", location=f"A{i % 3}")
        for i, o in enumerate(offsets)
    ]
    got = expiry_alerts(rows, today)
    assert len({a.key for a in got}) == len(got)  # never twice in one check
    for a in got:
        assert (a.kind == "expired_in_stock") == (a.expiry < today)
        assert a.expiry <= today + timedelta(days=days)
    assert expiry_alerts(rows, today, {a.key for a in got}) == []


# -- through the real writer: SQL, outbox, remembered across a restart ---------------------
LOTS = f"""{LOT_GTIN},OLD,2026-11-20,active,A1,10
{LOT_GTIN},SOON,2027-01-10,active,A1,5
{LOT_GTIN},SOON,2027-01-10,active,A2,7
{LOT_GTIN},LATER,2027-01-21,active,A1,9
{SALINE},S45,2027-01-05,active,B1,4
{SALINE},S20,2026-12-11,recalled,B1,2
{SALINE},GONE,2026-11-01,active,,0
"""
SERIALS = f"""{PUMP},P1,PL1,in_stock,C1
{PUMP},P2,PL1,in_stock,C1
{PUMP},P3,PL1,shipped,
{PUMP},P4,PL2,in_stock,C1
"""
PUMP_LOTS = f"""{PUMP},PL1,2026-11-25,active,,0
{PUMP},PL2,2027-06-30,active,,0
"""


def raised(site: Site) -> list[tuple[str, str, str, str, int, int]]:
    return [
        (
            p["alert"],
            p["stock"]["gtin"],
            p["stock"]["lot"],
            p["stock"]["location"],
            p["stock"]["quantity"],
            p["stock"]["days_left"],
        )
        for p in site.payloads()
        if p["schema"]["name"] == "traceway.alert" and "stock" in p
    ]


def run_check(site: Site) -> int:
    return int(site.writer.call(lambda s: check_expiry(site.processor, s, "dock")))


def restart(site: Site, today: date) -> None:
    """A new writer and processor on the same database (what a restart keeps is on disk)."""
    site.writer.stop()
    site.processor = ScanProcessor(site.cfg, lambda: True, today=lambda: today)
    site.writer = Writer(site.cfg.storage.path, site.processor)
    site.writer.start()


def test_check_through_the_writer_once_per_day_and_across_a_restart(tmp_path: Path) -> None:
    site = Site(tmp_path, {"dock": {"step": "receiving"}}, lots=LOTS + PUMP_LOTS, serials=SERIALS)
    try:
        assert run_check(site) == 5
        expected = [
            ("expired_in_stock", LOT_GTIN, "OLD", "A1", 10, -1),
            ("expiry_warning", PUMP, "PL1", "C1", 2, 4),  # serials on hand, by their lot
            ("expiry_warning", SALINE, "S20", "B1", 2, 20),  # recalled, still on hand
            ("expiry_warning", LOT_GTIN, "SOON", "A1", 5, 50),  # 60 warning days
            ("expiry_warning", LOT_GTIN, "SOON", "A2", 7, 50),
        ]
        assert raised(site) == expected  # LATER (61 days), S45 (45 > 30 days): not yet
        assert run_check(site) == 0  # the next check the same day
        restart(site, TODAY)
        assert run_check(site) == 0  # a restart the same day: nothing again
        # the next day: what is still in stock is alerted again, and LATER joins
        restart(site, TODAY + timedelta(days=1))
        assert run_check(site) == 6
        assert raised(site)[5:] == [
            ("expired_in_stock", LOT_GTIN, "OLD", "A1", 10, -2),
            ("expiry_warning", PUMP, "PL1", "C1", 2, 3),
            ("expiry_warning", SALINE, "S20", "B1", 2, 19),
            ("expiry_warning", LOT_GTIN, "SOON", "A1", 5, 49),
            ("expiry_warning", LOT_GTIN, "SOON", "A2", 7, 49),
            ("expiry_warning", LOT_GTIN, "LATER", "A1", 9, 60),
        ]
        con = site.db()
        days = {r[0] for r in con.execute("SELECT day FROM expiry_alerts")}
        con.close()
        assert days == {"2026-11-22"}  # yesterday's notes are gone
        for p in site.payloads():
            if "stock" in p:
                assert p["scan"] is None and p["decision"] is None and p["station"] == "dock"
    finally:
        site.close()


def test_stock_that_left_is_not_alerted(tmp_path: Path) -> None:
    site = Site(
        tmp_path,
        {"ship": {"step": "shipping", "source": "A1"}},
        lots=f"{LOT_GTIN},SOON,2027-01-10,active,A1,5\n{LOT_GTIN},SOON,2027-01-10,active,A2,1\n",
    )
    try:
        verdicts = site.verdicts("ship", "QTY:5", lot_code(LOT_GTIN, "SOON", "270110"))
        assert verdicts == [("warn", ("near_expiry",))], verdicts
        assert run_check(site) == 1
        assert raised(site) == [("expiry_warning", LOT_GTIN, "SOON", "A2", 1, 50)]
    finally:
        site.close()


def test_the_due_stock_is_read_beside_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduled check counts the due stock on its own connection, in its own thread
    (the writer commits scans meanwhile), and raises the same alerts as a check that
    reads in the writer."""
    site = Site(tmp_path, {"dock": {"step": "receiving"}}, lots=LOTS + PUMP_LOTS, serials=SERIALS)
    readers: list[str] = []
    real = expiry_sql.lots_due

    def spy(conn: sqlite3.Connection, today: date) -> list[LotStock]:
        readers.append(threading.current_thread().name)
        return real(conn, today)

    monkeypatch.setattr(expiry_sql, "lots_due", spy)
    try:
        check = ExpiryCheck(3600, site.writer.submit, site.processor, "dock", site.cfg.storage.path)
        assert check.run_once().result(timeout=10) == 5
        assert readers == [threading.current_thread().name]  # not the writer's thread
        assert [a[0] for a in raised(site)] == ["expired_in_stock"] + ["expiry_warning"] * 4
        assert check.run_once().result(timeout=10) == 0  # the same day: nothing again
    finally:
        site.close()


def test_a_stock_read_of_another_day_is_read_again_in_the_writer(tmp_path: Path) -> None:
    site = Site(tmp_path, {"dock": {"step": "receiving"}}, lots=LOTS + PUMP_LOTS, serials=SERIALS)
    try:
        stale = (TODAY - timedelta(days=1), [])  # read before midnight: nothing due then
        n = site.writer.call(lambda s: check_expiry(site.processor, s, "dock", stale))
        assert n == 5
    finally:
        site.close()


def test_a_failed_read_beside_the_writer_leaves_it_to_the_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(tmp_path, {"dock": {"step": "receiving"}}, lots=LOTS + PUMP_LOTS, serials=SERIALS)
    try:
        missing = tmp_path / "no-such.db"
        check = ExpiryCheck(3600, site.writer.submit, site.processor, "dock", missing)
        with caplog.at_level(logging.WARNING):
            assert check.run_once().result(timeout=10) == 5
        assert "reading the stock beside the writer failed" in caplog.text
        assert not missing.exists()  # no empty database made on the way
    finally:
        site.close()
