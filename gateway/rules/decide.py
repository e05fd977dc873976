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
fifo_violation             policy   (consumption = "fifo") an earlier-received usable lot is in stock
unknown_lot                warn     a lot not in the cache, outside receiving
expiry_mismatch            warn     the barcode's expiry differs from the cache's for the lot
duplicate_scan             warn     same code, same station, within the duplicate window
insufficient_stock         policy   the source holds less than the movement takes (reject by default)
lot_mismatch               reject   the label's lot differs from the serial's lot in the cache
serial_destroyed           reject   the serial was destroyed (scrapped)
serial_on_hold             reject   the serial is on hold (warn at holding/inspection/counting)
serial_recalled            reject   the serial is recalled (warn at holding/inspection/counting)
serial_unknown             warn     a return of a serial this site never recorded
source_ambiguous           reject   the lot is at several locations: scan the source (FROM:…)
not_in_stock               reject   nothing of the lot/product is recorded here to move
no_location                reject   a move without a destination location: scan it first
same_location              reject   the item is already at the destination location
in_quarantine              reject   goods in a quarantine location leave only by RELEASE or scrap
recall_is_central          reject   RELEASE of a recalled lot/serial (only the central service lifts it)
count_discrepancy          warn     a count differs from the cache: an ``adjust`` event records it
reason_required            reject   scrapping without a reason: scan REASON:<code> first
relabel_not_possible       reject   RELABEL: no movement of the wrong label to correct, or it moved on
pallet_in_stock            reject   receiving a pallet (SSCC) that is already here
pallet_already_shipped     reject   moving a pallet that was shipped
pallet_on_hold             reject   moving a held pallet (HOLD here or a central SSCC hold)
pallet_contents_unknown    warn     receiving a pallet nothing is known to be on (no packing, label, advice)
=========================  =======  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from gateway.rules.custody import (
    IN_PLACE,
    INBOUND,
    OUTBOUND,
    QUARANTINE_OK,
    RELOCATE,
    CustodyContext,
    Leg,
    Place,
    plan_quantity,
    plan_serial,
)
from gs1.interpret import Interpretation
from gs1.value import value_type
from mqtt_topics.movements import STEP_MOVEMENT

__all__ = ["INBOUND", "IN_PLACE", "OUTBOUND", "RELOCATE"]

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
    "release": None,
    "cycle_count": None,
    "inspect": None,
    "transfer": None,
}
#: Movements where expired/held stock must not go on (reject rather than warn).
STRICT_EXPIRY = frozenset({"pick", "ship", "pack"})
#: Movements allowed to touch held/recalled lots (a warning instead of a rejection).
#: Serial states in which a unit is physically here (maybe blocked).
ON_SITE = frozenset({"in_stock", "picked", "on_hold", "recalled"})


@value_type
class Reason:
    """A stable reason code and a sentence for people."""

    code: str
    message: str


@value_type
class ProductInfo:
    """What the cache knows about a GTIN."""

    gtin: str
    description: str
    tracking: Tracking
    expiry_warning_days: int = 30
    #: GTIN-level status: a recall or hold of every lot (and of untracked stock).
    status: Literal["active", "hold", "recalled"] = "active"


@value_type
class LotInfo:
    """A lot (unique per GTIN + lot) and how much of it the site holds."""

    gtin: str
    lot: str
    expiry: date | None
    status: Literal["active", "hold", "recalled"]
    on_hand: int = 0
    #: When the lot first arrived here (epoch seconds; FIFO), None when not known.
    received_at: float | None = None


@value_type
class SerialInfo:
    """A serialised unit (unique per GTIN + serial)."""

    gtin: str
    serial: str
    lot: str | None
    state: str
    location: str = ""
    held: bool = False  # HOLD scanned at this gateway (lifted by RELEASE)


@value_type
class CacheView:
    """The part of the cache a decision needs, fetched by the writer before deciding."""

    product: ProductInfo | None = None
    lot: LotInfo | None = None
    serial: SerialInfo | None = None
    #: Other lots of the same GTIN with pickable stock at the site (for FEFO); outbound steps.
    other_lots: tuple[LotInfo, ...] = ()
    #: Quantity per location of the scanned lot (or of an untracked product).
    stock: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StationRules:
    """The decision-relevant part of a station's configuration and current state."""

    step: str
    unknown_gtin: Policy = "reject"
    fefo: Policy = "warn"
    near_expiry: Policy = "warn"
    default_quantity: int = 1
    custody: CustodyContext = field(default_factory=lambda: CustodyContext(location=""))
    #: Which lot to take first: earliest expiry, earliest receipt, or no rule.
    consumption: Literal["fefo", "fifo", "none"] = "fefo"
    #: Locations whose goods are quarantined (not pickable until released).
    quarantine: frozenset[str] = frozenset({"QUARANTINE"})
    #: At a cycle count: the counted quantity (QTY:n before the label), else None.
    counted: int | None = None
    #: A scanned reason (REASON:damaged), and the reasons a scrap may carry (empty: any).
    reason: str | None = None
    scrap_reasons: tuple[str, ...] = ()


