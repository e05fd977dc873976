"""The writer's per-scan queries do work that does not grow with unrelated cache rows.

Work is counted in SQLite virtual-machine steps (a progress handler), not in time: the
same on any machine. Each query runs against a cache with N and 10·N serials (the extra
ones in other lots); it may not do more than about twice the work on the bigger one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.db import open_database
from gateway.store.hot import HotStore

SERIALISED = "09506000134369"  # serial-tracked, its serials carry lots
LOTTED = "09506000134352"  # lot-tracked


def _lot_of(i: int) -> str:
    return "L5" if i < 100 else f"L{10 + i % 40}"  # L5 has 100 serials whatever the total


def _store(path: Path, serials: int) -> HotStore:
    open_database(path).dispose()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(
        "INSERT INTO products(gtin, description, tracking) VALUES (?, 'a', 'serial'), "
        "(?, 'b', 'lot')",
        (SERIALISED, LOTTED),
    )
    con.executemany(
        "INSERT INTO lots(gtin, lot, expiry, status, updated_at) "
        "VALUES (?, ?, '2030-01-01', 'active', 0)",
        [(SERIALISED, f"L{i}") for i in range(50)] + [(LOTTED, f"M{i}") for i in range(20)],
    )
    con.executemany(
        "INSERT INTO serials(gtin, serial, lot, state, location) VALUES (?, ?, ?, ?, 'A')",
        ((SERIALISED, f"S{i:08d}", _lot_of(i), "in_stock") for i in range(serials)),
    )
    con.execute(
        "INSERT INTO lot_stock(lot_id, location, quantity, received_at) "
        "SELECT id, 'A', 10, 1.0 FROM lots WHERE gtin = ?",
        (LOTTED,),
    )
    return HotStore(con)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[HotStore, HotStore]:
    d = tmp_path_factory.mktemp("hot")
    return _store(d / "small.db", 2_000), _store(d / "big.db", 20_000)


def _steps(store: HotStore, query: Callable[[HotStore], object]) -> int:
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    store.conn.set_progress_handler(tick, 100)
    try:
        query(store)
    finally:
        store.conn.set_progress_handler(None, 0)
    return count[0]


@pytest.mark.parametrize(
    "name, query",
    [
        ("lot of a serial-tracked product", lambda s: s.lot(SERIALISED, "L5")),
        ("lot of a lot-tracked product", lambda s: s.lot(LOTTED, "M5")),
        ("FEFO candidates, lot-tracked", lambda s: s.lots_in_stock(LOTTED, ["QUARANTINE"])),
        ("serial", lambda s: s.serial(SERIALISED, "S00000005")),
        ("product", lambda s: s.product(SERIALISED)),
    ],
)
def test_per_scan_queries_do_not_grow_with_the_serials(
    stores: tuple[HotStore, HotStore], name: str, query: Callable[[HotStore], object]
) -> None:
    small, big = stores
    a, b = _steps(small, query), _steps(big, query)
    assert query(small) == query(big)
    assert b <= 2 * a + 20, f"{name}: {a} → {b} steps (×100) for 10× the serials"


def test_fefo_candidates_of_a_serial_tracked_product_do_not_count_serials(
    stores: tuple[HotStore, HotStore],
) -> None:
    """Their stock per lot comes from ``serial_stock`` (kept by triggers), not a count."""
    small, big = stores
    a = _steps(small, lambda s: s.lots_in_stock(SERIALISED, ["QUARANTINE"]))
    b = _steps(big, lambda s: s.lots_in_stock(SERIALISED, ["QUARANTINE"]))
    assert b <= 2 * a + 20, f"{a} → {b} steps (×100) for 10× the serials"
    assert sum(x.on_hand for x in big.lots_in_stock(SERIALISED, ["QUARANTINE"])) == 20_000


def test_fefo_candidates_of_a_serialised_lot_count_its_serials(tmp_path: Path) -> None:
    s = _store(tmp_path / "x.db", 1_000)
    lots = {x.lot: x.on_hand for x in s.lots_in_stock(SERIALISED, ["QUARANTINE"])}
    assert len(lots) == 41 and lots["L5"] == 100 and sum(lots.values()) == 1_000
    assert s.lots_in_stock(SERIALISED, ["A"]) == ()  # all of them are at an excluded place


def test_a_serialised_lots_own_stock_is_read_without_counting_its_serials(
    tmp_path: Path,
) -> None:
    """A pharma-style label (GTIN + lot + serial) reads its lot's stock and arrival from
    ``serial_stock``: a lot of 100 and a lot of 10,100 in-stock serials cost the same
    work (a COUNT over ``serials`` grew with the lot: 23 ms a scan at 200,000)."""
    s = _store(tmp_path / "x.db", 100)
    big = _store(tmp_path / "y.db", 100)
    big.conn.executemany(
        "INSERT INTO serials(gtin, serial, lot, state, location, updated_at) "
        "VALUES (?, ?, 'L5', 'in_stock', 'B', 2.0)",
        ((SERIALISED, f"T{i:08d}") for i in range(10_000)),
    )
    for name, query in [
        ("lot", lambda h: h.lot(SERIALISED, "L5")),
        ("scan_view", lambda h: h.scan_view(SERIALISED, "S00000005", "L5")),
    ]:
        a, b = _steps(s, query), _steps(big, query)
        assert b <= 2 * a + 20, f"{name}: {a} → {b} steps (×100) for 100× the lot's serials"
    small_lot, big_lot = s.lot(SERIALISED, "L5"), big.lot(SERIALISED, "L5")
    assert small_lot is not None and big_lot is not None
    assert (small_lot[1].on_hand, big_lot[1].on_hand) == (100, 10_100)
    # its arrival (FIFO) is its serials' earliest (the first 100 at 0.0, the rest at 2.0),
    # as for the other lots of the GTIN
    assert big_lot[1].received_at == 0.0
    others = {x.lot: x for x in big.lots_in_stock(SERIALISED, ["QUARANTINE"])}
    assert others["L5"].received_at == big_lot[1].received_at
    assert others["L5"].on_hand == big_lot[1].on_hand


# -- scan_view: one statement, the same answers as the separate reads ----------------------
_GTINS = ("09506000134369", "09506000134352", "09506000134376")
_CODES = (None, "", "A", "B")


def _view_cache(con: sqlite3.Connection, data: dict[str, list[tuple[object, ...]]]) -> None:
    con.execute("BEGIN")
    for t in ("products", "serials", "lot_stock", "lots", "item_stock", "sync_holds"):
        con.execute(f"DELETE FROM {t}")
    con.execute("DELETE FROM sync_recalls")
    con.execute("DELETE FROM sync_lot_status")  # the lots trigger derives status from it
    con.executemany(
        "INSERT OR IGNORE INTO products(gtin, description, tracking, local_hold) "
        "VALUES (?, 'p', ?, ?)",
        data["products"],
    )
    con.executemany(
        "INSERT OR IGNORE INTO lots(gtin, lot, expiry, status, local_hold, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 0)",
        data["lots"],
    )
    con.executemany(
        "INSERT OR IGNORE INTO serials(gtin, serial, lot, state, location, held) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        data["serials"],
    )
    con.executemany(
        "INSERT OR IGNORE INTO lot_stock(lot_id, location, quantity, received_at) "
        "SELECT id, ?, ?, ? FROM lots WHERE gtin = ? AND lot = ?",
        data["lot_stock"],
    )
    con.executemany(
        "INSERT OR IGNORE INTO item_stock(gtin, location, quantity) VALUES (?, ?, ?)",
        data["item_stock"],
    )
    con.executemany(
        "INSERT OR IGNORE INTO sync_recalls(recall_id, gtin, lot, since) VALUES (?, ?, '', 'x')",
        data["recalls"],
    )
    con.execute("COMMIT")


_gtin = st.sampled_from(_GTINS)
_code = st.sampled_from(("A", "B", "C"))
_place = st.sampled_from(("", "X", "Y"))
_view_data = st.fixed_dictionaries(
    {
        "products": st.lists(
            st.tuples(_gtin, st.sampled_from(("serial", "lot", "none")), st.booleans())
        ),
        "lots": st.lists(
            st.tuples(
                _gtin,
                _code,
                st.sampled_from((None, "2030-01-01", "2020-01-01")),
                st.sampled_from(("active", "hold", "recalled")),
                st.booleans(),
            )
        ),
        "serials": st.lists(
            st.tuples(
                _gtin,
                _code,
                st.sampled_from((None, "", "A", "B")),
                st.sampled_from(("expected", "in_stock", "picked", "shipped")),
                _place,
                st.booleans(),
            )
        ),
        "lot_stock": st.lists(
            st.tuples(_place, st.integers(0, 5), st.sampled_from((None, 1.0, 2.0)), _gtin, _code)
        ),
        "item_stock": st.lists(st.tuples(_gtin, _place, st.integers(0, 5))),
        "recalls": st.lists(st.tuples(st.sampled_from(("r1", "r2")), _gtin)),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    data=_view_data,
    gtin=_gtin,
    serial=st.sampled_from((None, "A", "B", "C")),
    lot=st.sampled_from(_CODES),
)
def test_scan_view_answers_as_the_separate_reads(
    view_db: HotStore,
    data: dict[str, list[tuple[object, ...]]],
    gtin: str,
    serial: str | None,
    lot: str | None,
) -> None:
    s = view_db
    _view_cache(s.conn, data)
    product = s.product(gtin)
    found = s.serial(gtin, serial) if serial else None
    code = found.lot if found is not None and found.lot else lot
    lot_row = s.lot(gtin, code) if code else None
    stock: dict[str, int] = {}
    if not serial:
        if lot_row is not None:
            stock = s.lot_stock_at(lot_row[0])
        elif not code:
            rows = s.conn.execute(
                "SELECT location, quantity FROM item_stock WHERE gtin = ? AND quantity > 0",
                (gtin,),
            ).fetchall()
            stock = {str(r[0]): int(r[1]) for r in rows}
    assert s.scan_view(gtin, serial, lot) == (product, found, lot_row, stock)


@pytest.fixture(scope="module")
def view_db(tmp_path_factory: pytest.TempPathFactory) -> HotStore:
    path = tmp_path_factory.mktemp("view") / "v.db"
    open_database(path).dispose()
    return HotStore(sqlite3.connect(path, isolation_level=None))


def test_scan_view_takes_the_serials_own_lot_before_the_labels(view_db: HotStore) -> None:
    """A known serial's lot comes from the cache, not from what its label says."""
    g = _GTINS[0]
    _view_cache(
        view_db.conn,
        {
            "products": [(g, "serial", False)],
            "lots": [(g, "A", "2030-01-01", "active", False), (g, "B", None, "hold", False)],
            "serials": [(g, "S1", "A", "in_stock", "X", False)],
            "lot_stock": [],
            "item_stock": [],
            "recalls": [],
        },
    )
    _, serial, lot_row, stock = view_db.scan_view(g, "S1", "B")
    assert serial is not None and serial.lot == "A"
    assert lot_row is not None and lot_row[1].lot == "A" and lot_row[1].on_hand == 1
    assert stock == {}
    _, serial, lot_row, _ = view_db.scan_view(g, "S2", "B")  # unknown serial: the label's
    assert serial is None and lot_row is not None and lot_row[1].status == "hold"
