"""Tunnel gates: assembling package reads, GS1 rules across a package, no-read stats."""

from __future__ import annotations

import itertools
import queue
import time
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.scanners.types import RawScan
from gateway.rules.gates import (
    Gate,
    GateAssembler,
    GateConfig,
    GateWorker,
    NoReadStats,
    check_package,
    lifted_errors,
    merge_package,
    package_errors,
    package_view,
)
from gs1.interpret import Interpretation, interpret

TODAY = date(2025, 6, 1)
SSCC = "]C100395123450000000017"
SSCC2 = "]C100395123450000000024"
SSCC_BAD = "]C100395123450000000016"
CONTENT = "]C10209506000134352" + "3712"  # (02) content GTIN + (37) count
BATCH = "]C115260101" + "10LOT1"  # (15) best before + (10) lot, no GTIN
COUNT = "]C13712"  # (37) alone
GTIN_01 = "]C10109506000134352"
EAN = "]E09506000134352"


def scan(
    text: str,
    t: float,
    reader: str = "r1",
    frame: int | None = None,
    size: int = 1,
    no_read: bool = False,
) -> RawScan:
    if no_read:
        return RawScan("", reader, 1000 + t, t, frame, size, "no_read", "reader sent no-read")
    return RawScan(text, reader, 1000 + t, t, frame, size)


def asm(readers: tuple[str, ...] = ("r1",), **kw: object) -> GateAssembler:
    return GateAssembler("dock", GateConfig(enabled=True, **kw), readers)  # type: ignore[arg-type]


def texts(g: Gate) -> list[str]:
    return [s.text for s in g.codes]


def p(text: str) -> Interpretation:
    return interpret(text, (), TODAY)


# -- config ----------------------------------------------------------------------------------


def test_config_defaults_and_validation() -> None:
    c = GateConfig()
    assert (c.enabled, c.window, c.per_frame, c.expect) == (False, 0.3, True, 0)
    for bad in ({"window": 0}, {"window": -1}, {"expect": -1}, {"windw": 1}):
        with pytest.raises(ValidationError):
            GateConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        c.window = 1


# -- assembling ------------------------------------------------------------------------------


def test_single_reader_frame_closes_the_gate_at_its_last_code() -> None:
    a = asm()
    assert a.feed(scan("A", 1.0, frame=7, size=3)) == []
    assert a.next_deadline() == pytest.approx(1.3)
    assert a.feed(scan("B", 1.0, frame=7, size=3)) == []
    [g] = a.feed(scan("C", 1.0, frame=7, size=3))
    assert texts(g) == ["A", "B", "C"]
    assert (g.station, g.no_read, g.closed_by, g.readers) == ("dock", False, "frame", ("r1",))
    assert (g.opened_at, g.closed_at, g.duplicates) == (1.0, 1.0, 0)
    assert a.next_deadline() is None


def test_identical_codes_are_one_first_kept() -> None:
    a = asm()
    first = scan("A", 2.0, frame=1, size=3)
    a.feed(first)
    a.feed(scan("B", 2.0, frame=1, size=3))
    [g] = a.feed(RawScan("A", "r1", 5.0, 2.0, 1, 3))
    assert texts(g) == ["A", "B"]
    assert g.codes[0] is first
    assert g.duplicates == 1


def test_window_groups_several_readers() -> None:
    a = asm(("r1", "r2", "r3"), window=0.5)
    assert a.feed(scan("A", 10.0, "r1", frame=1)) == []  # several readers: a frame does not close
    assert a.feed(scan("B", 10.2, "r2", frame=1)) == []
    assert a.feed(scan("A", 10.3, "r3", frame=2, size=2)) == []
    assert a.feed(scan("C", 10.3, "r3", frame=2, size=2)) == []
    assert a.tick(10.49) == []
    [g] = a.tick(10.7)
    assert texts(g) == ["A", "B", "C"]
    assert (g.readers, g.duplicates, g.closed_by) == (("r1", "r2", "r3"), 1, "window")
    assert (g.opened_at, g.closed_at) == (10.0, 10.5)  # closed at the deadline, not the tick
    assert a.tick(20.0) == []


def test_a_scan_after_the_deadline_closes_the_old_gate_and_opens_a_new_one() -> None:
    a = asm(("r1", "r2"), window=0.5)
    a.feed(scan("A", 1.0))
    [old] = a.feed(scan("B", 1.5))  # exactly at the deadline: next package
    assert (texts(old), old.closed_at, old.closed_by) == (["A"], 1.5, "window")
    assert a.next_deadline() == 2.0
    [new] = a.flush(1.7)
    assert (texts(new), new.opened_at, new.closed_at, new.closed_by) == (["B"], 1.5, 1.7, "flush")
    assert a.flush(1.8) == []


