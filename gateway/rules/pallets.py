"""Pallets (SSCC) you can see into (pure): what a pallet scan moves, and whether it may.

A pallet's contents are known from packing here, from a combined label
((00) with (02)(37)(10)), or from a despatch advice delivered by cache sync. A
pallet movement moves its contents: receiving a pallet receives what it holds,
shipping it checks every item on it (hold, recall, expiry) and ships them, and a
pallet that left cannot leave again. A hold reaches every unit through its pallet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from gateway.rules.custody import (
    INBOUND,
    LEAVES,
    QUARANTINE_OK,
    RELOCATE,
    CustodyContext,
    Leg,
    Place,
)

PalletState = Literal["expected", "at_site", "shipped", "consumed"]
#: Movements that take a pallet (and what is on it) toward or out of the door.
_STRICT = frozenset({"pick", "ship", "consume", "pack"})


@dataclass(frozen=True, slots=True)
class Content:
    """One line on a pallet, with what the cache knows of it."""

    gtin: str
    lot: str | None
    serial: str | None
    quantity: int
    status: str = "active"  # lot status (or the GTIN's), "hold"/"recalled" block
    serial_state: str | None = None
    serial_held: bool = False
    expiry: date | None = None


@dataclass(frozen=True, slots=True)
class PalletInfo:
    """A pallet known to this gateway."""

    sscc: str
    state: PalletState
    location: str
    held: bool = False  # HOLD scanned here, or an SSCC hold from the central side


@dataclass(frozen=True, slots=True)
class PalletPlan:
    """The verdict for a pallet scan and the custody of the pallet and each content line."""

    verdict: Literal["accept", "warn", "reject"]
    reasons: tuple[tuple[str, str], ...]  # (code, message)
    pallet_leg: Leg | None
    content_legs: tuple[tuple[Content, Leg], ...]


def _problems(
    mv: str, sscc: str, contents: tuple[Content, ...], today: date, ctx: CustodyContext
) -> list[tuple[str, str, str]]:
    """Blocked contents: (verdict, code, message).

    Held or recalled contents block a pallet as they block a single item (the reason-code
    table): refused, except to hold, inspect, count, scrap or take back a return, or to
    move the pallet into quarantine (a warning then). Expiry blocks only where goods leave.
    """
    out: list[tuple[str, str, str]] = []
    into_quarantine = mv in RELOCATE and ctx.location == ctx.quarantine_location
    verdict = "warn" if mv in QUARANTINE_OK or into_quarantine else "reject"
    for c in contents:
        what = f"serial {c.serial}" if c.serial else f"lot {c.lot}" if c.lot else f"GTIN {c.gtin}"
        on = f"pallet {sscc} holds {what}"
        if c.status == "recalled" or c.serial_state == "recalled":
            code = "serial_recalled" if c.serial_state == "recalled" else "lot_recalled"
            out.append((verdict, code, f"{on}, which is recalled"))
        elif c.status == "hold" or c.serial_held or c.serial_state == "on_hold":
            code = (
                "serial_on_hold" if c.serial_held or c.serial_state == "on_hold" else "lot_on_hold"
            )
            out.append((verdict, code, f"{on}, which is on hold"))
        if c.expiry is not None and c.expiry < today and mv in _STRICT:
            out.append(("reject", "lot_expired", f"{on}, which expired on {c.expiry.isoformat()}"))
    return out


def plan_pallet(
    mv: str,
    sscc: str,
    pallet: PalletInfo | None,
    contents: tuple[Content, ...],
    ctx: CustodyContext,
    today: date,
    stock_at: dict[tuple[str, str | None, str], int] | None = None,
) -> PalletPlan:
    """Decide a pallet scan. ``stock_at`` maps (gtin, lot, location) → quantity held there."""
    here = Place("location", ctx.location)
    reasons: list[tuple[str, str, str]] = []
    if mv in INBOUND:
        if pallet is not None and pallet.state == "at_site":
            return PalletPlan(
                "reject",
                (("pallet_in_stock", f"pallet {sscc} is already here (at {pallet.location})"),),
                None,
                (),
            )
        origin = Place("party", ctx.source or "unknown") if mv != "commission" else None
        into = Place("location", ctx.quarantine_location) if mv == "return" else here
        reasons += _problems(mv, sscc, contents, today, ctx)
        if not contents:
            reasons.append(
                ("warn", "pallet_contents_unknown", f"nothing is known to be on pallet {sscc}")
            )
        legs = tuple((c, Leg(origin, into, c.quantity, None, into.id)) for c in contents)
        return _plan(reasons, Leg(origin, into, 1, None, into.id), legs)

    if pallet is None or pallet.state in ("shipped", "consumed", "expected"):
        if pallet is not None and pallet.state == "shipped":
            code, msg = "pallet_already_shipped", f"pallet {sscc} was already shipped"
        else:
            code, msg = "not_in_stock", f"pallet {sscc} is not recorded here"
        if mv in ("inspect", "cycle_count"):
            return _plan([("warn", code, msg)], None, ())
        return PalletPlan("reject", ((code, msg),), None, ())
    at = pallet.location
    if pallet.held and mv not in ("hold", "release", "inspect", "cycle_count", "scrap"):
        return PalletPlan("reject", (("pallet_on_hold", f"pallet {sscc} is on hold"),), None, ())
    if mv not in ("hold", "release"):
        reasons += _problems(mv, sscc, contents, today, ctx)
    if mv in RELOCATE:
        if not ctx.location:
            return PalletPlan(
                "reject", (("no_location", f"scan the location the {mv} goes to first"),), None, ()
            )
        if at == ctx.location:
            return PalletPlan(
                "reject",
                (("same_location", f"pallet {sscc} is already at {at}"),),
                None,
                (),
            )
        dest: Place | None = here
    elif mv == "ship":
        dest = Place("party", ctx.destination or "unknown")
    elif mv in LEAVES:
        dest = None
    else:  # in place: hold, release, inspect, count
        legs = tuple(
            (c, Leg(Place("location", at), Place("location", at), c.quantity, None, None))
            for c in contents
        )
        return _plan(
            reasons, Leg(Place("location", at), Place("location", at), 1, None, None), legs
        )
    src = Place("location", at)
    put = ctx.location if mv in RELOCATE else None
    if stock_at is not None:
        for c in contents:
            if c.serial:
                continue
            have = stock_at.get((c.gtin, c.lot, at), 0)
            if have < c.quantity:
                what = f"lot {c.lot}" if c.lot else f"GTIN {c.gtin}"
                reasons.append(
                    (
                        "reject",
                        "insufficient_stock",
                        f"pallet {sscc} lists {c.quantity} of {what}, {at} holds {have}",
                    )
                )
    legs = tuple((c, Leg(src, dest, c.quantity, at, put)) for c in contents)
    return _plan(reasons, Leg(src, dest, 1, at, put), legs)


def _plan(
    reasons: list[tuple[str, str, str]], leg: Leg | None, legs: tuple[tuple[Content, Leg], ...]
) -> PalletPlan:
    verdicts = {v for v, _, _ in reasons}
    verdict: Literal["accept", "warn", "reject"] = (
        "reject" if "reject" in verdicts else "warn" if "warn" in verdicts else "accept"
    )
    out = tuple((code, msg) for _, code, msg in reasons)
    if verdict == "reject":
        return PalletPlan(verdict, out, None, ())
    return PalletPlan(verdict, out, leg, legs)
