"""Cache sync messages: snapshot/delta validators, delta ordering, gateway-side builders."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mqtt_topics.cache import (
    build_ack,
    build_cache_version,
    build_resync_request,
    change_key,
    delta_verdict,
    validate_delta,
    validate_snapshot,
)
from mqtt_topics.examples import GATEWAY, GTIN_B, SITE, T0, example_id, example_payloads
from mqtt_topics.validation import validate

SNAP = example_payloads()["traceway.cache_snapshot"]
DELTA = example_payloads()["traceway.cache_delta"]


def test_examples_are_valid() -> None:
    assert validate_snapshot(SNAP) == [] and validate(SNAP) == []
    assert validate_delta(DELTA) == [] and validate(DELTA) == []


def _snap(**changes: Any) -> dict[str, Any]:
    s = copy.deepcopy(SNAP)
    s.update(changes)
    return s


@pytest.mark.parametrize(
    "bad",
    [
        _snap(chunk={"index": 1, "count": 1}),
        _snap(lots=[*SNAP["lots"], SNAP["lots"][0]]),
        _snap(products=[{"gtin": GTIN_B[:-1] + "0" if GTIN_B[-1] != "0" else GTIN_B[:-1] + "1"}]),
        _snap(lots=[{"gtin": GTIN_B, "lot": "L1", "expiry": "2027-02-30", "status": "released"}]),
        _snap(lots=[{"gtin": GTIN_B, "lot": "L1", "expiry": None, "status": "fine"}]),
        _snap(lots=[{"gtin": GTIN_B, "lot": "L1", "status": "released"}]),
        _snap(serials=[{"gtin": GTIN_B, "serial": "1", "state": "lost"}]),
        _snap(
            holds=[{"hold_id": "h", "scope": {}, "reason": "", "since": "2026-01-01T00:00:00.000Z"}]
        ),
        _snap(version=0),
        {k: v for k, v in SNAP.items() if k != "recalls"},
        "not an object",
    ],
)
def test_bad_snapshots(bad: Any) -> None:
    assert validate_snapshot(bad) != []


def _delta(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(DELTA)
    d.update(changes)
    return d


@pytest.mark.parametrize(
    "bad",
    [
        _delta(version=1207),
        _delta(version=1200),
        _delta(changes=[]),
        _delta(changes=[DELTA["changes"][0], DELTA["changes"][0]]),
        _delta(changes=[{"op": "delete", "entity": "lot", "key": {"gtin": GTIN_B}}]),
        _delta(changes=[{"op": "upsert", "entity": "lot", "record": {"gtin": GTIN_B}}]),
        _delta(changes=[{"op": "replace", "entity": "hold", "key": {"hold_id": "1"}}]),
        _delta(changes=[{"op": "upsert", "entity": "product", "record": {"gtin": "1" * 14}}]),
    ],
)
def test_bad_deltas(bad: dict[str, Any]) -> None:
    assert validate_delta(bad) != []


def test_change_key_upsert_and_delete_agree() -> None:
    up = {
        "op": "upsert",
        "entity": "lot",
        "record": {"gtin": GTIN_B, "lot": "L", "expiry": None, "status": "released"},
    }
    down = {"op": "delete", "entity": "lot", "key": {"gtin": GTIN_B, "lot": "L"}}
    assert change_key(up) == change_key(down) == ("lot", (GTIN_B, "L"))
    assert validate_delta(_delta(changes=[up, down])) != []


@pytest.mark.parametrize(
    ("held", "frm", "to", "verdict"),
    [
        (None, 1, 2, "gap"),
        (5, 5, 6, "apply"),
        (5, 5, 8, "apply"),
        (5, 4, 5, "duplicate"),
        (5, 3, 4, "duplicate"),
        (5, 4, 6, "gap"),
        (5, 6, 7, "gap"),
    ],
)
def test_delta_verdict(held: int | None, frm: int, to: int, verdict: str) -> None:
    assert delta_verdict(held, {"from_version": frm, "version": to}) == verdict


def test_gateway_side_builders() -> None:
    kw: dict[str, Any] = dict(gateway_id=GATEWAY, site=SITE, time=T0)
    req = build_resync_request(**kw, request_id=example_id(5), have_version=None, reason="empty")
    assert validate(req) == []
    assert validate({**req, "reason": "bored"}) != []
    assert validate(build_ack(**kw, kind="snapshot", version=3, request_id=example_id(5))) == []
    nack = build_ack(**kw, kind="delta", version=4, ok=False, error="gap: held 2")
    assert validate(nack) == []
    assert validate({k: v for k, v in nack.items() if k != "error"}) != []
    with pytest.raises(ValueError, match="error"):
        build_ack(**kw, kind="delta", version=4, ok=False)
    ver = build_cache_version(**kw, version=None, counts={"lots": 2})
    assert validate(ver) == [] and ver["counts"]["products"] == 0


# -- contract 1.1: warning days per product, despatch advices ------------------------------------
SSCC_OK = SNAP["despatch_advices"][0]["sscc"]
ADVICE = SNAP["despatch_advices"][0]


def _advice(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(ADVICE), **changes}


def _as_1_0(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as a 1.0 sender wrote it: none of the 1.1 fields."""
    old = copy.deepcopy(payload)
    old["schema"]["version"] = "1.0"
    old.pop("despatch_advices", None)
    if "changes" in old:
        old["changes"] = [c for c in old["changes"] if c["entity"] != "despatch_advice"]
    for rec in [*old.get("products", []), *(c.get("record", {}) for c in old.get("changes", []))]:
        rec.pop("expiry_warning_days", None)
    return old


