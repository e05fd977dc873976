"""Deciding what a scan means: pure rules over an interpreted scan and a view of the cache.

``decide()`` returns a :class:`Decision` with a verdict (``accept``/``warn``/``reject``),
stable reason codes, the movement to record and the items it moves. It never touches
the database; the writer fetches a :class:`CacheView` first and applies the result.

Reason codes (stable; listed in README):

=========================  =======  ===========================================================
code                       verdict  meaning
=========================  =======  ===========================================================
invalid_barcode            reject   the barcode could not be interpreted (bad check digit, date…)
unknown_barcode            reject   not GS1 and matches no configured pattern
input_overrun              reject   the scanner input was corrupted (evdev SYN_DROPPED)
frame_too_long             reject   a reader frame exceeded the maximum length
not_an_item                reject   a barcode without a GTIN/SSCC scanned where an item was due
unknown_gtin               policy   GTIN not in the cache (station policy: accept/warn/reject)
missing_serial             reject   a serial-tracked product scanned without (21)
missing_lot                reject   a lot-tracked product scanned without (10)
serial_in_stock            reject   receiving/returning a serial that is already in stock
serial_not_in_stock        reject   moving a serial that the cache does not have in stock
serial_already_shipped     reject   picking/shipping a serial that was already shipped
serial_consumed            reject   moving a serial that was consumed or destroyed
lot_expired                reject   picking/shipping an expired lot (warn on other steps)
near_expiry                policy   the lot expires within the product's warning days
lot_on_hold                reject   the lot is on hold (warn at holding/inspection/counting)
lot_recalled               reject   the lot is recalled (warn at holding/inspection/counting)
fefo_violation             policy   an earlier-expiring usable lot of the GTIN is in stock
unknown_lot                warn     a lot not in the cache, outside receiving
expiry_mismatch            warn     the barcode's expiry differs from the cache's for the lot
duplicate_scan             warn     same code, same station, within the duplicate window
insufficient_stock         warn     the cache holds less of the lot than the movement takes
=========================  =======  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from gs1.interpret import Interpretation
from mqtt_topics.movements import STEP_MOVEMENT

Verdict = Literal["accept", "warn", "reject"]
Policy = Literal["accept", "warn", "reject"]
Tracking = Literal["none", "serial", "lot"]

#: Serial state after each movement (None: unchanged).
SERIAL_STATE_AFTER: Mapping[str, str | None] = {
    "receive": "in_stock",
    "return": "in_stock",
    "commission": "in_stock",
    "putaway": None,
    "pick": "picked",
    "pack": None,
    "unpack": None,
    "ship": "shipped",
    "consume": "consumed",
    "scrap": "destroyed",
    "hold": None,
    "cycle_count": None,
    "inspect": None,
}

#: Movements that bring stock into the site, and movements that take it out.
INBOUND = frozenset({"receive", "return", "commission"})
OUTBOUND = frozenset({"ship", "consume", "scrap"})
#: Movements where expired/held stock must not go on (reject rather than warn).
STRICT_EXPIRY = frozenset({"pick", "ship", "pack"})
#: Movements allowed to touch held/recalled lots (a warning instead of a rejection).
QUARANTINE_OK = frozenset({"hold", "inspect", "cycle_count", "scrap"})


@dataclass(frozen=True, slots=True)
class Reason:
    """A stable reason code and a sentence for people."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """What the cache knows about a GTIN."""

    gtin: str
    description: str
    tracking: Tracking
    expiry_warning_days: int = 30


@dataclass(frozen=True, slots=True)
class LotInfo:
    """A lot (unique per GTIN + lot) and how much of it the site holds."""

    gtin: str
    lot: str
    expiry: date | None
    status: Literal["active", "hold", "recalled"]
    on_hand: int = 0


@dataclass(frozen=True, slots=True)
class SerialInfo:
    """A serialised unit (unique per GTIN + serial)."""

    gtin: str
    serial: str
    lot: str | None
    state: str
    location: str = ""


@dataclass(frozen=True, slots=True)
class CacheView:
    """The part of the cache a decision needs, fetched by the writer before deciding."""

    product: ProductInfo | None = None
    lot: LotInfo | None = None
    serial: SerialInfo | None = None
    #: Other lots of the same GTIN with stock at the site (for FEFO); only for outbound steps.
    other_lots: tuple[LotInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class StationRules:
    """The decision-relevant part of a station's configuration and current state."""

    step: str
    unknown_gtin: Policy = "reject"
    fefo: Policy = "warn"
    near_expiry: Policy = "warn"
    default_quantity: int = 1


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of deciding one scan."""

    verdict: Verdict
    reasons: tuple[Reason, ...]
    movement: str | None  # None: nothing moves (reject, duplicate)
    quantity: int = 0
    expiry: date | None = None
    fefo_suggestion: str | None = None
    duplicate: bool = False
    tags: tuple[str, ...] = field(default=())

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    def as_payload(self) -> dict[str, object]:
        """The ``decision`` object of event/alert payloads."""
        return {
            "verdict": self.verdict,
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
        }


def _worst(reasons: list[tuple[Verdict, Reason]]) -> Verdict:
    verdicts = {v for v, _ in reasons}
    if "reject" in verdicts:
        return "reject"
    if "warn" in verdicts:
        return "warn"
    return "accept"


def fefo_key(lot: LotInfo) -> tuple[int, date, str]:
    """FEFO order: earliest expiry first, lots without expiry last, then by lot (deterministic)."""
    if lot.expiry is None:
        return (1, date.max, lot.lot)
    return (0, lot.expiry, lot.lot)


def fefo_pick(lots: tuple[LotInfo, ...], today: date) -> LotInfo | None:
    """The lot FEFO says to pick: usable (active, not expired, in stock), earliest expiry first."""
    usable = [
        lot
        for lot in lots
        if lot.status == "active"
        and lot.on_hand > 0
        and (lot.expiry is None or lot.expiry >= today)
    ]
    return min(usable, key=fefo_key) if usable else None


def input_error_decision(code: str, message: str) -> Decision:
    """A rejected scan for reader-level problems (overrun, over-long frame)."""
    return Decision("reject", (Reason(code, message),), None)


def duplicate_decision(window: float) -> Decision:
    """A repeat of the same code on the same station: recorded, not a second movement."""
    return Decision(
        "warn",
        (Reason("duplicate_scan", f"same code scanned again within {window:g} s; not counted"),),
        None,
        duplicate=True,
    )


def _apply_policy(
    out: list[tuple[Verdict, Reason]], policy: Policy, code: str, message: str
) -> None:
    if policy == "accept":
        return
    out.append((policy, Reason(code, message)))


def decide(
    scan: Interpretation,
    station: StationRules,
    view: CacheView,
    today: date,
    movement: str | None = None,
) -> Decision:
    """Decide a single item scan. ``movement`` overrides the station step's default."""
    mv = movement or STEP_MOVEMENT.get(station.step, "inspect")
    if scan.kind == "unknown":
        return Decision(
            "reject",
            (Reason("unknown_barcode", "not a GS1 barcode and no configured pattern matches"),),
            None,
        )
    if scan.errors:
        return Decision("reject", (Reason("invalid_barcode", "; ".join(scan.errors)),), None)
    if scan.gtin is None:
        if scan.sscc is not None:
            return Decision("accept", (), mv, quantity=1)
        return Decision(
            "reject",
            (Reason("not_an_item", f"a {scan.kind} barcode carries no GTIN or SSCC"),),
            None,
        )

    out: list[tuple[Verdict, Reason]] = []
    quantity = scan.quantity or scan.count or station.default_quantity
    product = view.product
    if product is None:
        _apply_policy(
            out, station.unknown_gtin, "unknown_gtin", f"GTIN {scan.gtin} is not in the cache"
        )
        tracking: Tracking = "serial" if scan.serial else ("lot" if scan.lot else "none")
    else:
        tracking = product.tracking
    if _worst(out) == "reject":
        return Decision("reject", tuple(r for _, r in out), None)

    if tracking == "serial" and not scan.serial:
        out.append(
            ("reject", Reason("missing_serial", f"GTIN {scan.gtin} is serial-tracked; scan (21)"))
        )
    if tracking == "lot" and not scan.lot:
        out.append(("reject", Reason("missing_lot", f"GTIN {scan.gtin} is lot-tracked; scan (10)")))
    if tracking == "serial":
        quantity = 1

    if scan.serial:
        _serial_rules(out, scan, view.serial, mv)

    expiry = scan.expiry
    lot = view.lot
    if lot is not None:
        if lot.expiry is not None and scan.expiry is not None and lot.expiry != scan.expiry:
            out.append(
                (
                    "warn",
                    Reason(
                        "expiry_mismatch",
                        f"barcode says expiry {scan.expiry.isoformat()}, cache says "
                        f"{lot.expiry.isoformat()} for lot {lot.lot}",
                    ),
                )
            )
        expiry = lot.expiry or scan.expiry
        _status_rules(out, lot, mv)
        if mv in OUTBOUND | {"pick", "putaway", "transfer"} and 0 <= lot.on_hand < quantity:
            out.append(
                (
                    "warn",
                    Reason(
                        "insufficient_stock",
                        f"cache holds {lot.on_hand} of lot {lot.lot}, movement takes {quantity}",
                    ),
                )
            )
    elif scan.lot and mv not in INBOUND:
        out.append(
            (
                "warn",
                Reason("unknown_lot", f"lot {scan.lot} of GTIN {scan.gtin} is not in the cache"),
            )
        )

    suggestion: str | None = None
    if expiry is not None:
        warn_days = product.expiry_warning_days if product else 30
        if expiry < today:
            verdict: Verdict = "reject" if mv in STRICT_EXPIRY else "warn"
            out.append((verdict, Reason("lot_expired", f"expired on {expiry.isoformat()}")))
        elif expiry <= today + timedelta(days=warn_days):
            _apply_policy(
                out,
                station.near_expiry,
                "near_expiry",
                f"expires on {expiry.isoformat()} (within {warn_days} days)",
            )
    usable = lot is None or lot.status == "active"
    if mv in {"pick", "ship"} and scan.lot is not None and station.fefo != "accept" and usable:
        this = lot or LotInfo(scan.gtin, scan.lot, expiry, "active", 0)
        best = fefo_pick(view.other_lots + ((this,) if lot is not None else ()), today)
        if (
            best is not None
            and best.lot != this.lot
            and best.expiry is not None
            and (this.expiry is None or best.expiry < this.expiry)
        ):
            suggestion = best.lot
            _apply_policy(
                out,
                station.fefo,
                "fefo_violation",
                f"lot {best.lot} expires earlier ({best.expiry.isoformat()}); pick it first",
            )

    verdict_all = _worst(out)
    return Decision(
        verdict_all,
        tuple(r for _, r in out),
        None if verdict_all == "reject" else mv,
        quantity=quantity,
        expiry=expiry,
        fefo_suggestion=suggestion,
    )


