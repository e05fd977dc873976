"""FSMA 204 spreadsheet end to end: events stored at central, master data imported through the
CLI, ``traceway-central fsma204`` writes XLSX and CSV, read back with openpyxl / csv."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine

from central.cli import main
from central.custody.projection import store_events
from central.fsma.build import NOT_NEEDED_REFERENCE
from central.fsma.columns import COLUMNS, CSV_COLUMNS, RECEIVING, SHEETS, SHIPPING, TRANSFORMATION
from central.fsma.model import Tlc
from central.fsma.queries import fsma_report
from mqtt_topics.examples import GLN_CUSTOMER, GLN_SITE
from tests.central.fsma_day import (
    LOTS_CSV,
    NOW,
    PARTNERS_CSV,
    PRODUCTS_CSV,
    SALSA,
    SITES_CSV,
    TOMATO,
    plant_day,
)

TOM = f"{TOMATO}+TOM-1"
SAL = f"{SALSA}+SAL-1"
PLANT = ["Acme Salsa Plant", "+1 831 555 0100", "1 Canal St", "Salinas", "CA", "93901", "US"]
FARM = ["Sunny Farms", "+1 928 555 0199", "9 Field Rd", "Yuma", "AZ", "85364", "US"]
GROCER = [
    "Corner Grocer",
    f"MISSING: phone of partner {GLN_CUSTOMER}",
    "5 Main St",
    "Reno",
    "NV",
    "89501",
    "US",
]
TOMATOES = ["Roma tomatoes", "Sunny", "Tomatoes", "Roma", "25 lb", "carton"]
SALSA_DESC = ["Fresh salsa", "Acme", "Tomatoes", "n/a", "16 oz", "jar"]
DAY = datetime(2026, 11, 23)

#: The rows the day must give, sheet by sheet (dates as openpyxl reads them back).
EXPECTED: dict[str, list[list[Any]]] = {
    RECEIVING: [
        [
            TOM,
            100,
            "kg",
            *TOMATOES,
            *FARM,
            *PLANT,
            DAY,
            *FARM,
            NOT_NEEDED_REFERENCE,
            "Advance Shipping Notice",
            "ASN-7",
            "Purchase Order",
            "PO-1",
        ],
    ],
    SHIPPING: [
        [
            SAL,
            20,
            "each",
            *SALSA_DESC,
            *GROCER,
            *PLANT,
            DAY,
            *PLANT,
            NOT_NEEDED_REFERENCE,
            "Bill of Lading",
            "BOL-5",
            None,
            None,
        ],
        # the pallet shipped whole: what was on it
        [
            SAL,
            5,
            "each",
            *SALSA_DESC,
            *GROCER,
            *PLANT,
            DAY,
            *PLANT,
            NOT_NEEDED_REFERENCE,
            "Bill of Lading",
            "BOL-6",
            None,
            None,
        ],
    ],
    TRANSFORMATION: [
        [
            TOM,
            *TOMATOES,
            60,
            "kg",
            SAL,
            *PLANT,
            NOT_NEEDED_REFERENCE,
            DAY,
            *SALSA_DESC,
            30,
            "each",
            "Production Order",
            "WO-9",
            None,
            None,
        ],
    ],
}


@pytest.fixture
def db(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The day stored, DATABASE_URL pointing at it; no master data yet."""
    with engine.begin() as c:
        store_events(c, plant_day(), NOW)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    yield engine


