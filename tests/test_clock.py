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


@pytest.mark.parametrize(
    "zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]
)
def test_local_time_is_fromtimestamp_astimezone_across_dst(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 21 minutes for 70 hours around each 2026 DST change (and odd offsets: Lord
    Howe's half-hour DST, Kathmandu's +05:45) the cheap local time equals the standard
    library's."""
    import time as _time
    from datetime import datetime

    monkeypatch.setenv("TZ", zone)
    _time.tzset()
    try:
        # the 2026 changes: Europe (03-29, 10-25), New York (03-08, 11-01), Lord Howe
        # (04-05, 10-04); each checked for 70 hours either side
        for start in (1774746000, 1792886400, 1772953200, 1793512800, 1775311200, 1790956800):
            for k in range(-600, 600, 3):
                ts = start + k * 420 + 0.123
                want = datetime.fromtimestamp(ts).astimezone()
                got = clock.local_time(ts)
                assert got == want and got.utcoffset() == want.utcoffset(), (zone, ts)
                assert got.isoformat(timespec="milliseconds") == want.isoformat(
                    timespec="milliseconds"
                )
    finally:
        monkeypatch.delenv("TZ")
        _time.tzset()
