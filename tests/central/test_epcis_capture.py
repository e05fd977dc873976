"""POST /epcis/capture, GET /epcis/capture/{id}, the captured events in trace, and the
``epcis-capture`` / ``epcis-export`` commands (real PostgreSQL, the official schema)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from central.api.app import create_app
from central.api.tokens import DbTokenStore
from central.cli import main
from central.custody.projection import store_events
from mqtt_topics.examples import _at, event, example_id
from tests.central.epcis_fixtures import (
    NOW,
    OUR_GLN,
    SUP_GTIN,
    SUP_LOT,
    SUP_SSCC,
    SUPPLIER_GLN,
    Api,
    api,
    official_validator,
    schema_check,
    supplier_document,
)

__all__ = ["api"]


def _capture(api: Api, doc: Any, who: str = "recall-manager", **kw: Any) -> Any:
    headers = {**api.h[who], **kw.pop("headers", {})}
    return api.client.post("/epcis/capture", json=doc, headers=headers, **kw)


def _count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as c:
        return int(c.execute(text(sql), params).scalar_one())


def test_capture_a_supplier_document(api: Api) -> None:
    raw = json.dumps(supplier_document())
    r = api.client.post(
        "/epcis/capture",
        content=raw,
        headers={**api.h["recall-manager"], "Content-Type": "application/ld+json"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["location"] == "/epcis/capture/cap-1"
    assert r.headers["gs1-epcis-version"] == "2.0.0"
    job = r.json()
    assert job["captureID"] == "cap-1" and job["success"] is True and job["running"] is False
    assert job["errors"] == [] and job["captureErrorBehaviour"] == "rollback"
    assert (job["eventCount"], job["newEventCount"], job["duplicateEventCount"]) == (2, 2, 0)
    again = api.client.get("/epcis/capture/cap-1", headers=api.h["viewer"])
    assert again.status_code == 200 and again.json() == job
    e = api.engine
    assert _count(e, "SELECT count(*) FROM epcis_events") == 2
    with e.connect() as c:
        doc = c.execute(text("SELECT document, actor FROM epcis_captures")).one()
        assert doc == (raw, "api:t-recall-manager")  # the document as received
        items = c.execute(
            text(
                "SELECT role, gtin, lot, serial, sscc, parent_sscc, quantity, from_type, from_id, "
                "to_type, to_id, site, gateway_id, movement FROM event_items WHERE site = 'epcis' "
                "ORDER BY event_time, id"
            )
        ).fetchall()
        audit = c.execute(text("SELECT actor, action, target, detail FROM audit_log")).one()
    assert [tuple(i) for i in items] == [
        # the supplier packs 48 of the lot on its pallet (at its own location)
        ("item", SUP_GTIN, SUP_LOT, None, None, SUP_SSCC, 48, None, None, "location",
         SUPPLIER_GLN, "epcis", "cap-1", "packing"),
        # and ships the pallet and its 48 to us: from the supplier, to our party
        ("item", None, None, None, SUP_SSCC, None, None, "party", SUPPLIER_GLN, "party",
         OUR_GLN, "epcis", "cap-1", "shipping"),
        ("item", SUP_GTIN, SUP_LOT, None, None, None, 48, "party", SUPPLIER_GLN, "party",
         OUR_GLN, "epcis", "cap-1", "shipping"),
    ]  # fmt: skip
    assert audit.actor == "api:t-recall-manager" and audit.action == "epcis-capture"
    assert audit.target == {"capture_id": "cap-1"}
    assert audit.detail == {"events": 2, "new": 2, "duplicates": 0}
    with e.connect() as c:
        edge = c.execute(
            text(
                "SELECT parent_sscc, gtin, lot, quantity FROM aggregation_edges "
                "WHERE event_id IN (SELECT ref FROM epcis_events)"
            )
        ).one()
    assert tuple(edge) == (SUP_SSCC, SUP_GTIN, SUP_LOT, 48)


def test_capture_is_idempotent_by_event_id(api: Api) -> None:
    doc = supplier_document()
    no_id = copy.deepcopy(doc["epcisBody"]["eventList"][1])
    del no_id["eventID"]
    no_id["eventTime"] = "2026-11-21T07:30:00.000+01:00"
    doc["epcisBody"]["eventList"].append(no_id)
    first = _capture(api, doc).json()
    assert (first["newEventCount"], first["duplicateEventCount"]) == (3, 0)
    second = _capture(api, doc)
    assert second.status_code == 202 and second.headers["location"] == "/epcis/capture/cap-2"
    assert (second.json()["newEventCount"], second.json()["duplicateEventCount"]) == (0, 3)
    e = api.engine
    assert _count(e, "SELECT count(*) FROM epcis_events") == 3
    assert _count(e, "SELECT count(*) FROM event_items WHERE site = 'epcis'") == 5
    assert (
        _count(e, f"SELECT count(*) FROM aggregation_edges WHERE parent_sscc = '{SUP_SSCC}'") == 1
    )
    # the event without an eventID got one derived from its content, the same both times
    assigned = api.client.get(
        "/epcis/events", params={"GE_eventTime": "2026-11-21T00:00:00Z", "LT_eventTime": "2026-11-22T00:00:00Z"},
        headers=api.h["viewer"],
    ).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]  # fmt: skip
    assert len(assigned) == 1 and assigned[0]["eventID"].startswith("urn:uuid:")


def test_our_own_events_captured_back_are_duplicates(api: Api) -> None:
    """An EPCISQueryDocument (what GET /epcis/events gives) is capturable; the gateway
    events in it are known by their eventID and not stored twice."""
    page = api.client.get("/epcis/events", params={"perPage": 100}, headers=api.h["viewer"])
    r = _capture(api, page.json())
    assert r.status_code == 202, r.text
    assert (r.json()["eventCount"], r.json()["newEventCount"]) == (16, 0)
    assert _count(api.engine, "SELECT count(*) FROM epcis_events") == 0


LONE_EVENT = {
    "@context": "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    "type": "ObjectEvent",
    "eventTime": "2026-11-20T07:30:00Z",
    "eventTimeZoneOffset": "+00:00",
    "epcList": [],
    "action": "OBSERVE",
}


def _refused(r: Any) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    p: dict[str, Any] = r.json()
    assert p["type"] == "epcisException:ValidationException" and p["status"] == 400
    assert p["instance"] == f"/epcis/capture/{p['captureID']}"
    return p


def test_an_invalid_document_is_refused_with_the_schema_error(api: Api) -> None:
    doc = supplier_document()
    doc["epcisBody"]["eventList"][1]["bizStep"] = "urn:epcglobal:cbv:bizstep:shipping"
    del doc["epcisBody"]["eventList"][0]["eventTime"]
    p = _refused(_capture(api, doc))
    assert any(e.startswith("epcisBody/eventList/1/bizStep:") for e in p["errors"]), p
    assert any(
        e.startswith("epcisBody/eventList/0") and "'eventTime' is a required property" in e
        for e in p["errors"]
    ), p
    assert "eventTime" in p["detail"]
    # nothing of it is stored as events; the document is kept as a failed job, audited
    e = api.engine
    assert _count(e, "SELECT count(*) FROM epcis_events") == 0
    assert _count(e, "SELECT count(*) FROM event_items WHERE site = 'epcis'") == 0
    job = api.client.get(p["instance"], headers=api.h["viewer"]).json()
    assert job["success"] is False and job["running"] is False
    assert [x["detail"] for x in job["errors"]] == p["errors"]
    assert all(x["type"] == "epcisException:ValidationException" for x in job["errors"])
    assert _count(e, "SELECT count(*) FROM audit_log WHERE action = 'epcis-capture-refused'") == 1
    assert (
        json.loads(
            api.engine.connect().execute(text("SELECT document FROM epcis_captures")).scalar_one()
        )
        == doc
    )


@pytest.mark.parametrize(
    ("body", "want"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"[]", "(document)"),
        (json.dumps(LONE_EVENT).encode(), "a capture takes an EPCISDocument"),
        (b'{"type": "EPCISDocument"}', "required property"),
        ("\ufeff{}".encode(), "required property"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "(document)"),
        (json.dumps(supplier_document()).replace('"L3"', "NaN").encode(), "NaN is not a JSON"),
    ],
)
def test_bad_bodies_are_refused_and_kept(api: Api, body: bytes, want: str) -> None:
    r = api.client.post(
        "/epcis/capture",
        content=body,
        headers={**api.h["recall-manager"], "Content-Type": "application/json"},
    )
    p = _refused(r)
    assert any(want in e for e in p["errors"]), p["errors"]
    assert _count(api.engine, "SELECT count(*) FROM epcis_captures WHERE NOT success") == 1


def test_keys_the_schema_cannot_check_are_refused(api: Api) -> None:
    """A Digital Link with a wrong check digit, an SGTIN URN of 12 digits: valid URIs for
    the schema, not GS1 keys: the whole document is refused (rollback)."""
    doc = supplier_document()
    doc["epcisBody"]["eventList"][1]["quantityList"][0]["epcClass"] = (
        f"https://id.gs1.org/01/{SUP_GTIN[:-1]}{(int(SUP_GTIN[-1]) + 1) % 10}/10/X"
    )
    p = _refused(_capture(api, doc))
    assert p["errors"] == [
        "eventList[1].quantityList[0].epcClass: "
        f"https://id.gs1.org/01/{SUP_GTIN[:-1]}{(int(SUP_GTIN[-1]) + 1) % 10}/10/X: "
        f"GTIN {SUP_GTIN[:-1]}{(int(SUP_GTIN[-1]) + 1) % 10} has a wrong check digit"
    ]
    doc = supplier_document()
    doc["epcisBody"]["eventList"][1]["epcList"] = ["urn:epc:id:sgtin:4098765.00123.S1"]
    p = _refused(_capture(api, doc))
    assert "eventList[1].epcList[0]" in p["errors"][0]
    assert _count(api.engine, "SELECT count(*) FROM epcis_events") == 0


def test_media_type_size_roles_and_behaviour(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.dumps(supplier_document())
    r = api.client.post(
        "/epcis/capture", content=doc, headers={**api.h["admin"], "Content-Type": "text/plain"}
    )
    assert r.status_code == 415 and r.json()["status"] == 415
    assert api.client.post("/epcis/capture", json=supplier_document()).status_code == 401
    assert _capture(api, supplier_document(), "viewer").status_code == 403
    r = _capture(api, supplier_document(), headers={"GS1-Capture-Error-Behaviour": "proceed"})
    assert r.status_code == 400 and "rollback" in r.json()["detail"]
    monkeypatch.setattr("central.epcis.views.MAX_CAPTURE_BYTES", 100)
    r = _capture(api, supplier_document())
    assert r.status_code == 413
    assert r.json()["type"] == "epcisException:CaptureLimitExceededException"
    monkeypatch.setattr("central.epcis.views.MAX_CAPTURE_BYTES", 10**6)
    monkeypatch.setattr("central.epcis.views.MAX_CAPTURE_EVENTS", 1)
    assert _capture(api, supplier_document()).status_code == 413
    assert _count(api.engine, "SELECT count(*) FROM epcis_captures") == 0
    assert _capture(api, supplier_document(), "admin").status_code == 413
    assert api.client.get("/epcis/capture/cap-99", headers=api.h["viewer"]).status_code == 404
    o = api.client.options("/epcis/capture", headers=api.h["viewer"])
    assert o.status_code == 204 and o.headers["gs1-epcis-capture-limit"] == "1"
    assert o.headers["gs1-capture-error-behaviour"] == "rollback"
    assert api.client.get("/epcis/capture/x';--", headers=api.h["viewer"]).status_code == 422


def test_without_the_schema_capture_is_refused(engine: Engine) -> None:
    from central.api.tokens import new_token

    store = DbTokenStore(engine)
    token, row = new_token("m", "recall-manager")
    store.add(row)
    app = create_app(engine, store, epcis_validator=None)
    with TestClient(app) as client:
        r = client.post(
            "/epcis/capture",
            json=supplier_document(),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 503 and "Schema" in r.json()["detail"]


def _receive_the_pallet(engine: Engine) -> None:
    """Our dock receives the supplier's pallet (a gateway event)."""
    ev = event(
        40,
        "receive",
        [_at({"sscc": SUP_SSCC}, f"party:{SUPPLIER_GLN}", "DOCK-1")],
        30,
        location="DOCK-1",
    )
    with engine.begin() as c:
        store_events(c, [ev], NOW)


