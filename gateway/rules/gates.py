"""Tunnel gates: grouping a station's codes into one package read (pure core + thin worker).

A *gate* is one package passing a station's readers. :class:`GateAssembler` (pure: no
clock, no I/O; times are passed in) collects the station's :class:`RawScan` values:

- The first scan (or :meth:`GateAssembler.trigger`, e.g. a photo eye) opens a gate; it
  stays open for ``window`` seconds. A scan arriving at or after the deadline closes the
  old gate and opens the next one.
- ``per_frame``: a stream reader's frame (``frame_id``/``frame_size``) is one package
  read. When the station has one reader, a complete frame closes the gate at once.
  With several readers, a second frame from the same reader starts the next package.
  Scans without ``frame_id`` (keyboard/HID scanners) are grouped by window only.
- ``expect > 0``: the gate closes as soon as that many distinct codes arrived.
- Identical texts within a gate are one code (first occurrence kept, order kept);
  the extra copies are counted in :attr:`Gate.duplicates`.
- ``no_read`` scans are remembered but are not codes; a gate without any code is a
  no-read (``Gate.no_read``) — also one opened by a trigger that nothing answered.

Package rules (pure, over :class:`Interpretation` values of one gate): a per-symbol
``pairing`` error such as "(10) requires (01) or (02)..." is lifted when another clean
symbol of the same package carries the missing AI with one unambiguous value (a GS1
logistic label splits (00), (02)+(37) and (10)+(15) over several symbols).
:func:`check_package` reports conflicts that only exist across symbols (one AI with two
values, AIs that exclude each other). :func:`merge_package` combines a consistent
package into one interpretation.

:class:`GateWorker` is the thin shell: a thread that feeds assemblers and ticks them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pydantic import BaseModel, ConfigDict, Field

from drivers.scanners.types import RawScan
from gs1.interpret import Interpretation, Kind
from gs1.rules import Element, pairing_errors

log = logging.getLogger(__name__)

#: Interpretation kinds that carry GS1 element strings.
GS1_KINDS: frozenset[Kind] = frozenset({"gs1", "gtin", "sscc", "digital_link"})


class GateConfig(BaseModel):
    """``[stations.X.gate]``: how a station groups codes into package reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    window: float = Field(
        default=0.3, gt=0, le=30, description="Seconds after the first code/trigger."
    )
    per_frame: bool = Field(default=True, description="A reader's multi-code frame is a package.")
    expect: int = Field(default=0, ge=0, description="Close once this many codes; 0: window.")


@dataclass(frozen=True, slots=True)
class Gate:
    """One package read: its distinct codes, or a no-read."""

    station: str
    codes: tuple[RawScan, ...]
    no_read: bool
    opened_at: float  # monotonic
    closed_at: float  # monotonic: deadline, completing scan, or trigger/flush time
    readers: tuple[str, ...]  # readers that sent anything (codes or no-reads), first seen first
    duplicates: int
    no_reads: tuple[RawScan, ...] = ()  # the no-read scans received
    closed_by: str = "window"  # window | frame | expect | next | trigger | flush


@dataclass
class _Open:
    opened_at: float
    deadline: float
    codes: list[RawScan] = field(default_factory=list)
    texts: set[str] = field(default_factory=set)
    readers: list[str] = field(default_factory=list)
    no_reads: list[RawScan] = field(default_factory=list)
    duplicates: int = 0
    frames: dict[tuple[str, int], int] = field(default_factory=dict)  # received per frame


