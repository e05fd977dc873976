"""CSV import into the cache: all or nothing, every bad row named with file and line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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