@pytest.fixture
def master(db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Engine:
    files = {}
    for name, body in (
        ("sites", SITES_CSV),
        ("partners", PARTNERS_CSV),
        ("products", PRODUCTS_CSV),
        ("lots", LOTS_CSV),
    ):
        files[name] = tmp_path / f"{name}.csv"
        files[name].write_text(body)
    argv = ["import"] + [a for k, p in files.items() for a in (f"--{k}", str(p))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "imported 2 product(s), 1 lot(s), 1 site(s), 2 partner(s)" in out
    return db


def _sheet_rows(path: Path) -> dict[str, list[list[Any]]]:
    wb = load_workbook(path)
    assert wb.sheetnames == list(SHEETS)
    out = {}
    for name in SHEETS:
        ws = wb[name]
        assert [c.value for c in ws[1]] == list(COLUMNS[name])
        assert not ws.merged_cells.ranges
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == f"A1:{ws.cell(1, len(COLUMNS[name])).column_letter}" + str(
            max(ws.max_row, 2)
        )
        out[name] = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    return out


def test_the_day_as_xlsx(
    master: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fsma.xlsx"
    assert main(["fsma204", "--from", "2026-11-23", "--to", "2026-11-24", "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert "Shipping 2, Receiving 1, Transformation 1 row(s)" in said.out
    assert f"MISSING: phone of partner {GLN_CUSTOMER}" in said.err
    rows = _sheet_rows(out)
    for name in SHEETS:
        assert rows[name] == EXPECTED[name], name
    # one value per cell: numbers are numbers, dates are dates, the rest is text
    wb = load_workbook(out)
    rec = wb[RECEIVING]
    assert rec["B2"].data_type == "n" and rec["X2"].is_date
    assert all(c.data_type in ("s", "n", "d") for row in rec.iter_rows() for c in row if c.value)


def test_the_day_as_csv(master: Engine, tmp_path: Path) -> None:
    out = tmp_path / "fsma.csv"
    assert main(["fsma204", "--from", "2026-11-23", "--to", "2026-11-23", "-o", str(out)]) == 0
    with out.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        body = list(reader)
    assert tuple(header) == CSV_COLUMNS
    assert [r[0] for r in body] == ["Shipping", "Shipping", "Receiving", "Transformation"]

    def text(v: Any) -> str:
        if v is None:
            return ""
        return v.date().isoformat() if isinstance(v, datetime) else str(v)

    for cte, expected in EXPECTED.items():
        mine = [r for r in body if r[0] == cte]
        assert len(mine) == len(expected)
        for got, want in zip(mine, expected, strict=True):
            by_col = dict(zip(header, got, strict=True))
            assert [by_col[c] for c in COLUMNS[cte]] == [text(v) for v in want]
            others = set(header) - set(COLUMNS[cte]) - {header[0]}
            assert all(by_col[c] == "" for c in others)


def test_lots_filter_and_range(master: Engine) -> None:
    with master.connect() as c:
        only_tomatoes = fsma_report(
            c, date(2026, 11, 1), date(2026, 11, 30), frozenset({Tlc(TOMATO, "TOM-1")})
        )
        late = fsma_report(c, date(2026, 11, 25), date(2026, 11, 25))
        none = fsma_report(c, date(2026, 11, 24), date(2026, 11, 24))
    # the transformation is there because the tomatoes went into it; the salsa shipped is not
    assert [len(only_tomatoes.rows[s]) for s in SHEETS] == [0, 1, 1]
    assert [len(late.rows[s]) for s in SHEETS] == [0, 1, 0]
    assert late.rows[RECEIVING][0][0] == f"{'09506000134352'}+LATE-1"
    assert [len(none.rows[s]) for s in SHEETS] == [0, 0, 0]


def test_missing_master_data_is_named_in_the_cells_and_warned(
    db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bare.xlsx"
    argv = ["fsma204", "--from", "2026-11-23", "--to", "2026-11-23", "--out", str(out)]
    assert main([*argv, "--tlc", TOM]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err
    for what in (
        "site plant-1 not in master data",
        f"product {TOMATO} not in master data",
        f"TLC source of lot {TOM} (lots: tlc_source or tlc_source_reference)",
    ):
        assert f"MISSING: {what}" in err
    rec = _sheet_rows(out)[RECEIVING][0]
    assert rec[3] == f"MISSING: product {TOMATO} not in master data"
    assert rec[16] == "MISSING: site plant-1 not in master data"
    # never silently blank: every cell of a data row but the optional second document
    assert all(v not in (None, "") for v in rec[:-2])


def test_tlc_file(master: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f, out = tmp_path / "lots.txt", tmp_path / "x.csv"
    f.write_text(f"gtin,lot\n{TOMATO},TOM-1\n")
    argv = ["fsma204", "--from", "2026-11-23", "--to", "2026-11-23", "--out", str(out)]
    assert main([*argv, "--tlc-file", str(f), "--tlc", SAL]) == 0
    assert "Shipping 2, Receiving 1, Transformation 1 row(s)" in capsys.readouterr().out
    assert main([*argv, "--tlc-file", str(f)]) == 0
    assert "Shipping 0, Receiving 1, Transformation 1 row(s)" in capsys.readouterr().out
    f.write_text("# nothing\n")
    assert main([*argv, "--tlc-file", str(f)]) == 2
    assert "names no traceability lot code" in capsys.readouterr().err
    f.write_text(f"{TOMATO},TOM-1\n123,L\n")
    assert main([*argv, "--tlc-file", str(f)]) == 2
    assert f"{f}:2: GTIN '123' must be" in capsys.readouterr().err
    assert main([*argv, "--tlc-file", str(tmp_path / "none.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-24", "--to", "2026-11-23"], "is after the last date"),
        (["--from", "2026-11-23", "--to", "2026-11-23", "--tlc", "123+L1"], "GTIN '123'"),
        (["--from", "2026-11-23", "--to", "2026-11-23", "--tlc", f"{TOMATO}"], "GTIN+LOT"),
        (["--from", "2020-01-01", "--to", "2030-12-31"], "at most 3660 days"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "x.xlsx"
    assert main(["fsma204", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_output_and_dates(
    db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fsma204", "--from", "2026-11-23", "--to", "2026-11-23"]
    assert main([*argv, "--out", str(tmp_path / "x.txt")]) == 2
    assert "must end in .xlsx or .csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["fsma204", "--from", "23.11.2026", "--to", "2026-11-23", "--out", "x.csv"])
    assert exc.value.code == 2
    assert "is not a date (YYYY-MM-DD)" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "no-such-dir" / "x.csv")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_site_gln_is_a_partner_too(master: Engine) -> None:
    """A shipment to one of our own sites (by its GLN) describes that site."""
    from mqtt_topics.examples import event

    ev = event(
        120,
        "ship",
        [
            {
                "gtin": SALSA,
                "lot": "SAL-1",
                "quantity": 1,
                "uom": "EA",
                "from": {"type": "location", "id": "PROD"},
                "to": {"type": "party", "id": GLN_SITE},
            }
        ],
        0,
    )
    ev.update(site="plant-1", event_time="2026-11-24T10:00:00.000-08:00")
    with master.begin() as c:
        store_events(c, [ev], NOW)
    with master.connect() as c:
        rep = fsma_report(c, date(2026, 11, 24), date(2026, 11, 24))
    (row,) = rep.rows[SHIPPING]
    assert row[9:16] == PLANT


def test_too_many_rows_for_xlsx(
    db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from central.fsma import render

    monkeypatch.setattr(render, "MAX_SHEET_ROWS", 1)
    out = tmp_path / "x.xlsx"
    assert main(["fsma204", "--from", "2026-11-23", "--to", "2026-11-23", "-o", str(out)]) == 2
    assert "2 Shipping rows do not fit one sheet" in capsys.readouterr().err
    assert not out.exists()