class GateAssembler:
    """Groups one station's scans into gates. Not thread-safe (one caller)."""

    def __init__(self, station: str, cfg: GateConfig, readers: Collection[str] = ()) -> None:
        self.station = station
        self.cfg = cfg
        self.single_reader = len(set(readers)) <= 1
        self._open: _Open | None = None

    def next_deadline(self) -> float | None:
        """Monotonic time at which the open gate closes by window (None: no gate open)."""
        return self._open.deadline if self._open is not None else None

    def feed(self, scan: RawScan) -> list[Gate]:
        """Add a scan; returns the gates it closed (zero, one or two)."""
        out: list[Gate] = []
        g = self._open
        if g is not None and scan.monotonic >= g.deadline:
            out.append(self._close(g.deadline, "window"))
            g = None
        if g is not None and self._starts_next(g, scan):
            out.append(self._close(scan.monotonic, "next"))
            g = None
        if g is None:
            g = self._start(scan.monotonic)
        self._add(g, scan)
        if self.cfg.expect and len(g.codes) >= self.cfg.expect:
            out.append(self._close(scan.monotonic, "expect"))
        elif self.single_reader and self._frame_complete(g, scan):
            out.append(self._close(scan.monotonic, "frame"))
        return out

    def trigger(self, now: float) -> list[Gate]:
        """An external trigger (photo eye): close an open gate and open an empty one."""
        out = [self._close(now, "trigger")] if self._open is not None else []
        self._start(now)
        return out

    def tick(self, now: float) -> list[Gate]:
        """Close the open gate if its window has passed."""
        g = self._open
        if g is not None and now >= g.deadline:
            return [self._close(g.deadline, "window")]
        return []

    def flush(self, now: float) -> list[Gate]:
        """Close the open gate now (shutdown)."""
        return [self._close(now, "flush")] if self._open is not None else []

    # -- internals ----------------------------------------------------------------------
    def _start(self, now: float) -> _Open:
        self._open = _Open(now, now + self.cfg.window)
        return self._open

    def _starts_next(self, g: _Open, scan: RawScan) -> bool:
        """per_frame: a new frame from a reader whose earlier frame is in this gate."""
        if not self.cfg.per_frame or scan.frame_id is None:
            return False
        key = (scan.scanner, scan.frame_id)
        return key not in g.frames and any(r == scan.scanner for r, _ in g.frames)

    def _frame_complete(self, g: _Open, scan: RawScan) -> bool:
        if not self.cfg.per_frame or scan.frame_id is None:
            return False
        return g.frames[(scan.scanner, scan.frame_id)] >= scan.frame_size

    def _add(self, g: _Open, scan: RawScan) -> None:
        if scan.scanner not in g.readers:
            g.readers.append(scan.scanner)
        if scan.frame_id is not None:
            key = (scan.scanner, scan.frame_id)
            g.frames[key] = g.frames.get(key, 0) + 1
        if scan.error == "no_read":
            g.no_reads.append(scan)
        elif scan.text in g.texts:
            g.duplicates += 1
        else:
            g.texts.add(scan.text)
            g.codes.append(scan)

    def _close(self, at: float, why: str) -> Gate:
        g = self._open
        assert g is not None
        self._open = None
        return Gate(
            station=self.station,
            codes=tuple(g.codes),
            no_read=not g.codes,
            opened_at=g.opened_at,
            closed_at=at,
            readers=tuple(g.readers),
            duplicates=g.duplicates,
            no_reads=tuple(g.no_reads),
            closed_by=why,
        )


# -- package rules -------------------------------------------------------------------------


def _elements(interp: Interpretation) -> list[Element]:
    return [Element(ai, value) for ai, value in interp.ais]


def _clean_gs1(interp: Interpretation) -> bool:
    """A GS1 symbol whose values are sound (at most pairing errors): it may vouch for AIs."""
    return interp.kind in GS1_KINDS and all(c == "pairing" for c in interp.error_codes())


def _lifted(interps: Sequence[Interpretation]) -> list[tuple[str, ...]]:
    """Per code: its pairing errors that other symbols of the package satisfy."""
    values: dict[str, set[str]] = {}
    for it in interps:
        if _clean_gs1(it):
            for ai, v in it.ais:
                values.setdefault(ai, set()).add(v)
    out: list[tuple[str, ...]] = []
    for it in interps:
        own = _elements(it)
        own_errors = set(pairing_errors(own)) if it.kind in GS1_KINDS else set()
        candidates = [e for e in it.errors if e in own_errors and e.startswith("pairing:")]
        if not candidates:
            out.append(())
            continue
        have = {e.ai for e in own}
        # what the other clean GS1 symbols carry with exactly one value in the package
        extra = [
            Element(ai, next(iter(vs)))
            for ai, vs in values.items()
            if ai not in have and len(vs) == 1
        ]
        remaining = set(pairing_errors(own + extra))
        out.append(tuple(e for e in candidates if e not in remaining))
    return out


