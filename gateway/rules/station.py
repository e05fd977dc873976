"""A station's running state and the control barcodes that change it (pure).

A workstation's operator scans command barcodes to switch the business step
(``RECEIVE``, ``PUTAWAY``, ``PICK``, ``SHIP`` …), a location barcode to set where
the following items go, ``QTY:12`` to set the quantity of the next lot scan, and
``PO:4711`` / ``DESADV:…`` / ``BOL:…`` to set the business transaction reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from gateway.config import BIZ_STEPS, StationConfig

#: Command words an operator can scan, and the step they switch to.
STEP_COMMANDS = {
    "RECEIVE": "receiving",
    "RECEIVING": "receiving",
    "PUTAWAY": "storing",
    "STORE": "storing",
    "STORING": "storing",
    "PICK": "picking",
    "PICKING": "picking",
    "PACK": "packing",
    "PACKING": "packing",
    "UNPACK": "unpacking",
    "UNPACKING": "unpacking",
    "SHIP": "shipping",
    "SHIPPING": "shipping",
    "CONSUME": "consuming",
    "SCRAP": "destroying",
    "DESTROY": "destroying",
    "HOLD": "holding",
    "COUNT": "cycle_counting",
    "CYCLE_COUNT": "cycle_counting",
    "RETURN": "returning",
    "RETURNS": "returning",
    "INSPECT": "inspecting",
    "COMMISSION": "commissioning",
    "RELEASE": "releasing",
    "TRANSFER": "transferring",
}
TRANSACTION_TYPES = {"PO": "po", "DESADV": "desadv", "BOL": "bol", "INV": "inv", "ASN": "desadv"}

_QTY = re.compile(r"^(?:QTY|QUANTITY)[:= ]?(\d{1,6})$")
_TX = re.compile(r"^(PO|DESADV|BOL|INV|ASN)[:= ](.{1,64})$")
_FROM = re.compile(r"^FROM[:= ](.{1,20})$")
_REASON = re.compile(r"^REASON[:= ]([A-Za-z0-9_]{1,32})$")
_TO = re.compile(r"^(?:TO|SHIPTO|SHIP_TO)[:= ](.{1,64})$")


@dataclass(frozen=True, slots=True)
class StationState:
    """What a station is doing now; changed by control barcodes and commands."""

    name: str
    step: str
    location: str
    next_quantity: int | None = None  # QTY:n, for the next item scan only
    transactions: tuple[tuple[str, str], ...] = ()  # (type, id), one per type, this step
    open_parent: str | None = None  # SSCC of the pallet being packed
    source_location: str | None = None  # FROM:…, for the next item scan only
    destination: str | None = None  # TO:… / a (410) ship-to GLN, until the step changes
    reason: str | None = None  # REASON:…, for the next item scan only
    source_party: str | None = None  # a scanned (412) "purchased from" GLN, until the step changes
    #: RELABEL armed: None = off; () = waiting for the wrong label; (gtin, lot) = for the right one
    relabel: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, name: str, cfg: StationConfig) -> StationState:
        return cls(name=name, step=cfg.step, location=cfg.location)

    @property
    def transaction(self) -> tuple[str, str] | None:
        """The latest business transaction reference (type, id), if any."""
        return self.transactions[-1] if self.transactions else None

    def with_transaction(self, kind: str, ref: str) -> StationState:
        """Add a reference; one of the same type scanned earlier is replaced."""
        kept = tuple(t for t in self.transactions if t[0] != kind)
        return replace(self, transactions=(*kept, (kind, ref)))

    def after_item(self) -> StationState:
        """The state after an item scan was decided: QTY and FROM apply to one item only."""
        if self.next_quantity is None and self.source_location is None and self.reason is None:
            return self
        return replace(self, next_quantity=None, source_location=None, reason=None)


def _new_step(state: StationState, step: str) -> StationState:
    """A step change starts a new context: references, QTY, FROM and TO do not carry over."""
    if step == state.step:
        return state
    return replace(
        state,
        step=step,
        transactions=(),
        next_quantity=None,
        source_location=None,
        destination=None,
        reason=None,
        source_party=None,
    )


@dataclass(frozen=True, slots=True)
class ControlResult:
    """The new state after a control barcode, and a sentence acknowledging it."""

    state: StationState
    ok: bool
    message: str


def apply_command(state: StationState, value: str) -> ControlResult:
    """Apply a command barcode value (``PICK``, ``QTY:12``, ``PO:4711``, ``CLEAR``)."""
    word = value.strip().upper()
    if word in STEP_COMMANDS:
        step = STEP_COMMANDS[word]
        return ControlResult(_new_step(state, step), True, f"step is now {step}")
    if word.lower() in BIZ_STEPS:
        step = word.lower()
        return ControlResult(_new_step(state, step), True, f"step is now {step}")
    m = _FROM.match(value.strip())
    if m:
        loc = m.group(1).strip()
        return ControlResult(
            replace(state, source_location=loc), True, f"next item is taken from {loc}"
        )
    m = _REASON.match(value.strip())
    if m:
        why = m.group(1).lower()
        return ControlResult(replace(state, reason=why), True, f"reason {why} for the next item")
    m = _TO.match(value.strip())
    if m:
        dest = m.group(1).strip()
        return ControlResult(replace(state, destination=dest), True, f"destination is now {dest}")
    m = _QTY.match(word)
    if m:
        qty = int(m.group(1))
        if qty < 1:
            return ControlResult(state, False, "quantity must be at least 1")
        return ControlResult(
            replace(state, next_quantity=qty), True, f"quantity {qty} for the next item scan"
        )
    m = _TX.match(value.strip())
    if m:
        kind = TRANSACTION_TYPES[m.group(1).upper()]
        ref = m.group(2).strip()
        return ControlResult(state.with_transaction(kind, ref), True, f"transaction {kind} {ref}")
    if word == "RELABEL":
        return ControlResult(
            replace(state, relabel=()),
            True,
            "relabel: scan the wrong label, then the correct one",
        )
    if word in ("CLOSE", "CLOSE_PALLET"):
        if state.open_parent is None:
            return ControlResult(state, False, "no pallet is open")
        return ControlResult(
            replace(state, open_parent=None), True, f"pallet {state.open_parent} closed"
        )
    if word in ("CLEAR", "RESET", "END"):
        return ControlResult(
            replace(
                state,
                next_quantity=None,
                transactions=(),
                source_location=None,
                destination=None,
                relabel=None,
                source_party=None,
            ),
            True,
            "quantity, source, destination and transactions cleared",
        )
    return ControlResult(state, False, f"unknown command {value!r}")


def apply_location(state: StationState, location: str) -> ControlResult:
    """A location barcode: the following scans move items to/from this location."""
    loc = location.strip()
    if not loc:
        return ControlResult(state, False, "empty location")
    return ControlResult(replace(state, location=loc), True, f"location is now {loc}")


def toggle_pallet(state: StationState, sscc: str) -> ControlResult:
    """At a packing station an SSCC opens a pallet; the same SSCC again closes it."""
    if state.open_parent == sscc:
        return ControlResult(replace(state, open_parent=None), True, f"pallet {sscc} closed")
    note = f" (pallet {state.open_parent} closed)" if state.open_parent else ""
    return ControlResult(
        replace(state, open_parent=sscc), True, f"pallet {sscc} open: scan items to pack{note}"
    )


#: GS1 party AIs a station takes as the other side of a movement.
PARTY_AIS = {"410": "destination", "413": "destination", "412": "source_party"}


def apply_party(state: StationState, ais: dict[str, str]) -> ControlResult:
    """A GS1 barcode with a party GLN: (410) ship to / (413) ship for set the destination of
    shipments, (412) purchased from the source of receipts (until the step changes)."""
    for ai, attr in PARTY_AIS.items():
        gln = ais.get(ai)
        if not gln:
            continue
        if attr == "destination":
            return ControlResult(
                replace(state, destination=gln), True, f"destination is now GLN {gln}"
            )
        return ControlResult(
            replace(state, source_party=gln), True, f"source (supplier) is now GLN {gln}"
        )
    return ControlResult(state, False, "no party GLN (410), (412) or (413) in the barcode")
