"""Untrusted barcode data never reaches ZPL, SQL, shell or logs unescaped.

Hypothesis drives the interpreter, the decision rules, label filling, the log and
console lines and the whole scan path (SQLite) with hostile text: zero crashes, zero
injections. A process-level test pushes nasty codes to a running gateway over TCP.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drivers.printers.templates import (
    Template,
    TemplateError,
    download_format,
    fill,
    load_templates,
    recall_format,
)
from drivers.scanners.escapes import _VISIBLE, make_visible
from drivers.scanners.types import RawScan
from gateway.feedback import console_line
from gateway.outcome import Outcome
from gateway.pipeline import describe, label_fields
from gateway.rules.decide import (
    CacheView,
    Decision,
    LotInfo,
    ProductInfo,
    SerialInfo,
    StationRules,
    decide,
)
from gs1.encode import EncodeError
from gs1.interpret import BarcodePattern, Interpreter, interpret

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 21)
SERIAL_GTIN = "09506000134369"
LOT_GTIN = "09506000134352"

# Hostile pieces: SQL, ZPL, shell, terminal and log-forging fragments.
NASTY = [
    "'", '"', "';--", "'); DROP TABLE serials;--", "1' OR '1'='1", "%", "_", "\\",
    "^XA", "^XZ", "~JA", "~HS", "^FD", "^FS", "^DF", "^IDR:*.*", "$(reboot)", "`id`",
    "; rm -rf /", "|", "&&", "\n", "\r", "\r\n", "\x00", "\x1b[2J", "\x1b]0;x\x07",
    "\x1d", "\x1e", "\x04", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e",
    "\ufeff", "\ufffd", "{gtin}", "%s%n", "<GS>", "]C1", "]d2", "]Q1", "01", "21", "10",
    "17", "https://id.gs1.org/01/09506000134352/10/", "😀", "Ω",
]  # fmt: skip
AIMS = ["", "]C1", "]C0", "]d2", "]d1", "]Q3", "]Q1", "]E0", "]I1", "]e0"]

nasty_text = st.lists(
    st.one_of(st.sampled_from(NASTY), st.text(max_size=12)), min_size=0, max_size=8
).map("".join)
gs1_with_nasty = st.builds(
    lambda aim, gtin, ai, data: f"{aim}01{gtin}{ai}{data}",
    st.sampled_from(["]C1", "]d2", "]Q3"]),
    st.sampled_from([SERIAL_GTIN, LOT_GTIN, "09506000134376"]),
    st.sampled_from(["21", "10", "17", "30", "99"]),
    nasty_text,
)
scan_text = st.one_of(
    nasty_text,
    gs1_with_nasty,
    st.builds(lambda a, t: a + t, st.sampled_from(AIMS), nasty_text),
    st.text(),
)
PATTERNS = (
    BarcodePattern("location", r"LOC-(?P<value>.+)", "loc"),
    BarcodePattern("command", r"(?P<value>RECEIVE|PICK|SHIP|QTY:\d+|PO:.+)"),
)


def no_controls(s: str) -> bool:
    """No C0/C1 control characters and no Unicode line/paragraph separators."""
    return not any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in s)


def no_c0_controls(s: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)


# ----------------------------------------------------------------------------- interpret


@settings(max_examples=500, deadline=None)
@given(scan_text)
@example("]C101" + LOT_GTIN + "10'); DROP TABLE lots;--")
@example("\x00" * 5000)
def test_interpret_never_raises(text: str) -> None:
    r = interpret(text, PATTERNS, TODAY)
    assert r.input == text
    json.dumps(r.to_json())  # serialisable, whatever came in
    r2 = Interpreter(PATTERNS).interpret(text, TODAY)
    assert r2 == r


# ----------------------------------------------------------------------------- decide

dates = st.one_of(st.none(), st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
lot_info = st.builds(
    LotInfo,
    gtin=st.sampled_from([SERIAL_GTIN, LOT_GTIN]),
    lot=nasty_text,
    expiry=dates,
    status=st.sampled_from(["active", "hold", "recalled"]),
    on_hand=st.integers(-5, 1000),
)
cache_view = st.builds(
    CacheView,
    product=st.one_of(
        st.none(),
        st.builds(
            ProductInfo,
            gtin=st.sampled_from([SERIAL_GTIN, LOT_GTIN]),
            description=nasty_text,
            tracking=st.sampled_from(["none", "serial", "lot"]),
            expiry_warning_days=st.integers(0, 400),
        ),
    ),
    lot=st.one_of(st.none(), lot_info),
    serial=st.one_of(
        st.none(),
        st.builds(
            SerialInfo,
            gtin=st.just(SERIAL_GTIN),
            serial=nasty_text,
            lot=st.one_of(st.none(), nasty_text),
            state=st.sampled_from(
                ["in_stock", "picked", "shipped", "consumed", "destroyed", "expected", "?"]
            ),
            location=nasty_text,
        ),
    ),
    other_lots=st.lists(lot_info, max_size=4).map(tuple),
)
STEPS = [
    "receiving", "storing", "picking", "packing", "unpacking", "shipping", "holding",
    "inspecting", "cycle_counting", "destroying", "returning", "commissioning", "consuming",
    "nonsense",
]  # fmt: skip
rules = st.builds(
    StationRules,
    step=st.sampled_from(STEPS),
    unknown_gtin=st.sampled_from(["accept", "warn", "reject"]),
    fefo=st.sampled_from(["accept", "warn", "reject"]),
    near_expiry=st.sampled_from(["accept", "warn", "reject"]),
    default_quantity=st.integers(1, 10_000),
)


def check_decision(d: Decision) -> None:
    assert d.verdict in ("accept", "warn", "reject")
    if d.verdict == "reject":
        assert d.movement is None, "a rejected scan moves nothing"
    for r in d.reasons:
        assert re.fullmatch(r"[a-z_]+", r.code), r.code
    json.dumps(d.as_payload())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scan_text, rules, cache_view, st.dates(min_value=date(2000, 1, 1)))
def test_decide_never_raises(
    text: str, station: StationRules, view: CacheView, today: date
) -> None:
    interp = interpret(text, PATTERNS, today)
    check_decision(decide(interp, station, view, today))


# ----------------------------------------------------------------------------- labels

TEMPLATES = load_templates()
ALL_VARIANTS = [TEMPLATES.templates[k] for k in sorted(TEMPLATES.templates)]
_CMD = re.compile(r"[\^~][A-Z0-9@]{1,2}")


def commands(zpl: str) -> set[str]:
    return {m[:3] for m in _CMD.findall(zpl)}


def check_label(t: Template, zpl: str) -> None:
    assert zpl.count("^XA") == 1 and zpl.rstrip().endswith("^XZ") and zpl.count("^XZ") == 1
    assert "~" not in zpl, "a ~ command in field data"
    assert no_c0_controls(zpl.replace("\n", "").replace("\r", "")), "raw control characters"
    assert all(ord(c) < 0x7F for c in zpl), "non-ASCII bytes outside ^FH escapes"
    allowed = commands(t.zpl) | {"^FD", "^FH", "^FS"}
    assert commands(zpl) <= allowed, commands(zpl) - allowed
    # every ^FD ends at a ^FS: data cannot run into the next command
    for seg in zpl.split("^FD")[1:]:
        body = seg.split("^FS", 1)[0]
        assert "^" not in body, f"unescaped ^ in field data: {body!r}"


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ALL_VARIANTS),
    st.dictionaries(
        st.sampled_from(["gtin", "lot", "serial", "expiry", "quantity", "description", "sscc"]),
        st.one_of(nasty_text, st.text(), st.sampled_from([LOT_GTIN, "2027-01-31", "12"])),
    ),
)
def test_label_fill_escapes_or_refuses(t: Template, values: dict[str, str]) -> None:
    values = {k: v for k, v in values.items() if k in t.field_names}
    try:
        zpl = fill(t, values)
    except (EncodeError, TemplateError) as exc:
        assert str(exc), "a refusal says why"
        return
    check_label(t, zpl)
    stored = recall_format(t, values)
    assert stored.count("^XA") == 1 and "~" not in stored and no_c0_controls(stored)
    for seg in stored.split("^FD")[1:]:
        assert "^" not in seg.split("^FS", 1)[0]
    assert download_format(t).count("^XA") == 1


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["lot", "serial"]),
    nasty_text.filter(lambda s: 0 < len(s) <= 20),
    nasty_text.filter(lambda s: len(s) <= 80),
)
def test_label_from_a_scan_escapes_or_refuses(name: str, data: str, description: str) -> None:
    """The print-on-accept path: fields from an interpreted scan (+ cache description)."""
    ai = "21" if name == "serial" else "10"
    gtin = SERIAL_GTIN if name == "serial" else LOT_GTIN
    interp = interpret(f"]d201{gtin}17300331{ai}{data}", today=TODAY)
    if not interp.ok:
        return
    d = Decision("accept", (), "receive", quantity=3, expiry=interp.expiry)
    view = CacheView(product=ProductInfo(gtin, description, "lot"))
    fields = label_fields(interp, d, view)
    t = TEMPLATES.get(name, 203, "4x6")
    fields = {k: v for k, v in fields.items() if k in t.field_names}
    try:
        zpl = fill(t, fields)
    except EncodeError:
        return
    check_label(t, zpl)


# ----------------------------------------------------------------------------- logs


#: every hidden character alone, between two letters
HIDDEN_ONE = [f"a{chr(o)}b" for o in sorted(_VISIBLE)]


def outcome_for(text: str, station: StationRules, view: CacheView) -> Outcome:
    interp = interpret(text, PATTERNS, TODAY)
    d = decide(interp, station, view, TODAY)
    scan = RawScan(text, "tunnel", 0.0, 0.0)
    return Outcome(scan, "dock", "event", d.verdict, d.reasons, describe(interp), 7, "x", interp)


@settings(max_examples=400, deadline=None)
@given(scan_text, rules, cache_view)
def test_log_and_console_lines_have_no_raw_c0_controls(
    text: str, station: StationRules, view: CacheView
) -> None:
    o = outcome_for(text, station, view)
    line = o.line()
    assert no_c0_controls(line), repr(line)
    assert "\n" not in line and "\r" not in line
    c = console_line("dock", "tunnel", o.verdict, [r.code for r in o.reasons], 7, text)
    assert no_c0_controls(c), repr(c)
    a = console_line("dock", "tunnel", o.verdict, [], 7, text, ascii_only=True)
    assert a.isascii() and no_c0_controls(a)


@pytest.mark.parametrize("evil", ["\x85", "\x9b2J", "\u2028", "\u2029"])
def test_log_lines_escape_c1_controls_and_line_separators(evil: str) -> None:
    o = outcome_for(f"]C0ABC{evil}FAKE LOG LINE", StationRules("receiving"), CacheView())
    line = o.line()
    assert "\n" not in "x".join(line.splitlines()) and len(line.splitlines()) == 1, repr(line)
    assert no_controls(line), repr(line)
    c = console_line("dock", "tunnel", o.verdict, [], None, f"]C0ABC{evil}")
    assert no_controls(c), repr(c)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x2100)) | st.sampled_from(HIDDEN_ONE))
def test_make_visible_shortcut_changes_nothing(text: str) -> None:
    """Text with no hidden character is returned as it is; any other is translated."""
    assert make_visible(text) == text.translate(_VISIBLE)


# ----------------------------------------------------------------------------- SQL + whole path


class PipelineHarness:
    """Processor + single writer on a real SQLite file (in-process)."""

    def __init__(self, tmp: Path) -> None:
        import threading

        from gateway.config import parse_config
        from gateway.pipeline import ScanProcessor
        from gateway.store.cache_import import import_csv
        from gateway.store.db import open_database
        from gateway.writer import Writer

        self.db = tmp / "gw.db"
        self.cfg = parse_config(
            f"""