def lifted_errors(interps: Sequence[Interpretation]) -> list[tuple[int, tuple[str, ...]]]:
    """``(index, errors)`` for each code with per-symbol pairing errors the package satisfies."""
    return [(i, errs) for i, errs in enumerate(_lifted(interps)) if errs]


def package_errors(interps: Sequence[Interpretation]) -> list[tuple[int, tuple[str, ...]]]:
    """``(index, errors)`` for every code: its errors left after lifting (input order)."""
    return [
        (i, tuple(e for e in it.errors if e not in gone))
        for i, (it, gone) in enumerate(zip(interps, _lifted(interps), strict=True))
    ]


def check_package(interps: Sequence[Interpretation]) -> tuple[str, ...]:
    """``pairing`` errors that exist only across symbols: one AI with two values in the
    package, or AIs that exclude each other (e.g. (01) beside (02)). Symbols with
    value errors (check digit, format, date) are left out; they fail on their own."""
    clean = [it for it in interps if _clean_gs1(it)]
    per_symbol = {e for it in clean for e in pairing_errors(_elements(it))}
    union = [e for it in clean for e in _elements(it)]
    return tuple(
        f"{e} (across the codes of one package)"
        for e in dict.fromkeys(pairing_errors(union))
        if e not in per_symbol
    )


def package_view(interps: Sequence[Interpretation]) -> tuple[Interpretation, ...]:
    """Each code as judged within its package: lifted errors removed, and the package's
    cross-symbol conflicts added to every clean GS1 code."""
    conflicts = check_package(interps)
    out = []
    for (_, errors), it in zip(package_errors(interps), interps, strict=True):
        extra = conflicts if _clean_gs1(it) else ()
        if errors != it.errors or extra:
            it = replace(it, errors=errors + extra)
        out.append(it)
    return tuple(out)


_MERGED_FIELDS = ("gtin", "sscc", "serial", "lot", "expiry", "best_before", "count", "quantity")


def merge_package(interps: Sequence[Interpretation]) -> Interpretation | None:
    """One interpretation for a package whose GS1 symbols describe one consistent unit.

    Rule: take the GS1 symbols (kinds gs1/gtin/sscc/digital_link; other codes are not
    part of the merge and stay the caller's business). If there are none, if any of
    them has an error left after lifting, or :func:`check_package` reports a conflict,
    return None. Otherwise combine them: ``ais`` in order without repeats, each field
    (GTIN, SSCC, serial, lot, dates, count, quantity) from whichever symbol has it (they
    agree: conflicts were ruled out), warnings united, ``input`` the raw texts joined by
    LF, ``symbology`` the common one or None, ``kind`` ``sscc`` when (00) is present
    without (01), ``gtin`` for a lone (01), else ``gs1``. A single GS1 symbol is returned
    as judged within the package.
    """
    viewed = [it for it in package_view(interps) if it.kind in GS1_KINDS]
    if not viewed or any(it.errors for it in viewed):
        return None
    if len(viewed) == 1:
        return viewed[0]
    values: dict[str, object] = {}
    for name in _MERGED_FIELDS:
        found = {getattr(it, name) for it in viewed} - {None}
        if len(found) > 1:
            return None
        values[name] = next(iter(found), None)
    ais = tuple(dict.fromkeys(pair for it in viewed for pair in it.ais))
    names = [ai for ai, _ in ais]
    kind: Kind = "gs1"
    if "00" in names and "01" not in names:
        kind = "sscc"
    elif names == ["01"]:
        kind = "gtin"
    symbologies = {it.symbology for it in viewed}
    return replace(
        viewed[0],
        input="\n".join(it.input for it in viewed),
        symbology=symbologies.pop() if len(symbologies) == 1 else None,
        kind=kind,
        ais=ais,
        value=None,
        pattern=None,
        errors=(),
        warnings=tuple(dict.fromkeys(w for it in viewed for w in it.warnings)),
        **values,  # type: ignore[arg-type]
    )


# -- metrics -------------------------------------------------------------------------------


@dataclass
class _Counts:
    gates: int = 0
    no_reads: int = 0
    duplicates: int = 0
    recent: deque[bool] = field(default_factory=deque)


