"""clock_synced tells the truth: kernel NTP status, and false right after a clock step."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import clock
from gateway.clock import TIME_ERROR, ClockStatus


class Clocks:
    def __init__(self) -> None:
        self.wall_t = 1_000_000.0
        self.mono_t = 50.0
        self.kernel_state: int | None = 0

    def tick(self, dt: float) -> None:
        self.wall_t += dt
        self.mono_t += dt


def make(c: Clocks) -> ClockStatus:
    return ClockStatus(
        ttl=0, wall=lambda: c.wall_t, mono=lambda: c.mono_t, kernel=lambda: c.kernel_state
    )


def test_kernel_status() -> None:
    c = Clocks()
    cs = make(c)
    assert cs.synced() is True
    c.kernel_state = TIME_ERROR
    assert cs.synced() is False


def test_step_backwards_and_forwards_marks_unsynced_for_a_while() -> None:
    c = Clocks()
    cs = make(c)
    c.tick(1)
    assert cs.synced() is True
    c.wall_t -= 3600  # clock set back an hour
    c.tick(1)
    assert cs.synced() is False
    assert cs.steps == 1
    c.tick(30)
    assert cs.synced() is False
    c.tick(31)
    assert cs.synced() is True  # hold expired, kernel says synced
    c.wall_t += 120  # stepped forward
    assert cs.synced() is False
    assert cs.steps == 2


def test_small_drift_is_not_a_step() -> None:
    c = Clocks()
    cs = make(c)
    for _ in range(100):
        c.tick(1)
        c.wall_t += 0.001  # NTP slewing
        assert cs.synced() is True


def test_unknown_kernel_state_falls_back_to_timesyncd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "synchronized"
    monkeypatch.setattr(clock, "_TIMESYNCD_FLAG", flag)
    c = Clocks()
    c.kernel_state = -1  # adjtimex refused
    assert make(c).synced() is False  # no timesyncd flag
    flag.touch()
    assert make(c).synced() is True
    assert ClockStatus(forced=True).synced() is True
