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
}
TRANSACTION_TYPES = {"PO": "po", "DESADV": "desadv", "BOL": "bol", "INV": "inv", "ASN": "desadv"}

_QTY = re.compile(r"^(?:QTY|QUANTITY)[:= ]?(\d{1,6})$")
_TX = re.compile(r"^(PO|DESADV|BOL|INV|ASN)[:= ](.{1,64})$")


@dataclass(frozen=True, slots=True)
class StationState:
    """What a station is doing now; changed by control barcodes and commands."""

    name: str
    step: str
    location: str
    next_quantity: int | None = None
    transaction: tuple[str, str] | None = None  # (type, id)
    open_parent: str | None = None  # SSCC of the pallet being packed

    @classmethod
    def from_config(cls, name: str, cfg: StationConfig) -> StationState:
        return cls(name=name, step=cfg.step, location=cfg.location)


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
        return ControlResult(replace(state, step=step), True, f"step is now {step}")
    if word.lower() in BIZ_STEPS:
        return ControlResult(replace(state, step=word.lower()), True, f"step is now {word.lower()}")
    m = _QTY.match(word)
    if m:
        qty = int(m.group(1))
        if qty < 1:
            return ControlResult(state, False, "quantity must be at least 1")
        return ControlResult(
            replace(state, next_quantity=qty), True, f"quantity {qty} for the next lot scan"
        )
    m = _TX.match(value.strip())
    if m:
        kind = TRANSACTION_TYPES[m.group(1).upper()]
        ref = m.group(2).strip()
        return ControlResult(
            replace(state, transaction=(kind, ref)), True, f"transaction {kind} {ref}"
        )
    if word in ("CLOSE", "CLOSE_PALLET"):
        if state.open_parent is None:
            return ControlResult(state, False, "no pallet is open")
        return ControlResult(
            replace(state, open_parent=None), True, f"pallet {state.open_parent} closed"
        )
    if word in ("CLEAR", "RESET", "END"):
        return ControlResult(
            replace(state, next_quantity=None, transaction=None),
            True,
            "quantity and transaction cleared",
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