class NoReadStats:
    """Gate and no-read counters per station; the rate over all gates and over the last
    ``recent`` gates (a lifetime rate hides a reader that just went bad)."""

    def __init__(self, recent: int = 100) -> None:
        self.recent = max(1, recent)
        self._by: dict[str, _Counts] = {}

    def record(self, gate: Gate) -> None:
        """Count one closed gate."""
        c = self._by.setdefault(gate.station, _Counts(recent=deque(maxlen=self.recent)))
        c.gates += 1
        c.no_reads += gate.no_read
        c.duplicates += gate.duplicates
        c.recent.append(gate.no_read)

    def stations(self) -> tuple[str, ...]:
        """Stations that closed at least one gate, sorted."""
        return tuple(sorted(self._by))

    def gates(self, station: str) -> int:
        """Gates closed on ``station``."""
        c = self._by.get(station)
        return c.gates if c else 0

    def no_reads(self, station: str) -> int:
        """No-read gates on ``station``."""
        c = self._by.get(station)
        return c.no_reads if c else 0

    def rate(self, station: str) -> float:
        """No-reads / gates since start (0.0 before the first gate)."""
        c = self._by.get(station)
        return c.no_reads / c.gates if c and c.gates else 0.0

    def recent_rate(self, station: str) -> float:
        """No-read share of the last ``recent`` gates (0.0 before the first gate)."""
        c = self._by.get(station)
        return sum(c.recent) / len(c.recent) if c and c.recent else 0.0

    def snapshot(self) -> dict[str, dict[str, float]]:
        """``{station: {gates, no_reads, duplicates, rate, recent_rate}}`` for metrics."""
        return {
            s: {
                "gates": c.gates,
                "no_reads": c.no_reads,
                "duplicates": c.duplicates,
                "rate": self.rate(s),
                "recent_rate": self.recent_rate(s),
            }
            for s, c in sorted(self._by.items())
        }


# -- shell ---------------------------------------------------------------------------------

_STOP = object()
_SLICE = 0.5  # longest idle wait (bounds stop() latency)


class GateWorker:
    """A thread that groups gated stations' scans into gates and hands each closed gate on.

    ``submit``/``trigger`` never block (a queue put); ``emit`` runs in this thread.
    """

    def __init__(
        self,
        assemblers: Mapping[str, GateAssembler],
        emit: Callable[[Gate], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.assemblers = dict(assemblers)
        self._emit = emit
        self._clock = clock
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="gates", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Close open gates (emitted), then stop."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join(timeout)

    def submit(self, station: str, scan: RawScan) -> None:
        """Hand a scan of a gated station to the worker."""
        self._q.put((station, scan))

    def trigger(self, station: str) -> None:
        """A trigger (photo eye) on ``station``: a gate opens now."""
        self._q.put((station, self._clock()))

    def _deadline(self) -> float | None:
        found = [d for a in self.assemblers.values() if (d := a.next_deadline()) is not None]
        return min(found, default=None)

    def _handle(self, gates: list[Gate]) -> None:
        for gate in gates:
            try:
                self._emit(gate)
            except Exception:
                log.exception("gate sink failed; gate lost: %r", gate)

    def _run(self) -> None:
        while True:
            deadline = self._deadline()
            wait = _SLICE if deadline is None else max(0.0, deadline - self._clock())
            try:
                batch = [self._q.get(timeout=min(wait, _SLICE))]
            except queue.Empty:
                batch = []
            while batch:  # take everything waiting before ticking: no scan misses its gate
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            for item in batch:
                if item is _STOP:
                    now = self._clock()
                    for a in self.assemblers.values():
                        self._handle(a.flush(now))
                    return
                self._feed(item)
            now = self._clock()
            for a in self.assemblers.values():
                self._handle(a.tick(now))

    def _feed(self, item: object) -> None:
        assert isinstance(item, tuple)
        station, what = item
        a = self.assemblers.get(station)
        if a is None:  # a wiring mistake: never lose the scan, pass it on alone
            log.error("gate: station %r has no gate; passing %r on alone", station, what)
            if isinstance(what, RawScan):
                m = what.monotonic
                self._handle([Gate(station, (what,), False, m, m, (what.scanner,), 0)])
        elif isinstance(what, RawScan):
            self._handle(a.feed(what))
        else:
            self._handle(a.trigger(float(what)))