def test_per_frame_several_readers_a_second_frame_of_one_reader_is_the_next_package() -> None:
    a = asm(("r1", "r2"), window=1.0)
    a.feed(scan("A", 1.0, "r1", frame=1))
    a.feed(scan("B", 1.1, "r2", frame=5))
    [g] = a.feed(scan("C", 1.2, "r1", frame=2))
    assert (texts(g), g.closed_by, g.closed_at) == (["A", "B"], "next", 1.2)
    [g2] = a.tick(2.2)
    assert texts(g2) == ["C"]
    assert g2.opened_at == 1.2


def test_without_per_frame_frames_are_grouped_by_window() -> None:
    a = asm(per_frame=False, window=0.5)
    assert a.feed(scan("A", 1.0, frame=1)) == []
    assert a.feed(scan("B", 1.1, frame=2)) == []
    [g] = a.tick(1.5)
    assert texts(g) == ["A", "B"]


def test_keyboard_scans_without_frame_id_use_the_window_only() -> None:
    a = asm(window=0.5)  # one reader, per_frame, but no frame ids
    assert a.feed(scan("A", 1.0)) == []
    assert a.feed(scan("B", 1.2)) == []
    [g] = a.tick(1.6)
    assert texts(g) == ["A", "B"]


def test_expect_closes_early_and_duplicates_do_not_count() -> None:
    a = asm(("r1", "r2"), expect=2, window=5.0)
    assert a.feed(scan("A", 1.0, "r1")) == []
    assert a.feed(scan("A", 1.1, "r2")) == []
    [g] = a.feed(scan("B", 1.2, "r2"))
    assert (texts(g), g.closed_by, g.duplicates, g.closed_at) == (["A", "B"], "expect", 1, 1.2)


def test_a_lone_reader_no_read_frame_is_a_no_read_gate_at_once() -> None:
    a = asm()
    nr = scan("", 3.0, frame=4, no_read=True)
    [g] = a.feed(nr)
    assert (g.no_read, g.codes, g.no_reads, g.readers) == (True, (), (nr,), ("r1",))


def test_a_no_read_beside_a_read_is_not_a_no_read() -> None:
    a = asm(("r1", "r2"))
    a.feed(scan("", 1.0, "r1", frame=1, no_read=True))
    a.feed(scan("A", 1.1, "r2", frame=1))
    [g] = a.tick(2.0)
    assert (g.no_read, texts(g), len(g.no_reads), g.readers) == (False, ["A"], 1, ("r1", "r2"))


def test_all_readers_no_read_is_a_no_read() -> None:
    a = asm(("r1", "r2"))
    a.feed(scan("", 1.0, "r1", frame=1, no_read=True))
    a.feed(scan("", 1.1, "r2", frame=1, no_read=True))
    [g] = a.tick(2.0)
    assert g.no_read and len(g.no_reads) == 2 and g.codes == ()


def test_a_trigger_nothing_answers_is_a_no_read() -> None:
    a = asm(window=0.5)
    assert a.trigger(1.0) == []
    assert a.next_deadline() == 1.5
    [g] = a.tick(1.5)
    assert (g.no_read, g.readers, g.no_reads, g.closed_by) == (True, (), (), "window")


def test_codes_after_a_trigger_join_its_gate_and_a_new_trigger_closes_it() -> None:
    a = asm(("r1", "r2"), window=0.5)
    a.trigger(1.0)
    a.feed(scan("A", 1.2))
    [g] = a.trigger(1.3)
    assert (texts(g), g.opened_at, g.closed_at, g.closed_by) == (["A"], 1.0, 1.3, "trigger")
    [empty] = a.tick(1.8)
    assert empty.no_read


def test_no_readers_given_counts_as_one_reader() -> None:
    a = GateAssembler("dock", GateConfig(enabled=True), ())
    [g] = a.feed(scan("A", 1.0, frame=1))
    assert g.closed_by == "frame"


