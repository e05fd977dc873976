"""~HS / ~HQES parsers against documented frames, split reads and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.printers.status import (
    FrameReader,
    StatusParseError,
    parse_hqes,
    parse_hs,
    status_from_hqes,
    status_from_hs,
)

# ZPL II Programming Guide, ~HS example answer.
DOC_HS = (
    b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n"
    b"\x02000,0,0,0,1,2,4,0,00000000,1,000\x03\r\n"
    b"\x021234,0\x03\r\n"
)
HQES_MEDIA_OUT = (
    b"\x02\r\n  PRINTER STATUS\r\n   ERRORS:         1 00000000 00000005\r\n"
    b"   WARNINGS:       0 00000000 00000000\r\n\x03\r\n"
)


def test_documented_hs_is_ready() -> None:
    frames = FrameReader().feed(DOC_HS)
    hs = parse_hs(frames)
    assert hs.label_length == 1245 and hs.formats_in_buffer == 0 and not hs.paper_out
    assert status_from_hs(hs).idle


def test_hs_flags() -> None:
    frames = FrameReader().feed(
        b"\x02030,1,1,1245,002,0,0,0,000,0,0,0\x03\r\n"
        b"\x02000,0,1,1,1,2,4,0,00000003,1,000\x03\r\n\x021234,0\x03\r\n"
    )
    s = status_from_hs(parse_hs(frames))
    assert s.state == "held" and s.problems == ("paper out", "ribbon out", "head open", "paused")
    assert s.labels_remaining == 3 and s.formats_in_buffer == 2


@given(st.lists(st.integers(min_value=1, max_value=len(DOC_HS)), max_size=20))
def test_split_reads(cuts: list[int]) -> None:
    r = FrameReader()
    frames: list[str] = []
    prev = 0
    for c in [*sorted(set(cuts)), len(DOC_HS)]:
        frames += r.feed(DOC_HS[prev:c])
        prev = c
    assert parse_hs(frames).label_length == 1245


def test_garbage_around_frames_is_dropped() -> None:
    frames = FrameReader().feed(b"noise\r\n\x03" + DOC_HS[:10] + b"\x02" + DOC_HS[1:] + b"junk")
    # the truncated first frame is restarted by the next STX
    assert parse_hs(frames[-3:]).label_length == 1245
    assert FrameReader().feed(b"\x02" + b"x" * 2000 + b"\x03") == []


@pytest.mark.parametrize(
    "frames",
    [
        ["a,b"],
        ["1,2,3", "4", "5"],
        ["030,9,0,1245,000,0,0,0,000,0,0,0", "000,0,0,0,1,2,4,0,00000000,1,000", "1234,0"],
    ],
)
def test_bad_hs_raises(frames: list[str]) -> None:
    with pytest.raises(StatusParseError):
        parse_hs(frames)


def test_hqes() -> None:
    q = parse_hqes(HQES_MEDIA_OUT.decode())
    assert q.problems() == ["paper out", "head open"]
    assert status_from_hqes(q).state == "held"
    ok = parse_hqes("ERRORS: 0 00000000 00000000\nWARNINGS: 0 00000000 00000000")
    assert status_from_hqes(ok).state == "unknown"  # silent ~HS and no error: do not send
    paused = parse_hqes("ERRORS: 1 00000000 00010000 WARNINGS: 0 00000000 00000000")
    assert paused.problems() == ["paused"]
    with pytest.raises(StatusParseError):
        parse_hqes("garbage")
