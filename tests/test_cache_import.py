"""CSV import into the cache: all or nothing, every bad row named with file and line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.store import queries
from gateway.store.cache_import import ImportError_, import_csv, normalize_gtin
from gateway.store.db import open_database

ROOT = Path(__file__).resolve().parent.parent


def write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_normalize_gtin() -> None:
    assert normalize_gtin("9506000134352") == "09506000134352"
    assert normalize_gtin("96385074") == "00000096385074"
    assert normalize_gtin("036000291452") == "00036000291452"
    with pytest.raises(ValueError, match="check digit"):
        normalize_gtin("09506000134353")
    with pytest.raises(ValueError, match="digits"):
        normalize_gtin("12345")


def test_demo_data_imports(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    demo = ROOT / "config" / "demo"
    counts = import_csv(engine, demo / "products.csv", demo / "lots.csv", demo / "serials.csv")
    engine.dispose()
    assert (counts.products, counts.lots, counts.serials) == (4, 6, 2)
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("SELECT status FROM lots WHERE lot = 'LOTR'").fetchone() == ("recalled",)
    assert con.execute(
        "SELECT SUM(quantity) FROM lot_stock s JOIN lots l ON l.id = s.lot_id WHERE l.lot = 'LOTA'"
    ).fetchone() == (50,)


def test_bad_rows_reported_and_nothing_written(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    prods = write(
        tmp_path / "p.csv",
        "gtin,description,tracking\n"
        "09506000134352,Good,lot\n"
        "09506000134353,Bad check digit,lot\n"
        "09506000134369,Bad tracking,batch\n",
    )
    lots = write(
        tmp_path / "l.csv",
        "gtin,lot,expiry,status\n09506000134352,A,2030-02-30,active\n09506000134352,B,,frozen\n",
    )
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, prods, lots)
    problems = ei.value.problems
    assert f"{prods}:3: GTIN 09506000134353 has a wrong check digit (expected 2)" in problems
    assert any(p.startswith(f"{prods}:4: tracking 'batch'") for p in problems)
    assert any(p.startswith(f"{lots}:2: expiry") for p in problems)
    assert any(p.startswith(f"{lots}:3: status") for p in problems)
    engine.dispose()
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("SELECT COUNT(*) FROM products").fetchone() == (0,)


def test_header_problems_and_unknown_product(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    bad_header = write(tmp_path / "p.csv", "gtin,descr,tracking\n")
    with pytest.raises(ImportError_, match="unknown column"):
        import_csv(engine, bad_header)
    lots = write(tmp_path / "l.csv", "gtin,lot\n09506000134352,A\n")
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, None, lots)
    assert ei.value.problems == [f"{lots}:2: GTIN 09506000134352 is not a known product"]


def test_reimport_updates(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    p = write(tmp_path / "p.csv", "gtin,description,tracking\n09506000134352,Old,lot\n")
    import_csv(engine, p)
    write(p, "gtin,description,tracking\n09506000134352,New,serial\n")
    import_csv(engine, p)
    engine.dispose()
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("SELECT description, tracking FROM products").fetchall() == [
        ("New", "serial")
    ]


def test_cli_import(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "gw.toml",
        '[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "c.db"\n[stations.a]\nstep = "receiving"\n',
    )
    demo = ROOT / "config" / "demo"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "cache",
            "import",
            "--config",
            str(cfg),
            "--products",
            str(demo / "products.csv"),
            "--lots",
            str(demo / "lots.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "imported 4 products, 6 lots, 0 serials" in r.stdout
    bad = write(tmp_path / "bad.csv", "gtin,tracking\n1,lot\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "cache",
            "import",
            "--config",
            str(cfg),
            "--products",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert f"{bad}:2:" in r.stderr and "nothing was written" in r.stderr


def test_semicolon_separated_csv_gets_a_hint(tmp_path: Path) -> None:
    """Spreadsheets in many locales save "CSV" with semicolons: say so, not just
    "missing column(s)"."""
    engine = open_database(tmp_path / "c.db")
    prods = write(tmp_path / "p.csv", "gtin;tracking;description\n09506000134352;lot;Gloves\n")
    tabs = write(tmp_path / "l.csv", "gtin\tlot\n09506000134352\tA\n")
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, prods, tabs)
    engine.dispose()
    problems = ei.value.problems
    assert f"{prods}:1: the header is separated by semicolons (;), not commas" in "\n".join(
        problems
    )
    assert any(p.startswith(f"{tabs}:1: the header is separated by tabs") for p in problems)
    good = write(tmp_path / "ok.csv", "gtin,tracking,extra\n09506000134352,lot,x\n")
    engine = open_database(tmp_path / "d.db")
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, good)
    engine.dispose()
    assert not any("separated by" in p for p in ei.value.problems)


# -- issue 10: imports reject ambiguity ---------------------------------------------------

LOT_G = "09506000134352"  # lot-tracked
PUMP_G = "09506000134369"  # serial-tracked
BOX_G = "09506000134383"  # untracked
PRODUCTS = (
    "gtin,description,tracking,expiry_warning_days\n"
    f"{LOT_G},Paracetamol,lot,60\n{PUMP_G},Pump,serial,30\n{BOX_G},Box,none,0\n"
)
LOT_HEADER = "gtin,lot,expiry,status,location,quantity\n"


def refused(tmp_path: Path, lots_text: str, products_text: str | None = PRODUCTS) -> list[str]:
    """Import PRODUCTS and a lots file that must be refused; check nothing was written."""
    db = tmp_path / "refused.db"
    engine = open_database(db)
    prods = write(tmp_path / "p.csv", products_text) if products_text is not None else None
    lots = write(tmp_path / "l.csv", LOT_HEADER + lots_text)
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, prods, lots)
    engine.dispose()
    con = sqlite3.connect(db)
    for table in ("products", "lots", "lot_stock", "item_stock"):
        assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table
    con.close()
    return ei.value.problems


def test_duplicate_lot_rows_name_both_lines(tmp_path: Path) -> None:
    """Two rows for one lot at one location: the second no longer silently wins."""
    lots = tmp_path / "l.csv"
    problems = refused(
        tmp_path,
        f"{LOT_G},LOTA,2030-03-31,active,A-01,10\n"
        f"{LOT_G},LOTA,2030-03-31,active,A-02,5\n"
        f"{LOT_G},LOTA,2030-03-31,active,A-01,20\n"
        f"{LOT_G},LOTB,,active,,7\n"
        f"{LOT_G},LOTB,,active,,7\n",
    )
    assert problems == [
        f"{lots}:4: lot LOTA of GTIN {LOT_G} at location A-01 appears twice (first at {lots}:2)",
        f"{lots}:6: lot LOTB of GTIN {LOT_G} with no location appears twice (first at {lots}:5)",
    ]


def test_conflicting_expiry_or_status_of_one_lot(tmp_path: Path) -> None:
    lots = tmp_path / "l.csv"
    problems = refused(
        tmp_path,
        f"{LOT_G},LOTA,2030-03-31,active,A-01,10\n"
        f"{LOT_G},LOTA,2030-04-30,active,A-02,5\n"
        f"{LOT_G},LOTA,2030-03-31,hold,A-03,5\n"
        f"{LOT_G},LOTA,,,A-04,5\n",
    )
    assert problems == [
        f"{lots}:3: lot LOTA of GTIN {LOT_G} has expiry 2030-04-30 here but 2030-03-31 at {lots}:2",
        f"{lots}:4: lot LOTA of GTIN {LOT_G} has status hold here but active at {lots}:2",
        f"{lots}:5: lot LOTA of GTIN {LOT_G} has no expiry here but 2030-03-31 at {lots}:2",
    ]


def test_one_lot_at_several_locations_keeps_each_quantity(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    prods = write(tmp_path / "p.csv", PRODUCTS)
    lots = write(
        tmp_path / "l.csv",
        LOT_HEADER + f"{LOT_G},LOTA,2030-03-31,active,DOCK1,0\n"
        f"{LOT_G},LOTA,2030-03-31,,A-02,30\n"
        f"{LOT_G},LOTA,2030-03-31,active,A-04,20\n"
        f"{LOT_G},LOTA,2030-03-31,active,,5\n",
    )
    counts = import_csv(engine, prods, lots)
    assert counts.lots == 4
    import_csv(engine, prods, lots)  # a second import sets, it does not add
    engine.dispose()
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("SELECT COUNT(*) FROM lots").fetchone() == (1,)
    rows = con.execute(
        "SELECT s.location, s.quantity FROM lot_stock s JOIN lots l ON l.id = s.lot_id "
        "WHERE l.lot = 'LOTA' ORDER BY s.location"
    ).fetchall()
    assert rows == [("", 5), ("A-02", 30), ("A-04", 20)]  # none left at DOCK1: no row
    assert sum(q for _, q in rows) == 55


def test_imported_stock_has_a_fifo_arrival_time(tmp_path: Path) -> None:
    """Imported stock counts for FIFO (received at import); a re-import keeps the time."""
    engine = open_database(tmp_path / "c.db")
    prods = write(tmp_path / "p.csv", PRODUCTS)
    lots = write(tmp_path / "l.csv", LOT_HEADER + f"{LOT_G},OLD,,,A-01,10\n")
    import_csv(engine, prods, lots)
    con = sqlite3.connect(tmp_path / "c.db")
    (first,) = con.execute("SELECT received_at FROM lot_stock").fetchone()
    assert first is not None
    write(lots, LOT_HEADER + f"{LOT_G},OLD,,,A-01,12\n")
    import_csv(engine, None, lots)
    assert con.execute("SELECT quantity, received_at FROM lot_stock").fetchall() == [(12, first)]
    write(lots, LOT_HEADER + f"{LOT_G},OLD,,,A-01,0\n")
    import_csv(engine, None, lots)
    assert con.execute("SELECT COUNT(*) FROM lot_stock").fetchone() == (0,)
    engine.dispose()


def test_untracked_stock_is_a_lot_row_with_an_empty_lot(tmp_path: Path) -> None:
    """lots.csv rows with an empty lot give an untracked product stock per location."""
    engine = open_database(tmp_path / "c.db")
    prods = write(tmp_path / "p.csv", PRODUCTS)
    lots = write(
        tmp_path / "l.csv",
        LOT_HEADER + f"{BOX_G},,,,D-01,500\n{BOX_G},,,active,D-02,20\n{LOT_G},LOTA,,,A-01,3\n",
    )
    counts = import_csv(engine, prods, lots)
    assert (counts.lots, counts.items) == (1, 2)
    # the product may come from an earlier import; a re-import sets the quantities
    write(lots, LOT_HEADER + f"{BOX_G},,,,D-01,400\n{BOX_G},,,,D-02,0\n")
    import_csv(engine, None, lots)
    engine.dispose()
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("SELECT gtin, location, quantity FROM item_stock").fetchall() == [
        (BOX_G, "D-01", 400)
    ]
    assert con.execute("SELECT lot FROM lots").fetchall() == [("LOTA",)]
    assert [r["quantity"] for r in queries.stock(con, gtin=BOX_G)] == [400]


def test_lot_column_must_match_the_products_tracking(tmp_path: Path) -> None:
    lots = tmp_path / "l.csv"
    problems = refused(
        tmp_path,
        f"{LOT_G},,2030-03-31,active,A-01,10\n"
        f"{PUMP_G},,,,C-01,1\n"
        f"{BOX_G},B1,,,D-01,5\n"
        f"{BOX_G},,2030-01-31,,D-02,5\n"
        f"{BOX_G},,,hold,D-03,5\n"
        f"{BOX_G},,,,D-04,5\n"
        f"{BOX_G},,,,D-04,6\n"
        f"{PUMP_G},PL1,,active,C-01,4\n",
    )
    assert problems == [
        f"{lots}:8: GTIN {BOX_G} at location D-04 appears twice (first at {lots}:7)",
        f"{lots}:2: GTIN {LOT_G} is lot-tracked: the lot must not be empty",
        f"{lots}:3: GTIN {PUMP_G} is serial-tracked: the lot must not be empty",
        f"{lots}:4: GTIN {BOX_G} is not tracked (tracking none): leave the lot empty",
        f"{lots}:5: GTIN {BOX_G} is not tracked (tracking none): an untracked product "
        "has no expiry or status",
        f"{lots}:6: GTIN {BOX_G} is not tracked (tracking none): an untracked product "
        "has no expiry or status",
        f"{lots}:9: GTIN {PUMP_G} is serial-tracked: the stock of its lot is its serials "
        "(list them in serials.csv), leave location and quantity empty",
    ]


def test_tracking_comes_from_the_cache_when_no_products_file(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    import_csv(engine, write(tmp_path / "p.csv", PRODUCTS))
    lots = write(tmp_path / "l.csv", LOT_HEADER + f"{LOT_G},,,,A-01,10\n")
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, None, lots)
    engine.dispose()
    assert ei.value.problems == [
        f"{lots}:2: GTIN {LOT_G} is lot-tracked: the lot must not be empty"
    ]


def test_expiry_warning_days_checked_and_stored(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    bad = write(
        tmp_path / "p.csv",
        "gtin,tracking,expiry_warning_days\n"
        f"{LOT_G},lot,abc\n{PUMP_G},serial,-1\n{BOX_G},none,1.5\n"
        "09506000134376,lot,99999999999999999999\n",
    )
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, bad)
    assert ei.value.problems == [
        f"{bad}:2: expiry_warning_days 'abc' is not a whole number",
        f"{bad}:3: expiry_warning_days must be at least 0",
        f"{bad}:4: expiry_warning_days '1.5' is not a whole number",
        f"{bad}:5: expiry_warning_days must be at most 3650",
    ]
    good = write(
        tmp_path / "p.csv",
        f"gtin,tracking,expiry_warning_days\n{LOT_G},lot,90\n{PUMP_G},serial,\n{BOX_G},none,0\n",
    )
    import_csv(engine, good)
    engine.dispose()
    con = sqlite3.connect(tmp_path / "c.db")
    assert dict(con.execute("SELECT gtin, expiry_warning_days FROM products").fetchall()) == {
        LOT_G: 90,
        PUMP_G: 30,
        BOX_G: 0,
    }


def test_huge_quantity_is_a_row_error_not_a_traceback(tmp_path: Path) -> None:
    lots = tmp_path / "l.csv"
    problems = refused(tmp_path, f"{LOT_G},LOTA,,,A-01,99999999999999999999\n")
    assert problems == [f"{lots}:2: quantity must be at most 1000000000"]


def test_duplicate_serial_names_the_first_line(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "c.db")
    prods = write(tmp_path / "p.csv", PRODUCTS)
    ser = write(
        tmp_path / "s.csv",
        f"gtin,serial,lot\n{PUMP_G},SN1,PL1\n{PUMP_G},SN2,PL1\n{PUMP_G},SN1,PL2\n",
    )
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, prods, None, ser)
    engine.dispose()
    assert ei.value.problems == [
        f"{ser}:4: serial SN1 of GTIN {PUMP_G} appears twice (first at {ser}:2)"
    ]


def test_cli_counts_untracked_stock_rows(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "gw.toml",
        '[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "c.db"\n[stations.a]\nstep = "receiving"\n',
    )
    prods = write(tmp_path / "p.csv", PRODUCTS)
    lots = write(tmp_path / "l.csv", LOT_HEADER + f"{BOX_G},,,,D-01,500\n{LOT_G},LOTA,,,A-01,3\n")
    r = subprocess.run(
        [
            *(sys.executable, "-m", "gateway.cli", "cache", "import", "--config", str(cfg)),
            *("--products", str(prods), "--lots", str(lots)),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "imported 3 products, 1 lots, 0 serials, 1 untracked stock rows" in r.stdout


# -- issue 11: streaming import, bounded memory -------------------------------------------


def many_serials(path: Path, n: int, bad: dict[int, str] | None = None) -> Path:
    """A serials file of ``n`` rows of PUMP_G (line k+2 is serial SN{k}); ``bad`` replaces
    whole lines by number."""
    bad = bad or {}
    with path.open("w") as f:
        f.write("gtin,serial,lot,state,location\n")
        for k in range(n):
            line = k + 2
            f.write(bad[line] if line in bad else f"{PUMP_G},SN{k},PL{k % 50},expected,")
            f.write("\n")
    return path


def dump(db: Path) -> list[Any]:
    con = sqlite3.connect(db)
    try:
        return [
            con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("products", "lots", "lot_stock", "item_stock", "serials")
        ]
    finally:
        con.close()


def test_bad_rows_near_the_end_of_a_huge_file_leave_the_cache_untouched(tmp_path: Path) -> None:
    """A bad row at line 900,000 (a repeat of line 3) and one at 900,001 (a wrong check
    digit) are reported with file and line; the cache stays exactly as it was."""
    db = tmp_path / "c.db"
    engine = open_database(db)
    prods = write(tmp_path / "p.csv", PRODUCTS)
    lots = write(tmp_path / "l.csv", LOT_HEADER + f"{LOT_G},LOTA,,,A-01,10\n{BOX_G},,,,D-01,5\n")
    small = many_serials(tmp_path / "s0.csv", 10)
    import_csv(engine, prods, lots, small)
    before = dump(db)
    assert len(before[4]) == 10
    ser = many_serials(
        tmp_path / "s.csv",
        900_000,
        {900_000: f"{PUMP_G},SN1,PL1,expected,", 900_001: "09506000134360,SNX,,,"},
    )
    write(lots, LOT_HEADER + f"{LOT_G},LOTA,,,A-01,99\n{BOX_G},,,,D-01,0\n")
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, prods, lots, ser)
    engine.dispose()
    assert ei.value.problems == [
        f"{ser}:900000: serial SN1 of GTIN {PUMP_G} appears twice (first at {ser}:3)",
        f"{ser}:900001: GTIN 09506000134360 has a wrong check digit (expected 9)",
    ]
    assert dump(db) == before


def test_import_streams_rows_instead_of_holding_them(tmp_path: Path) -> None:
    """Python memory stays small however many rows a file has (they are staged in SQLite):
    200,000 serials, peak traced allocations under 16 MB (a list of row dicts is ~100 MB)."""
    import tracemalloc

    engine = open_database(tmp_path / "c.db")
    prods = write(tmp_path / "p.csv", PRODUCTS)
    ser = many_serials(tmp_path / "s.csv", 200_000)
    tracemalloc.start()
    try:
        counts = import_csv(engine, prods, None, ser)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    engine.dispose()
    assert counts.serials == 200_000
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("SELECT COUNT(*), MIN(updated_at) > 0 FROM serials").fetchone() == (
        200_000,
        1,
    )
    con.close()


def test_many_problems_are_counted_and_the_first_ones_listed(tmp_path: Path) -> None:
    """A file of bad rows: the first MAX_REPORTED problems in line order, all counted."""
    from gateway.store.cache_import import MAX_REPORTED

    engine = open_database(tmp_path / "c.db")
    prods = write(tmp_path / "p.csv", PRODUCTS)
    n = MAX_REPORTED + 500
    ser = many_serials(tmp_path / "s.csv", n, {k: f"{PUMP_G},,,," for k in range(2, n + 2)})
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, prods, None, ser)
    engine.dispose()
    assert ei.value.total == n
    assert len(ei.value.problems) == MAX_REPORTED
    assert ei.value.problems[0] == f"{ser}:2: serial must be 1 to 20 characters"
    assert ei.value.problems[-1].startswith(f"{ser}:{MAX_REPORTED + 1}: ")


def test_a_repeat_of_a_refused_row_names_the_first_good_row(tmp_path: Path) -> None:
    """Only good rows count as "first": a row repeating a disagreeing row's location is
    compared with the lot's first row, and a repeat of a bad serial row is not a duplicate."""
    lots = tmp_path / "l.csv"
    problems = refused(
        tmp_path,
        f"{LOT_G},LOTA,2030-03-31,active,A-01,10\n"
        f"{LOT_G},LOTA,2030-04-30,active,A-02,5\n"
        f"{LOT_G},LOTA,2030-04-30,active,A-02,5\n"
        f"{LOT_G},LOTA,2030-03-31,active,A-02,5\n"
        f"{LOT_G},LOTA,2030-03-31,active,A-02,6\n",
    )
    assert problems == [
        f"{lots}:3: lot LOTA of GTIN {LOT_G} has expiry 2030-04-30 here but 2030-03-31 at {lots}:2",
        f"{lots}:4: lot LOTA of GTIN {LOT_G} has expiry 2030-04-30 here but 2030-03-31 at {lots}:2",
        f"{lots}:6: lot LOTA of GTIN {LOT_G} at location A-02 appears twice (first at {lots}:5)",
    ]
    engine = open_database(tmp_path / "s.db")
    ser = write(
        tmp_path / "s.csv",
        f"gtin,serial,state\n{PUMP_G},SN1,lost\n{PUMP_G},SN1,\n{PUMP_G},SN1,picked\n",
    )
    with pytest.raises(ImportError_) as ei:
        import_csv(engine, write(tmp_path / "p.csv", PRODUCTS), None, ser)
    engine.dispose()
    assert ei.value.problems == [
        f"{ser}:2: state 'lost' must be one of in_stock, picked, shipped, consumed, "
        "destroyed, expected",
        f"{ser}:4: serial SN1 of GTIN {PUMP_G} appears twice (first at {ser}:3)",
    ]


def test_cli_lists_the_first_problems_and_counts_all(tmp_path: Path) -> None:
    from gateway.store.cache_import import MAX_REPORTED

    cfg = write(
        tmp_path / "gw.toml",
        '[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "c.db"\n[stations.a]\nstep = "receiving"\n',
    )
    n = MAX_REPORTED + 3
    bad = write(tmp_path / "p.csv", "gtin,tracking\n" + "1,lot\n" * n)
    r = subprocess.run(
        [
            *(sys.executable, "-m", "gateway.cli", "cache", "import", "--config", str(cfg)),
            *("--products", str(bad)),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[-2:] == [
        "… and 3 more problem(s)",
        f"import refused: {n} problem(s); nothing was written",
    ]
    assert len(lines) == MAX_REPORTED + 2