def _serial_rules(
    out: list[tuple[Verdict, Reason]], scan: Interpretation, serial: SerialInfo | None, mv: str
) -> None:
    ident = f"serial {scan.serial} of GTIN {scan.gtin}"
    state = serial.state if serial is not None else None
    if mv in INBOUND:
        if state in ("in_stock", "picked"):
            out.append(("reject", Reason("serial_in_stock", f"{ident} is already in stock")))
        return
    if mv in ("hold", "inspect", "cycle_count"):
        if state is None:
            out.append(("warn", Reason("serial_not_in_stock", f"{ident} is not in the cache")))
        return
    if state == "shipped":
        out.append(("reject", Reason("serial_already_shipped", f"{ident} was already shipped")))
    elif state in ("consumed", "destroyed"):
        out.append(("reject", Reason("serial_consumed", f"{ident} was {state}")))
    elif state is None or state not in ("in_stock", "picked"):
        out.append(("reject", Reason("serial_not_in_stock", f"{ident} is not in stock")))
    elif mv == "pick" and state == "picked":
        out.append(("reject", Reason("serial_not_in_stock", f"{ident} was already picked")))


def _status_rules(out: list[tuple[Verdict, Reason]], lot: LotInfo, mv: str) -> None:
    verdict: Verdict = "warn" if mv in QUARANTINE_OK else "reject"
    if lot.status == "recalled":
        out.append((verdict, Reason("lot_recalled", f"lot {lot.lot} is recalled")))
    elif lot.status == "hold":
        out.append((verdict, Reason("lot_on_hold", f"lot {lot.lot} is on hold")))
