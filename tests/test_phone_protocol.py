"""Phone scanner without a camera: the pure protocol parts, then the WebSocket server itself
(pairing, bad/revoked tokens, other origins, oversized and malformed frames, a flood)."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("websockets")

from websockets.exceptions import ConnectionClosed, InvalidStatus

from drivers.scanners.config import PhoneScanner
from drivers.scanners.phone import protocol, registry
from drivers.scanners.phone.protocol import ProtocolError, StationView, parse_client
from drivers.scanners.phone.server import PhoneReader
from drivers.scanners.types import RawScan
from tests.conftest import free_port
from tests.phone_util import FakePhone, connect, hello, pair, recv

GS = "\x1d"

# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type":"ping"}',
        "not json",
        "[1,2]",
        '"scan"',
        '{"type":"scan","id":"1","text":"x"}',
        '{"type":"scan","id":true,"text":"x"}',
        '{"type":"scan","id":-1,"text":"x"}',
        '{"type":"scan","id":9007199254740992,"text":"x"}',
        '{"type":"scan","id":1,"text":""}',
        '{"type":"scan","id":1,"text":5}',
        '{"type":"scan","id":1,"text":"]C1\\ud800"}',
        '{"type":"hello","device_id":"short","token":"x","sig":"AA=="}',
        '{"type":"pair","pair_token":"AAAAAAAAAAAAAAAAAAAA","name":"../etc","public_key":"AA==","sig":"AA=="}',
        '{"type":"pair","pair_token":"AAAAAAAAAAAAAAAAAAAA","name":"ok","public_key":"%%%","sig":"AA=="}',
        '{"type":"shutdown"}',
        "{}",
        "[" * 100000,
    ],
)
def test_malformed_messages_are_refused_with_a_reason(frame: str | bytes) -> None:
    with pytest.raises(ProtocolError) as e:
        parse_client(frame)
    assert e.value.code in ("bad_message", "bad_name") and e.value.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["scan", "hello", "pair", "ping", "x"])},
    optional={
        k: json_values
        for k in ("id", "text", "device_id", "token", "sig", "pair_token", "name", "public_key")
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.binary(), message_like.map(json.dumps)))
def test_any_frame_is_a_message_or_a_protocol_error(frame: str | bytes) -> None:
    try:
        msg = parse_client(frame)
    except ProtocolError as e:
        assert e.code in ("bad_message", "bad_name") and e.message
        return
    if isinstance(msg, protocol.Scan):  # what reaches the pipeline is storable text
        assert msg.text and msg.text.encode("utf-8") and 0 <= msg.id < 2**53


def test_a_scan_keeps_aim_identifier_and_gs() -> None:
    text = f"]C10109506000134352{GS}10LOTA"
    assert parse_client(json.dumps({"type": "scan", "id": 7, "text": text})) == protocol.Scan(
        7, text
    )


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://10.0.0.5:8443", True),
        ("https://dock1.local:8443", True),
        ("https://DOCK1.local:8443", True),
        ("http://10.0.0.5:8443", False),
        ("https://10.0.0.5", False),
        ("https://10.0.0.5:8444", False),
        ("https://evil.example:8443", False),
        ("https://10.0.0.5.evil.example:8443", False),
        ("https://user@10.0.0.5:8443", False),
        ("null", False),
        ("", False),
        (None, False),
        ("https://10.0.0.5:99999", False),
    ],
)
def test_only_our_own_page_is_an_allowed_origin(origin: str | None, ok: bool) -> None:
    assert protocol.origin_allowed(origin, ["10.0.0.5", "dock1.local"], 8443) is ok


def test_port_443_origin_has_no_port() -> None:
    assert protocol.origin_allowed("https://gw.example", ["gw.example"], 443)
    assert protocol.page_url("gw.example", 443, "t" * 22) == "https://gw.example/#pair=" + "t" * 22


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("10.0.0.5:8443", "10.0.0.5"),
        ("Dock1.local", "dock1.local"),
        ("[::1]", "::1"),
        ("[::1]:8443", "::1"),
        ("a@evil:1", "evil"),
        ("", ""),
        ("[::1", ""),
    ],
)
def test_host_header(header: str, host: str) -> None:
    assert protocol.host_of(header) == host


def test_token_bucket() -> None:
    b = protocol.TokenBucket(rate=2, burst=3, now=0)
    assert [b.take(0) for _ in range(4)] == [True, True, True, False]
    assert b.take(0.5) and not b.take(0.5)
    assert b.take(100) and b.take(100) and b.take(100) and not b.take(100)


def test_registry_pairing_is_one_time_and_expires() -> None:
    data = registry.empty()
    registry.add_pairing(data, "tok-a" * 4, now=0, ttl=60)
    registry.add_pairing(data, "tok-b" * 4, now=0, ttl=60)
    assert "tok-a" not in json.dumps(data)  # stored hashed
    assert registry.consume_pairing(data, "tok-a" * 4, now=10)
    assert not registry.consume_pairing(data, "tok-a" * 4, now=10)  # used
    assert not registry.consume_pairing(data, "tok-b" * 4, now=61)  # expired
    assert data["pairings"] == []


def test_registry_names_are_unique_and_revocable() -> None:
    data = registry.empty()
    d = registry.add_device(data, "alice", "t" * 40, "KEY", now=1, max_devices=2)
    with pytest.raises(registry.PairingRefused, match="already paired"):
        registry.add_device(data, "ALICE", "u" * 40, "KEY", now=2, max_devices=2)
    registry.add_device(data, "bob", "v" * 40, "KEY", now=2, max_devices=2)
    with pytest.raises(registry.PairingRefused, match="max_devices"):
        registry.add_device(data, "carol", "w" * 40, "KEY", now=3, max_devices=2)
    assert registry.revoke(data, "alice", now=4) and not registry.revoke(data, "alice", now=5)
    assert [x.name for x in registry.active_devices(data)] == ["bob"]
    found = registry.find_device(data, d.id)
    assert found is not None and found.revoked_at == 4 and found.token_matches("t" * 40)
    # a name is free again once its phone is revoked
    registry.add_device(data, "alice", "x" * 40, "KEY", now=6, max_devices=2)


# -- the server ---------------------------------------------------------------------------------


class Pipeline:
    """Stands in for the writer + reporter: records scans, answers each from another thread."""

    def __init__(self) -> None:
        self.scans: list[RawScan] = []
        self.reader: PhoneReader | None = None
        self._q: queue.SimpleQueue[RawScan | None] = queue.SimpleQueue()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def __call__(self, scan: RawScan) -> None:
        self.scans.append(scan)
        self._q.put(scan)

    def _run(self) -> None:
        while (scan := self._q.get()) is not None:
            assert self.reader is not None
            time.sleep(0.01)  # "the commit"
            if "LOTR" in scan.text:
                reasons = [("lot_recalled", "lot LOTR is recalled: do not use")]
                verdict = "reject"
            elif scan.error:
                reasons, verdict = [(scan.error, scan.detail)], "reject"
            else:
                reasons, verdict = [], "accept"
            view = StationView("dock", "receiving", "DOCK-1", None)
            self.reader.on_verdict(scan.frame_id, verdict, reasons, "receive", 1, view)

    def stop(self) -> None:
        self._q.put(None)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[PhoneReader, Pipeline]]:
    port = free_port()
    cfg = PhoneScanner(
        type="phone",
        station="dock",
        host="127.0.0.1",
        port=port,
        hostnames=["127.0.0.1"],
        pair_at_start=False,
        rate=5,
        burst=10,
        max_pending=50,
        max_length=200,
    )
    pipe = Pipeline()
    reader = PhoneReader(
        "phones",
        cfg,
        pipe,
        state_dir=tmp_path,
        station_view=lambda st: StationView(st, "receiving", "DOCK-1", None),
    )
    pipe.reader = reader
    reader.start()
    assert reader.ready.wait(10)
    yield reader, pipe
    reader.stop()
    pipe.stop()


def _ca(reader: PhoneReader) -> Path:
    assert reader.certs is not None and reader.certs.ca is not None
    return reader.certs.ca


def _paired(reader: PhoneReader, name: str = "alice") -> FakePhone:
    phone = FakePhone()
    with connect(reader.cfg.port, _ca(reader)) as ws:
        answer = pair(ws, phone, reader.registry.open_pairing(60), name)
        assert answer["type"] == "paired", answer
        assert recv(ws)["type"] == "welcome"
    return phone


def _closed_code(ws: Any, timeout: float = 5) -> int | None:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd is not None else None
    except TimeoutError:
        return None
    return None


def test_pair_scan_and_verdict_after_the_commit(server: tuple[PhoneReader, Pipeline]) -> None:
    reader, pipe = server
    phone = _paired(reader, "alice")
    with connect(reader.cfg.port, _ca(reader)) as ws:
        welcome = hello(ws, phone)
        assert welcome["type"] == "welcome" and welcome["scanner"] == "phones.alice"
        assert welcome["station"] == {
            "name": "dock",
            "step": "receiving",
            "location": "DOCK-1",
            "quantity": None,
        }
        code = f"]d20109506000134369{GS}10PUMPLOT1{GS}21SN2001"
        ws.send(json.dumps({"type": "scan", "id": 41, "text": code}))
        ws.send(json.dumps({"type": "scan", "id": 42, "text": "]C10109506000134352" + "10LOTR"}))
        v1, v2 = recv(ws), recv(ws)
    assert (v1["type"], v1["id"], v1["verdict"]) == ("verdict", 41, "accept")
    assert v2["id"] == 42 and v2["verdict"] == "reject" and v2["headline"].startswith("Rejected")
    assert v2["reasons"] == [
        {"code": "lot_recalled", "message": "lot LOTR is recalled: do not use"}
    ]
    assert [s.text for s in pipe.scans] == [code, "]C10109506000134352" + "10LOTR"]
    assert {s.scanner for s in pipe.scans} == {"phones.alice"}
    assert reader.registry.path.stat().st_mode & 0o077 == 0  # the registry is private


def test_pairing_code_works_once(server: tuple[PhoneReader, Pipeline]) -> None:
    reader, pipe = server
    token = reader.registry.open_pairing(60)
    with connect(reader.cfg.port, _ca(reader)) as ws:
        assert pair(ws, FakePhone(), token, "one")["type"] == "paired"
    with connect(reader.cfg.port, _ca(reader)) as ws:
        answer = pair(ws, FakePhone(), token, "two")
        assert answer == {
            "type": "error",
            "code": "pairing_refused",
            "message": answer["message"],
        }
        assert "used or expired" in answer["message"]
        assert _closed_code(ws) == 4401
    expired = reader.registry.open_pairing(60, now=time.time() - 120)
    with connect(reader.cfg.port, _ca(reader)) as ws:
        assert pair(ws, FakePhone(), expired, "three")["code"] == "pairing_refused"
    assert [d.name for d in registry.active_devices(reader.registry.load())] == ["one"]
    assert pipe.scans == []


def test_a_taken_name_leaves_the_pairing_code_usable(server: tuple[PhoneReader, Pipeline]) -> None:
    reader, _ = server
    _paired(reader, "alice")
    token = reader.registry.open_pairing(60)
    with connect(reader.cfg.port, _ca(reader)) as ws:
        answer = pair(ws, FakePhone(), token, "Alice")
        assert answer["code"] == "name_taken" and "already paired" in answer["message"]
    with connect(reader.cfg.port, _ca(reader)) as ws:
        assert pair(ws, FakePhone(), token, "alice2")["type"] == "paired"
    with connect(reader.cfg.port, _ca(reader)) as ws:  # and then it is used up
        assert pair(ws, FakePhone(), token, "alice3")["code"] == "pairing_refused"


def test_bad_token_wrong_key_and_no_hello_are_refused(
    server: tuple[PhoneReader, Pipeline],
) -> None:
    reader, pipe = server
    phone = _paired(reader)
    thief = FakePhone()
    thief.device_id, thief.token = phone.device_id, "x" * 43
    with connect(reader.cfg.port, _ca(reader)) as ws:
        assert hello(ws, thief)["code"] == "unauthorized"
        assert _closed_code(ws) == 4401
    thief.token = phone.token  # the token copied, but not the phone's key
    with connect(reader.cfg.port, _ca(reader)) as ws:
        assert hello(ws, thief)["code"] == "bad_signature"
    with connect(reader.cfg.port, _ca(reader)) as ws:  # a scan before any hello
        recv(ws)
        ws.send(json.dumps({"type": "scan", "id": 1, "text": "]C1x"}))
        assert recv(ws)["code"] == "unauthorized"
        assert _closed_code(ws) == 4401
    assert pipe.scans == []
    assert reader.refused["auth"] == 3


def test_revoked_phone_is_disconnected_and_refused(server: tuple[PhoneReader, Pipeline]) -> None:
    reader, pipe = server
    phone = _paired(reader, "lost")
    with connect(reader.cfg.port, _ca(reader)) as ws:
        assert hello(ws, phone)["type"] == "welcome"
        t0 = time.monotonic()
        cli = registry.Registry(reader.registry.path)  # as `traceway phone-pair --revoke`
        cli.update(lambda d: registry.revoke(d, "lost", time.time()))
        msg = recv(ws)
        assert msg["type"] == "error" and msg["code"] == "revoked"
        assert _closed_code(ws) == 4403
        assert time.monotonic() - t0 < 3
    with connect(reader.cfg.port, _ca(reader)) as ws:
        assert hello(ws, phone)["code"] == "revoked"
    assert pipe.scans == []


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://127.0.0.1", "https://127.0.0.1:1", "null"],
)
def test_other_origins_cannot_open_the_socket(
    server: tuple[PhoneReader, Pipeline], origin: str
) -> None:
    reader, _ = server
    with pytest.raises(InvalidStatus) as e:
        connect(reader.cfg.port, _ca(reader), origin=origin)
    assert e.value.response.status_code == 403


def test_no_origin_cannot_open_the_socket(server: tuple[PhoneReader, Pipeline]) -> None:
    from websockets.sync.client import connect as ws_connect

    reader, _ = server
    with pytest.raises(InvalidStatus) as e:
        ws_connect(f"wss://127.0.0.1:{reader.cfg.port}/ws", ssl=_ssl(reader), open_timeout=15)
    assert e.value.response.status_code == 403


def _ssl(reader: PhoneReader) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(_ca(reader)))


def _get(reader: PhoneReader, path: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(
        f"https://127.0.0.1:{reader.cfg.port}{path}", headers=headers or {}
    )
    return urllib.request.urlopen(req, context=_ssl(reader), timeout=5)


def test_page_is_served_with_a_strict_policy(server: tuple[PhoneReader, Pipeline]) -> None:
    reader, _ = server
    with _get(reader, "/") as r:
        body = r.read().decode()
        assert "app.js" in body
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    with _get(reader, "/vendor/zxing-wasm/zxing_reader.wasm") as r:
        assert r.headers["Content-Type"] == "application/wasm"
        assert r.read(4) == b"\0asm"
    with _get(reader, "/ca.crt") as r:
        assert b"BEGIN CERTIFICATE" in r.read()
    for path, headers, status in [
        ("/../../etc/passwd", {}, 404),
        ("/app.js", {"Origin": "https://evil.example"}, 403),
        ("/", {"Host": "evil.example"}, 421),
    ]:
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(reader, path, headers)
        assert e.value.code == status, path


def test_oversized_and_malformed_frames_accept_nothing(
    server: tuple[PhoneReader, Pipeline],
) -> None:
    reader, pipe = server
    phone = _paired(reader)
    with connect(reader.cfg.port, _ca(reader)) as ws:
        hello(ws, phone)
        for frame in [b"\x00\x01", "not json", "[]", '{"type":"scan","id":"x","text":"a"}']:
            ws.send(frame)
            assert recv(ws)["type"] == "error"
        ws.send(json.dumps({"type": "scan", "id": 1, "text": "]C1" + "9" * 500}))
        v = recv(ws)  # longer than max_length but within the frame limit: rejected by the pipeline
        assert v["verdict"] == "reject" and v["reasons"][0]["code"] == "frame_too_long"
        ws.send("x" * (6 * 200 + 2000))  # over the frame limit: the connection is closed
        assert _closed_code(ws) == 1009
    assert len(pipe.scans) == 1 and pipe.scans[0].error == "frame_too_long"
    assert len(pipe.scans[0].text) == 64
    with connect(reader.cfg.port, _ca(reader)) as ws:  # still serving
        assert hello(ws, phone)["type"] == "welcome"
        for _ in range(25):  # a stream of garbage ends the connection
            ws.send("garbage")
        assert _closed_code(ws) == 1008


def test_a_flood_of_scans_is_bounded_and_breaks_nothing(
    server: tuple[PhoneReader, Pipeline],
) -> None:
    reader, pipe = server
    phone = _paired(reader)
    other = _paired(reader, "bob")
    with connect(reader.cfg.port, _ca(reader)) as ws:
        hello(ws, phone)
        for i in range(2000):
            try:
                ws.send(json.dumps({"type": "scan", "id": i, "text": f"]C1FLOOD{i}"}))
            except ConnectionClosed:
                break
        assert _closed_code(ws, 10) == 1008  # too many messages
    # at most the burst reached the pipeline; every one had its answer or its phone left
    assert 1 <= len(pipe.scans) <= reader.cfg.burst + 3  # + what the rate refilled meanwhile
    assert reader.refused["flood"] == 1
    with connect(reader.cfg.port, _ca(reader)) as ws:  # another phone is served as before
        assert hello(ws, other)["type"] == "welcome"
        ws.send(json.dumps({"type": "scan", "id": 1, "text": "]C1AFTER"}))
        assert recv(ws)["verdict"] == "accept"


def test_scans_beyond_the_rate_are_not_sent(server: tuple[PhoneReader, Pipeline]) -> None:
    reader, pipe = server
    phone = _paired(reader)
    with connect(reader.cfg.port, _ca(reader)) as ws:
        hello(ws, phone)
        for i in range(15):
            ws.send(json.dumps({"type": "scan", "id": i, "text": f"]C1R{i}"}))
        answers = [recv(ws) for _ in range(15)]
    kinds = sorted(a["type"] for a in answers)
    sent = kinds.count("verdict")  # the burst, plus one per 0.2 s the sending took
    assert 10 <= sent <= 12 and kinds.count("not_sent") == 15 - sent
    assert {a["reason"] for a in answers if a["type"] == "not_sent"} == {"too_fast"}
    assert len(pipe.scans) == sent


def test_connection_limit(tmp_path: Path) -> None:
    port = free_port()
    cfg = PhoneScanner(
        type="phone",
        station="dock",
        host="127.0.0.1",
        port=port,
        hostnames=["127.0.0.1"],
        pair_at_start=False,
        max_connections=2,
    )
    reader = PhoneReader("phones", cfg, lambda s: None, state_dir=tmp_path)
    reader.start()
    try:
        assert reader.ready.wait(10)
        with connect(port, _ca(reader)), connect(port, _ca(reader)):
            with pytest.raises(InvalidStatus) as e:
                connect(port, _ca(reader))
            assert e.value.response.status_code == 503
        time.sleep(0.3)
        with connect(port, _ca(reader)) as ws:  # served again once they closed
            assert recv(ws)["type"] == "challenge"
    finally:
        reader.stop()


# -- with a real gateway ------------------------------------------------------------------------


@pytest.mark.slow
def test_step_location_and_qty_barcodes_work_as_on_a_handheld(tmp_path: Path) -> None:
    """``traceway run``: a phone's control scans change the station, and each verdict
    carries the station as committed (step, location, pending QTY); a bad code is a
    reject with a reason, like any scanner's."""
    from tests.gw_util import GatewayProcess, wait_listening

    port = free_port()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f"""
[gateway]
site = "s"
id = "g"
[broker]
enabled = false
[storage]
path = "state/gw.db"
[stations.dock]
step = "receiving"
location = "DOCK-1"
unknown_gtin = "accept"
[[patterns]]
kind = "location"
regex = 'LOC-(?P<value>[A-Z0-9-]{{1,30}})'
[[patterns]]
kind = "command"
regex = '(?P<value>RECEIVE|PUTAWAY|QTY:\\d{{1,6}})'
[scanners.phones]
type = "phone"
station = "dock"
host = "127.0.0.1"
port = {port}
hostnames = ["127.0.0.1"]
"""
    )
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    gw.start()
    try:
        wait_listening(port, gw)
        m = None
        deadline = time.monotonic() + 20
        while m is None and time.monotonic() < deadline:  # the console's pairing code
            import re

            m = re.search(r"#pair=([A-Za-z0-9_-]+)", (tmp_path / "gw.log").read_text())
            time.sleep(0.1)
        assert m is not None, (tmp_path / "gw.log").read_text()
        ca = tmp_path / "state" / "phone-phones" / "ca.pem"
        phone = FakePhone()
        with connect(port, ca) as ws:
            assert pair(ws, phone, m.group(1), "hand1")["type"] == "paired"
            welcome = recv(ws)
            assert welcome["station"] == {
                "name": "dock",
                "step": "receiving",
                "location": "DOCK-1",
                "quantity": None,
            }
            answers = []
            for i, code in enumerate(
                ["]Q1PUTAWAY", "]C0LOC-A-01-02", "]Q1QTY:12", "]C10109506000134353" + "10X"]
            ):
                ws.send(json.dumps({"type": "scan", "id": i, "text": code}))
                while True:
                    a = recv(ws, 15)
                    if a["type"] == "verdict":
                        break
                answers.append(a)
        st = [a["station"] for a in answers]
        assert [a["verdict"] for a in answers[:3]] == ["accept"] * 3
        assert st[0]["step"] == "storing"
        assert st[1]["location"] == "A-01-02"
        assert st[2]["quantity"] == 12
        bad = answers[3]  # a wrong GTIN check digit
        assert (
            bad["verdict"] == "reject"
            and bad["reasons"][0]["code"]
            and bad["reasons"][0]["message"]
        )
        log = (tmp_path / "gw.log").read_text()
        assert "phones.hand1" in log
    finally:
        assert gw.stop() == 0
