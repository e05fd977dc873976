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
