"""Every payload the gateway emits validates against its schema; bad ones do not."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from gs1.keys import check_digit, is_valid_gln, is_valid_gtin, is_valid_sscc
from mqtt_topics.events import build_alert, build_event
from mqtt_topics.examples import (
    GATEWAY,
    GTIN_A,
    SITE,
    T0,
    example_id,
    example_payloads,
    scripted_day,
    with_check_digit,
)
from mqtt_topics.status import build_birth, build_device_status, build_metrics, build_offline
from mqtt_topics.topics import TOPICS, GatewayTopics, spec_for_topic, topic_filter
from mqtt_topics.validation import load_schema, schema_names, validate

EXAMPLES = example_payloads()


def test_format_checkers_are_active() -> None:
    # without rfc3339-validator / rfc3986-validator these formats would pass silently
    checkers = FormatChecker().checkers
    for fmt in ("date-time", "date", "uuid", "uri"):
        assert fmt in checkers


@pytest.mark.parametrize("name", [*schema_names(), "traceway.defs"])
def test_schema_files_are_valid_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:traceway:schema:{name}"


def test_every_topic_has_a_schema_and_every_schema_a_topic() -> None:
    assert {t.schema for t in TOPICS} == set(schema_names())


def test_schemas_are_package_data() -> None:
    files = resources.files("mqtt_topics").joinpath("schemas")
    assert files.joinpath("traceway.event.json").is_file()
    assert resources.files("mqtt_topics").joinpath("README.md").is_file()


def test_load_schema_unknown() -> None:
    with pytest.raises(KeyError):
        load_schema("traceway.nope")
    with pytest.raises(KeyError):
        load_schema("../pyproject")


@pytest.mark.parametrize("name", schema_names())
def test_example_validates(name: str) -> None:
    payload = EXAMPLES[name]
    assert payload["schema"]["name"] == name
    assert validate(payload) == []
    assert json.loads(json.dumps(payload)) == payload


@pytest.mark.parametrize("ev", scripted_day(), ids=lambda e: f"{e['seq']}-{e['movement']}")
def test_scripted_day_events_validate(ev: dict[str, Any]) -> None:
    assert validate(ev) == []


def test_readme_documents_every_topic_and_movement() -> None:
    text = resources.files("mqtt_topics").joinpath("README.md").read_text(encoding="utf-8")
    for spec in TOPICS:
        assert f"`{spec.suffix}`" in text, spec.suffix
        assert spec.schema in text
    from mqtt_topics.movements import MOVEMENTS

    for name, spec in MOVEMENTS.items():
        assert f"| `{name}` | {spec.event_type} |" in text, name


# -- negative cases: each mutation must be caught ---------------------------------------
def _event() -> dict[str, Any]:
    return copy.deepcopy(scripted_day()[0])


def _mut(path: str, value: Any) -> dict[str, Any]:
    ev = _event()
    node: Any = ev
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return ev


_DELETE = object()

BAD_EVENTS = {
    "gtin check digit": _mut("items.0.gtin", GTIN_A[:-1] + str((int(GTIN_A[-1]) + 1) % 10)),
    "gtin length": _mut("items.0.gtin", "123"),
    "serial with space": _mut("items.0.serial", "A B"),
    "serial too long": _mut("items.0.serial", "X" * 21),
    "quantity zero": _mut("items.2.quantity", 0),
    "serial with quantity 2": _mut("items.0.quantity", 2),
    "from not a place": _mut("items.0.from", "DOCK"),
    "to of another type": _mut("items.0.to", {"type": "shelf", "id": "A"}),
    "expiry not a date": _mut("items.0.expiry", "2027-02-30"),
    "time without ms": _mut("event_time", "2026-11-23T07:30:00+01:00"),
    "time impossible": _mut("event_time", "2026-13-23T07:30:00.000+01:00"),
    "time without offset": _mut("event_time", "2026-11-23T07:30:00.000"),
    "uuid v4": _mut("event_id", "0b6f7c5e-3d3a-4c5e-9c1a-1f2e3d4c5b6a"),
    "seq zero": _mut("seq", 0),
    "missing decision": _mut("decision", _DELETE),
    "bad verdict": _mut("decision.verdict", "maybe"),
    "unknown movement": _mut("movement", "teleport"),
    "non-cbv bizstep": _mut("biz_step", "putaway"),
    "non-cbv disposition": _mut("disposition", "fine"),
    "unknown key": _mut("colour", "red"),
    "bad symbology": _mut("scan.symbology", "C1"),
    "bad bt type": _mut("biz_transactions.0.type", "order"),
    "schema version 1": _mut("schema.version", "1.0"),
    "wrong schema name": _mut("schema.name", "traceway.alert"),
    "empty items": _mut("items", []),
    "location with space": _mut("location", "A 01"),
    "observe transformation": {
        **scripted_day()[6], "action": "OBSERVE",
    },
    "transformation with items": {
        **scripted_day()[6], "items": [{"gtin": GTIN_A, "serial": "1"}],
    },
    "transformation without outputs or id": {
        k: v for k, v in scripted_day()[6].items() if k != "outputs"
    },
    "aggregation without parent": {
        k: v for k, v in scripted_day()[5].items() if k != "parent"
    },
    "aggregation ADD without children": {**scripted_day()[5], "items": []},
    "object event with parent": {**_event(), "parent": {"sscc": "0" * 18}},
    "correct without corrects": {
        k: v for k, v in scripted_day()[12].items() if k not in ("corrects", "correction_reason")
    },
    "correct with items": {**scripted_day()[12], "items": _event()["items"]},
    "reason without corrects": {**_event(), "correction_reason": "did_not_occur"},
    "corrects without reason": {**_event(), "corrects": [example_id(1)]},
    "sscc check digit": {**scripted_day()[7], "items": [{"sscc": "340123450000000010"}]},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_bad_event_is_rejected(case: str) -> None:
    assert validate(BAD_EVENTS[case]) != []


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "x",
        {},
        {"schema": "traceway.event"},
        {"schema": {"name": "nope", "version": "1.0"}},
    ],
)
def test_validate_garbage(payload: Any) -> None:
    assert validate(payload) != []


def test_alert_negative_cases() -> None:
    alert = EXAMPLES["traceway.alert"]
    assert validate({**alert, "severity": "fatal"}) != []
    assert validate({**alert, "alert": "Bad Code"}) != []
    assert validate({**alert, "interpretation": {"count": "3"}}) != []
    assert validate({**alert, "decision": None, "scan": None}) == []


# -- builders ---------------------------------------------------------------------------
_BASE: dict[str, Any] = dict(
    event_id=example_id(7), seq=7, gateway_id=GATEWAY, site=SITE, station="dock-1",
    event_time=T0, clock_synced=False, event_type="ObjectEvent", action="OBSERVE",
    biz_step="receiving", disposition="in_progress", read_point="", biz_location="",
    items=[{"gtin": GTIN_A, "serial": "S1"}], scan=None,
    decision={"verdict": "warn", "reasons": [{"code": "near_expiry", "message": "x"}]},
    movement="receive",
)  # fmt: skip


def test_build_event_old_signature_still_valid() -> None:
    ev = build_event(**_BASE)
    assert validate(ev) == []
    assert "location" not in ev and "corrects" not in ev
    assert ev["event_time"] == "2026-11-23T07:30:00.000+01:00"
    assert ev["tz_offset"] == "+01:00"


def test_build_event_movement_keywords() -> None:
    ev = build_event(
        **_BASE, location="A-01-02", biz_transactions=[{"type": "po", "id": "1"}],
        sources=[{"type": "location", "id": "x"}], corrects=[example_id(1)],
        correction_reason="incorrect_data",
    )  # fmt: skip
    assert validate(ev) == []
    assert ev["location"] == "A-01-02" and ev["corrects"] == [example_id(1)]


def test_build_event_extra_is_validated() -> None:
    assert validate(build_event(**_BASE, extra={"location": "A-01"})) == []
    assert validate(build_event(**_BASE, extra={"bogus": 1})) != []


def test_build_event_needs_aware_time() -> None:
    with pytest.raises(ValueError, match="offset"):
        build_event(**{**_BASE, "event_time": datetime(2026, 1, 1)})


def test_build_event_utc() -> None:
    ev = build_event(**{**_BASE, "event_time": datetime(2026, 1, 1, 12, tzinfo=UTC)})
    assert validate(ev) == []
    assert ev["tz_offset"] == "+00:00"


def test_build_alert_no_read() -> None:
    alert = build_alert(
        event_id=example_id(9), seq=9, gateway_id=GATEWAY, site=SITE, station="tunnel-1",
        event_time=T0, clock_synced=True, alert="no_read", severity="info",
        message="no code read at gate", scan=None, decision=None,
    )  # fmt: skip
    assert validate(alert) == []


def test_status_builders() -> None:
    birth = EXAMPLES["traceway.status"]
    assert birth["state"] == "online"
    for reason in ("connection_lost", "shutdown"):
        off = build_offline(gateway_id=GATEWAY, site=SITE, time=T0, boot=3, reason=reason)  # type: ignore[arg-type]
        assert validate(off) == []
    assert validate({**birth, "reason": "shutdown"}) != []
    assert validate({k: v for k, v in birth.items() if k != "config_hash"}) != []
    b2 = build_birth(
        gateway_id=GATEWAY, site=SITE, time=T0, boot=0, version="0.1.0",
        config_hash="a" * 64, cache_version=None, clock_synced=False, started_at=T0,
    )  # fmt: skip
    assert validate(b2) == []


def test_device_status_states_per_kind() -> None:
    kw: dict[str, Any] = dict(gateway_id=GATEWAY, site=SITE, time=T0, device="scanner-1")
    assert validate(build_device_status(**kw, kind="scanner", state="disconnected")) == []
    assert validate(build_device_status(**kw, kind="scanner", state="paper_out")) != []
    assert validate(build_device_status(**kw, kind="printer", state="head_open")) == []


def test_metrics_no_read_rate() -> None:
    kw: dict[str, Any] = dict(
        gateway_id=GATEWAY, site=SITE, time=T0, interval_s=60, outbox_depth=3,
        oldest_unsent_age_s=1.5, publish_latency_ms={}, printers={}, devices={"s1": None},
    )  # fmt: skip
    m = build_metrics(**kw, scans={"accept": 3, "reject": 1}, no_reads=1)
    assert m["no_read_rate"] == 0.2 and m["scans"]["warn"] == 0
    assert validate(m) == []
    idle = build_metrics(**kw, scans={}, no_reads=0)
    assert idle["no_read_rate"] is None and validate(idle) == []
    assert validate({**m, "no_read_rate": 1.5}) != []


# -- topics -----------------------------------------------------------------------------
def test_gateway_topics() -> None:
    t = GatewayTopics("s1", "g1")
    assert t.events == "traceway/v1/s1/g1/events"
    assert t.alerts == "traceway/v1/s1/g1/alerts"
    assert t.status == "traceway/v1/s1/g1/status"
    assert t.device("zebra-1") == "traceway/v1/s1/g1/devices/zebra-1"
    assert GatewayTopics("s", "g", "acme/tw").commands == "acme/tw/s/g/commands"
    assert sorted(t.subscriptions()) == [
        ("traceway/v1/s1/g1/cache/delta", 1),
        ("traceway/v1/s1/g1/cache/snapshot", 1),
        ("traceway/v1/s1/g1/commands", 1),
    ]


def test_topic_lookup() -> None:
    t = GatewayTopics("s1", "g1")
    for spec in TOPICS:
        concrete = t.topic(spec, device="d1")
        assert spec_for_topic(concrete) == spec
    assert spec_for_topic("traceway/v1/s1/g1/nope") is None
    assert spec_for_topic("other/s1/g1/events") is None
    assert spec_for_topic("traceway/v1/s1") is None
    assert topic_filter(TOPICS[3]) == "traceway/v1/+/+/devices/+"


def test_status_and_cache_version_are_retained_events_are_not() -> None:
    by = {s.suffix: s for s in TOPICS}
    assert by["status"].retain and by["cache/version"].retain and by["devices/{device}"].retain
    assert not by["events"].retain and by["events"].qos == 1


# -- GS1 check digits -------------------------------------------------------------------
def test_known_keys() -> None:
    assert is_valid_gtin("09506000134352")
    assert not is_valid_gtin("09506000134353")
    assert is_valid_sscc("106141412345678908")
    assert is_valid_gln("4006381000009") is (check_digit("400638100000") == 9)
    assert not is_valid_gtin("0950600013435a")
    with pytest.raises(ValueError):
        check_digit("12a")


@given(
    st.text(alphabet="0123456789", min_size=13, max_size=13), st.integers(0, 12), st.integers(1, 9)
)
def test_check_digit_catches_single_digit_errors(body: str, pos: int, delta: int) -> None:
    gtin = with_check_digit(body)
    assert is_valid_gtin(gtin)
    wrong = gtin[:pos] + str((int(gtin[pos]) + delta) % 10) + gtin[pos + 1 :]
    assert not is_valid_gtin(wrong)


# -- what the gateway really publishes (issue 12, item 4) -------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "]C10109506000134353",  # GTIN check digit wrong
        "]C100106141412345678909",  # SSCC check digit wrong
        "]C10209506000134353370012\x1d10L1",  # content GTIN check digit wrong
        "]C1010950600013435217310230",  # 30 February
        "]Q1https://id.gs1.org/01/09506000134353/21/X",  # Digital Link, wrong check digit
    ],
)
def test_alert_interpretation_carries_what_was_scanned(code: str) -> None:
    """An invalid_barcode alert reports the scan as read, wrong check digit and all."""
    from gs1.interpret import interpret

    interp = interpret(code)
    assert interp.errors
    alert = build_alert(
        event_id=example_id(7), seq=7, gateway_id=GATEWAY, site=SITE, station="dock-1",
        event_time=T0, clock_synced=True, alert="invalid_barcode", severity="error",
        message=interp.errors[0], scan={"raw": code, "symbology": code[:3], "scanner": "s1"},
        decision={"verdict": "reject", "reasons": [
            {"code": "invalid_barcode", "message": interp.errors[0]}]},
        interpretation=interp.to_json(),
    )  # fmt: skip
    assert validate(alert) == []


def test_movement_items_still_need_valid_keys() -> None:
    wrong = "09506000134353"
    ev = copy.deepcopy(scripted_day()[0])
    ev["items"][0]["gtin"] = wrong
    assert validate(ev) == [f"items[0].gtin: GTIN {wrong} has a wrong check digit"]
    # only an alert's interpretation is "as scanned"; an event has none to hide a key in
    ev = copy.deepcopy(scripted_day()[0])
    ev["interpretation"] = {"gtin": wrong}
    assert validate(ev) != []
    alert = copy.deepcopy(EXAMPLES["traceway.alert"])
    assert alert["interpretation"]["gtin"] == wrong
    assert validate(alert) == []


def test_config_hash_fits_the_status_schema(tmp_path: Any) -> None:
    from gateway.config import config_hash, parse_config

    text = '[gateway]\nsite = "s"\nid = "g"\n[stations.ws]\nstep = "receiving"\n'
    path = tmp_path / "gw.toml"
    path.write_text(text)
    cfg = parse_config(text)
    for h in (config_hash(path), config_hash(None, cfg)):
        birth = build_birth(
            gateway_id=GATEWAY, site=SITE, time=T0, boot=0, version="0.1.0",
            config_hash=h, cache_version=None, clock_synced=False, started_at=T0,
        )  # fmt: skip
        assert validate(birth) == [], h


def test_readme_examples_are_the_example_payloads() -> None:
    text = resources.files("mqtt_topics").joinpath("README.md").read_text(encoding="utf-8")
    for name, payload in EXAMPLES.items():
        start = text.index("```json\n", text.index(f"— `{name}`")) + len("```json\n")
        assert json.loads(text[start : text.index("```", start)]) == payload, name


def test_the_fast_validator_agrees_with_jsonschema() -> None:
    """Every example and every mutated bad event: the compiled validator (when installed)
    never calls valid what jsonschema refuses."""
    from mqtt_topics.validation import fast_validator, schema_errors, validator

    pytest.importorskip("jsonschema_rs")
    cases = [(p["schema"]["name"], p) for p in example_payloads().values()]
    cases += [("traceway.event", ev) for ev in scripted_day()]
    cases += [("traceway.event", bad) for bad in BAD_EVENTS.values()]
    for name, payload in cases:
        fast = fast_validator(name)
        assert fast is not None
        slow_ok = not list(validator(name).iter_errors(payload))
        assert fast.is_valid(payload) == slow_ok, (name, payload)
        assert (schema_errors(name, payload) == []) == slow_ok
