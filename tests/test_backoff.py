"""Reconnect backoff: exponential growth, cap, jitter bounds, reset."""

from __future__ import annotations

import random

import pytest

from drivers.scanners.backoff import Backoff


class Fixed:
    """A random source that always picks the same fraction of the range."""

    def __init__(self, frac: float) -> None:
        self.frac = frac
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.frac


def test_no_jitter_doubles_up_to_the_cap() -> None:
    b = Backoff(jitter="none")
    assert [b.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert b.attempts == 9


def test_reset_starts_over() -> None:
    b = Backoff(jitter="none")
    for _ in range(5):
        b.next()
    b.reset()
    assert b.attempts == 0
    assert b.next() == 0.5


def test_full_jitter_draws_below_the_ceiling() -> None:
    rng = Fixed(1.0)
    b = Backoff(jitter="full", rng=rng)
    assert [b.next() for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert rng.calls == [(0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 4.0)]
    low = Backoff(jitter="full", rng=Fixed(0.0))
    assert low.next() == 0.0


def test_decorrelated_jitter_never_below_initial_and_capped() -> None:
    rng = Fixed(1.0)
    b = Backoff(initial=0.5, maximum=30.0, jitter="decorrelated", rng=rng)
    delays = [b.next() for _ in range(6)]
    assert delays == [1.5, 4.5, 13.5, 30.0, 30.0, 30.0]
    assert rng.calls[0] == (0.5, 1.5)
    b.reset()
    assert Backoff(jitter="decorrelated", rng=Fixed(0.0)).next() == 0.5


@pytest.mark.parametrize("jitter", ["full", "decorrelated", "none"])
def test_bounds_with_real_randomness(jitter: str) -> None:
    b = Backoff(initial=0.1, maximum=2.0, jitter=jitter, rng=random.Random(42))  # type: ignore[arg-type]
    for _ in range(200):
        d = b.next()
        assert 0.0 <= d <= 2.0
        if jitter == "decorrelated":
            assert d >= 0.1


def test_huge_attempt_counts_do_not_overflow() -> None:
    b = Backoff(jitter="none")
    b.attempts = 10_000
    assert b.next() == 30.0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=5, maximum=1)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)