@value_type
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
    #: The item's custody change (None for rejects and pallet-only decisions).
    leg: Leg | None = None
    #: The lot the movement concerns: the serial's lot in the cache, else the label's.
    lot: str | None = None
    #: Which date expiry rules used: ``expiry`` (17), ``best_before`` (15), ``sell_by`` (16).
    date_kind: str = "expiry"
    #: A count's difference to the cache (counted - expected); 0: none.
    adjustment: int = 0
    expected: int = 0

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


def _rule_date(scan: Interpretation, today: date) -> tuple[date | None, str]:
    """The date expiry rules use: (17) expiry, else (15) best before, else (16) sell by."""
    if scan.expiry is not None:
        return scan.expiry, "expiry"
    if scan.best_before is not None:
        return scan.best_before, "best_before"
    sell_by = dict(scan.ais).get("16")
    if sell_by:
        from gs1.dates import parse_yymmdd

        found = parse_yymmdd(sell_by[:6], today, day_zero=True)
        if found is not None:
            return found, "sell_by"
    return None, "expiry"


_DATE_WORDS = {"expiry": "expired", "best_before": "best before", "sell_by": "sell by"}


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
    if tracking == "serial" or scan.serial:
        quantity = 1

    if mv == "scrap" and station.scrap_reasons and station.reason not in station.scrap_reasons:
        out.append(
            (
                "reject",
                Reason(
                    "reason_required",
                    "scan the reason first: "
                    + ", ".join(f"REASON:{r}" for r in station.scrap_reasons),
                ),
            )
        )

    # The serial's lot in the cache is authoritative: a label with another lot is wrong.
    lot_code = scan.lot
    serial = view.serial
    if scan.serial and serial is not None and serial.lot:
        if scan.lot and scan.lot != serial.lot:
            out.append(
                (
                    "reject",
                    Reason(
                        "lot_mismatch",
                        f"serial {scan.serial} belongs to lot {serial.lot} in the cache, "
                        f"the label says lot {scan.lot}",
                    ),
                )
            )
        lot_code = serial.lot

    if scan.serial:
        _serial_rules(out, scan, serial, mv)

    rule_date, date_kind = _rule_date(scan, today)
    expiry = rule_date
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
        if lot.expiry is not None:
            expiry, date_kind = lot.expiry, "expiry"
        _status_rules(out, lot, mv, station, _releasing_from_quarantine(mv, view, serial, station))
    if (
        product is not None
        and product.status != "active"
        and (lot is None or lot.status == "active")
    ):
        # a recall or hold of the whole GTIN reaches every lot, known or not, and untracked stock
        what = LotInfo(scan.gtin, lot_code or f"GTIN {scan.gtin}", None, product.status)
        _status_rules(out, what, mv, station, _releasing_from_quarantine(mv, view, serial, station))
    if lot is None and lot_code and mv not in INBOUND:
        out.append(
            (
                "warn",
                Reason("unknown_lot", f"lot {lot_code} of GTIN {scan.gtin} is not in the cache"),
            )
        )

    suggestion: str | None = None
    if expiry is not None and mv not in ("hold", "release", "scrap"):
        warn_days = product.expiry_warning_days if product else 30
        if expiry < today:
            verdict: Verdict = "reject" if mv in STRICT_EXPIRY else "warn"
            if date_kind == "expiry":
                text = f"expired on {expiry.isoformat()}"
            else:
                ai = "(15)" if date_kind == "best_before" else "(16)"
                text = (
                    f"{_DATE_WORDS[date_kind]} date {ai} {expiry.isoformat()} has passed "
                    "(the label has no expiry (17))"
                )
            out.append((verdict, Reason("lot_expired", text)))
        elif expiry <= today + timedelta(days=warn_days):
            _apply_policy(
                out,
                station.near_expiry,
                "near_expiry",
                f"expires on {expiry.isoformat()} (within {warn_days} days)"
                + ("" if date_kind == "expiry" else f"; from the {_DATE_WORDS[date_kind]} date"),
            )
    usable = lot is None or lot.status == "active"
    fifo = station.consumption == "fifo"
    if fifo and mv in {"pick", "ship", "consume"} and lot_code and station.fefo != "accept":
        this_at = lot.received_at if lot is not None else None
        earlier = [
            o
            for o in view.other_lots
            if o.status == "active"
            and o.on_hand > 0
            and o.received_at is not None
            and (o.expiry is None or o.expiry >= today)
            and (this_at is None or o.received_at < this_at)
        ]
        if earlier and usable:
            first = min(earlier, key=lambda o: (o.received_at or 0.0, o.lot))
            suggestion = first.lot
            _apply_policy(
                out,
                station.fefo,
                "fifo_violation",
                f"lot {first.lot} arrived earlier; take it first",
            )
    if (
        not fifo
        and station.consumption != "none"
        and mv in {"pick", "ship"}
        and lot_code is not None
        and station.fefo != "accept"
        and usable
    ):
        this = lot or LotInfo(scan.gtin, lot_code, expiry, "active", 0)
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

    leg: Leg | None = None
    adjustment = expected = 0
    if _worst(out) != "reject":
        leg = _custody(out, scan, mv, quantity, lot_code, view, station)
        if leg is not None:
            quantity = leg.quantity
        if mv == "cycle_count" and not scan.serial and station.counted is not None:
            at = station.custody.scanned_source or station.custody.location
            expected = max(0, view.stock.get(at, 0))
            adjustment = station.counted - expected
            if adjustment:
                counted_what = f"lot {lot_code}" if lot_code else f"GTIN {scan.gtin}"
                out.append(
                    (
                        "warn",
                        Reason(
                            "count_discrepancy",
                            f"counted {station.counted} of {counted_what} at "
                            f"{at or '(no location)'}, "
                            f"the cache says {expected}",
                        ),
                    )
                )

    verdict_all = _worst(out)
    return Decision(
        verdict_all,
        tuple(r for _, r in out),
        None if verdict_all == "reject" else mv,
        quantity=quantity,
        expiry=expiry if date_kind == "expiry" else (lot.expiry if lot else scan.expiry),
        fefo_suggestion=suggestion,
        leg=None if verdict_all == "reject" else leg,
        lot=lot_code,
        date_kind=date_kind,
        adjustment=adjustment if verdict_all != "reject" else 0,
        expected=expected,
    )