def test_a_captured_supplier_event_appears_in_trace(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _capture(api, supplier_document()).status_code == 202
    _receive_the_pallet(api.engine)
    r = api.client.get("/trace", params={"gtin": SUP_GTIN, "lot": SUP_LOT}, headers=api.h["viewer"])
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    got = [
        (s["direction"], s["via"], s["site"], s["gateway_id"], s["movement"], s["sscc"] or s["lot"],
         s["source"], s["destination"])
        for s in steps
    ]  # fmt: skip
    sup = {"type": "party", "id": SUPPLIER_GLN}
    us = {"type": "party", "id": OUR_GLN}
    assert got == [
        ("self", "self", "epcis", "cap-1", "packing", SUP_LOT, None,
         {"type": "location", "id": SUPPLIER_GLN}),
        ("self", "pallet", "epcis", "cap-1", "shipping", SUP_SSCC, sup, us),
        ("self", "self", "epcis", "cap-1", "shipping", SUP_LOT, sup, us),
        # the pallet the supplier packed it on reached our dock: the gateway's receiving
        ("self", "pallet", "hamburg-1", "dock-a", "receive", SUP_SSCC, sup,
         {"type": "location", "id": "DOCK-1"}),
    ]  # fmt: skip
    # the command line shows the same, with the capture as the source of the steps
    url = api.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["trace", "--gtin", SUP_GTIN, "--lot", SUP_LOT]) == 0
    out = capsys.readouterr().out
    assert "epcis/cap-1" in out and f"party:{SUPPLIER_GLN}" in out and "shipping" in out
    assert "hamburg-1/dock-a" in out
    # recall of the supplier's lot: the pallet it is on, and its shipment to us
    rec = api.client.get(
        "/recall", params={"gtin": SUP_GTIN, "lot": SUP_LOT}, headers=api.h["viewer"]
    ).json()
    assert OUR_GLN in rec["recipient_parties"]
    assert [p["sscc"] for p in rec["pallets"]] == [SUP_SSCC]
    # the SSCC of the supplier's pallet traces back to the supplier's packing
    r = api.client.get("/trace", params={"sscc": SUP_SSCC}, headers=api.h["viewer"])
    moves = [(s["direction"], s["movement"]) for s in r.json()["steps"]]
    assert ("backward", "packing") in moves and ("self", "receive") in moves


