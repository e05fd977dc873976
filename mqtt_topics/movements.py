"""Movements: what the gateway records, and how each maps to an EPCIS 2.0 event.

The table is data (``MOVEMENTS``); ``mqtt_topics/README.md`` shows it as a table.
Business steps and dispositions are CBV 2.0 short names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

EventType = Literal["ObjectEvent", "AggregationEvent", "TransformationEvent"]
Action = Literal["ADD", "OBSERVE", "DELETE"]


@dataclass(frozen=True, slots=True)
class MovementSpec:
    """The EPCIS shape of one movement: event type, action, bizStep and disposition."""

    event_type: EventType
    action: Action | None
    biz_step: str
    disposition: str
    description: str = ""


_O: EventType = "ObjectEvent"
_A: EventType = "AggregationEvent"
_T: EventType = "TransformationEvent"

MOVEMENTS: Mapping[str, MovementSpec] = MappingProxyType(
    {
        "commission": MovementSpec(
            _O,
            "ADD",
            "commissioning",
            "active",
            "Give items an identity (label printed, serial assigned).",
        ),
        "receive": MovementSpec(
            _O,
            "OBSERVE",
            "receiving",
            "in_progress",
            "Goods in, optionally against a PO/despatch advice, with source party/location.",
        ),
        "putaway": MovementSpec(
            _O,
            "OBSERVE",
            "storing",
            "sellable_not_accessible",
            "Store at a storage location (`location`).",
        ),
        "transfer": MovementSpec(
            _O,
            "OBSERVE",
            "storing",
            "sellable_not_accessible",
            "Move between storage locations (`from_location` → `location`).",
        ),
        "pick": MovementSpec(
            _O,
            "OBSERVE",
            "picking",
            "in_progress",
            "Pick for an order (destination, transaction reference).",
        ),
        "pack": MovementSpec(
            _A, "ADD", "packing", "in_progress", "Pack items onto a pallet (`parent.sscc`)."
        ),
        "unpack": MovementSpec(
            _A, "DELETE", "unpacking", "in_progress", "Take items off a pallet (no items = all)."
        ),
        "ship": MovementSpec(
            _O,
            "OBSERVE",
            "shipping",
            "in_transit",
            "Goods out, with destination and transaction reference; a pallet ships its contents.",
        ),
        "consume": MovementSpec(
            _T, None, "assembling", "active", "Consume inputs in production (inputs → outputs)."
        ),
        "repack": MovementSpec(
            _T, None, "repackaging", "active", "Repack inputs into new outputs."
        ),
        "hold": MovementSpec(_O, "OBSERVE", "holding", "non_sellable_other", "Quarantine / block."),
        "release": MovementSpec(
            _O,
            "OBSERVE",
            "inspecting",
            "sellable_not_accessible",
            "Release from hold after inspection.",
        ),
        "inspect": MovementSpec(
            _O, "OBSERVE", "inspecting", "in_progress", "Inspect without a decision."
        ),
        "scrap": MovementSpec(_O, "DELETE", "destroying", "destroyed", "Destroy / write off."),
        "cycle_count": MovementSpec(
            _O, "OBSERVE", "cycle_counting", "sellable_not_accessible", "Count stock at a location."
        ),
        "return": MovementSpec(_O, "OBSERVE", "receiving", "returned", "Customer return received."),
        "adjust": MovementSpec(
            _O,
            "OBSERVE",
            "cycle_counting",
            "sellable_not_accessible",
            "Stock found (`to`) or missing (`from`) at a count: the difference to the cache.",
        ),
        "correct": MovementSpec(
            _O,
            "OBSERVE",
            "other",
            "unknown",
            "Declare earlier events wrong (`corrects`); never an edit.",
        ),
    }
)

STEP_MOVEMENT: Mapping[str, str] = MappingProxyType(
    {
        "receiving": "receive",
        "storing": "putaway",
        "picking": "pick",
        "packing": "pack",
        "unpacking": "unpack",
        "shipping": "ship",
        "commissioning": "commission",
        "consuming": "consume",
        "destroying": "scrap",
        "holding": "hold",
        "cycle_counting": "cycle_count",
        "returning": "return",
        "inspecting": "inspect",
        "releasing": "release",
        "transferring": "transfer",
    }
)


def movement_for_step(step: str) -> str:
    """The default movement of a station step (``receiving`` → ``receive``); ValueError if unknown."""
    try:
        return STEP_MOVEMENT[step]
    except KeyError:
        raise ValueError(f"unknown station step {step!r}") from None


def spec_for(movement: str) -> MovementSpec:
    """The EPCIS mapping of a movement; ValueError if unknown."""
    try:
        return MOVEMENTS[movement]
    except KeyError:
        raise ValueError(f"unknown movement {movement!r}") from None