[gateway]
site = "s1"
id = "g1"
[storage]
path = "{self.db}"
[stations.ws]
step = "receiving"
location = "DOCK"
unknown_gtin = "accept"
duplicate_window = 0
[scanners.sc]
type = "tcp"
station = "ws"
port = 9
[[patterns]]
kind = "location"
regex = 'LOC-(?P<value>.+)'
[[patterns]]
kind = "command"
regex = '(?P<value>RECEIVE|PUTAWAY|PICK|SHIP|QTY:\\d+|PO:.+)'
""",
            "fuzz.toml",
        )
        engine = open_database(self.db)
        demo = ROOT / "config" / "demo"
        import_csv(engine, demo / "products.csv", demo / "lots.csv", demo / "serials.csv")
        engine.dispose()
        self.outcomes: list[Outcome] = []
        self.cv = threading.Condition()
        self.processor = ScanProcessor(self.cfg, lambda: False, today=lambda: TODAY)
        self.writer = Writer(self.db, self.processor, on_committed=self._done)
        self.writer.start()
        self.t = 0.0

    def _done(self, outs: list[Outcome]) -> None:
        with self.cv:
            self.outcomes.extend(outs)
            self.cv.notify_all()

    def scan(self, codes: list[str]) -> list[Outcome]:
        start = len(self.outcomes)
        for c in codes:
            self.t += 1.0
            self.writer.submit(RawScan(c, "sc", 1.7e9 + self.t, self.t))
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.outcomes) >= start + len(codes), 20)
            return self.outcomes[start:]

    def close(self) -> None:
        self.writer.stop()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineHarness]:
    h = PipelineHarness(tmp_path_factory.mktemp("fuzzdb"))
    yield h
    h.close()


TABLES = {"products", "lots", "lot_stock", "serials", "outbox", "print_jobs", "meta"}


def check_db(db: Path, seeded: bool = True) -> None:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables >= TABLES, TABLES - tables
        seqs = [r[0] for r in con.execute("SELECT seq FROM outbox ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        if seeded:
            assert con.execute("SELECT COUNT(*) FROM products").fetchone()[0] > 0
    finally:
        con.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(scan_text, min_size=1, max_size=12))
@example(["]C101" + LOT_GTIN + "17300331\x1d10O'BRIEN'); DROP TABLE lots;--"])
@example(["]C101" + SERIAL_GTIN + "21X'||(SELECT 1)||'"])
@example(["PO:'; DELETE FROM outbox;--", 'LOC-"; DROP TABLE serials;--'])
def test_scan_path_keeps_hostile_text_as_data(pipeline: PipelineHarness, codes: list[str]) -> None:
    before = pipeline.processor.seq
    outs = pipeline.scan(codes)
    assert len(outs) == len(codes), "every scan has an outcome"
    for code, o in zip(codes, outs, strict=True):
        assert o.scan.text == code
        assert o.verdict in ("accept", "warn", "reject")
        assert all(r.code != "internal_error" for r in o.reasons), o.reasons
        assert no_c0_controls(o.line())
        if o.kind in ("event", "alert") and o.seq is not None:
            assert o.seq > before
    check_db(pipeline.db)
    con = sqlite3.connect(pipeline.db)
    try:
        for o in outs:
            if o.seq is None:
                continue
            (payload,) = con.execute(
                "SELECT payload FROM outbox WHERE seq = ?", (o.seq,)
            ).fetchone()
            p = json.loads(payload)
            assert p["scan"]["raw"] == o.scan.text, "raw scan text kept exactly, as data"
            if o.kind == "event" and o.interpretation is not None and o.interpretation.lot:
                lot = o.interpretation.lot
                rows = con.execute(
                    "SELECT COUNT(*) FROM lots WHERE gtin = ? AND lot = ?",
                    (o.interpretation.gtin, lot),
                ).fetchone()
                assert rows == (1,), f"lot {lot!r} stored exactly"
    finally:
        con.close()


def test_no_shell_anywhere() -> None:
    """No code path hands anything to a shell."""
    offenders = []
    for py in [*ROOT.glob("gateway/**/*.py"), *ROOT.glob("drivers/**/*.py")]:
        src = py.read_text(encoding="utf-8")
        for bad in ("shell=True", "os.system(", "os.popen(", "commands.getoutput"):
            if bad in src:
                offenders.append(f"{py.relative_to(ROOT)}: {bad}")
    assert offenders == []


# ----------------------------------------------------------------------------- process level


@pytest.mark.slow
def test_nasty_codes_over_tcp_keep_the_gateway_running(tmp_path: Path) -> None:
    """Hostile frames to a running gateway: it keeps running; each is an event or alert."""
    import random
    import time

    from tests.conftest import free_port
    from tests.gw_util import GatewayProcess, Pusher, gateway_config, wait_listening

    rng = random.Random(20251121)
    codes: list[str] = []
    for i in range(300):
        parts = [rng.choice(NASTY) for _ in range(rng.randint(1, 5))]
        if i % 3 == 0:
            parts.insert(0, f"]C101{SERIAL_GTIN}21N{i}")
        code = "".join(parts)
        code = "".join(c if ord(c) < 0x100 else "?" for c in code)  # latin-1 on the wire
        code = code.replace("\r", "").replace("\n", "")
        if code.strip("\r\n") == "":
            code = f"EMPTY{i}"
        codes.append(code)
    codes += ["A" * 5000, "]C1" + "\x1d" * 100, "\x00\x01\x02\x03\x04", "'" * 300]
    scan_port = free_port()
    cfg = gateway_config(tmp_path, free_port(), scan_port)  # no broker: all stays in the outbox
    db = tmp_path / "state" / "gw.db"
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    gw.start(wait_port=scan_port)
    try:
        p = Pusher(scan_port)
        p.connect()
        for c in codes:
            p.send(c)
        deadline = time.monotonic() + 30
        n = 0
        while time.monotonic() < deadline:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            n = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            con.close()
            if n >= len(codes):
                break
            time.sleep(0.2)
        p.close()
        assert gw.alive(), "the gateway died on hostile input"
        wait_listening(scan_port, gw)
    finally:
        assert gw.stop() == 0
    check_db(db, seeded=False)
    con = sqlite3.connect(db)
    rows = [json.loads(r[0]) for r in con.execute("SELECT payload FROM outbox ORDER BY seq")]
    con.close()
    assert len(rows) == len(codes), f"{len(rows)} outbox rows for {len(codes)} codes"
    raws = [r.get("scan", {}).get("raw") for r in rows]
    too_long = [r for r in rows if r.get("alert") == "frame_too_long"]
    assert len(too_long) == 1
    assert raws[: len(codes) - 4] == codes[:-4], "each code recorded in order, as sent"
    log = (tmp_path / "gw.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "internal_error" not in log
    for line in log.splitlines():
        assert no_c0_controls(line), repr(line)
    assert len(log.splitlines()) <= 3 * len(codes) + 50, "log volume bounded per scan"
