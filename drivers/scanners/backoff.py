"""Reconnect delays: exponential backoff with jitter (pure; the randomness is injectable)."""

from __future__ import annotations

import random
from typing import Literal, Protocol

Jitter = Literal["full", "decorrelated", "none"]


class Uniform(Protocol):
    """What :class:`Backoff` needs from a random source (``random.Random`` fits)."""

    def uniform(self, a: float, b: float) -> float: ...


class Backoff:
    """Delays between reconnect attempts.

    * ``none``: ``min(maximum, initial * factor**n)`` for the n-th attempt (n from 0).
    * ``full``: uniform in ``[0, that]`` ("full jitter").
    * ``decorrelated``: ``min(maximum, uniform(initial, previous * 3))`` - never shorter
      than ``initial``, and readers that lost the same device spread out.

    Call :meth:`reset` after a successful connect.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: Jitter = "full",
        rng: Uniform | None = None,
    ) -> None:
        if not (0 < initial <= maximum) or factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self._rng: Uniform = rng if rng is not None else random.Random()
        self.reset()

    def reset(self) -> None:
        """Start over at the initial delay."""
        self.attempts = 0
        self._prev = self.initial

    def ceiling(self) -> float:
        """The un-jittered delay for the next attempt."""
        # Cap the exponent so huge attempt counts cannot overflow.
        exp = min(self.attempts, 64)
        return min(self.maximum, self.initial * self.factor**exp)

    def next(self) -> float:
        """The delay before the next attempt (advances the attempt counter)."""
        if self.jitter == "decorrelated":
            hi = max(self.initial, self._prev * 3)
            delay = min(self.maximum, self._rng.uniform(self.initial, hi))
        elif self.jitter == "full":
            delay = self._rng.uniform(0.0, self.ceiling())
        else:
            delay = self.ceiling()
        delay = max(0.0, min(self.maximum, delay))
        self._prev = delay
        self.attempts += 1
        return delay
