"""The movement → EPCIS mapping table and the station-step defaults."""

from __future__ import annotations

import pytest

from gateway.config import BIZ_STEPS
from mqtt_topics.movements import MOVEMENTS, STEP_MOVEMENT, movement_for_step, spec_for
from mqtt_topics.validation import load_schema

REQUIRED = {
    "receive", "putaway", "transfer", "pick", "pack", "unpack", "ship", "consume", "repack",
    "hold", "release", "scrap", "cycle_count", "return", "commission", "correct",
}  # fmt: skip


def test_required_movements_present() -> None:
    assert set(MOVEMENTS) >= REQUIRED


def test_schema_movement_enum_is_the_table() -> None:
    enum = load_schema("traceway.event")["properties"]["movement"]["enum"]
    assert enum == list(MOVEMENTS)


@pytest.mark.parametrize("name", sorted(MOVEMENTS))
def test_spec_uses_cbv_vocabulary(name: str) -> None:
    defs = load_schema("traceway.defs")["$defs"]
    spec = MOVEMENTS[name]
    assert spec.biz_step in defs["biz_step"]["enum"]
    assert spec.disposition in defs["disposition"]["enum"]
    if spec.event_type == "TransformationEvent":
        assert spec.action is None
    else:
        assert spec.action in ("ADD", "OBSERVE", "DELETE")


@pytest.mark.parametrize(
    ("name", "etype", "action", "step", "disp"),
    [
        ("receive", "ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        ("pack", "AggregationEvent", "ADD", "packing", "in_progress"),
        ("unpack", "AggregationEvent", "DELETE", "unpacking", "in_progress"),
        ("ship", "ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("repack", "TransformationEvent", None, "repackaging", "active"),
        ("scrap", "ObjectEvent", "DELETE", "destroying", "destroyed"),
        ("commission", "ObjectEvent", "ADD", "commissioning", "active"),
        ("hold", "ObjectEvent", "OBSERVE", "holding", "non_sellable_other"),
        ("return", "ObjectEvent", "OBSERVE", "receiving", "returned"),
    ],
)
def test_key_mappings(name: str, etype: str, action: str | None, step: str, disp: str) -> None:
    spec = spec_for(name)
    assert (spec.event_type, spec.action, spec.biz_step, spec.disposition) == (
        etype, action, step, disp,
    )  # fmt: skip


@pytest.mark.parametrize("step", BIZ_STEPS)
def test_every_station_step_has_a_movement(step: str) -> None:
    assert movement_for_step(step) in MOVEMENTS


def test_step_table_covers_exactly_the_config_steps() -> None:
    assert set(STEP_MOVEMENT) == set(BIZ_STEPS)
    assert movement_for_step("receiving") == "receive"
    assert movement_for_step("destroying") == "scrap"


@pytest.mark.parametrize("bad", ["", "RECEIVING", "unloading", "receive"])
def test_unknown_step_or_movement_raises(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown station step"):
        movement_for_step(bad)
    with pytest.raises(ValueError, match="unknown movement"):
        spec_for(bad.upper() or "?")


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        MOVEMENTS["x"] = MOVEMENTS["receive"]  # type: ignore[index]
