"""Master data import at central: the gateway's products and lots CSV, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from central.cli import main
from central.masterdata.importer import (
    ImportProblems,
    import_master_data,
    parse_lots,
    parse_products,
)
from tests.scenarios.site import LOT_GTIN, PRODUCTS, PUMP, SALINE

GATEWAY_LOTS = (
    "gtin,lot,expiry,status,location,quantity\n"
    f"{LOT_GTIN},L1,2030-12-31,active,A-01,10\n"
    f"{LOT_GTIN},L1,2030-12-31,active,A-02,5\n"  # the same lot at another location
    f"{PUMP},PL1,,hold,,0\n"
)


def test_the_gateways_files_parse() -> None:
    prods = parse_products(PRODUCTS)
    assert [(p.gtin, p.tracking, p.expiry_warning_days) for p in prods][:2] == [
        (LOT_GTIN, "lot", 60),
        (PUMP, "serial", 30),
    ]
    lots = parse_lots(GATEWAY_LOTS)
    assert [(x.gtin, x.lot, x.expiry, x.status) for x in lots] == [
        (LOT_GTIN, "L1", date(2030, 12, 31), "active"),
        (PUMP, "PL1", None, "hold"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("gtin,tracking\n09506000134353,lot\n", "p.csv:2: GTIN 09506000134353 has a wrong check"),
        ("gtin,tracking\n09506000134352,lots\n", "p.csv:2: tracking 'lots' must be one of"),
        ("gtin,tracking,expiry_warning_days\n09506000134352,lot,-1\n", "p.csv:2: expiry_warn"),
        ("gtin,tracking\n09506000134352,lot\n9506000134352,lot\n", "p.csv:3: GTIN 095060001"),
        ("gtin;tracking\n", "p.csv:1: values are separated by semicolons"),
        ("gtin,tracking,colour\n", "p.csv:1: unknown column(s) colour"),
        ("gtin\n", "p.csv:1: missing column(s) tracking"),
        ("", "p.csv:1: empty file"),
        ("gtin,tracking\n09506000134352\n", "p.csv:2: 1 values, the header has 2"),
    ],
)
def test_bad_product_rows_name_file_and_line(data: str, message: str) -> None:
    with pytest.raises(ImportProblems) as exc:
        parse_products(data, "p.csv")
    assert exc.value.problems[0].startswith(message), exc.value.problems


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (f"gtin,lot,expiry\n{LOT_GTIN},L1,31.12.2030\n", "l.csv:2: expiry '31.12.2030' must be"),
        (f"gtin,lot,status\n{LOT_GTIN},L1,blocked\n", "l.csv:2: status 'blocked' must be"),
        (f"gtin,lot\n{LOT_GTIN},\n", "l.csv:2: lot must be 1 to 20"),
        (
            f"gtin,lot,status\n{LOT_GTIN},L1,active\n{LOT_GTIN},L1,hold\n",
            "l.csv:3: lot L1 disagrees with line 2",
        ),
    ],
)
def test_bad_lot_rows_name_file_and_line(data: str, message: str) -> None:
    with pytest.raises(ImportProblems) as exc:
        parse_lots(data, "l.csv")
    assert exc.value.problems[0].startswith(message), exc.value.problems


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as c:
        return (
            int(c.execute(text("SELECT count(*) FROM products")).scalar_one()),
            int(c.execute(text("SELECT count(*) FROM lots")).scalar_one()),
        )


def test_import_upserts_and_never_lifts_a_recall(engine: Engine, tmp_path: Path) -> None:
    p, lo = tmp_path / "products.csv", tmp_path / "lots.csv"
    p.write_text(PRODUCTS)
    lo.write_text(GATEWAY_LOTS)
    with engine.begin() as c:
        counts = import_master_data(c, p, lo)
    assert (counts.products, counts.lots) == (4, 2)
    with engine.begin() as c:
        c.execute(text("UPDATE lots SET status = 'recalled' WHERE lot = 'L1'"))
    lo.write_text(f"gtin,lot,expiry,status\n{LOT_GTIN},L1,2031-01-31,active\n{PUMP},PL1,,active\n")
    with engine.begin() as c:
        import_master_data(c, None, lo)
    with engine.connect() as c:
        got = c.execute(text("SELECT lot, expiry, status FROM lots ORDER BY lot")).fetchall()
    assert [tuple(r) for r in got] == [
        ("L1", date(2031, 1, 31), "recalled"),
        ("PL1", None, "active"),
    ]
    assert _counts(engine) == (4, 2)


def test_lots_of_unknown_products_are_refused(engine: Engine, tmp_path: Path) -> None:
    lo = tmp_path / "lots.csv"
    lo.write_text(f"gtin,lot\n{SALINE},N1\n")
    with pytest.raises(ImportProblems, match="unknown product"), engine.begin() as c:
        import_master_data(c, None, lo)
    assert _counts(engine) == (0, 0)


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    yield engine


def test_cli_import_all_or_nothing(
    env: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, lo = tmp_path / "products.csv", tmp_path / "lots.csv"
    p.write_text(PRODUCTS)
    lo.write_text(GATEWAY_LOTS + f"{LOT_GTIN},L2,2030-02-30,active,,\n")
    assert main(["import", "--products", str(p), "--lots", str(lo)]) == 1
    err = capsys.readouterr().err
    assert f"{lo}:5: expiry '2030-02-30' must be YYYY-MM-DD" in err
    assert "nothing imported (1 problem(s))" in err
    assert _counts(env) == (0, 0)
    lo.write_text(GATEWAY_LOTS)
    assert main(["import", "--products", str(p), "--lots", str(lo)]) == 0
    assert capsys.readouterr().out.strip() == "imported 4 product(s), 2 lot(s)"
    assert _counts(env) == (4, 2)
    assert main(["import"]) == 2
    assert main(["import", "--lots", str(tmp_path / "missing.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err
