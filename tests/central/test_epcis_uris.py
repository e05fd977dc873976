"""Pure: EPC URNs, patterns, classes and Digital Link URIs; CBV words; locations; query
parameters; page tokens; a captured event normalised (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.epcis.models import (
    CaptureError,
    Cursor,
    QueryParameterError,
    build_query,
    decode_token,
    encode_token,
    event_ref,
    normalise_event,
    parse_query,
    parse_time,
)
from central.epcis.uris import (
    GatewayPlace,
    KeyMatch,
    UriError,
    cbv_short,
    gateway_place,
    location_key,
    parse_class,
    parse_epc,
    party_id,
)
from gs1.keys import check_digit
from gs1.uris import class_uri, encode, gln_uri, sgtin_uri, sscc_uri
from mqtt_topics.epcis import place_uri

GTIN_A = "09506000134352"
SSCC_1 = "340123450000000017"
GLN = "4012345000009"


def test_epc_urns_and_digital_links_name_the_same_keys() -> None:
    s = KeyMatch("serial", gtin=GTIN_A, serial="S/1&x")
    assert parse_epc("urn:epc:id:sgtin:9506000.013435.S%2F1%26x") == s
    assert parse_epc(sgtin_uri(GTIN_A, "S/1&x")) == s
    assert parse_epc("https://brand.example/p/01/9506000134352/21/S%2F1%26x?17=270101") == s
    assert parse_epc("urn:epc:id:sscc:4012345.3000000001") == KeyMatch("sscc", sscc=SSCC_1)
    assert parse_epc(sscc_uri(SSCC_1)) == KeyMatch("sscc", sscc=SSCC_1)
    assert parse_epc("urn:epc:id:sgtin:9506000.013435.a.b") == KeyMatch(
        "serial", gtin=GTIN_A, serial="a.b"
    )
    assert parse_epc("urn:epc:id:grai:4012345.00001.1") == KeyMatch(
        "other", uri="urn:epc:id:grai:4012345.00001.1"
    )


def test_patterns() -> None:
    assert parse_epc("urn:epc:idpat:sgtin:9506000.013435.*") == KeyMatch("serial", gtin=GTIN_A)
    assert parse_epc("urn:epc:idpat:sgtin:9506000.*.*") == KeyMatch("serial", prefix="9506000")
    assert parse_epc("urn:epc:idpat:sgtin:*.*.*") == KeyMatch("serial")
    assert parse_epc("urn:epc:idpat:sscc:4012345.*") == KeyMatch("sscc", prefix="4012345")
    assert parse_epc("urn:epc:idpat:sscc:*.*") == KeyMatch("sscc")
    assert not parse_epc("urn:epc:idpat:sscc:*.*").exact
    for bad in ("urn:epc:idpat:sgtin:*.013435.*", "urn:epc:idpat:sgtin:9506000.*.S1"):
        with pytest.raises(UriError, match="after a"):
            parse_epc(bad)
    with pytest.raises(UriError, match="pattern is not an EPC"):
        parse_epc("urn:epc:idpat:sgtin:9506000.*.*", pattern=False)


def test_classes() -> None:
    lot = KeyMatch("class", gtin="04012345000016", lot="L24-07")
    assert parse_class("urn:epc:class:lgtin:4012345.000001.L24-07") == lot
    assert parse_class(class_uri("04012345000016", "L24-07")) == lot
    anylot = KeyMatch("class", gtin="04012345000016", any_lot=True)
    assert parse_class("urn:epc:class:lgtin:4012345.000001.*") == anylot
    assert parse_class("urn:epc:idpat:sgtin:4012345.000001.*") == anylot
    # in a document the idpat is the product without a lot
    assert parse_class("urn:epc:idpat:sgtin:4012345.000001.*", pattern=False) == KeyMatch(
        "class", gtin="04012345000016"
    )
    assert parse_class("urn:epc:idpat:sgtin:4012345.*.*") == KeyMatch(
        "class", prefix="4012345", any_lot=True
    )
    assert parse_class(class_uri("04012345000016")) == KeyMatch("class", gtin="04012345000016")
    for bad in ("urn:epc:id:sgtin:4012345.000001.S", sgtin_uri(GTIN_A, "S1")):
        with pytest.raises(UriError):
            parse_class(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "no scheme",
        "urn:epc:id:sgtin:9506000.13435.S1",
        "urn:epc:id:sgtin:95060.0134350.S1",
        "urn:epc:id:sgtin:9506000.013435." + "x" * 21,
        "urn:epc:id:sscc:4012345.300000001",
        "https://id.gs1.org/01/09506000134353/21/S1",
        "https://id.gs1.org/00/340123450000000018",
        "https://id.gs1.org/01/09506000134352",  # a class, not an EPC
        "urn:epc:class:lgtin:4012345.000001.L1",
        "urn:x:" + "a" * 2001,
    ],
)
def test_malformed_epcs(bad: str) -> None:
    with pytest.raises(UriError):
        parse_epc(bad)


def test_cbv_words() -> None:
    assert cbv_short("urn:epcglobal:cbv:bizstep:shipping", "bizstep") == "shipping"
    assert cbv_short("https://ref.gs1.org/cbv/BizStep-receiving", "bizstep") == "receiving"
    assert cbv_short("https://gs1.org/voc/Disp-in_transit", "disp") == "in_transit"
    assert cbv_short("urn:example:step:x", "bizstep") == "urn:example:step:x"


def test_locations_and_parties() -> None:
    assert location_key("urn:epc:id:sgln:4012345.00000.B-07-03") == gln_uri(GLN, "B-07-03")
    assert location_key("urn:epc:id:sgln:4012345.00000.0") == gln_uri(GLN)
    assert location_key("https://x.example/414/4012345000009") == gln_uri(GLN)
    assert location_key("urn:example:dock") == "urn:example:dock"
    assert party_id("https://id.gs1.org/417/4012345000009") == GLN
    assert party_id("urn:epc:id:pgln:4012345.00000") == GLN
    assert party_id("urn:example:acme") == "urn:example:acme"
    with pytest.raises(UriError):
        location_key("https://id.gs1.org/414/4012345000008")


@given(
    site=st.text(min_size=1, max_size=10),
    place=st.text(min_size=1, max_size=10),
    loc=st.none() | st.text(min_size=1, max_size=10),
)
def test_gateway_place_inverts_place_uri(site: str, place: str, loc: str | None) -> None:
    uri = place_uri(place, site, loc)
    if uri is None or (uri.startswith(("http", "urn:")) and not uri.startswith("urn:traceway")):
        return
    try:
        got = gateway_place(uri)
    except UriError:
        return  # not a URI we answer for (control characters)
    assert got == GatewayPlace("local", place, loc, site)


def test_gateway_place_gln() -> None:
    assert gateway_place(place_uri(GLN, "s", "A-1") or "") == GatewayPlace("gln", GLN, "A-1")
    assert gateway_place(place_uri(GLN, "s") or "") == GatewayPlace("gln", GLN)
    assert gateway_place("urn:x:y") == GatewayPlace("uri", "urn:x:y")


# -- query parameters and tokens ---------------------------------------------------------


def test_parse_query() -> None:
    q, per_page, token = parse_query(
        [("EQ_bizStep", "shipping|receiving"), ("EQ_bizStep", "storing"), ("perPage", "5")]
    )
    assert q.biz_steps == ("shipping", "receiving", "storing") and per_page == 5
    assert token is None
    assert parse_query([("perPage", "100000")])[1] == 1000
    with pytest.raises(QueryParameterError, match="unknown parameter"):
        parse_query([("MATCH_everything", "x")])
    with pytest.raises(QueryParameterError, match="give one date-time"):
        build_query({"GE_eventTime": ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]})
    with pytest.raises(QueryParameterError, match="at most"):
        build_query({"MATCH_epc": ["urn:x:y"] * 101})


def test_parse_time() -> None:
    t = parse_time("2026-11-23T08:00:00.5 01:00")  # '+' sent unencoded
    assert t == datetime(2026, 11, 23, 7, 0, 0, 500000, tzinfo=UTC)
    assert parse_time("2026-11-23T07:00:00Z") == datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert parse_time("2026-11-23t07:00:00.123456789z") == datetime(
        2026, 11, 23, 7, 0, 0, 123456, tzinfo=UTC
    )
    for bad in ("2026-11-23", "2026-11-23T07:00:00", "0001-01-01T00:00:00+01:00", "x" * 50):
        with pytest.raises(QueryParameterError):
            parse_time(bad)


def test_tokens_are_signed_and_bind_the_query() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    q = build_query({"EQ_bizStep": ["storing"]})
    cur = Cursor(now - timedelta(days=1), "019aaf00-0000-7000-8000-000000000003", "g")
    tok, expires = encode_token(b"k" * 32, q, cur, now)
    assert expires == now + timedelta(hours=24)
    params, back = decode_token(b"k" * 32, tok, now)
    assert params == {"EQ_bizStep": ["storing"]} and back == cur
    with pytest.raises(QueryParameterError, match="not a token"):
        decode_token(b"x" * 32, tok, now)  # another server's key
    with pytest.raises(QueryParameterError, match="expired"):
        decode_token(b"k" * 32, tok, now + timedelta(hours=25))


# -- a captured event -------------------------------------------------------------------


def test_normalise_event() -> None:
    ev = {
        "type": "AggregationEvent",
        "eventTime": "2026-11-20T06:00:00+01:00",
        "eventTimeZoneOffset": "+01:00",
        "parentID": "urn:epc:id:sscc:4012345.3000000001",
        "childEPCs": ["urn:epc:id:sgtin:9506000.013435.S1", "urn:epc:id:giai:4012345.1"],
        "childQuantityList": [
            {"epcClass": "urn:epc:class:lgtin:4012345.000001.L1", "quantity": 2.5, "uom": "KGM"}
        ],
        "action": "ADD",
        "bizStep": "https://ref.gs1.org/cbv/BizStep-packing",
        "sourceList": [
            {"type": "location", "source": "urn:epc:id:sgln:4012345.00000.0"},
            {"type": "owning_party", "source": "https://id.gs1.org/417/4012345000009"},
        ],
    }
    n = normalise_event(ev, 0)
    assert n.event_id.startswith("urn:uuid:") and n.ref == n.event_id[9:]
    assert normalise_event(ev, 0).event_id == n.event_id  # derived from content
    assert n.movement == "packing" and n.parent == KeyMatch("sscc", sscc=SSCC_1)
    assert n.source == ("party", GLN)  # owning party before a location
    assert [(i.gtin, i.serial, i.lot, i.quantity, i.uom) for i in n.items] == [
        (GTIN_A, "S1", None, None, None),
        ("04012345000016", None, "L1", 2.5, "KGM"),
    ]
    bad = {**ev, "childEPCs": ["urn:epc:id:sgtin:9506000.013435"]}
    with pytest.raises(CaptureError, match=r"eventList\[3\]\.childEPCs\[0\]"):
        normalise_event(bad, 3)


def test_event_ref() -> None:
    u = "019aaf00-0000-7000-8000-000000000001"
    assert event_ref(f"urn:uuid:{u.upper()}") == u
    assert len(event_ref("ni:///sha-256;abc?ver=CBV2.0")) == 36
    assert event_ref("urn:uuid:not-a-uuid") != "not-a-uuid"


def test_check_digits_used() -> None:
    assert GTIN_A[-1] == str(check_digit(GTIN_A[:-1]))
    assert encode("a/b") == "a%2Fb"
