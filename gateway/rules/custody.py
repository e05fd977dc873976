"""Custody (pure): from where to where a movement takes a unit, and how much.

Every accepted movement says, for its item, where it came from and where it went.
The source is known, never guessed. In this order it is:

1. the unit's own location (a serial's or a pallet's location in the cache);
2. a source location the operator scanned (``FROM:A-01``), valid for the next item;
3. the station's configured ``source`` location;
4. for goods out (ship, consume, scrap): the station's location when it holds the lot;
5. the only location that holds the lot (or the untracked product), the destination
   itself left out.

Otherwise the scan is rejected ``source_ambiguous`` with the locations that hold it,
so the operator knows what to scan. A movement that takes more than its source holds
is rejected ``insufficient_stock`` (station policy ``insufficient_stock = "warn"``
moves what the source holds and says so); an event never states a quantity that the
cache did not move.

Receipts come from a party (the station's ``source``, else ``unknown``); shipments go
to a party (the station's ``destination``, else ``unknown``); returns go to the
station's quarantine location. Consumption and scrap end custody (``to`` is None);
commissioning starts it (``from`` is None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gs1.value import value_type
from mqtt_topics.events import Place as PlacePayload

PlaceType = Literal["location", "party"]

#: Movements that bring units into the site, move them inside it, take them out of it.
INBOUND = frozenset({"receive", "return", "commission"})
RELOCATE = frozenset({"putaway", "transfer", "pick"})
#: Movements that may touch held or recalled goods (with a warning): holding, inspecting,
#: counting, scrapping, taking back a return. Everything else is refused.
QUARANTINE_OK = frozenset({"hold", "inspect", "cycle_count", "scrap", "return"})
OUTBOUND = frozenset({"ship", "consume", "scrap"})
#: Movements that observe or re-state units where they are (no stock moves).
IN_PLACE = frozenset({"unpack", "hold", "release", "inspect", "cycle_count"})
#: Packing puts units on a pallet at the station: in place when they are there already.
PACK = "pack"
#: Movements after which a unit is gone from the site.
LEAVES = frozenset({"ship", "consume", "scrap"})


@value_type
class Place:
    """A storage location at this site, or a party (supplier, customer, another site)."""

    type: PlaceType
    id: str

    def as_payload(self) -> PlacePayload:
        """``{"type": ..., "id": ...}`` as items carry it in events."""
        return {"type": self.type, "id": self.id}


@dataclass(frozen=True, slots=True)
class CustodyContext:
    """What the station knows about places when an item is scanned."""

    location: str  # the station's current location (scanned or configured)
    scanned_source: str | None = None  # FROM:… scanned for the next item
    source: str = ""  # configured: a location (inside moves) or a party (receipts)
    destination: str = ""  # configured: a party (shipments) or a location
    quarantine_location: str = "QUARANTINE"
    insufficient_stock: Literal["reject", "warn"] = "reject"


@value_type
class Leg:
    """One item's custody change: from, to, quantity, and the stock rows it touches."""

    source: Place | None
    dest: Place | None
    quantity: int
    take_from: str | None  # location whose stock goes down
    put_to: str | None  # location whose stock goes up


@dataclass(frozen=True, slots=True)
class Problem:
    """Why custody cannot be established: a verdict, a reason code and a sentence."""

    verdict: Literal["reject", "warn"]
    code: str
    message: str


def _holders(stock: Mapping[str, int], exclude: str | None = None) -> dict[str, int]:
    return {loc: q for loc, q in stock.items() if q > 0 and loc != exclude}


def _listing(holders: Mapping[str, int], limit: int = 5) -> str:
    parts = [f"{loc or '(no location)'} ({q})" for loc, q in sorted(holders.items())[:limit]]
    more = len(holders) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def resolve_source(
    movement: str,
    what: str,
    stock: Mapping[str, int],
    ctx: CustodyContext,
    exclude: str | None,
) -> str | Problem:
    """The location stock is taken from (rules 2-5 of the module docstring)."""
    if ctx.scanned_source is not None:
        return ctx.scanned_source
    if ctx.source:
        return ctx.source
    holders = _holders(stock, exclude)
    if movement in OUTBOUND and ctx.location in holders:
        return ctx.location
    if len(holders) == 1:
        return next(iter(holders))
    if not holders:
        return Problem("reject", "not_in_stock", f"no stock of {what} is recorded here")
    return Problem(
        "reject",
        "source_ambiguous",
        f"{what} is at {_listing(holders)}: scan the location it is taken from (FROM:…)",
    )