def test_a_captured_transformation_links_lots_in_trace(api: Api) -> None:
    doc = supplier_document()
    doc["epcisBody"]["eventList"] = [
        {
            "type": "TransformationEvent",
            "eventTime": "2026-11-19T10:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "inputQuantityList": [
                {
                    "epcClass": "urn:epc:class:lgtin:4098765.001234.RAW-1",
                    "quantity": 5,
                    "uom": "KGM",
                }
            ],
            "outputQuantityList": [
                {"epcClass": f"urn:epc:class:lgtin:4098765.001234.{SUP_LOT}", "quantity": 48}
            ],
            "bizStep": "commissioning",
        }
    ]
    assert _capture(api, doc).status_code == 202
    r = api.client.get(
        "/trace", params={"gtin": SUP_GTIN, "lot": "RAW-1", "direction": "forward"},
        headers=api.h["viewer"],
    )  # fmt: skip
    forward = [(s["via"], s["lot"]) for s in r.json()["steps"] if s["direction"] == "forward"]
    assert ("transformation", SUP_LOT) in forward


def test_a_captured_serial_transformation_in_trace(api: Api) -> None:
    doc = supplier_document()
    doc["epcisBody"]["eventList"] = [
        {
            "type": "TransformationEvent",
            "eventTime": "2026-11-19T10:00:00Z",
            "eventTimeZoneOffset": "+00:00",
            "inputEPCList": ["urn:epc:id:sgtin:4098765.001234.IN-1"],
            "outputEPCList": [f"https://id.gs1.org/01/{SUP_GTIN}/21/KIT-9"],
            "transformationID": "urn:example:kitting:77",
        }
    ]
    assert _capture(api, doc).status_code == 202
    r = api.client.get(
        "/trace", params={"gtin": SUP_GTIN, "serial": "IN-1", "direction": "forward"},
        headers=api.h["viewer"],
    )  # fmt: skip
    steps = [(s["direction"], s["via"], s["via_id"], s["serial"]) for s in r.json()["steps"]]
    assert ("forward", "transformation", "urn:example:kitting:77", "KIT-9") in steps
    assert ("self", "self", None, "IN-1") in steps