_scan_steps = st.lists(
    st.tuples(
        st.floats(0, 0.4),  # time step
        st.sampled_from(["r1", "r2", "r3"]),
        st.lists(st.sampled_from(["A", "B", "C", "D", ""]), min_size=1, max_size=3),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=_scan_steps,
    window=st.floats(0.05, 1.0),
    per_frame=st.booleans(),
    expect=st.integers(0, 3),
    nreaders=st.integers(1, 3),
)
def test_every_scan_lands_in_exactly_one_gate(
    steps: list[tuple[float, str, list[str]]],
    window: float,
    per_frame: bool,
    expect: int,
    nreaders: int,
) -> None:
    readers = ("r1", "r2", "r3")[:nreaders]
    a = asm(readers, window=window, per_frame=per_frame, expect=expect)
    gates: list[Gate] = []
    t, fed = 0.0, 0
    for fid, (dt, reader, frame) in enumerate(steps):
        t += dt
        gates += a.tick(t)
        for text in frame:
            gates += a.feed(scan(text, t, reader, fid, len(frame), no_read=text == ""))
            fed += 1
    gates += a.flush(t + 10)
    assert sum(len(g.codes) + g.duplicates + len(g.no_reads) for g in gates) == fed
    for g in gates:
        assert len(set(texts(g))) == len(g.codes)
        assert g.no_read == (not g.codes)
        assert g.opened_at <= g.closed_at <= g.opened_at + window + 1e-9 or g.closed_by == "flush"
        assert all(g.opened_at <= s.monotonic <= g.closed_at for s in g.codes + g.no_reads)
        if expect:
            assert len(g.codes) <= expect
    for before, after in itertools.pairwise(gates):
        assert before.closed_at <= after.opened_at


# -- GS1 rules across a package --------------------------------------------------------------


def test_logistic_label_split_over_symbols_is_lifted_and_merged() -> None:
    interps = [p(SSCC), p(CONTENT), p(BATCH)]
    assert interps[2].error_codes() == ("pairing", "pairing")
    assert lifted_errors(interps) == [(2, interps[2].errors)]
    assert package_errors(interps) == [(0, ()), (1, ()), (2, ())]
    assert check_package(interps) == ()
    m = merge_package(interps)
    assert m is not None
    assert (m.sscc, m.gtin, m.count, m.lot) == ("395123450000000017", "09506000134352", 12, "LOT1")
    assert m.best_before == date(2026, 1, 1)
    assert m.kind == "sscc"  # (00) without (01), as interpret() names it
    assert m.symbology == "]C1"
    assert m.input == "\n".join([SSCC, CONTENT, BATCH])
    assert [ai for ai, _ in m.ais] == ["00", "02", "37", "15", "10"]
    assert m.ok and m.errors == ()


def test_count_beside_an_sscc_symbol_is_lifted() -> None:
    interps = [p(COUNT), p(SSCC)]
    assert interps[0].error_codes() == ("pairing",)
    assert package_errors(interps) == [(0, ()), (1, ())]
    assert lifted_errors(interps) == [(0, interps[0].errors)]


def test_a_lone_symbol_keeps_its_pairing_error() -> None:
    interps = [p(BATCH)]
    assert package_errors(interps) == [(0, interps[0].errors)]
    assert lifted_errors(interps) == []
    assert merge_package(interps) is None


def test_a_non_gs1_code_lifts_nothing() -> None:
    interps = [p(BATCH), p("]C0HELLO")]
    assert package_errors(interps)[0] == (0, interps[0].errors)


def test_a_symbol_with_a_bad_check_digit_cannot_vouch() -> None:
    interps = [p(COUNT), p(SSCC_BAD)]
    assert package_errors(interps) == [(0, interps[0].errors), (1, interps[1].errors)]
    assert check_package(interps) == ()  # the bad symbol fails on its own


def test_two_sscc_values_are_ambiguous_and_a_conflict() -> None:
    interps = [p(COUNT), p(SSCC), p(SSCC2)]
    assert package_errors(interps)[0] == (0, interps[0].errors)  # which pallet? not lifted
    errs = check_package(interps)
    assert errs == (
        "pairing: AI (00) occurs twice with different values (across the codes of one package)",
    )
    view = package_view(interps)
    assert view[1].errors == errs and view[2].errors == errs
    assert merge_package(interps) is None


def test_exclusive_ais_across_symbols() -> None:
    interps = [p(GTIN_01), p(CONTENT)]
    assert check_package(interps) == (
        "pairing: AIs (01) and (02) must not occur together (across the codes of one package)",
        "pairing: AIs (01) and (37) must not occur together (across the codes of one package)",
    )
    assert merge_package(interps) is None


def test_per_symbol_conflicts_are_not_repeated_at_package_level() -> None:
    bad = p("]C10109506000134352" + "0209506000134352" + "3712")  # (01)+(02) in one symbol
    assert "pairing" in bad.error_codes()
    assert check_package([bad, p(SSCC)]) == ()


def test_same_gtin_in_two_symbologies_merges() -> None:
    interps = [p(EAN), p("]C10109506000134352" + "10LOT7")]
    m = merge_package(interps)
    assert m is not None
    assert (m.gtin, m.lot, m.kind, m.symbology) == ("09506000134352", "LOT7", "gs1", None)
    assert m.ais == (("01", "09506000134352"), ("10", "LOT7"))


def test_two_copies_of_one_gtin_merge_to_a_gtin() -> None:
    m = merge_package([p(EAN), p(GTIN_01)])
    assert m is not None and m.kind == "gtin"


def test_merge_ignores_non_gs1_codes_and_returns_a_single_symbol_as_is() -> None:
    one = p(SSCC)
    assert merge_package([p("]C0HELLO"), one]) == one
    assert merge_package([p("]C0HELLO")]) is None
    assert merge_package([]) is None


def test_merge_refuses_a_symbol_with_a_remaining_error() -> None:
    assert merge_package([p(SSCC_BAD), p(CONTENT)]) is None


def test_merge_keeps_warnings_once() -> None:
    a = p(SSCC)
    warned = replace(p(CONTENT), warnings=("missing_separator: x",))
    m = merge_package([a, warned, warned])
    assert m is not None and m.warnings == ("missing_separator: x",)


def test_package_view_leaves_clean_and_foreign_codes_alone() -> None:
    foreign, clean = p("]C0HELLO"), p(SSCC)
    view = package_view([foreign, clean])
    assert view[0] is foreign and view[1] is clean


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([SSCC, SSCC2, SSCC_BAD, CONTENT, BATCH, COUNT, GTIN_01, EAN]), max_size=5
    )
)
def test_lifting_only_removes_pairing_errors(codes: list[str]) -> None:
    interps = [p(c) for c in codes]
    for (_, remaining), it in zip(package_errors(interps), interps, strict=True):
        assert set(remaining) <= set(it.errors)
        assert all(e.startswith("pairing:") for e in set(it.errors) - set(remaining))
    m = merge_package(interps)
    assert m is None or m.ok


