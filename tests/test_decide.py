"""Decision rules: every reason code, FEFO order and ties, expired lots."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.rules.custody import CustodyContext
from gateway.rules.decide import CacheView as RealCacheView
from gateway.rules.decide import (
    LotInfo,
    ProductInfo,
    SerialInfo,
    StationRules,
    decide,
    duplicate_decision,
    fefo_pick,
    input_error_decision,
)
from gs1.interpret import interpret

TODAY = date(2026, 11, 21)
GTIN = "09506000134352"
PUMP = "09506000134369"
LOT_PRODUCT = ProductInfo(GTIN, "Paracetamol", "lot", 60)
SERIAL_PRODUCT = ProductInfo(PUMP, "Pump", "serial", 30)


def lot_scan(lot: str = "LOTA", expiry: str = "300331") -> str:
    return f"]C101{GTIN}17{expiry}\x1d10{lot}"


def serial_scan(serial: str = "SN1") -> str:
    return f"]d201{PUMP}21{serial}"


#: Where the tests' lots are stored, and where the test station stands.
STORE = "A-01"
HERE = "DOCK1"


def st(step: str = "receiving", **kw: object) -> StationRules:
    kw.setdefault("custody", CustodyContext(location=HERE))
    return StationRules(step=step, **kw)  # type: ignore[arg-type]


def CacheView(
    product: ProductInfo | None = None,
    lot: LotInfo | None = None,
    serial: SerialInfo | None = None,
    other_lots: tuple[LotInfo, ...] = (),
    stock: dict[str, int] | None = None,
) -> RealCacheView:
    if stock is None:
        stock = {STORE: lot.on_hand} if lot is not None and lot.on_hand > 0 else {}
    return RealCacheView(product, lot, serial, other_lots, stock)


def lotinfo(
    lot: str = "LOTA",
    expiry: date | None = date(2030, 3, 31),
    status: str = "active",
    on_hand: int = 10,
) -> LotInfo:
    return LotInfo(GTIN, lot, expiry, status, on_hand)  # type: ignore[arg-type]


def test_accept_receiving_known_lot() -> None:
    d = decide(interpret(lot_scan()), st(), CacheView(LOT_PRODUCT, lotinfo()), TODAY)
    assert d.verdict == "accept"
    assert d.movement == "receive"
    assert d.reasons == ()
    assert d.quantity == 1
    assert d.expiry == date(2030, 3, 31)


def test_receiving_new_lot_is_fine() -> None:
    d = decide(interpret(lot_scan("NEW")), st(), CacheView(LOT_PRODUCT, None), TODAY)
    assert (d.verdict, d.movement) == ("accept", "receive")


def test_invalid_barcode_rejected_and_moves_nothing() -> None:
    bad = "]C10109506000134353 17300331\x1d10X".replace(" ", "")
    d = decide(interpret(bad), st(), CacheView(LOT_PRODUCT), TODAY)
    assert d.verdict == "reject"
    assert d.codes == ("invalid_barcode",)
    assert d.movement is None
    assert "check_digit" in d.reasons[0].message


def test_unknown_barcode() -> None:
    d = decide(interpret("]C0HELLO"), st(), CacheView(), TODAY)
    assert d.codes == ("unknown_barcode",)
    assert d.verdict == "reject"


def test_location_is_not_an_item() -> None:
    from gs1.interpret import BarcodePattern

    i = interpret("LOC-A1", [BarcodePattern("location", r"LOC-(?P<value>.+)")])
    d = decide(i, st(), CacheView(), TODAY)
    assert d.codes == ("not_an_item",)


@pytest.mark.parametrize(
    ("policy", "verdict", "moves"),
    [("reject", "reject", False), ("warn", "warn", True), ("accept", "accept", True)],
)
def test_unknown_gtin_policy(policy: str, verdict: str, moves: bool) -> None:
    d = decide(interpret(lot_scan()), st(unknown_gtin=policy), CacheView(None), TODAY)
    assert d.verdict == verdict
    assert (d.movement is not None) == moves
    if policy != "accept":
        assert d.codes == ("unknown_gtin",)


def test_missing_serial() -> None:
    d = decide(interpret(f"]E0{PUMP[1:]}"), st(), CacheView(SERIAL_PRODUCT), TODAY)
    assert d.codes == ("missing_serial",)
    assert d.verdict == "reject"


def test_missing_lot() -> None:
    d = decide(interpret(f"]E0{GTIN[1:]}"), st("shipping"), CacheView(LOT_PRODUCT), TODAY)
    assert "missing_lot" in d.codes
    assert d.verdict == "reject"


def test_untracked_product_counts_quantity() -> None:
    box = ProductInfo("09506000134383", "Box", "none", 0)
    d = decide(interpret("]E09506000134383"), st(), CacheView(box), TODAY)
    assert (d.verdict, d.quantity) == ("accept", 1)


def test_quantity_from_count_or_station_default() -> None:
    d = decide(
        interpret(lot_scan()), st(default_quantity=12), CacheView(LOT_PRODUCT, lotinfo()), TODAY
    )
    assert d.quantity == 12
    d = decide(
        interpret(f"]C101{GTIN}17300331\x1d10LOTA\x1d3024"),
        st(default_quantity=12),
        CacheView(LOT_PRODUCT, lotinfo()),
        TODAY,
    )
    assert d.quantity == 24


@pytest.mark.parametrize(
    ("step", "state", "code"),
    [
        ("receiving", "in_stock", "serial_in_stock"),
        ("returning", "picked", "serial_in_stock"),
        ("shipping", None, "serial_not_in_stock"),
        ("picking", None, "serial_not_in_stock"),
        ("shipping", "shipped", "serial_already_shipped"),
        ("picking", "shipped", "serial_already_shipped"),
        ("shipping", "consumed", "serial_consumed"),
        ("storing", "destroyed", "serial_destroyed"),
        ("picking", "picked", "serial_not_in_stock"),
    ],
)
def test_serial_state_conflicts(step: str, state: str | None, code: str) -> None:
    serial = SerialInfo(PUMP, "SN1", None, state) if state else None
    d = decide(interpret(serial_scan()), st(step), CacheView(SERIAL_PRODUCT, serial=serial), TODAY)
    assert d.verdict == "reject"
    assert code in d.codes
    assert d.movement is None


@pytest.mark.parametrize(
    ("step", "state"),
    [
        ("receiving", None),
        ("receiving", "shipped"),
        ("shipping", "in_stock"),
        ("shipping", "picked"),
        ("picking", "in_stock"),
        ("returning", "shipped"),
    ],
)
def test_serial_state_ok(step: str, state: str | None) -> None:
    serial = SerialInfo(PUMP, "SN1", None, state) if state else None
    d = decide(interpret(serial_scan()), st(step), CacheView(SERIAL_PRODUCT, serial=serial), TODAY)
    assert d.verdict == "accept", d.reasons
    assert d.quantity == 1


def test_serial_unknown_at_count_is_a_warning() -> None:
    d = decide(interpret(serial_scan()), st("cycle_counting"), CacheView(SERIAL_PRODUCT), TODAY)
    assert (d.verdict, d.codes) == ("warn", ("serial_not_in_stock",))


@pytest.mark.parametrize(
    ("step", "verdict"),
    [("shipping", "reject"), ("picking", "reject"), ("receiving", "warn"), ("storing", "warn")],
)
def test_expired_lot(step: str, verdict: str) -> None:
    old = lotinfo("OLD", date(2024, 1, 31))
    d = decide(interpret(lot_scan("OLD", "240131")), st(step), CacheView(LOT_PRODUCT, old), TODAY)
    assert d.verdict == verdict
    assert "lot_expired" in d.codes


def test_expiry_from_cache_when_barcode_has_none() -> None:
    old = lotinfo("OLD", date(2024, 1, 31))
    d = decide(interpret(f"]C101{GTIN}10OLD"), st("shipping"), CacheView(LOT_PRODUCT, old), TODAY)
    assert "lot_expired" in d.codes


def test_expiry_today_is_not_expired() -> None:
    lot = lotinfo("T", TODAY)
    d = decide(
        interpret(lot_scan("T", "261121")),
        st("shipping", near_expiry="accept"),
        CacheView(LOT_PRODUCT, lot),
        TODAY,
    )
    assert "lot_expired" not in d.codes


@pytest.mark.parametrize(
    ("policy", "verdict"), [("warn", "warn"), ("reject", "reject"), ("accept", "accept")]
)
def test_near_expiry(policy: str, verdict: str) -> None:
    soon = lotinfo("S", date(2026, 12, 31))
    d = decide(
        interpret(lot_scan("S", "261231")),
        st("receiving", near_expiry=policy),
        CacheView(LOT_PRODUCT, soon),
        TODAY,
    )
    assert d.verdict == verdict
    assert ("near_expiry" in d.codes) == (policy != "accept")


@pytest.mark.parametrize(
    ("status", "code"), [("hold", "lot_on_hold"), ("recalled", "lot_recalled")]
)
@pytest.mark.parametrize(
    ("step", "verdict"),
    [
        ("shipping", "reject"),
        ("receiving", "reject"),
        ("holding", "warn"),
        ("cycle_counting", "warn"),
    ],
)
def test_hold_and_recall(status: str, code: str, step: str, verdict: str) -> None:
    lot = lotinfo(status=status)
    d = decide(interpret(lot_scan()), st(step), CacheView(LOT_PRODUCT, lot), TODAY)
    assert d.verdict == verdict
    assert code in d.codes
    assert "fefo_violation" not in d.codes


def test_expiry_mismatch_warns() -> None:
    d = decide(
        interpret(lot_scan("LOTA", "300430")), st(), CacheView(LOT_PRODUCT, lotinfo()), TODAY
    )
    assert (d.verdict, d.codes) == ("warn", ("expiry_mismatch",))


def test_unknown_lot_outside_receiving_warns() -> None:
    d = decide(interpret(lot_scan("NOPE")), st("storing"), CacheView(LOT_PRODUCT, None), TODAY)
    assert "unknown_lot" in d.codes


def test_nothing_in_stock_is_rejected() -> None:
    lot = lotinfo(on_hand=0)
    d = decide(interpret(lot_scan()), st("shipping"), CacheView(LOT_PRODUCT, lot), TODAY)
    assert d.codes == ("not_in_stock",)
    assert d.verdict == "reject" and d.movement is None


@pytest.mark.parametrize(
    ("policy", "verdict", "moved"), [("reject", "reject", 0), ("warn", "warn", 2)]
)
def test_insufficient_stock_policy(policy: str, verdict: str, moved: int) -> None:
    lot = lotinfo(on_hand=2)
    rules = st(
        "shipping",
        default_quantity=5,
        custody=CustodyContext(location=HERE, insufficient_stock=policy),
    )  # type: ignore[arg-type]
    d = decide(interpret(lot_scan()), rules, CacheView(LOT_PRODUCT, lot), TODAY)
    assert "insufficient_stock" in d.codes
    assert d.verdict == verdict
    if moved:
        assert d.leg is not None and d.leg.quantity == moved and d.quantity == moved
        assert d.leg.take_from == STORE


@pytest.mark.parametrize(
    ("policy", "verdict"), [("warn", "warn"), ("reject", "reject"), ("accept", "accept")]
)
def test_fefo_violation(policy: str, verdict: str) -> None:
    later = lotinfo("LOTB", date(2030, 9, 30))
    earlier = lotinfo("LOTA", date(2030, 3, 31))
    d = decide(
        interpret(lot_scan("LOTB", "300930")),
        st("shipping", fefo=policy),
        CacheView(LOT_PRODUCT, later, other_lots=(earlier,)),
        TODAY,
    )
    assert d.verdict == verdict
    assert ("fefo_violation" in d.codes) == (policy != "accept")
    if policy != "accept":
        assert d.fefo_suggestion == "LOTA"


def test_fefo_ignores_expired_held_and_empty_lots() -> None:
    later = lotinfo("LOTB", date(2030, 9, 30))
    others = (
        lotinfo("EXP", date(2025, 1, 1)),
        lotinfo("HELD", date(2027, 1, 1), status="hold"),
        lotinfo("RCL", date(2027, 1, 1), status="recalled"),
        lotinfo("EMPTY", date(2027, 1, 1), on_hand=0),
    )
    d = decide(
        interpret(lot_scan("LOTB", "300930")),
        st("shipping"),
        CacheView(LOT_PRODUCT, later, other_lots=others),
        TODAY,
    )
    assert d.verdict == "accept", d.reasons


def test_fefo_same_expiry_is_not_a_violation() -> None:
    b = lotinfo("B", date(2030, 3, 31))
    a = lotinfo("A", date(2030, 3, 31))
    d = decide(
        interpret(lot_scan("B", "300331")),
        st("shipping"),
        CacheView(LOT_PRODUCT, b, other_lots=(a,)),
        TODAY,
    )
    assert d.verdict == "accept"


def test_fefo_only_for_outbound_steps() -> None:
    later = lotinfo("LOTB", date(2030, 9, 30))
    earlier = lotinfo("LOTA", date(2030, 3, 31))
    d = decide(
        interpret(lot_scan("LOTB", "300930")),
        st("storing"),
        CacheView(LOT_PRODUCT, later, other_lots=(earlier,)),
        TODAY,
    )
    assert "fefo_violation" not in d.codes


def test_fefo_pick_order_and_ties() -> None:
    lots = (
        lotinfo("C", date(2030, 1, 1)),
        lotinfo("B", date(2029, 1, 1)),
        lotinfo("A", date(2029, 1, 1)),
        lotinfo("N", None),
        lotinfo("X", date(2020, 1, 1)),
    )
    best = fefo_pick(lots, TODAY)
    assert best is not None and best.lot == "A"  # earliest usable; tie broken by lot
    assert fefo_pick(tuple(reversed(lots)), TODAY) == best  # order of input does not matter
    only_none = fefo_pick((lotinfo("N", None), lotinfo("M", None)), TODAY)
    assert only_none is not None and only_none.lot == "M"
    assert fefo_pick((lotinfo("X", date(2020, 1, 1)),), TODAY) is None


def test_sscc_scan_is_an_item() -> None:
    d = decide(interpret("]C100095060001234567893"), st("shipping"), CacheView(), TODAY)
    assert (d.verdict, d.movement) == ("accept", "ship")


def test_duplicate_and_input_errors() -> None:
    d = duplicate_decision(5)
    assert (d.verdict, d.codes, d.movement, d.duplicate) == (
        "warn",
        ("duplicate_scan",),
        None,
        True,
    )
    e = input_error_decision("input_overrun", "lost")
    assert (e.verdict, e.codes) == ("reject", ("input_overrun",))
    assert e.as_payload() == {
        "verdict": "reject",
        "reasons": [{"code": "input_overrun", "message": "lost"}],
    }
