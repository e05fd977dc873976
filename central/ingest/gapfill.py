"""Seq gaps that stay open are asked for again: the ``republish`` command to the gateway.

A gap opens when a gateway's event arrives after a missing seq. Usually the missing one
is only late (another worker's batch, a reconnect) and the gap closes within a second.
One that stays open ``after_s`` was lost on the way — e.g. mosquitto 2.0.11 does not
restore a shared subscription from its persistence file, so what gateways publish
between a broker restart and the first worker's reconnect is acknowledged to them and
then dropped. The gateway still has those rows in its outbox (published rows are kept
``storage.keep_published_hours``, 168 h by default): ``republish`` sends them again, the
same payloads and event ids, and ingest closes the gap as for any late event.

Functional core: :func:`due` (which gaps to ask for now) and :func:`request` (the
command). :class:`GapFiller` is the shell: a thread in ``traceway-central serve`` that
reads the open gaps and publishes the commands. Each gap is asked for at most
``max_asks`` times, ``after_s`` apart; then a warning says it is still open (the rows
may be gone from the gateway too: its reply, on ``…/commands/reply``, lists ``gone``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from mqtt_topics.commands import MAX_REPUBLISH, build_command
from mqtt_topics.topics import GatewayTopics

log = logging.getLogger(__name__)

GapKey = tuple[str, int, int]  # gateway, from_seq, to_seq


@dataclass(frozen=True, slots=True)
class OpenGap:
    """A seq gap of a gateway that is still open."""

    gateway_id: str
    site: str
    from_seq: int
    to_seq: int
    opened_at: datetime

    @property
    def key(self) -> GapKey:
        return (self.gateway_id, self.from_seq, self.to_seq)


@dataclass
class Asked:
    """How often and when a gap was last asked for."""

    times: int
    last: datetime


def due(
    gaps: Iterable[OpenGap],
    now: datetime,
    asked: Mapping[GapKey, Asked],
    *,
    after_s: float,
    max_asks: int,
) -> list[OpenGap]:
    """The gaps to ask for now: open ``after_s``, not asked within ``after_s``, asked fewer
    than ``max_asks`` times. ``after_s`` ≤ 0: never."""
    if after_s <= 0:
        return []
    wait = timedelta(seconds=after_s)
    out = []
    for g in gaps:
        seen = asked.get(g.key)
        if now - g.opened_at < wait:
            continue
        if seen is not None and (seen.times >= max_asks or now - seen.last < wait):
            continue
        out.append(g)
    return out


def request(gap: OpenGap, prefix: str, attempt: int) -> tuple[str, dict[str, Any]]:
    """The ``republish`` command for a gap (at most ``MAX_REPUBLISH`` seqs, the first ones)."""
    hi = min(gap.to_seq, gap.from_seq + MAX_REPUBLISH - 1)
    payload = build_command(
        "republish",
        {"from_seq": gap.from_seq, "to_seq": hi},
        request_id=f"gap-{gap.from_seq}-{hi}-{attempt}",
    )
    return GatewayTopics(gap.site, gap.gateway_id, prefix).commands, payload


OPEN_GAPS_SQL = """
SELECT s.gateway_id, g.site, s.from_seq, s.to_seq, s.opened_at
  FROM seq_gaps s JOIN gateways g ON g.gateway_id = s.gateway_id
 WHERE s.closed_at IS NULL
 ORDER BY s.opened_at, s.gateway_id, s.from_seq
 LIMIT 1000
"""


class GapFiller:
    """Asks gateways to republish what stays missing (one per ``serve``)."""

    def __init__(
        self,
        engine: Engine,
        publish: Callable[[str, dict[str, Any]], None],
        *,
        prefix: str,
        after_s: float,
        max_asks: int = 5,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.prefix = prefix
        self.after_s = after_s
        self.max_asks = max_asks
        self.clock = clock
        self.asked: dict[GapKey, Asked] = {}
        self._given_up: set[GapKey] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open_gaps(self) -> list[OpenGap]:
        with self.engine.connect() as c:
            return [
                OpenGap(str(r[0]), str(r[1]), int(r[2]), int(r[3]), r[4])
                for r in c.execute(text(OPEN_GAPS_SQL))
            ]

    def tick(self) -> list[OpenGap]:
        """Ask for every gap that is due; returns them."""
        now = self.clock()
        gaps = self.open_gaps()
        todo = due(gaps, now, self.asked, after_s=self.after_s, max_asks=self.max_asks)
        for g in todo:
            seen = self.asked.get(g.key)
            attempt = 1 if seen is None else seen.times + 1
            topic, payload = request(g, self.prefix, attempt)
            self.publish(topic, payload)
            self.asked[g.key] = Asked(attempt, now)
            log.info(
                "seq gap %s %d..%d open since %s: asked the gateway to republish (%d/%d)",
                g.gateway_id,
                g.from_seq,
                g.to_seq,
                g.opened_at.isoformat(timespec="seconds"),
                attempt,
                self.max_asks,
            )
        open_keys = {g.key for g in gaps}
        for g in gaps:
            seen = self.asked.get(g.key)
            if (
                seen is not None
                and seen.times >= self.max_asks
                and g.key not in self._given_up
                and now - seen.last >= timedelta(seconds=self.after_s)
            ):
                self._given_up.add(g.key)
                log.warning(
                    "seq gap %s %d..%d still open after %d republish requests: see the "
                    "gateway's commands/reply (gone: rows it no longer holds)",
                    g.gateway_id,
                    g.from_seq,
                    g.to_seq,
                    seen.times,
                )
        # forget closed gaps
        self.asked = {k: v for k, v in self.asked.items() if k in open_keys}
        self._given_up &= open_keys
        return todo

    def start(self, poll_s: float = 1.0) -> None:
        if self.after_s <= 0:
            return

        def run() -> None:
            while not self._stop.wait(poll_s):
                try:
                    self.tick()
                except Exception:
                    log.exception("seq gap filler failed; retrying")

        self._thread = threading.Thread(target=run, name="gap-filler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
