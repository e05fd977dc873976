"""GET /epcis/events: every query parameter, paging with nextPageToken, the official
schema, tamper-safe tokens, fuzzed parameters (real PostgreSQL, the FastAPI app)."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.epcis.models import LIST_PARAMS, TIME_PARAMS
from mqtt_topics.examples import GLN_SITE, example_id
from tests.central.epcis_fixtures import (
    SUP_GTIN,
    SUP_LOT,
    Api,
    api,
    schema_check,
    supplier_document,
)

__all__ = ["api"]

A1 = "urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-0000000000a0"  # supplier: packs lot SL-77 on a pallet
S1 = "urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-000000000001"  # supplier: ships the pallet
T1 = "urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-0000000000f1"  # supplier: serials become a kit
SGTIN_IN = "urn:epc:id:sgtin:4098765.001234.IN-1"
SGTIN_OUT = f"https://id.gs1.org/01/{SUP_GTIN}/21/KIT-9"
GRAI = "urn:epc:id:grai:4098765.00001.77"


def _transformation_doc() -> dict[str, Any]:
    doc = supplier_document()
    ev = {
        "type": "TransformationEvent",
        "eventID": T1,
        "eventTime": "2026-11-20T04:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "inputEPCList": [SGTIN_IN, GRAI],
        "outputEPCList": [SGTIN_OUT],
        "transformationID": "urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-0000000000ff",
        "bizStep": "assembling",
    }
    doc["epcisBody"]["eventList"] = [ev]
    return doc


@pytest.fixture
def loaded(api: Api) -> Api:
    """The scripted gateway day (17 events, one a declaration only) + 3 supplier events."""
    for doc in (supplier_document(), _transformation_doc()):
        r = api.client.post("/epcis/capture", json=doc, headers=api.h["recall-manager"])
        assert r.status_code == 202, r.text
    return api


def _get(api: Api, params: Any, who: str = "viewer") -> Any:
    return api.client.get("/epcis/events", params=params, headers=api.h[who])


def _ids(doc: dict[str, Any]) -> list[str]:
    """Each event as ``seq`` (gateway, an int) or its eventID (captured)."""
    out = []
    for e in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]:
        out.append(e.get("tw:seq", e["eventID"]))
    return out


def _query(api: Api, params: Any) -> list[Any]:
    r = _get(api, {**params, "perPage": 1000} if isinstance(params, dict) else params)
    assert r.status_code == 200, r.text
    assert schema_check(r.json()) == []
    return _ids(r.json())


SSCC_1_URN = "urn:epc:id:sscc:4012345.3000000001"
LOT_B = "urn:epc:class:lgtin:4012345.000001.L24-07"
SERIALS_A = [1, 2, 5, 6, 14, 15, 16]
LOT_B_EVENTS = [1, 3, 4, 5, 6, 9, 10, 17]

CASES: list[tuple[dict[str, str], list[Any]]] = [
    # MATCH_epc: epcList / childEPCs, URN = Digital Link, patterns with '*'
    ({"MATCH_epc": "urn:epc:id:sgtin:9506000.013435.S1002"}, [1, 2, 15]),
    ({"MATCH_epc": "https://id.gs1.org/01/09506000134352/21/S1002"}, [1, 2, 15]),
    ({"MATCH_epc": "https://example.com/shop/01/9506000134352/21/S1002"}, [1, 2, 15]),
    ({"MATCH_epc": "urn:epc:id:sgtin:9506000.013435.S%2F1001%26x"}, [1, 2, 5, 6]),
    ({"MATCH_epc": "urn:epc:idpat:sgtin:9506000.013435.*"}, SERIALS_A),
    ({"MATCH_epc": "urn:epc:idpat:sgtin:9506000.*.*"}, SERIALS_A),
    ({"MATCH_epc": "urn:epc:idpat:sgtin:*.*.*"}, SERIALS_A),
    ({"MATCH_epc": SSCC_1_URN}, [8]),
    ({"MATCH_epc": "urn:epc:idpat:sscc:4098765.*"}, [S1]),
    ({"MATCH_epc": "urn:epc:idpat:sscc:*.*"}, [S1, 8]),
    ({"MATCH_epc": "urn:epc:id:sgtin:9506000.013435.S2001|" + SSCC_1_URN}, [8, 14]),
    ({"MATCH_epc": "urn:epc:id:sgtin:9506000.013435.NOPE"}, []),
    # MATCH_parentID
    ({"MATCH_parentID": SSCC_1_URN}, [6, 12]),
    ({"MATCH_parentID": "https://id.gs1.org/00/340123450000000017"}, [6, 12]),
    ({"MATCH_parentID": "urn:epc:idpat:sscc:4098765.*"}, [A1]),
    # MATCH_anyEPC: epcList, childEPCs, parentID, inputs, outputs
    ({"MATCH_anyEPC": SSCC_1_URN}, [6, 8, 12]),
    ({"MATCH_anyEPC": "urn:epc:idpat:sscc:4098765.*"}, [A1, S1]),
    ({"MATCH_anyEPC": SGTIN_OUT}, [T1]),
    ({"MATCH_anyEPC": GRAI}, [T1]),
    # MATCH_epcClass: quantityList / childQuantityList (not inputs)
    ({"MATCH_epcClass": LOT_B}, LOT_B_EVENTS),
    ({"MATCH_epcClass": "https://id.gs1.org/01/04012345000016/10/L24-07"}, LOT_B_EVENTS),
    ({"MATCH_epcClass": "urn:epc:class:lgtin:4012345.000001.*"}, LOT_B_EVENTS),
    ({"MATCH_epcClass": "urn:epc:idpat:sgtin:4012345.000001.*"}, LOT_B_EVENTS),
    ({"MATCH_epcClass": "urn:epc:idpat:sgtin:4098765.*.*"}, [A1, S1]),
    ({"MATCH_epcClass": f"urn:epc:class:lgtin:4098765.001234.{SUP_LOT}"}, [A1, S1]),
    ({"MATCH_epcClass": f"https://id.gs1.org/01/{SUP_GTIN}"}, []),  # lot-less only
    ({"MATCH_epcClass": "urn:epc:class:lgtin:4012345.000001.OTHER"}, []),
    # MATCH_inputEPC / MATCH_outputEPC
    ({"MATCH_inputEPC": SGTIN_IN}, [T1]),
    ({"MATCH_inputEPC": f"https://id.gs1.org/01/{SUP_GTIN}/21/IN-1"}, [T1]),
    ({"MATCH_inputEPC": GRAI}, [T1]),
    ({"MATCH_inputEPC": SGTIN_OUT}, []),
    ({"MATCH_outputEPC": "urn:epc:id:sgtin:4098765.001234.KIT-9"}, [T1]),
    ({"MATCH_outputEPC": "urn:epc:idpat:sgtin:4098765.001234.*"}, [T1]),
    # EQ_bizStep (bare words and CBV URIs), EQ_disposition, EQ_action, eventType
    ({"EQ_bizStep": "storing"}, [2, 3, 4, 9]),
    ({"EQ_bizStep": "shipping|urn:epcglobal:cbv:bizstep:receiving"}, [S1, 1, 8, 16]),
    ({"EQ_bizStep": "https://ref.gs1.org/cbv/BizStep-packing"}, [A1, 6]),
    ({"EQ_disposition": "in_transit"}, [S1, 8]),
    ({"EQ_action": "DELETE"}, [12, 15]),
    ({"EQ_action": "ADD"}, [A1, 6, 14]),
    ({"eventType": "TransformationEvent"}, [T1, 7, 11]),
    ({"eventType": "AggregationEvent|TransformationEvent"}, [T1, A1, 6, 7, 11, 12]),
    # EQ_bizLocation: Digital Link and SGLN name the same place
    ({"EQ_bizLocation": f"https://id.gs1.org/414/{GLN_SITE}/254/B-07-03"}, [9, 10, 17]),
    ({"EQ_bizLocation": "urn:epc:id:sgln:4012345.00000.B-07-03"}, [9, 10, 17]),
    ({"EQ_bizLocation": f"https://id.gs1.org/414/{GLN_SITE}"}, [7, 11, 12]),
    ({"EQ_bizLocation": "urn:epc:id:sgln:4098765.00000.0"}, [A1]),
    # times (the offset is honoured); record time
    ({"GE_eventTime": "2026-11-23T12:00:00.014+01:00"}, [14, 15, 16, 17]),
    ({"GE_eventTime": "2026-11-23T11:00:00.014Z"}, [14, 15, 16, 17]),
    ({"LT_eventTime": "2026-11-23T07:50:00.002+01:00"}, [T1, A1, S1, 1]),
    (
        {"GE_eventTime": "2026-11-23T08:00:00+01:00", "LT_eventTime": "2026-11-23T09:00:00+01:00"},
        [4],
    ),
    ({"GE_recordTime": "2026-11-24T12:00:00Z"}, [T1, A1, S1, *range(1, 13), *range(14, 18)]),
    ({"LT_recordTime": "2026-11-24T12:00:00Z"}, []),
    ({"EQ_eventID": f"urn:uuid:{example_id(5)}|{S1}"}, [S1, 5]),
    # several parameters: all must hold
    ({"MATCH_epcClass": LOT_B, "EQ_bizStep": "storing"}, [3, 4, 9]),
    ({"MATCH_anyEPC": SSCC_1_URN, "eventType": "ObjectEvent"}, [8]),
]


@pytest.mark.parametrize(("params", "expected"), CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_every_query_parameter(loaded: Api, params: dict[str, str], expected: list[Any]) -> None:
    assert _query(loaded, params) == expected


def test_no_parameter_answers_everything_in_time_order(loaded: Api) -> None:
    got = _query(loaded, {})
    # the `correct` movement (13) only declares an error: it is not an EPCIS event
    assert got == [T1, A1, S1, *range(1, 13), *range(14, 18)]


def test_repeated_parameters_are_alternatives(loaded: Api) -> None:
    pairs = [("EQ_bizStep", "storing"), ("EQ_bizStep", "holding"), ("perPage", "100")]
    r = _get(loaded, pairs)
    assert _ids(r.json()) == [2, 3, 4, 9, 10]


def _pages(api: Api, params: dict[str, Any]) -> tuple[list[Any], int]:
    got: list[Any] = []
    r = _get(api, params)
    pages = 1
    while True:
        assert r.status_code == 200, r.text
        assert schema_check(r.json()) == []
        got += _ids(r.json())
        link = r.headers.get("link")
        if link is None:
            assert "gs1-next-page-token-expires" not in r.headers
            return got, pages
        assert link.endswith('>; rel="next"')
        url = urlsplit(link[1 : link.index(">")])
        assert url.path == "/epcis/events"
        q = parse_qs(url.query)
        assert set(q) == {"perPage", "nextPageToken"}
        r = _get(api, {k: v[0] for k, v in q.items()})
        pages += 1


@pytest.mark.parametrize("per_page", [1, 2, 3, 7, 19, 20, 1000])
def test_paging_has_no_duplicates_and_no_gaps(loaded: Api, per_page: int) -> None:
    everything = _query(loaded, {})
    got, pages = _pages(loaded, {"perPage": per_page})
    assert got == everything
    assert pages == max(1, -(-len(everything) // per_page))


def test_paging_with_a_filter(loaded: Api) -> None:
    got, pages = _pages(loaded, {"perPage": 2, "MATCH_epcClass": LOT_B})
    assert got == LOT_B_EVENTS and pages == 4


def test_events_of_the_same_time_page_in_a_stable_order(loaded: Api) -> None:
    """Ten captured events at one instant are paged by id: none lost, none twice."""
    doc = supplier_document()
    base = doc["epcisBody"]["eventList"][1]
    events = []
    for n in range(10):
        ev = copy.deepcopy(base)
        ev["eventID"] = f"urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-1000000000{n:02d}"
        ev["eventTime"] = "2026-11-23T10:30:00.008+01:00"  # = the gateway's event 8
        events.append(ev)
    doc["epcisBody"]["eventList"] = events
    r = loaded.client.post("/epcis/capture", json=doc, headers=loaded.h["recall-manager"])
    assert r.status_code == 202
    everything = _query(loaded, {"EQ_disposition": "in_transit"})
    assert len(everything) == 12 and len(set(everything)) == 12
    for per_page in (1, 3, 4):
        got, _ = _pages(loaded, {"perPage": per_page, "EQ_disposition": "in_transit"})
        assert got == everything


def test_events_arriving_between_pages_are_not_lost_nor_repeated(loaded: Api) -> None:
    r = _get(loaded, {"perPage": 5})
    first = _ids(r.json())
    link = r.headers["link"]
    doc = supplier_document()
    late = copy.deepcopy(doc["epcisBody"]["eventList"][1])
    late["eventID"] = "urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-2000000000aa"
    late["eventTime"] = "2026-11-23T23:00:00Z"  # after everything: shows on a later page
    doc["epcisBody"]["eventList"] = [late]
    assert (
        loaded.client.post(
            "/epcis/capture", json=doc, headers=loaded.h["recall-manager"]
        ).status_code
        == 202
    )
    rest, _ = _pages(
        loaded, {k: v[0] for k, v in parse_qs(urlsplit(link[1 : link.index(">")]).query).items()}
    )
    assert first + rest == [*_query(loaded, {})]
    assert rest[-1] == late["eventID"]


def _token(r: Any) -> str:
    link = r.headers["link"]
    return parse_qs(urlsplit(link[1 : link.index(">")]).query)["nextPageToken"][0]


def _problem(r: Any, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_tampered_tokens_are_refused(loaded: Api) -> None:
    r = _get(loaded, {"perPage": 2, "EQ_bizStep": "storing"})
    tok = _token(r)
    body, sig = tok.split(".")
    import base64

    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    forged = raw.replace(b"storing", b"holding")
    assert forged != raw
    forged_tok = base64.urlsafe_b64encode(forged).decode().rstrip("=") + "." + sig
    for bad in (
        forged_tok,
        tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"),
        "x",
        "a.b",
        tok + ".",
    ):
        p = _problem(_get(loaded, {"nextPageToken": bad}))
        assert p["type"] == "epcisException:QueryParameterException"
    # the token carries its query: the same parameters may be repeated, others not
    ok = _get(loaded, {"perPage": 2, "EQ_bizStep": "storing", "nextPageToken": tok})
    assert ok.status_code == 200 and _ids(ok.json()) == [4, 9]
    p = _problem(_get(loaded, {"EQ_bizStep": "holding", "nextPageToken": tok}))
    assert "another query" in p["detail"]


def test_tokens_expire(loaded: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = _token(_get(loaded, {"perPage": 2}))
    from central.epcis import models

    real = models.decode_token

    def later(secret: bytes, token: str, now: Any) -> Any:
        return real(secret, token, now + timedelta(days=2))

    monkeypatch.setattr("central.epcis.views.decode_token", later)
    p = _problem(_get(loaded, {"nextPageToken": tok}))
    assert "expired" in p["detail"]


BAD = [
    {"MATCH_epc": "not a uri"},
    {"MATCH_epc": "urn:epc:id:sgtin:9506000.13435.S1"},  # 12 digits
    {"MATCH_epc": "https://id.gs1.org/01/09506000134353/21/S1"},  # check digit
    {"MATCH_epc": "urn:epc:idpat:sgtin:9506000.*.S1"},  # '*' then a value
    {"MATCH_epc": "urn:epc:class:lgtin:4012345.000001.L1"},  # a class is no EPC
    {"MATCH_epcClass": "urn:epc:id:sgtin:9506000.013435.S1"},
    {"MATCH_epcClass": "https://id.gs1.org/01/09506000134352/21/S1"},
    {"MATCH_parentID": ""},
    {"MATCH_anyEPC": "urn:epc:id:sscc:4012345.300000001"},
    {"EQ_bizStep": "Shipping!"},
    {"EQ_bizLocation": "DOCK-1"},
    {"EQ_action": "ADDED"},
    {"eventType": "QuantityEvent"},
    {"GE_eventTime": "yesterday"},
    {"LT_eventTime": "2026-11-23T10:00:00"},  # no offset
    {"GE_eventTime": "2026-13-23T10:00:00Z"},
    {"perPage": "0"},
    {"perPage": "-5"},
    {"perPage": "lots"},
    {"EQ_userID": "x"},  # not a parameter of this service
    {"MATCH_epc": "urn:epc:id:sgtin:9506000.013435.S1\x01"},
]


@pytest.mark.parametrize("params", BAD, ids=[json.dumps(b) for b in BAD])
def test_bad_parameters_are_a_query_parameter_exception(
    loaded: Api, params: dict[str, str]
) -> None:
    p = _problem(_get(loaded, params))
    assert p["type"] == "epcisException:QueryParameterException"


def test_json_ld_when_asked(loaded: Api) -> None:
    r = loaded.client.get(
        "/epcis/events", headers={**loaded.h["viewer"], "Accept": "application/ld+json"}
    )
    assert r.headers["content-type"].startswith("application/ld+json")
    assert _get(loaded, {}).headers["content-type"].startswith("application/json")


def test_roles_and_tokens(loaded: Api) -> None:
    assert loaded.client.get("/epcis/events").status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert loaded.client.get("/epcis/events", headers=bad).status_code == 401
    for who in ("viewer", "recall-manager", "admin"):
        assert _get(loaded, {}, who).status_code == 200


def test_large_per_page_is_capped(loaded: Api) -> None:
    r = _get(loaded, {"perPage": "999999"})
    assert r.status_code == 200 and len(_ids(r.json())) == 19


def test_the_sql_binds_every_value(loaded: Api) -> None:
    nasty = "urn:x:');DROP/**/TABLE/**/events;--"
    for name in ("MATCH_epc", "MATCH_anyEPC", "MATCH_parentID", "EQ_bizLocation", "EQ_eventID"):
        assert _query(loaded, {name: nasty}) == []
    assert _query(loaded, {"EQ_bizStep": "urn:x:');SELECT/**/pg_sleep(5);--"}) == []
    assert len(_query(loaded, {})) == 19


# -- fuzz --------------------------------------------------------------------------------
NAMES = st.sampled_from([*LIST_PARAMS, *TIME_PARAMS, "perPage", "nextPageToken", "foo"])
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            SSCC_1_URN,
            LOT_B,
            "urn:epc:idpat:sgtin:*.*.*",
            "urn:epc:idpat:sgtin:4012345.*.*",
            "urn:epc:id:sgtin:.",
            "urn:epc:id:sgtin:4012345..",
            "urn:epc:id:sscc:*.*",
            "urn:epc:class:lgtin:4012345.000001.*",
            "https://id.gs1.org/01/",
            "https://id.gs1.org/01/04012345000016/21/",
            "https://id.gs1.org/00/1",
            "https:///01/04012345000016",
            "http://[::1",
            "storing",
            "ObjectEvent",
            "DELETE",
            "2026-11-23T08:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+14:00",
            "2026-11-23T08:00:00 01:00",
            "|",
            "||",
            "%00",
            "\x00",
            "1e9",
            "9" * 400,
        ]
    ),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pairs=st.lists(st.tuples(NAMES, VALUES), max_size=4))
def test_fuzzed_parameters_never_break_the_query(loaded: Api, pairs: list[tuple[str, str]]) -> None:
    r = _get(loaded, pairs)
    assert r.status_code in (200, 400), (pairs, r.status_code, r.text)
    body = r.json()
    if r.status_code == 400:
        assert body["type"] == "epcisException:QueryParameterException", body
    else:
        assert body["type"] == "EPCISQueryDocument"
        assert schema_check(body) == []


def test_corrected_gateway_events_carry_their_error_declaration(loaded: Api) -> None:
    """As the gateway's EPCIS export: event 3 was re-stated by event 9; event 12 was
    declared void by the `correct` movement 13 (no corrective event)."""
    r = _get(loaded, {"EQ_eventID": f"urn:uuid:{example_id(3)}|urn:uuid:{example_id(12)}"})
    assert schema_check(r.json()) == []
    three, twelve = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert three["errorDeclaration"] == {
        "declarationTime": "2026-11-23T10:50:00.009+01:00",
        "reason": "incorrect_data",
        "correctiveEventIDs": [f"urn:uuid:{example_id(9)}"],
        "tw:note": "wrong shelf scanned",
    }
    assert twelve["errorDeclaration"] == {
        "declarationTime": "2026-11-23T11:50:00.013+01:00",
        "reason": "did_not_occur",
    }
    others = _get(loaded, {"perPage": 100}).json()["epcisBody"]["queryResults"]["resultsBody"]
    assert sum("errorDeclaration" in e for e in others["eventList"]) == 2


def test_openapi_lists_the_epcis_routes_and_parameters(loaded: Api) -> None:
    spec = loaded.client.get("/openapi.json").json()
    assert {"/epcis/events", "/epcis/capture", "/epcis/capture/{capture_id}"} <= set(spec["paths"])
    names = {p["name"] for p in spec["paths"]["/epcis/events"]["get"]["parameters"]}
    assert {"MATCH_epc", "MATCH_anyEPC", "EQ_bizLocation", "GE_eventTime", "perPage"} <= names


@pytest.mark.parametrize(
    "uri",
    [
        f"https://id.gs1.org/414/{GLN_SITE}/254/store-1",
        "urn:epc:id:sgln:4012345.00000.store-1",
        f"https://id.gs1.org/414/{GLN_SITE}/254/dock-1",
        "urn:traceway:loc:hamburg-1:handheld-3",
        "urn:epc:id:sgln:4098765.00000.dock2",
        "urn:traceway:loc:elsewhere:handheld-3",
    ],
)
def test_eq_read_point(loaded: Api, uri: str) -> None:
    from central.epcis.uris import location_key

    everything = _get(loaded, {"perPage": 100}).json()
    events = everything["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    want = [
        e.get("tw:seq", e["eventID"])
        for e in events
        if "readPoint" in e and location_key(e["readPoint"]["id"]) == location_key(uri)
    ]
    assert want or uri.startswith("urn:traceway:loc:elsewhere")
    assert _query(loaded, {"EQ_readPoint": uri}) == want