def test_cli_capture_and_export(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", api.engine.url.render_as_string(hide_password=False))
    good = tmp_path / "asn.jsonld"
    good.write_text(json.dumps(supplier_document()), encoding="utf-8")
    assert main(["epcis-capture", str(good), "--who", "edi"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["success"] and job["newEventCount"] == 2
    assert main(["epcis-capture", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["duplicateEventCount"] == 2
    bad = tmp_path / "bad.json"
    doc = supplier_document()
    doc["epcisBody"]["eventList"][0]["action"] = "PACK"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["epcis-capture", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "refused: epcisBody/eventList/0/action" in err
    assert main(["epcis-capture", str(tmp_path / "missing.json")]) == 2
    with api.engine.connect() as c:
        actors = [r[0] for r in c.execute(text("SELECT actor FROM epcis_captures ORDER BY id"))]
    assert actors[0] == "cli:edi" and len(actors) == 3
    # export: a query as one document (every page), valid against the official schema
    out = tmp_path / "out.json"
    cls = f"urn:epc:class:lgtin:4098765.001234.{SUP_LOT}"
    assert main(["epcis-export", f"MATCH_epcClass={cls}", "-o", str(out)]) == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["type"] == "EPCISDocument" and schema_check(exported) == []
    assert len(exported["epcisBody"]["eventList"]) == 2
    capsys.readouterr()
    assert (
        main(["epcis-export", "--query-document", "--compact", "EQ_bizStep=storing|holding"]) == 0
    )
    q = json.loads(capsys.readouterr().out)
    assert schema_check(q) == []
    assert [e["tw:seq"] for e in q["epcisBody"]["queryResults"]["resultsBody"]["eventList"]] == [
        2, 3, 4, 9, 10
    ]  # fmt: skip
    assert main(["epcis-export", "MATCH_epc=nope"]) == 2
    assert "MATCH_epc" in capsys.readouterr().err
    assert main(["epcis-export", "perPage=3"]) == 2
    # what was exported can be captured elsewhere (here: everything known: duplicates)
    assert main(["epcis-capture", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["newEventCount"] == 0


def test_exported_example_id_is_the_gateway_event(api: Api) -> None:
    r = api.client.get(
        "/epcis/events", params={"EQ_eventID": f"urn:uuid:{example_id(8)}"},
        headers=api.h["viewer"],
    )  # fmt: skip
    (ev,) = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert ev["tw:seq"] == 8 and ev["recordTime"] == "2026-11-24T12:00:00.000+00:00"


# -- fuzz: a supplier document with one value replaced by anything ------------------------
def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(supplier_document()) if p]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "urn:epc:id:sgtin:4098765.001234.X",
            "urn:epc:id:sscc:4098765.3000000007",
            "urn:epc:class:lgtin:4098765.001234.*",
            "urn:epc:idpat:sgtin:4098765.*.*",
            "https://id.gs1.org/01/04098765012341",
            "https://id.gs1.org/414/4098765000003",
            "urn:epc:id:sgln:4098765.00000.0",
            "urn:epc:id:sgln:4098765.0000.0",
            "2026-11-20T06:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+14:00",
            "ADD",
            "DELETE",
            "AggregationEvent",
            "TransformationEvent",
            "owning_party",
            "x:y",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(PATHS), value=JSON)
def test_fuzzed_documents_never_break_capture(api: Api, path: tuple[Any, ...], value: Any) -> None:
    doc: Any = supplier_document()
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    r = _capture(api, doc)
    assert r.status_code in (202, 400), (path, value, r.status_code, r.text)
    if r.status_code == 202:
        # the fast validator never lets in what the reference implementation refuses
        assert schema_check(doc) == []
        query = api.client.get("/epcis/events", params={"perPage": 100}, headers=api.h["viewer"])
        assert query.status_code == 200 and schema_check(query.json()) == []


def test_migration_0005_goes_down_and_up(api: Api) -> None:
    """0005 undoes cleanly (tables, trigger, indexes) and comes back with a new key."""
    from alembic import command

    from central.db.engine import alembic_config

    assert _capture(api, supplier_document()).status_code == 202
    cfg = alembic_config(api.engine.url.render_as_string(hide_password=False))
    with api.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    with api.engine.connect() as c:
        left = c.execute(
            text(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'epcis%' OR relname LIKE 'ix_events_%'"
            )
        ).scalar_one()
        assert left == 2  # ix_events_gateway_seq, ix_events_time (0001)
        assert (
            c.execute(text("SELECT count(*) FROM event_items WHERE site = 'epcis'")).scalar_one()
            == 0
        )
        assert c.execute(text("SELECT count(*) FROM event_items")).scalar_one() > 0
    with api.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with api.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM epcis_keys")).scalar_one() == 1
        # the trigger's backfill: the scripted day's corrections are there again
        assert c.execute(text("SELECT count(*) FROM epcis_corrections")).scalar_one() == 2


URIISH = st.text(alphabet="ab:/%?#[]@!$&'()*+,;=-._~ 0123456789AZ\\\"<>{}|^`é", max_size=25)


@settings(max_examples=500, deadline=None)
@given(
    uri=URIISH,
    when=st.sampled_from(["2026-11-20T06:00:00Z", "2026-11-20T06:00:00"]) | st.text(max_size=25),
)
def test_the_fast_validator_agrees_with_the_reference(uri: str, when: str) -> None:
    validate = official_validator()
    doc = supplier_document()
    doc["epcisBody"]["eventList"][1]["epcList"] = [uri]
    doc["epcisBody"]["eventList"][0]["eventTime"] = when
    assert (validate(doc) == []) == (schema_check(doc) == []), (uri, when)


def test_list_capture_jobs_newest_first_paged(api: Api) -> None:
    assert _capture(api, supplier_document()).status_code == 202
    bad = supplier_document()
    bad["type"] = "EPCISDoc"
    assert _capture(api, bad).status_code == 400
    assert _capture(api, supplier_document()).status_code == 202
    r = api.client.get("/epcis/capture", params={"perPage": 2}, headers=api.h["viewer"])
    assert r.status_code == 200
    assert [(j["captureID"], j["success"]) for j in r.json()] == [("cap-3", True), ("cap-2", False)]
    link = r.headers["link"]
    r2 = api.client.get(link[1 : link.index(">")], headers=api.h["viewer"])
    assert [j["captureID"] for j in r2.json()] == ["cap-1"] and "link" not in r2.headers
    # a token of the event query is not one of this listing, and vice versa
    events = api.client.get("/epcis/events", params={"perPage": 1}, headers=api.h["viewer"])
    ev_tok = events.headers["link"].split("nextPageToken=")[1].split(">")[0]
    job_tok = link.split("nextPageToken=")[1].split(">")[0]
    r = api.client.get("/epcis/capture", params={"nextPageToken": ev_tok}, headers=api.h["viewer"])
    assert r.status_code == 400 and "another listing" in r.json()["detail"]
    r = api.client.get("/epcis/events", params={"nextPageToken": job_tok}, headers=api.h["viewer"])
    assert r.status_code == 400 and "another listing" in r.json()["detail"]
    r = api.client.get("/epcis/capture", params={"MATCH_epc": "urn:x:y"}, headers=api.h["viewer"])
    assert r.status_code == 400
    assert api.client.get("/epcis/capture").status_code == 401