def test_version_1_0_payloads_stay_valid() -> None:
    assert SNAP["schema"]["version"] == DELTA["schema"]["version"] == "1.1"
    old_snap, old_delta = _as_1_0(SNAP), _as_1_0(DELTA)
    assert "despatch_advices" not in old_snap and old_snap["schema"]["version"] == "1.0"
    assert validate_snapshot(old_snap) == [] and validate(old_snap) == []
    assert validate_delta(old_delta) == [] and validate(old_delta) == []
    assert all(c["entity"] != "despatch_advice" for c in old_delta["changes"])


@pytest.mark.parametrize("days", [-1, 1.5, "30", None, 36501])
def test_bad_warning_days(days: Any) -> None:
    products = [{**SNAP["products"][1], "expiry_warning_days": days}]
    assert validate_snapshot(_snap(products=products)) != []


@pytest.mark.parametrize(
    "bad",
    [
        _advice(items=[]),
        _advice(items=[{"gtin": GTIN_B, "lot": "L1"}]),  # no quantity
        _advice(items=[{"gtin": GTIN_B, "lot": "L1", "quantity": 0}]),
        _advice(items=[{"gtin": GTIN_B, "serial": "S1", "quantity": 2}]),
        _advice(items=[{"gtin": GTIN_B, "lot": "L1", "quantity": 1, "expiry": "2027-01-01"}]),
        _advice(sscc=SSCC_OK[:-1] + str((int(SSCC_OK[-1]) + 1) % 10)),  # check digit
        _advice(desadv_id=""),
        # one line per serial, and per lot or untracked GTIN
        _advice(items=[{"gtin": GTIN_B, "serial": "S1", "quantity": 1}] * 2),
        _advice(items=[{"gtin": GTIN_B, "lot": "L1", "quantity": 1}] * 2),
        _advice(items=[{"gtin": GTIN_B, "quantity": 1}, {"gtin": GTIN_B, "quantity": 4}]),
        {k: v for k, v in ADVICE.items() if k != "items"},
    ],
)
def test_bad_despatch_advices(bad: dict[str, Any]) -> None:
    assert validate_snapshot(_snap(despatch_advices=[bad])) != []
    change = {"op": "upsert", "entity": "despatch_advice", "record": bad}
    assert validate_delta(_delta(changes=[change])) != []


def test_despatch_advice_lines_may_share_a_lot_across_gtins_and_serials() -> None:
    ok = _advice(
        items=[
            {"gtin": GTIN_B, "lot": "L1", "quantity": 3},
            {"gtin": GTIN_B, "serial": "S1", "lot": "L1", "quantity": 1},
            {"gtin": GTIN_B, "serial": "S2", "lot": "L1", "quantity": 1},
            {"gtin": GTIN_B, "quantity": 2},
        ]
    )
    assert validate_snapshot(_snap(despatch_advices=[ok])) == []


def test_one_despatch_advice_per_sscc() -> None:
    errors = validate_snapshot(_snap(despatch_advices=[ADVICE, _advice(desadv_id="other")]))
    assert any("duplicate key" in e for e in errors)
    up = {"op": "upsert", "entity": "despatch_advice", "record": ADVICE}
    down = {"op": "delete", "entity": "despatch_advice", "key": {"sscc": SSCC_OK}}
    assert change_key(up) == change_key(down) == ("despatch_advice", (SSCC_OK,))
    assert validate_delta(_delta(changes=[up, down])) != []
    assert validate_delta(_delta(changes=[down])) == []


def test_duplicate_line_message_says_what_to_send() -> None:
    bad = _advice(items=[{"gtin": GTIN_B, "serial": "S1", "quantity": 1}] * 2)
    (msg,) = validate_snapshot(_snap(despatch_advices=[bad]))
    assert msg.startswith("despatch_advices[0].items[1]: GTIN") and "serial S1" in msg
    assert SSCC_OK in msg


def test_cache_version_counts_expected_pallets() -> None:
    kw: dict[str, Any] = dict(gateway_id=GATEWAY, site=SITE, time=T0)
    ver = build_cache_version(**kw, version=3, counts={"despatch_advices": 2})
    assert validate(ver) == [] and ver["counts"]["despatch_advices"] == 2
    assert ver["schema"]["version"] == "1.1"
    old = copy.deepcopy(ver)
    old["schema"]["version"] = "1.0"
    del old["counts"]["despatch_advices"]
    assert validate(old) == []
