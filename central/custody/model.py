"""Pure: what one event means for the projection (no SQL here).

Every v2 event item says from where to where; a consumer rebuilds the state from the
events alone. Lot quantities are deltas per (gtin, lot, site, location), which commute:
an event that arrives a day late changes the same sums. A serial's or pallet's current
place follows its newest event by ``event_time`` (a late older event is history only).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

#: Serial/pallet state after a movement whose item goes nowhere (custody ends).
_ENDS = {"consume": "consumed", "scrap": "destroyed", "repack": "consumed"}


@dataclass(frozen=True, slots=True)
class ItemRow:
    """One normalised item of an event (a row of ``event_items``)."""

    role: str  # item | input | output
    gtin: str | None
    lot: str | None
    serial: str | None
    sscc: str | None
    parent_sscc: str | None
    quantity: Decimal | None
    uom: str | None
    from_type: str | None
    from_id: str | None
    to_type: str | None
    to_id: str | None


@dataclass(frozen=True, slots=True)
class UnitPlace:
    """Where a serial or pallet is after an event."""

    state: str  # at_site | shipped | consumed | destroyed
    site: str | None
    location: str | None
    holder: str | None


def parse_time(value: str) -> datetime:
    """RFC 3339 with offset (as every payload carries)."""
    return datetime.fromisoformat(value)


def _place(p: Any) -> tuple[str | None, str | None]:
    if isinstance(p, Mapping):
        return str(p.get("type")), str(p.get("id"))
    return None, None


def item_rows(event: Mapping[str, Any]) -> list[ItemRow]:
    """The event's items, inputs and outputs as rows."""
    parent = event.get("parent", {}).get("sscc") if event.get("parent") else None
    out: list[ItemRow] = []
    for role, key in (("item", "items"), ("input", "inputs"), ("output", "outputs")):
        for it in event.get(key) or ():
            ft, fid = _place(it.get("from"))
            tt, tid = _place(it.get("to"))
            q = it.get("quantity")
            out.append(
                ItemRow(
                    role,
                    it.get("gtin"),
                    it.get("lot"),
                    it.get("serial"),
                    it.get("sscc"),
                    parent,
                    Decimal(str(q)) if q is not None else None,
                    it.get("uom"),
                    ft,
                    fid,
                    tt,
                    tid,
                )
            )
    return out


def stock_deltas(
    site: str, rows: Sequence[ItemRow], sign: int = 1
) -> Iterator[tuple[str, str, str, str, Decimal]]:
    """(gtin, lot or '', site, location, delta) for the lot/untracked quantities moved."""
    for r in rows:
        if r.gtin is None or r.serial is not None or r.quantity is None:
            continue
        lot = r.lot or ""
        # in place (from = to: a hold, a count, packing where it stands): nothing changes
        if r.from_type == "location" and r.from_id is not None and r.from_id != r.to_id:
            yield r.gtin, lot, site, r.from_id, -r.quantity * sign
        if r.to_type == "location" and r.to_id is not None and r.from_id != r.to_id:
            yield r.gtin, lot, site, r.to_id, r.quantity * sign


def unit_place(movement: str, site: str, row: ItemRow) -> UnitPlace | None:
    """Where a serial or pallet is after this item's movement (None: not a unit move)."""
    if row.to_type == "location":
        return UnitPlace("at_site", site, row.to_id, None)
    if row.to_type == "party":
        return UnitPlace("shipped", None, None, row.to_id)
    if row.to_type is None and row.from_type is not None:
        return UnitPlace(_ENDS.get(movement, "consumed"), None, None, None)
    return None


def gaps_after(high: int, seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Missing ranges above ``high`` given the new seqs (sorted or not)."""
    out: list[tuple[int, int]] = []
    last = high
    for s in sorted(set(seqs)):
        if s <= last:
            continue
        if s > last + 1:
            out.append((last + 1, s - 1))
        last = s
    return out
