"""The pure core of the FSMA 204 spreadsheet: TLCs, date ranges, KDE rows, XLSX/CSV cells."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from central.fsma.build import (
    BATCH_RECORD,
    MISSING,
    NOT_NEEDED_LOCATION,
    NOT_NEEDED_REFERENCE,
    build,
    quantity_cell,
    uom_cell,
)
from central.fsma.columns import (
    COLUMNS,
    CSV_COLUMNS,
    RECEIVING,
    SHEETS,
    SHIPPING,
    TRANSFORMATION,
)
from central.fsma.model import (
    MAX_TLCS,
    FsmaError,
    Line,
    LotSource,
    MasterData,
    Place,
    Product,
    Tlc,
    check_range,
    make_tlc,
    parse_tlc,
    parse_tlc_file,
    parse_tlcs,
)
from central.fsma.render import to_csv, to_xlsx
from mqtt_topics.examples import GLN_CUSTOMER, GLN_SITE, GLN_SUPPLIER, GTIN_A, GTIN_B, GTIN_C

PST = timezone(timedelta(hours=-8))
T = datetime(2026, 11, 23, 9, 0, tzinfo=PST)
D = T.date()
PLANT = Place("Plant", "+1 555", "1 Canal St", "Salinas", "CA", "93901", "US")
FARM = Place("Farm", "+1 556", "9 Field Rd", "Yuma", "AZ", "85364", "US")
SHOP = Place("Shop", "+1 557", "5 Main St", "Reno", "NV", "89501", "US")
FULL = Product("Tomatoes", "Sunny", "Tomatoes", "Roma", "25 lb", "carton")
SALSA = Product("Salsa", "Acme", "Tomatoes", "n/a", "16 oz", "jar")
MASTER = MasterData(
    sites={"plant-1": PLANT},
    site_glns={GLN_SITE: "plant-1"},
    partners={GLN_SUPPLIER: FARM, GLN_CUSTOMER: SHOP},
    products={GTIN_B: FULL, GTIN_C: SALSA},
    lots={Tlc(GTIN_B, "T1"): LotSource(GLN_SUPPLIER, None)},
    made_at={Tlc(GTIN_C, "S1"): "plant-1"},
)


def place_cells(p: Place) -> list[Any]:
    return [p.name, p.phone, p.street, p.city, p.region, p.postal_code, p.country]


def product_cells(p: Product) -> list[Any]:
    return [p.product_name, p.brand, p.commodity, p.variety, p.pack_size, p.pack_style]


def line(
    movement: str = "receive",
    gtin: str | None = GTIN_B,
    lot: str | None = "T1",
    quantity: Any = 10,
    *,
    eid: str = "e1",
    time: datetime = T,
    role: str = "item",
    frm: tuple[str, str] | None = ("party", GLN_SUPPLIER),
    to: tuple[str, str] | None = ("location", "DOCK"),
    uom: str | None = "KGM",
    docs: tuple[tuple[str, str], ...] = (("po", "PO-1"),),
    **kw: Any,
) -> Line:
    return Line(
        event_id=eid,
        time=time,
        site=kw.pop("site", "plant-1"),
        movement=movement,
        role=role,
        gtin=gtin,
        lot=lot,
        serial=kw.pop("serial", None),
        sscc=kw.pop("sscc", None),
        quantity=None if quantity is None else Decimal(str(quantity)),
        uom=uom,
        from_type=frm[0] if frm else None,
        from_id=frm[1] if frm else None,
        to_type=to[0] if to else None,
        to_id=to[1] if to else None,
        documents=docs,
        **kw,
    )


def ship(gtin: str = GTIN_C, lot: str | None = "S1", quantity: Any = 5, **kw: Any) -> Line:
    kw.setdefault("frm", ("location", "PROD"))
    kw.setdefault("to", ("party", GLN_CUSTOMER))
    kw.setdefault("docs", (("bol", "B-1"),))
    kw.setdefault("uom", "EA")
    return line("ship", gtin, lot, quantity, **kw)


def xform(role: str, gtin: str, lot: str, q: Any, **kw: Any) -> Line:
    kw.setdefault("frm", ("location", "A") if role == "input" else None)
    kw.setdefault("to", None if role == "input" else ("location", "B"))
    kw.setdefault("docs", ())
    kw.setdefault("transformation_id", "X-1")
    kw.setdefault("movement", "consume")
    mv = kw.pop("movement")
    return line(mv, gtin, lot, q, role=role, **kw)


# -- traceability lot codes and date ranges -----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"{GTIN_B}+T1",
        f" {GTIN_B}+T1 ",
        f"{GTIN_B} T1",
        f"(01){GTIN_B}(10)T1",
        f"{GTIN_B[1:]}+T1",  # GTIN-13: made GTIN-14
        f"{GTIN_B}/T1",
        f"{GTIN_B},T1",
        f"{GTIN_B};T1",
        f"{GTIN_B}\tT1",
    ],
)
def test_tlc_spellings(text: str) -> None:
    assert parse_tlc(text) == Tlc(GTIN_B, "T1")
    assert str(parse_tlc(text)) == f"{GTIN_B}+T1"


def test_a_lot_may_hold_a_plus() -> None:
    assert parse_tlc(f"{GTIN_B}+A+B") == Tlc(GTIN_B, "A+B")
    assert parse_tlc(f"{GTIN_B}/1/2") == Tlc(GTIN_B, "1/2")


def test_tlc_files() -> None:
    data = f"\ufeffGTIN,LOT\n{GTIN_B},T1  # the tomatoes\n\n# salsa\n{GTIN_C}+S1\n"
    assert parse_tlc_file(data, "f") == [Tlc(GTIN_B, "T1"), Tlc(GTIN_C, "S1")]
    with pytest.raises(FsmaError) as exc:
        parse_tlc_file(f"{GTIN_B},T1\nnope\n{GTIN_B},\n", "f.txt")
    lines = str(exc.value).splitlines()
    assert [ln.split(": ")[0] for ln in lines] == ["f.txt:2", "f.txt:3"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be GTIN+LOT"),
        (GTIN_B, "must be GTIN+LOT"),
        ("L1+0401", "must be GTIN+LOT"),
        ("123+L1", "must be 8, 12, 13 or 14 digits"),
        (f"{GTIN_B[:-1]}{(int(GTIN_B[-1]) + 1) % 10}+L1", "wrong check digit"),
        (f"{GTIN_B}+", "must be 1 to 20 GS1 characters"),
        (f"{GTIN_B}+" + "L" * 21, "must be 1 to 20 GS1 characters"),
        (f"{GTIN_B}+L\x1d1", "must be 1 to 20 GS1 characters"),
        (f"{GTIN_B}+L#1", "must be 1 to 20 GS1 characters"),
    ],
)
def test_bad_tlcs(text: str, message: str) -> None:
    with pytest.raises(FsmaError, match=re.escape(message)):
        parse_tlc(text)


def test_tlc_lists_take_strings_pairs_and_tlcs() -> None:
    got = parse_tlcs([f"{GTIN_B}+T1", (GTIN_C, "S1"), Tlc(GTIN_A, "Z"), (GTIN_B, "T1")])
    assert got == {Tlc(GTIN_B, "T1"), Tlc(GTIN_C, "S1"), Tlc(GTIN_A, "Z")}
    with pytest.raises(FsmaError, match="wrong check digit"):
        make_tlc(GTIN_B[:-1] + str((int(GTIN_B[-1]) + 1) % 10), "L")
    with pytest.raises(FsmaError, match=f"at most {MAX_TLCS}"):
        parse_tlcs((GTIN_B, f"L{i}") for i in range(MAX_TLCS + 1))


def test_date_ranges() -> None:
    check_range(D, D)
    check_range(date(2020, 1, 1), date(2029, 12, 31))
    with pytest.raises(FsmaError, match="is after"):
        check_range(D, D - timedelta(days=1))
    with pytest.raises(FsmaError, match="at most 3660 days"):
        check_range(date(2020, 1, 1), date(2030, 1, 9))


# -- receiving and shipping -----------------------------------------------------------------


def test_a_receipt_with_all_master_data() -> None:
    rep = build([line(docs=(("po", "PO-1"), ("desadv", "ASN-7")))], MASTER, D, D)
    assert rep.rows[RECEIVING] == [
        [
            f"{GTIN_B}+T1",
            10,
            "kg",
            *product_cells(FULL),
            *place_cells(FARM),
            *place_cells(PLANT),
            D,
            *place_cells(FARM),  # the lot's TLC source is the farm
            NOT_NEEDED_REFERENCE,
            "Advance Shipping Notice",
            "ASN-7",
            "Purchase Order",
            "PO-1",
        ]
    ]
    assert rep.rows[SHIPPING] == rep.rows[TRANSFORMATION] == []
    assert not rep.missing and rep.warnings() == []


def test_a_shipment_of_a_lot_made_here() -> None:
    rep = build([ship()], MASTER, D, D)
    assert rep.rows[SHIPPING] == [
        [
            f"{GTIN_C}+S1",
            5,
            "each",
            *product_cells(SALSA),
            *place_cells(SHOP),
            *place_cells(PLANT),
            D,
            *place_cells(PLANT),
            NOT_NEEDED_REFERENCE,
            "Bill of Lading",
            "B-1",
            "",
            "",
        ]
    ]


def test_missing_master_data_names_itself_and_is_counted() -> None:
    bare = MasterData()
    rep = build([line(), ship()], bare, D, D)
    (rec,) = rep.rows[RECEIVING]
    assert rec[3:9] == [f"{MISSING}product {GTIN_B} not in master data"] * 6
    assert rec[9:16] == [f"{MISSING}partner {GLN_SUPPLIER} not in master data"] * 7
    assert rec[16:23] == [f"{MISSING}site plant-1 not in master data"] * 7
    source = f"{MISSING}TLC source of lot {GTIN_B}+T1 (lots: tlc_source or tlc_source_reference)"
    assert rec[24:32] == [source] * 8
    assert rep.missing["site plant-1 not in master data"] == 14
    warnings = rep.warnings()
    assert warnings[0] == f"14 cell(s): {MISSING}site plant-1 not in master data"
    assert len(rep.warnings(limit=2)) == 3 and "more kinds" in rep.warnings(limit=2)[-1]


def test_each_missing_field_is_named() -> None:
    half = Place("Farm", None, "9 Field Rd", None, "AZ", None, "US")
    thin = Product(None, None, "Tomatoes", None, None, None, description="Tomatoes, Roma")
    master = MasterData(
        sites={"plant-1": PLANT}, partners={GLN_SUPPLIER: half}, products={GTIN_B: thin}
    )
    (rec,) = build([line()], master, D, D).rows[RECEIVING]
    assert rec[3:9] == [
        "Tomatoes, Roma",  # the description stands in for a missing product name
        f"{MISSING}brand of product {GTIN_B}",
        "Tomatoes",
        f"{MISSING}variety of product {GTIN_B}",
        f"{MISSING}pack size of product {GTIN_B}",
        f"{MISSING}pack style of product {GTIN_B}",
    ]
    assert rec[9:16] == [
        "Farm",
        f"{MISSING}phone of partner {GLN_SUPPLIER}",
        "9 Field Rd",
        f"{MISSING}city of partner {GLN_SUPPLIER}",
        "AZ",
        f"{MISSING}postal code of partner {GLN_SUPPLIER}",
        "US",
    ]


def test_an_unnamed_source_and_a_site_by_its_gln() -> None:
    rep = build(
        [line(frm=("party", "unknown")), ship(eid="e2", to=("party", GLN_SITE))], MASTER, D, D
    )
    assert (
        rep.rows[RECEIVING][0][9:16]
        == [f"{MISSING}immediate previous source not recorded on the event"] * 7
    )
    assert rep.rows[SHIPPING][0][9:16] == place_cells(PLANT)


def test_internal_moves_are_not_ctes() -> None:
    moves = [
        line(frm=("location", "DOCK"), to=("location", "A-01")),  # a receive between docks
        ship(to=("location", "STAGE")),
        line("putaway", frm=("location", "DOCK"), to=("location", "A-01")),
        line("pick"),
    ]
    rep = build(moves, MASTER, D, D)
    assert all(rep.rows[s] == [] for s in SHEETS)


def test_returns_are_receipts() -> None:
    rep = build([line("return", frm=("party", GLN_CUSTOMER), docs=(("rma", "R-5"),))], MASTER, D, D)
    (rec,) = rep.rows[RECEIVING]
    assert rec[9:16] == place_cells(SHOP)
    assert rec[-4:] == ["Return Merchandise Authorization", "R-5", "", ""]


def test_lines_of_one_lot_are_summed_per_event_and_unit() -> None:
    lines = [
        line(quantity="1.25"),
        line(quantity="2.25"),
        line(quantity=3, uom="LBR"),
        line(eid="e2", quantity=1),
    ]
    rows = build(lines, MASTER, D, D).rows[RECEIVING]
    assert [(r[1], r[2]) for r in rows] == [(Decimal("3.5"), "kg"), (3, "lb"), (1, "kg")]


def test_serials_count_one_each_and_a_lotless_serial_says_so() -> None:
    lines = [
        line(gtin=GTIN_B, lot="T1", quantity=1, serial=f"S{i}", uom="EA") for i in range(3)
    ] + [line(gtin=GTIN_A, lot=None, quantity=1, serial=s, uom="EA") for s in ("P1", "P2")]
    rows = build(lines, MASTER, D, D).rows[RECEIVING]
    assert [(r[0], r[1]) for r in rows] == [
        (f"{GTIN_B}+T1", 3),
        (f"{MISSING}lot of serial {GTIN_A} P1", 1),
        (f"{MISSING}lot of serial {GTIN_A} P2", 1),
    ]
    assert build([line(lot=None)], MASTER, D, D).rows[RECEIVING][0][0] == (
        f"{MISSING}lot of GTIN {GTIN_B} (the lines carry none)"
    )


def test_pallet_content_that_is_not_known() -> None:
    sscc, child = "340123450000000017", "340123450000000024"
    lines = [
        ship(gtin=None, lot=None, quantity=None, sscc=sscc, uom=None),
        ship(gtin=None, lot=None, quantity=None, sscc=child, pallet=sscc, nested=True, eid="e2"),
    ]
    rows = build(lines, MASTER, D, D).rows[SHIPPING]
    assert rows[0][0] == f"{MISSING}content of pallet {sscc} (nothing recorded on it)"
    assert rows[0][1] == f"{MISSING}quantity (the event line has none)"
    assert rows[0][2] == f"{MISSING}unit of measure (the event line has none)"
    assert rows[0][3:9] == [rows[0][0]] * 6
    assert rows[1][0] == f"{MISSING}content of pallet {child} (on pallet {sscc})"


def test_reference_documents() -> None:
    many = (("po", "P"), ("inv", "I"), ("zz", "Z"), ("bol", "B"), ("desadv", "D"))
    rep = build([line(docs=many), line(eid="e2", docs=())], MASTER, D, D)
    a, b = rep.rows[RECEIVING]
    assert a[-4:] == ["Bill of Lading", "B", "Advance Shipping Notice", "D"]
    assert rep.notes == [
        "receive event e1: more than two reference documents, not shown: po P, inv I, zz Z"
    ]
    gap = f"{MISSING}reference document (the event names no PO, ASN, BOL...)"
    assert b[-4:] == [gap, gap, "", ""]
    (c,) = build([line(docs=(("waybill", "W-1"),))], MASTER, D, D).rows[RECEIVING]
    assert c[-4:] == ["waybill", "W-1", "", ""]


@pytest.mark.parametrize(
    ("lots", "made_at", "source"),
    [
        # the lot names its source: a partner
        ({Tlc(GTIN_C, "S1"): LotSource(GLN_SUPPLIER, None)}, {}, [*place_cells(FARM), None]),
        # ... or one of our sites by its id
        ({Tlc(GTIN_C, "S1"): LotSource("plant-1", "R-9")}, {}, [*place_cells(PLANT), "R-9"]),
        # a reference only: the location is not needed
        (
            {Tlc(GTIN_C, "S1"): LotSource(None, "FFRN 123")},
            {},
            [NOT_NEEDED_LOCATION] * 7 + ["FFRN 123"],
        ),
        # made here, by a transformation this system recorded
        ({}, {Tlc(GTIN_C, "S1"): "plant-1"}, [*place_cells(PLANT), None]),
        # a source nobody described
        (
            {Tlc(GTIN_C, "S1"): LotSource("999", None)},
            {},
            [f"{MISSING}partner 999 not in master data"] * 7 + [None],
        ),
    ],
)
def test_tlc_source(lots: Any, made_at: Any, source: list[Any]) -> None:
    master = MasterData(
        sites=MASTER.sites,
        partners=MASTER.partners,
        products=MASTER.products,
        lots=lots,
        made_at=made_at,
    )
    (row,) = build([ship()], master, D, D).rows[SHIPPING]
    assert row[24:31] == source[:7]
    assert row[31] == (source[7] or NOT_NEEDED_REFERENCE)


def test_dates_are_local_and_the_range_is_inclusive() -> None:
    late = T.replace(hour=23, minute=30)  # 2026-11-24 07:30 UTC, still the 23rd at the plant
    lines = [
        line(eid="a", time=late),
        line(eid="b", time=T - timedelta(days=1)),
        line(eid="c", time=T + timedelta(days=1)),
        line(eid="d", time=T + timedelta(days=2)),
    ]
    rows = build(lines, MASTER, D, D + timedelta(days=1)).rows[RECEIVING]
    assert [r[23] for r in rows] == [D, D + timedelta(days=1)]
    assert rows[0][23] == D  # not the UTC date


def test_rows_are_in_time_order() -> None:
    lines = [line(eid=f"e{i}", time=T + timedelta(hours=-i)) for i in range(4)]
    rows = build(lines, MASTER, D - timedelta(days=1), D).rows[RECEIVING]
    assert len(rows) == 4
    docs = build(lines, MASTER, D - timedelta(days=1), D)
    assert docs.rows[RECEIVING] == rows


def test_tlc_filter_on_receipts_and_shipments() -> None:
    lines = [line(), line(lot="T2", eid="e2"), line(lot=None, eid="e3"), ship()]
    rep = build(lines, MASTER, D, D, frozenset({Tlc(GTIN_B, "T2")}))
    assert [r[0] for r in rep.rows[RECEIVING]] == [f"{GTIN_B}+T2"]
    assert rep.rows[SHIPPING] == []
    assert not any("lot of GTIN" in m for m in rep.missing)  # rows left out count nothing


# -- transformations ------------------------------------------------------------------------


def test_one_row_per_input_and_output_pair() -> None:
    t2 = T + timedelta(hours=2)
    lines = [
        xform("input", GTIN_B, "T1", 60, eid="i1"),
        xform("input", GTIN_B, "T2", 40, eid="i1"),
        xform("output", GTIN_C, "S1", 30, eid="o1", time=t2, uom="EA"),
        xform("output", GTIN_C, "S2", 10, eid="o2", time=t2, uom="EA"),
    ]
    rows = build(lines, MASTER, D, D).rows[TRANSFORMATION]
    assert [(r[0], r[7], r[9], r[25]) for r in rows] == [
        (f"{GTIN_B}+T1", 60, f"{GTIN_C}+S1", 30),
        (f"{GTIN_B}+T2", 40, f"{GTIN_C}+S1", 30),
        (f"{GTIN_B}+T1", 60, f"{GTIN_C}+S2", 10),
        (f"{GTIN_B}+T2", 40, f"{GTIN_C}+S2", 10),
    ]
    first = rows[0]
    assert first == [
        f"{GTIN_B}+T1",
        *product_cells(FULL),
        60,
        "kg",
        f"{GTIN_C}+S1",
        *place_cells(PLANT),
        NOT_NEEDED_REFERENCE,
        D,
        *product_cells(SALSA),
        30,
        "each",
        BATCH_RECORD,
        "X-1",
        "",
        "",
    ]


def test_a_lot_fed_in_twice_is_one_input() -> None:
    lines = [
        xform("input", GTIN_B, "T1", 6, eid="i1"),
        xform("input", GTIN_B, "T1", 4, eid="i2", time=T + timedelta(minutes=5)),
        xform("output", GTIN_C, "S1", 3, eid="o1", time=T + timedelta(hours=1)),
    ]
    rows = build(lines, MASTER, D, D).rows[TRANSFORMATION]
    assert [(r[0], r[7], r[9]) for r in rows] == [(f"{GTIN_B}+T1", 10, f"{GTIN_C}+S1")]


def test_a_transformation_is_dated_by_its_output() -> None:
    lines = [
        xform("input", GTIN_B, "T1", 6, eid="i1", time=T - timedelta(days=1)),
        xform("output", GTIN_C, "S1", 3, eid="o1"),
    ]
    assert len(build(lines, MASTER, D, D).rows[TRANSFORMATION]) == 1
    assert (
        build(lines, MASTER, D - timedelta(days=1), D - timedelta(days=1)).rows[TRANSFORMATION]
        == []
    )


def test_a_transformation_missing_a_side() -> None:
    only_in = build([xform("input", GTIN_B, "T1", 6)], MASTER, D, D).rows[TRANSFORMATION]
    gap = f"{MISSING}output of transformation X-1 (none recorded)"
    assert only_in[0][9] == gap and only_in[0][19:27] == [gap] * 8
    assert only_in[0][10:17] == place_cells(PLANT)
    only_out = build([xform("output", GTIN_C, "S1", 3)], MASTER, D, D).rows[TRANSFORMATION]
    assert only_out[0][:9] == [f"{MISSING}input of transformation X-1 (none recorded)"] * 9


def test_a_repack_without_transformation_id_is_its_own_transformation() -> None:
    lines = [
        xform("input", GTIN_B, "T1", 6, movement="repack", transformation_id=None, eid="r1"),
        xform("output", GTIN_C, "S1", 2, movement="repack", transformation_id=None, eid="r1",
              docs=(("prodorder", "WO-1"),)),
        xform("input", GTIN_B, "T9", 1, movement="repack", transformation_id=None, eid="r2"),
    ]  # fmt: skip
    rows = build(lines, MASTER, D, D).rows[TRANSFORMATION]
    assert [(r[0], r[9]) for r in rows] == [
        (f"{GTIN_B}+T1", f"{GTIN_C}+S1"),
        (f"{GTIN_B}+T9", f"{MISSING}output of transformation event r2 (none recorded)"),
    ]
    assert rows[0][-4:] == ["Production Order", "WO-1", "", ""]
    assert (
        rows[1][-4:][0]
        == f"{MISSING}reference document (the transformation names no PO, ASN, BOL...)"
    )


def test_tlc_filter_keeps_a_transformation_by_either_side() -> None:
    lines = [
        xform("input", GTIN_B, "T1", 6),
        xform("input", GTIN_B, "T2", 4),
        xform("output", GTIN_C, "S1", 3),
    ]
    by_input = build(lines, MASTER, D, D, frozenset({Tlc(GTIN_B, "T2")})).rows[TRANSFORMATION]
    assert [r[0] for r in by_input] == [f"{GTIN_B}+T2"]
    by_output = build(lines, MASTER, D, D, frozenset({Tlc(GTIN_C, "S1")})).rows[TRANSFORMATION]
    assert len(by_output) == 2
    assert build(lines, MASTER, D, D, frozenset({Tlc(GTIN_A, "Z")})).rows[TRANSFORMATION] == []


def test_the_output_lot_reference() -> None:
    master = MasterData(
        sites=MASTER.sites, products=MASTER.products,
        lots={Tlc(GTIN_C, "S1"): LotSource(None, "GLN 0614141000005")},
    )  # fmt: skip
    lines = [xform("input", GTIN_B, "T1", 6), xform("output", GTIN_C, "S1", 3)]
    (row,) = build(lines, master, D, D).rows[TRANSFORMATION]
    assert row[17] == "GLN 0614141000005"


# -- cells --------------------------------------------------------------------------------------


def test_quantity_and_unit_cells() -> None:
    assert quantity_cell(Decimal("40.000")) == 40 and isinstance(quantity_cell(Decimal(40)), int)
    assert quantity_cell(Decimal("1.50")) == Decimal("1.5")
    assert uom_cell("KGM") == "kg" and uom_cell("XYZ") == "XYZ" and uom_cell(None) is None


def _any_lines() -> st.SearchStrategy[list[Line]]:
    gtins = st.sampled_from([GTIN_A, GTIN_B, GTIN_C])
    lots = st.sampled_from(["T1", "S1", "Q", None])
    parties = st.sampled_from([GLN_SUPPLIER, GLN_CUSTOMER, GLN_SITE, "unknown", "999"])
    one = st.builds(
        lambda mv, g, lot, q, p, hours, eid, tid, role, docs: (
            line(mv, g, lot, q, frm=("party", p), eid=eid, time=T + timedelta(hours=hours),
                 docs=docs)
            if mv == "receive"
            else ship(g, lot, q, to=("party", p), eid=eid, time=T + timedelta(hours=hours),
                      docs=docs)
            if mv == "ship"
            else xform(role, g, lot or "L", q, eid=eid, transformation_id=tid,
                       time=T + timedelta(hours=hours))
        ),
        st.sampled_from(["receive", "ship", "consume"]),
        gtins,
        lots,
        st.decimals(min_value=0, max_value=1000, places=2),
        parties,
        st.integers(-30, 30),
        st.sampled_from(["e1", "e2", "e3"]),
        st.sampled_from(["X-1", "X-2", None]),
        st.sampled_from(["input", "output"]),
        st.lists(st.tuples(st.sampled_from(["po", "bol", "inv"]), st.text("AB1", min_size=1)),
                 max_size=3).map(tuple),
    )  # fmt: skip
    return st.lists(one, max_size=25)


@settings(max_examples=150, deadline=None)
@given(_any_lines(), st.sampled_from([MASTER, MasterData()]))
def test_every_row_is_complete_and_quantities_add_up(lines: list[Line], master: MasterData) -> None:
    rep = build(lines, master, D - timedelta(days=2), D + timedelta(days=2))
    for sheet in SHEETS:
        for row in rep.rows[sheet]:
            assert len(row) == len(COLUMNS[sheet])
            # never silently blank: only the optional second reference document may be empty
            assert all(v not in (None, "") for v in row[:-2]), row
            assert all(not isinstance(v, (list, tuple, dict)) for v in row)
    # what the receiving sheet says arrived is what the lines say
    got = sum(r[1] for r in rep.rows[RECEIVING] if not isinstance(r[1], str))
    want = sum(ln.quantity or 0 for ln in lines if ln.movement == "receive")
    assert got == want
    missing_cells = sum(
        1 for s in SHEETS for r in rep.rows[s] for v in r if str(v).startswith(MISSING)
    )
    assert missing_cells == sum(rep.missing.values())


# -- XLSX and CSV ------------------------------------------------------------------------------


def test_empty_workbook_has_the_headers_and_a_filter() -> None:
    wb = load_workbook(io.BytesIO(to_xlsx(build([], MASTER, D, D))))
    assert wb.sheetnames == list(SHEETS)
    for name in SHEETS:
        ws = wb[name]
        assert [c.value for c in ws[1]] == list(COLUMNS[name])
        assert ws.max_row == 1 and ws.freeze_panes == "A2"
    assert wb[RECEIVING].auto_filter.ref == "A1:AJ2"
    assert wb[TRANSFORMATION].auto_filter.ref == "A1:AE2"
    assert to_csv(build([], MASTER, D, D)).splitlines() == [",".join(CSV_COLUMNS)]


def test_text_that_looks_like_a_formula_stays_text() -> None:
    sneaky = Place('=HYPERLINK("http://x")', "+1", "-1 St", "@c", "CA", "1", "US")
    master = MasterData(
        sites={"plant-1": sneaky}, partners=MASTER.partners, products=MASTER.products
    )
    report = build([line()], master, D, D)
    ws = load_workbook(io.BytesIO(to_xlsx(report)))[RECEIVING]
    assert ws["Q2"].value == '=HYPERLINK("http://x")' and ws["Q2"].data_type == "s"
    assert ws["R2"].value == "+1" and ws["R2"].data_type == "s"
    row = next(csv.DictReader(io.StringIO(to_csv(report))))
    assert row["Receiving Location Description: Business Name"] == '=HYPERLINK("http://x")'


def test_csv_has_one_cte_column_and_the_union_of_columns() -> None:
    assert CSV_COLUMNS[0] == "Critical Tracking Event"
    assert len(CSV_COLUMNS) == len(set(CSV_COLUMNS))
    for sheet in SHEETS:
        assert set(COLUMNS[sheet]) <= set(CSV_COLUMNS)
    assert [len(COLUMNS[s]) for s in (RECEIVING, SHIPPING, TRANSFORMATION)] == [36, 36, 31]


def test_control_characters_do_not_break_the_workbook() -> None:
    report = build([line(docs=(("bol", "B\x01-1"),))], MASTER, D, D)
    ws = load_workbook(io.BytesIO(to_xlsx(report)))[RECEIVING]
    assert ws["AG2"].value == "Bill of Lading" and ws["AH2"].value == "B\ufffd-1"
    assert "B\x01-1" in to_csv(report)  # CSV keeps what the event said


def test_a_sheet_too_big_for_a_spreadsheet_program(monkeypatch: pytest.MonkeyPatch) -> None:
    from central.fsma import render

    monkeypatch.setattr(render, "MAX_SHEET_ROWS", 1)
    report = build([line(), line(eid="e2")], MASTER, D, D)
    with pytest.raises(FsmaError, match="2 Receiving rows do not fit one sheet"):
        to_xlsx(report)
    assert len(to_csv(report).splitlines()) == 3  # CSV has no such limit
