"""Retention runs in chunks and as often as needed: it keeps up with any scan rate."""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from pathlib import Path

from gateway.retention import PruneSchedule
from gateway.store.db import open_database
from gateway.store.hot import HotStore


def _done(value: bool | None = None, exc: Exception | None = None) -> Future[bool]:
    fut: Future[bool] = Future()
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(bool(value))
    return fut


def test_a_full_chunk_brings_the_next_prune_forward() -> None:
    s = PruneSchedule(1000.0, first=60, interval=600, again=0.5)
    assert not s.due(1059.9) and s.due(1060.0)
    running: Future[bool] = Future()
    s.started(running)
    assert not s.due(5000.0)  # one at a time
    running.set_result(True)  # a full chunk: more may wait
    assert not s.due(5000.0) and s.due(5000.5)
    s.started(_done(False))  # the backlog is gone
    assert not s.due(5000.6) and not s.due(5600.5) and s.due(5600.6)
    s.started(_done(exc=sqlite3.OperationalError("disk I/O error")))
    assert not s.due(5601.0) and s.due(6201.0)  # a failed prune: the regular interval


def _store(path: Path) -> HotStore:
    open_database(path).dispose()
    return HotStore(sqlite3.connect(path, isolation_level=None))


def test_a_backlog_beyond_a_chunk_goes_in_several_and_keeps_unsent_and_recent(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "r.db")
    old, recent = 100.0, 10_000.0
    store.conn.executemany(
        "INSERT INTO outbox(seq, event_id, kind, topic, payload, created_at, published_at) "
        "VALUES (?, ?, 'event', 't', '{}', ?, ?)",
        [(i, f"e{i}", old, None if i == 7 else old) for i in range(1, 12_001)]
        + [(i, f"e{i}", recent, recent) for i in range(12_001, 18_001)],
    )
    store.conn.executemany(
        "INSERT INTO history(seq, event_id, event_time, movement, biz_step, station, "
        "created_at) VALUES (?, ?, '', 'receive', 'receiving', 'dock', ?)",
        [(i, f"e{i}", old if i <= 12_000 else recent) for i in range(1, 18_001)],
    )
    rounds = []
    for _ in range(6):  # 6,000 recent rows follow the old ones: a chunk reaches them
        store.begin()
        more = store.prune(1_000.0, 1_000.0, 5_000)
        store.commit()
        rounds.append(more)
        if not more:
            break
    assert rounds == [True, True, False]
    outbox = [r[0] for r in store.conn.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert outbox == [7, *range(12_001, 18_001)]  # the unsent one and the recent ones
    history = store.conn.execute("SELECT MIN(seq), COUNT(*) FROM history").fetchone()
    assert history == (12_001, 6_000)


def test_a_chunk_of_unsent_rows_is_not_walked_again_soon(tmp_path: Path) -> None:
    """The broker is away: the oldest rows wait to be sent, and pruning cannot pass them
    (it walks in seq order). That is no backlog to catch up on every half second."""
    store = _store(tmp_path / "u.db")
    store.conn.executemany(
        "INSERT INTO outbox(seq, event_id, kind, topic, payload, created_at, published_at) "
        "VALUES (?, ?, 'event', 't', '{}', 1.0, NULL)",
        [(i, f"e{i}") for i in range(1, 6_001)],
    )
    assert store.prune(1_000.0, 1_000.0, 5_000) is False
    assert store.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 6_000
