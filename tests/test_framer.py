"""The framer (bytes -> frames -> codes), heartbeat supervision and frame -> RawScan."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.scanners.config import FramerConfig, SerialScanner
from drivers.scanners.framer import Frame, Framer, parse_terminators
from drivers.scanners.reader_base import TOO_LONG_CONTEXT, HeartbeatMonitor, frame_to_scans

GS, RS, EOT, STX, ETX = "\x1d", "\x1e", "\x04", "\x02", "\x03"


def framer(**kw: Any) -> Framer:
    return Framer(FramerConfig(**kw))


def codes(frames: list[Frame]) -> list[tuple[str, ...]]:
    return [f.codes for f in frames]


def feed_all(f: Framer, chunks: list[bytes], t: float = 0.0) -> list[Frame]:
    out: list[Frame] = []
    for c in chunks:
        out += f.feed(c, t)
    return out


# -- terminators ---------------------------------------------------------------


def test_parse_terminators_longest_first_and_escapes() -> None:
    assert parse_terminators("\\n|\\r\\n|\\r") == (b"\r\n", b"\n", b"\r")
    assert parse_terminators("<ETX>") == (b"\x03",)
    assert parse_terminators("") == ()
    with pytest.raises(ValueError):
        parse_terminators("\r||\n")


@pytest.mark.parametrize("term", ["\r", "\n", "\r\n"])
def test_default_terminators_each(term: str) -> None:
    f = framer()
    out = f.feed(f"ABC{term}DEF{term}".encode(), 0.0)
    assert codes(out) == [("ABC",), ("DEF",)]
    assert out[0].raw == b"ABC"
    assert f.pending == b""


@pytest.mark.parametrize("term", ["\r", "\n", "\r\n", "\x03", "END", "\r\n\r\n"])
def test_single_configured_terminator(term: str) -> None:
    f = framer(terminator=term)
    out = feed_all(f, [f"A1{term}B2{term}C".encode()])
    assert codes(out) == [("A1",), ("B2",)]
    assert f.pending == b"C"


def test_crlf_split_across_feeds_gives_no_empty_frame() -> None:
    f = framer()
    assert codes(f.feed(b"ABC\r", 0.0)) == [("ABC",)]  # CR already ends the frame
    assert f.feed(b"\n", 0.01) == []  # the LF does not make an empty frame
    assert codes(f.feed(b"DEF\r", 0.02)) == [("DEF",)]
    assert codes(f.feed(b"\nGHI\r\n", 0.03)) == [("GHI",)]


def test_crlf_only_terminator_waits_for_lf_across_feeds() -> None:
    f = framer(terminator="\\r\\n")
    assert f.feed(b"A\rB\r", 0.0) == []  # a lone CR is data with this terminator
    out = f.feed(b"\n", 0.0)
    assert [fr.raw for fr in out] == [b"A\rB"]
    assert codes(out) == [("A\rB",)]  # CR inside the code is kept, only ends are stripped


def test_terminator_split_byte_by_byte() -> None:
    f = framer(terminator="<CR><LF>")
    out = feed_all(f, [bytes([b]) for b in b"X1\r\nX2\r\n"])
    assert codes(out) == [("X1",), ("X2",)]


def test_empty_frames_dropped() -> None:
    assert framer().feed(b"\r\n\r\n\n\r", 0.0) == []


def test_gs_rs_eot_are_data() -> None:
    code = f"]d2{RS}01095011010209171719050810ABCD1234{GS}2110{EOT}"
    out = framer().feed(code.encode("latin-1") + b"\r\n", 0.0)
    assert codes(out) == [(code,)]


def test_spaces_are_data_only_crlf_stripped() -> None:
    f = framer(terminator="\\n")
    assert codes(f.feed(b"\r A B \r\n", 0.0)) == [(" A B ",)]


def test_bad_bytes_never_raise() -> None:
    f = framer(encoding="utf-8")
    out = f.feed(b"\xff\xfeAB\n", 0.0)
    assert codes(out) == [("\ufffd\ufffdAB",)]
    assert codes(framer().feed(b"\xe9\xff\n", 0.0)) == [("é\xff",)]  # latin-1 default


# -- STX ... ETX ---------------------------------------------------------------


def test_stx_etx_with_garbage_around() -> None:
    f = framer(stx_etx=True)
    out = f.feed(b"noise\x02ABC\x03\r\n??\x02DEF\x03", 0.0)
    assert codes(out) == [("ABC",), ("DEF",)]
    assert f.garbage_bytes == len("noise") + 2  # CR/LF between frames are not garbage


def test_stx_etx_terminators_are_data_inside() -> None:
    f = framer(stx_etx=True)
    out = f.feed(b"\x02A\rB\x03", 0.0)
    assert codes(out) == [("A\rB",)]


def test_stx_etx_split_across_feeds() -> None:
    f = framer(stx_etx=True)
    out = feed_all(f, [b"\x02AB", b"C", b"\x03\x02", b"D\x03"])
    assert codes(out) == [("ABC",), ("D",)]


def test_stx_restarts_an_unfinished_frame() -> None:
    f = framer(stx_etx=True)
    out = f.feed(b"\x02BROKEN\x02GOOD\x03", 0.0)
    assert codes(out) == [("GOOD",)]
    assert f.garbage_bytes == len("BROKEN") + 1


def test_stx_etx_incomplete_frame_discarded_at_idle_timeout() -> None:
    f = framer(stx_etx=True, idle_timeout=0.1)
    assert f.feed(b"\x02PART", 0.0) == []
    assert f.next_deadline() == pytest.approx(0.1)
    assert f.flush_idle(0.2) == []
    assert f.garbage_bytes == 5
    assert codes(f.feed(b"\x03\x02OK\x03", 0.3)) == [("OK",)]  # the late ETX is garbage
    assert f.garbage_bytes == 6


def test_stx_etx_too_long() -> None:
    f = framer(stx_etx=True, max_length=16)
    out = f.feed(b"\x02" + b"X" * 20, 0.0)
    assert [fr.kind for fr in out] == ["too_long"]
    assert out[0].raw == b"X" * 16
    assert f.feed(b"YYYY\x03\x02OK\x03", 0.0)[0].codes == ("OK",)


# -- idle timeout --------------------------------------------------------------


def test_idle_timeout_ends_a_frame() -> None:
    f = framer(terminator="", idle_timeout=0.05)
    assert f.next_deadline() is None
    assert f.feed(b"ABC", 1.0) == []
    assert f.feed(b"DEF", 1.03) == []
    assert f.next_deadline() == pytest.approx(1.08)
    assert f.flush_idle(1.07) == []
    assert codes(f.flush_idle(1.08)) == [("ABCDEF",)]
    assert f.next_deadline() is None
    assert f.flush_idle(5.0) == []


def test_late_data_after_idle_gap_starts_a_new_frame() -> None:
    f = framer(terminator="", idle_timeout=0.05)
    f.feed(b"ABC", 0.0)
    assert codes(f.feed(b"DEF", 1.0)) == [("ABC",)]  # feed flushes the overdue frame first
    assert codes(f.flush_idle(2.0)) == [("DEF",)]


def test_idle_timeout_together_with_terminator() -> None:
    f = framer(idle_timeout=0.05)
    assert codes(f.feed(b"A\rB", 0.0)) == [("A",)]
    assert codes(f.flush_idle(0.05)) == [("B",)]


# -- max length ----------------------------------------------------------------


def test_too_long_reported_once_rest_discarded() -> None:
    f = framer(max_length=16)
    out = f.feed(b"0123456789" * 2, 0.0)
    assert [fr.kind for fr in out] == ["too_long"]
    assert out[0].raw == b"0123456789012345"
    assert f.feed(b"more and more and more", 0.0) == []  # no second report
    assert codes(f.feed(b"tail\r\nNEXT\r\n", 0.0)) == [("NEXT",)]


def test_exactly_max_length_is_fine_even_with_pending_cr() -> None:
    f = framer(max_length=16, terminator="\\r\\n")
    assert f.feed(b"A" * 16 + b"\r", 0.0) == []
    assert codes(f.feed(b"\n", 0.0)) == [("A" * 16,)]
    out = f.feed(b"B" * 17 + b"\r\n", 0.0)
    assert [fr.kind for fr in out] == ["too_long"]


def test_too_long_in_idle_mode_and_recovery() -> None:
    f = framer(terminator="", idle_timeout=0.05, max_length=16)
    out = feed_all(f, [b"X" * 10, b"X" * 10])
    assert [fr.kind for fr in out] == ["too_long"]
    assert f.flush_idle(1.0) == []  # silence ends the discarded frame
    f.feed(b"SHORT", 2.0)
    assert codes(f.flush_idle(3.0)) == [("SHORT",)]


def test_too_long_with_terminator_in_same_chunk() -> None:
    out = framer(max_length=16).feed(b"Z" * 30 + b"\nOK\n", 0.0)
    assert [(fr.kind, fr.codes) for fr in out] == [("too_long", ()), ("codes", ("OK",))]


# -- separator, no-read, heartbeat ---------------------------------------------


def test_separator_splits_codes_and_drops_empty() -> None:
    f = framer(separator=";")
    out = f.feed(b";A1;;B2;\r\n", 0.0)
    assert codes(out) == [("A1", "B2")]
    assert f.feed(b";;\r\n", 0.0) == []


def test_separator_with_escape() -> None:
    out = framer(separator="<TAB>").feed(b"A\tB\n", 0.0)
    assert codes(out) == [("A", "B")]


def test_no_read_whole_frame() -> None:
    out = framer(no_read="NOREAD").feed(b"NOREAD\r\n", 0.0)
    assert [(fr.kind, fr.codes, fr.no_reads) for fr in out] == [("no_read", (), 1)]


def test_no_read_inside_multi_code_frame() -> None:
    f = framer(no_read="NR", separator=",")
    out = f.feed(b"NR,NR\nA,NR,B\nNRX\n", 0.0)
    assert [(fr.kind, fr.codes, fr.no_reads) for fr in out] == [
        ("no_read", (), 2),
        ("codes", ("A", "B"), 1),
        ("codes", ("NRX",), 0),  # exact match only
    ]


def test_heartbeat_exact_match() -> None:
    f = framer(heartbeat="<STX>HB", separator=";")
    out = f.feed(b"\x02HB\n\x02HB;X\nHB\n", 0.0)
    assert [(fr.kind, fr.codes) for fr in out] == [
        ("heartbeat", ()),
        ("codes", ("\x02HB", "X")),
        ("codes", ("HB",)),
    ]


def test_reset_drops_partial_frame() -> None:
    f = framer(idle_timeout=0.1)
    f.feed(b"PARTIAL", 0.0)
    f.reset()
    assert f.pending == b"" and f.next_deadline() is None
    assert codes(f.feed(b"X\n", 0.0)) == [("X",)]


# -- property: whatever the chunking, the codes come back --------------------------

_code = st.text(
    alphabet=st.characters(min_codepoint=0x04, max_codepoint=0xFF, exclude_characters="\r\n;"),
    min_size=1,
    max_size=40,
)
_FRAMINGS: dict[str, tuple[dict[str, Any], bytes, bytes]] = {
    "crlf": ({}, b"", b"\r\n"),
    "lf": ({"terminator": "\\n"}, b"", b"\n"),
    "cr": ({"terminator": "\\r"}, b"", b"\r"),
    "stx": ({"stx_etx": True}, b"\x02", b"\x03\r\n"),
}


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.lists(_code, min_size=1, max_size=4), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20),
    framing=st.sampled_from(sorted(_FRAMINGS)),
)
def test_any_chunking_gives_back_the_codes(
    frames: list[list[str]], cuts: list[int], framing: str
) -> None:
    kw, head, tail = _FRAMINGS[framing]
    if framing == "stx":
        frames = [[c.replace("\x02", "").replace("\x03", "") or "x" for c in fr] for fr in frames]
    f = framer(separator=";", **kw)
    stream = b"".join(head + ";".join(fr).encode("latin-1") + tail for fr in frames)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    got = feed_all(f, chunks)
    assert [list(fr.codes) for fr in got] == frames
    assert all(fr.kind == "codes" for fr in got)


# -- heartbeat supervision -----------------------------------------------------


def test_heartbeat_monitor_lost_once_then_alive() -> None:
    m = HeartbeatMonitor(interval=1.0)
    assert m.check(100.0) is None  # not armed before start()
    m.start(0.0)
    assert m.deadline() == pytest.approx(2.5)
    assert m.check(2.4) is None
    assert m.observe(2.0) is None  # data pushes the deadline
    assert m.check(4.4) is None
    assert m.check(4.5) == "heartbeat_lost"
    assert m.check(10.0) is None  # reported once
    assert m.observe(11.0) == "alive"
    assert m.observe(11.5) is None
    assert m.check(13.9) is None
    assert m.check(14.0) == "heartbeat_lost"


def test_heartbeat_monitor_disabled_and_stopped() -> None:
    off = HeartbeatMonitor(interval=0.0)
    off.start(0.0)
    assert not off.enabled and off.check(1e9) is None and off.deadline() is None
    m = HeartbeatMonitor(interval=1.0)
    m.start(0.0)
    m.stop()
    assert m.check(100.0) is None


# -- frame -> RawScan ----------------------------------------------------------


def test_frame_to_scans_multi_code() -> None:
    scans = frame_to_scans(Frame(("A", "B"), "codes", b"A;B"), "tun1", 7, 1000.0, 5.0)
    assert [(s.text, s.frame_id, s.frame_size, s.error) for s in scans] == [
        ("A", 7, 2, None),
        ("B", 7, 2, None),
    ]
    assert scans[0].scanner == "tun1" and scans[0].received_at == 1000.0
    assert scans[0].monotonic == 5.0


def test_frame_to_scans_no_read_too_long_heartbeat() -> None:
    (nr,) = frame_to_scans(Frame((), "no_read", b"NOREAD"), "t", 1, 0.0, 0.0)
    assert (nr.text, nr.error) == ("", "no_read")
    (tl,) = frame_to_scans(Frame((), "too_long", b"Q" * 100), "t", 2, 0.0, 0.0)
    assert tl.error == "frame_too_long" and tl.text == "Q" * TOO_LONG_CONTEXT
    assert frame_to_scans(Frame((), "heartbeat", b"HB"), "t", 3, 0.0, 0.0) == []


# -- config validation -----------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"terminator": ""},  # nothing would ever end a frame
        {"terminator": "\\r||\\n"},
        {"encoding": "no-such-codec"},
        {"terminator": "\u20ac"},  # not one latin-1 byte
    ],
)
def test_framer_config_rejects(kw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FramerConfig(**kw)


def test_framer_config_accepts_other_ways_to_end_frames() -> None:
    assert FramerConfig(terminator="", stx_etx=True).stx_etx
    assert FramerConfig(terminator="", idle_timeout=0.05).idle_timeout == 0.05


def test_serial_beep_bytes_must_be_bytes() -> None:
    ok = SerialScanner(type="serial", station="s", port="/dev/null", good_read_bytes="\\x07")
    assert ok.good_read_bytes == "\\x07"
    with pytest.raises(ValidationError):
        SerialScanner(type="serial", station="s", port="/dev/null", bad_read_bytes="\u2603")
