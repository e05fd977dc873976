"""ReplayReader: file format, escapes, AIM prefixes, timing, loop, end of file."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.scanners.config import ReplayScanner
from drivers.scanners.replay_reader import ReplayReader, parse_replay
from drivers.scanners.types import DeviceStatus, RawScan

WAIT = 5.0

FILE = """\
# receiving demo: one scan per line
]C1010950110153000310LOT42\\x1d2112345

  ]d2<GS>01095011015300031710250131
   # an indented comment
]Q1https://id.gs1.org/01/09501101530003
"""


class Recorder:
    def __init__(self) -> None:
        self.scans: queue.Queue[RawScan] = queue.Queue()
        self.statuses: list[DeviceStatus] = []
        self.lock = threading.Lock()

    def sink(self, scan: RawScan) -> None:
        self.scans.put(scan)

    def status(self, st: DeviceStatus) -> None:
        with self.lock:
            self.statuses.append(st)

    def take(self, n: int) -> list[RawScan]:
        return [self.scans.get(timeout=WAIT) for _ in range(n)]


@pytest.fixture
def run(tmp_path: Path) -> Any:
    readers: list[ReplayReader] = []

    def start(text: str, **kw: Any) -> tuple[ReplayReader, Recorder]:
        path = tmp_path / "scans.txt"
        path.write_text(text, encoding="utf-8")
        cfg = ReplayScanner(type="replay", station="demo", path=path, **kw)
        rec = Recorder()
        reader = ReplayReader("replay1", cfg, rec.sink, rec.status)
        readers.append(reader)
        reader.start()
        return reader, rec

    yield start
    for r in readers:
        r.stop()


def test_parse_replay_escapes_comments_and_aim_prefix() -> None:
    assert parse_replay(FILE) == [
        "]C1010950110153000310LOT42\x1d2112345",
        "]d2\x1d01095011015300031710250131",
        "]Q1https://id.gs1.org/01/09501101530003",
    ]
    assert parse_replay("\n# only comments\n\n") == []
    assert parse_replay("A\\x20\r\nB") == ["A ", "B"]  # CRLF files; escaped space kept


def test_replays_file_then_reports_end_of_file(run: Any) -> None:
    reader, rec = run(FILE, interval=0.0)
    scans = rec.take(3)
    assert [s.text for s in scans] == parse_replay(FILE)
    assert [s.frame_id for s in scans] == [1, 2, 3]
    assert all(s.scanner == "replay1" and s.error is None for s in scans)
    assert reader.finished.wait(WAIT)
    assert not reader.connected
    assert [(s.state, s.detail) for s in rec.statuses] == [
        ("connected", str(reader.cfg.path)),
        ("disconnected", "end of file"),
    ]
    assert rec.statuses[-1].expected  # the end of a replay is no fault: logged at INFO
    assert rec.scans.empty()
    assert reader.last_seen == scans[-1].monotonic


def test_start_delay_and_interval(run: Any) -> None:
    t0 = time.monotonic()
    reader, rec = run("A\nB\nC\n", interval=0.05, start_delay=0.1)
    scans = rec.take(3)
    assert scans[0].monotonic - t0 >= 0.1
    gaps = [b.monotonic - a.monotonic for a, b in itertools.pairwise(scans)]
    assert all(g >= 0.05 for g in gaps)
    assert reader.finished.wait(WAIT)


def test_loop_repeats_until_stopped(run: Any) -> None:
    reader, rec = run("X\nY\n", interval=0.001, loop=True)
    assert [s.text for s in rec.take(6)] == ["X", "Y"] * 3
    assert not reader.finished.is_set()
    reader.stop()
    assert reader.finished.wait(WAIT)
    assert "end of file" not in [s.detail for s in rec.statuses]


def test_stop_during_a_long_wait_is_prompt(run: Any) -> None:
    reader, rec = run("A\nB\n", interval=60.0)
    assert rec.take(1)[0].text == "A"
    t0 = time.monotonic()
    reader.stop()
    assert time.monotonic() - t0 < 1.0
    assert reader.finished.is_set()


def test_missing_file_is_an_error_status(tmp_path: Path) -> None:
    cfg = ReplayScanner(type="replay", station="demo", path=tmp_path / "nope.txt")
    rec = Recorder()
    reader = ReplayReader("replay1", cfg, rec.sink, rec.status)
    reader.start()
    assert reader.finished.wait(WAIT)
    assert [s.state for s in rec.statuses] == ["error"]
    assert "nope.txt" in rec.statuses[0].detail


def test_empty_file_finishes_even_with_loop(run: Any) -> None:
    reader, rec = run("# nothing\n", loop=True)
    assert reader.finished.wait(WAIT)
    assert rec.scans.empty()
    assert rec.statuses[-1].detail == "end of file"