def _take(
    movement: str,
    what: str,
    stock: Mapping[str, int],
    source: str,
    wanted: int,
    ctx: CustodyContext,
) -> tuple[int, Problem | None]:
    have = max(0, stock.get(source, 0))
    if have >= wanted:
        return wanted, None
    where = source or "(no location)"
    msg = f"{where} holds {have} of {what}, the {movement} takes {wanted}"
    if ctx.insufficient_stock == "warn" and have > 0:
        return have, Problem("warn", "insufficient_stock", msg + f"; moved {have}")
    return 0, Problem("reject", "insufficient_stock", msg)


def plan_quantity(
    movement: str,
    what: str,
    quantity: int,
    stock: Mapping[str, int],
    ctx: CustodyContext,
) -> tuple[Leg | None, list[Problem]]:
    """Custody of a lot quantity or an untracked product (stock per location given)."""
    here = Place("location", ctx.location)
    if movement in INBOUND:
        if movement == "return":
            dest = Place("location", ctx.quarantine_location)
            src = Place("party", ctx.source or "unknown")
        elif movement == "commission":
            dest, src = here, None
        else:
            dest, src = here, Place("party", ctx.source or "unknown")
        return Leg(src, dest, quantity, None, dest.id), []
    if movement in IN_PLACE:
        at = ctx.scanned_source or ctx.location
        return Leg(Place("location", at), Place("location", at), quantity, None, None), []
    if movement == PACK:
        if ctx.scanned_source in (None, ctx.location) and stock.get(ctx.location, 0) >= quantity:
            at = ctx.location
            return Leg(Place("location", at), Place("location", at), quantity, None, None), []
        movement = "pick"  # packed from elsewhere: moved to the pallet at the station
    exclude = ctx.location if movement in RELOCATE else None
    if movement in RELOCATE and not ctx.location:
        return None, [
            Problem("reject", "no_location", f"scan the location the {movement} goes to first")
        ]
    source = resolve_source(movement, what, stock, ctx, exclude)
    if isinstance(source, Problem):
        return None, [source]
    if movement in RELOCATE and source == ctx.location:
        return None, [
            Problem(
                "reject",
                "same_location",
                f"{what} is already at {source}: scan the destination location first",
            )
        ]
    moved, problem = _take(movement, what, stock, source, quantity, ctx)
    problems = [problem] if problem is not None else []
    if moved == 0:
        return None, problems
    to: Place | None
    if movement in RELOCATE:
        to = here
    elif movement == "ship":
        to = Place("party", ctx.destination or "unknown")
    else:
        to = None  # consumed or destroyed: custody ends here
    put_to = ctx.location if movement in RELOCATE else None
    return Leg(Place("location", source), to, moved, source, put_to), problems


def plan_serial(
    movement: str, unit_location: str | None, ctx: CustodyContext
) -> tuple[Leg | None, list[Problem]]:
    """Custody of one serialised unit whose cache location is ``unit_location``."""
    here = Place("location", ctx.location)
    if movement in INBOUND:
        if movement == "return":
            return Leg(
                Place("party", ctx.source or "unknown"),
                Place("location", ctx.quarantine_location),
                1,
                None,
                ctx.quarantine_location,
            ), []
        src = None if movement == "commission" else Place("party", ctx.source or "unknown")
        return Leg(src, here, 1, None, ctx.location), []
    at = unit_location if unit_location is not None else (ctx.scanned_source or ctx.location)
    if movement == PACK:
        movement = "pick" if ctx.location and at != ctx.location else "inspect"
    if movement in IN_PLACE:
        return Leg(Place("location", at), Place("location", at), 1, None, None), []
    if movement in RELOCATE:
        if not ctx.location:
            return None, [
                Problem("reject", "no_location", f"scan the location the {movement} goes to first")
            ]
        return Leg(Place("location", at), here, 1, at, ctx.location), []
    dest = Place("party", ctx.destination or "unknown") if movement == "ship" else None
    return Leg(Place("location", at), dest, 1, at, None), []