def _releasing_from_quarantine(
    mv: str, view: CacheView, serial: SerialInfo | None, station: StationRules
) -> bool:
    """A RELEASE of goods sitting in a quarantine location (moves them out)."""
    if mv != "release":
        return False
    if serial is not None:
        return serial.location in station.quarantine
    return any(q > 0 and loc in station.quarantine for loc, q in view.stock.items())


def _custody(
    out: list[tuple[Verdict, Reason]],
    scan: Interpretation,
    mv: str,
    quantity: int,
    lot_code: str | None,
    view: CacheView,
    station: StationRules,
) -> Leg | None:
    """Plan the custody change; problems become reasons in ``out``."""
    ctx = station.custody
    serial = view.serial
    if scan.serial:
        on_site = serial is not None and serial.state in ON_SITE
        where = serial.location if on_site and serial is not None else None
        if (
            mv == "cycle_count"
            and where is not None
            and ctx.location
            and where != ctx.location
            and serial is not None
        ):
            out.append(
                (
                    "warn",
                    Reason(
                        "count_discrepancy",
                        f"serial {scan.serial} counted at {ctx.location}, the cache had it at "
                        f"{where or '(no location)'}",
                    ),
                )
            )
            return Leg(
                Place("location", where), Place("location", ctx.location), 1, where, ctx.location
            )
        if mv == "release":
            if where is not None and where in station.quarantine:
                leg, problems = plan_serial("transfer", where, ctx)
                leg = (
                    leg if leg is None else Leg(leg.source, leg.dest, 1, leg.take_from, leg.put_to)
                )
            else:
                leg, problems = plan_serial("release", where, ctx)
        else:
            leg, problems = plan_serial(mv, where, ctx)
        if (
            leg is not None
            and mv in (RELOCATE | OUTBOUND | {"pack"})
            and leg.take_from in station.quarantine
            and mv != "scrap"
        ):
            out.append(
                (
                    "reject",
                    Reason(
                        "in_quarantine",
                        f"serial {scan.serial} is in quarantine at {leg.take_from}; RELEASE it first",
                    ),
                )
            )
            return None
    else:
        what = f"lot {lot_code}" if lot_code else f"GTIN {scan.gtin}"
        stock = view.stock
        plan_mv = mv
        if mv == "release":
            quarantined = {loc: q for loc, q in stock.items() if loc in station.quarantine}
            if any(q > 0 for q in quarantined.values()):
                stock, plan_mv = quarantined, "transfer"
        elif mv in RELOCATE | {"ship", "consume", "pack"}:
            # goods in quarantine are not available to move until released
            free = {loc: q for loc, q in stock.items() if loc not in station.quarantine}
            if ctx.scanned_source in station.quarantine or ctx.source in station.quarantine:
                src = ctx.scanned_source or ctx.source
                out.append(
                    (
                        "reject",
                        Reason(
                            "in_quarantine", f"{what} at {src} is in quarantine; RELEASE it first"
                        ),
                    )
                )
                return None
            stock = free
        leg, problems = plan_quantity(plan_mv, what, quantity, stock, ctx)
    for p in problems:
        out.append((p.verdict, Reason(p.code, p.message)))
    return leg