# -- metrics ---------------------------------------------------------------------------------


def _gate(station: str, no_read: bool, dups: int = 0) -> Gate:
    codes = () if no_read else (scan("A", 1.0),)
    return Gate(station, codes, no_read, 1.0, 1.3, ("r1",), dups)


def test_no_read_stats() -> None:
    s = NoReadStats(recent=2)
    assert (s.gates("a"), s.no_reads("a"), s.rate("a"), s.recent_rate("a")) == (0, 0, 0.0, 0.0)
    for nr in (True, True, False, False):
        s.record(_gate("a", nr, dups=1))
    s.record(_gate("b", True))
    assert (s.gates("a"), s.no_reads("a"), s.rate("a"), s.recent_rate("a")) == (4, 2, 0.5, 0.0)
    assert s.stations() == ("a", "b")
    assert s.snapshot() == {
        "a": {"gates": 4, "no_reads": 2, "duplicates": 4, "rate": 0.5, "recent_rate": 0.0},
        "b": {"gates": 1, "no_reads": 1, "duplicates": 0, "rate": 1.0, "recent_rate": 1.0},
    }


# -- the worker thread -----------------------------------------------------------------------


def _worker(window: float = 0.1) -> tuple[GateWorker, queue.SimpleQueue[Gate]]:
    out: queue.SimpleQueue[Gate] = queue.SimpleQueue()
    w = GateWorker({"dock": asm(("r1", "r2"), window=window)}, out.put)
    w.start()
    return w, out


def test_worker_closes_a_gate_after_its_window() -> None:
    w, out = _worker()
    try:
        now = time.monotonic()
        w.submit("dock", scan("A", now, "r1"))
        w.submit("dock", scan("B", now + 0.01, "r2"))
        g = out.get(timeout=2)
        assert texts(g) == ["A", "B"] and g.closed_by == "window"
        assert time.monotonic() >= now + 0.1
    finally:
        w.stop()


def test_worker_trigger_without_reads_emits_a_no_read() -> None:
    w, out = _worker(window=0.05)
    try:
        w.trigger("dock")
        assert out.get(timeout=2).no_read
    finally:
        w.stop()


def test_worker_stop_flushes_the_open_gate() -> None:
    w, out = _worker(window=30)
    w.submit("dock", scan("A", time.monotonic()))
    w.stop()
    g = out.get(timeout=1)
    assert texts(g) == ["A"] and g.closed_by == "flush"


def test_worker_passes_a_scan_of_an_unknown_station_on_alone() -> None:
    w, out = _worker()
    try:
        w.submit("elsewhere", scan("Z", 5.0))
        g = out.get(timeout=2)
        assert (g.station, texts(g), g.no_read) == ("elsewhere", ["Z"], False)
    finally:
        w.stop()


def test_worker_survives_a_failing_sink() -> None:
    got: queue.SimpleQueue[Gate] = queue.SimpleQueue()
    calls = 0

    def sink(g: Gate) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        got.put(g)

    w = GateWorker({"dock": asm(("r1", "r2"), window=0.05)}, sink)
    w.start()
    try:
        w.submit("dock", scan("A", time.monotonic()))
        time.sleep(0.2)
        w.submit("dock", scan("B", time.monotonic()))
        assert texts(got.get(timeout=2)) == ["B"]
    finally:
        w.stop()