def _serial_rules(
    out: list[tuple[Verdict, Reason]], scan: Interpretation, serial: SerialInfo | None, mv: str
) -> None:
    """The serial state machine: which movement is allowed from which state."""
    ident = f"serial {scan.serial} of GTIN {scan.gtin}"
    state = serial.state if serial is not None else None
    if state == "destroyed" and mv not in ("inspect",):
        out.append(("reject", Reason("serial_destroyed", f"{ident} was destroyed")))
        return
    if state == "consumed" and mv not in ("inspect",):
        out.append(("reject", Reason("serial_consumed", f"{ident} was consumed")))
        return
    if mv in INBOUND:
        if state in ON_SITE:
            out.append(("reject", Reason("serial_in_stock", f"{ident} is already in stock")))
        elif mv == "return" and state is None:
            out.append(
                (
                    "warn",
                    Reason(
                        "serial_unknown",
                        f"{ident} was never recorded here; it is returned into quarantine",
                    ),
                )
            )
        return
    if mv in ("hold", "inspect", "cycle_count", "release"):
        if state not in ON_SITE:
            # a count or an inspection records what it found; hold/release need the unit here
            verdict: Verdict = "warn" if mv in ("inspect", "cycle_count") else "reject"
            out.append((verdict, Reason("serial_not_in_stock", f"{ident} is not in stock here")))
            return
    elif state == "shipped":
        out.append(("reject", Reason("serial_already_shipped", f"{ident} was already shipped")))
        return
    elif state not in ON_SITE:
        out.append(("reject", Reason("serial_not_in_stock", f"{ident} is not in stock")))
        return
    elif mv == "pick" and state == "picked":
        out.append(("reject", Reason("serial_not_in_stock", f"{ident} was already picked")))
        return
    if serial is None:
        return
    blocked_ok = mv in QUARANTINE_OK
    if state == "recalled":
        if mv == "release":
            out.append(
                (
                    "reject",
                    Reason(
                        "recall_is_central",
                        f"{ident} is recalled; only the central service lifts a recall",
                    ),
                )
            )
        elif mv != "hold":
            out.append(
                (
                    "warn" if blocked_ok else "reject",
                    Reason("serial_recalled", f"{ident} is recalled"),
                )
            )
    elif (state == "on_hold" or serial.held) and mv not in ("hold", "release"):
        out.append(
            ("warn" if blocked_ok else "reject", Reason("serial_on_hold", f"{ident} is on hold"))
        )


def _status_rules(
    out: list[tuple[Verdict, Reason]],
    lot: LotInfo,
    mv: str,
    station: StationRules,
    into_quarantine_ok: bool = False,
) -> None:
    if mv == "release":
        if lot.status == "recalled":
            out.append(
                (
                    "reject",
                    Reason(
                        "recall_is_central",
                        f"lot {lot.lot} is recalled; only the central service lifts a recall",
                    ),
                )
            )
        return
    to_quarantine = mv in RELOCATE and station.custody.location in station.quarantine
    ok = mv in QUARANTINE_OK or to_quarantine or into_quarantine_ok
    verdict: Verdict = "warn" if ok else "reject"
    if lot.status == "recalled":
        name = lot.lot if lot.lot.startswith("GTIN ") else f"lot {lot.lot}"
        out.append((verdict, Reason("lot_recalled", f"{name} is recalled")))
    elif lot.status == "hold":
        name = lot.lot if lot.lot.startswith("GTIN ") else f"lot {lot.lot}"
        out.append((verdict, Reason("lot_on_hold", f"{name} is on hold")))
