"""Benchmark: a cache-sync snapshot of a million serials at a gateway — time and peak memory.

Generates a snapshot (``--serials`` serials of ``--lots`` lots of 2,000 products) as the
central side sends it: chunks of 2,000 rows, each one JSON text. The chunks are made one
at a time and each goes through what the gateway does with an MQTT message (``json.loads``,
the contract check, :class:`SnapshotAssembler` staging each chunk's rows in the writer's
TEMP tables, one transaction per chunk, as the gateway does), then the snapshot is applied
to a fresh gateway database in one transaction. ``--in-memory`` keeps the rows in memory
until the end instead (the way before staging). Prints the time of each phase and the
peak RSS of the process (``ru_maxrss``); asserts nothing.

    .venv/bin/python bench/snapshot_memory.py --serials 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.store.cache_sync import SnapshotAssembler, apply_snapshot, cache_counts  # noqa: E402
from gateway.store.db import open_database  # noqa: E402
from gateway.store.hot import HotStore, connect  # noqa: E402
from gs1.keys import check_digit  # noqa: E402
from mqtt_topics.cache import validate_snapshot  # noqa: E402

ROWS = 2000


def gtin(p: int) -> str:
    body = f"0950600{p:06d}"
    return body + str(check_digit(body))


def rows(n_serials: int, n_lots: int) -> Iterator[tuple[str, dict[str, Any]]]:
    for p in range(1, 2001):
        yield (
            "products",
            {
                "gtin": gtin(p),
                "description": f"product {p}",
                "serialised": True,
                "lot_tracked": False,
                "active": True,
            },
        )
    for lot in range(n_lots):
        yield (
            "lots",
            {
                "gtin": gtin(1 + lot % 2000),
                "lot": f"L{lot}",
                "expiry": "2030-12-31",
                "status": "released",
            },
        )
    for s in range(n_serials):
        lot = s % n_lots
        yield (
            "serials",
            {
                "gtin": gtin(1 + lot % 2000),
                "serial": f"S{s:09d}",
                "lot": f"L{lot}",
                "state": "commissioned",
            },
        )


def chunks(n_serials: int, n_lots: int, now: str) -> Iterator[str]:
    total = 2000 + n_lots + n_serials
    count = (total + ROWS - 1) // ROWS
    part: list[tuple[str, dict[str, Any]]] = []
    index = 0

    def emit() -> str:
        body: dict[str, Any] = {
            "schema": {"name": "traceway.cache_snapshot", "version": "1.1"},
            "version": 7,
            "generated_at": now,
            "request_id": None,
            "chunk": {"index": index, "count": count},
        }
        for t in ("products", "lots", "serials", "holds", "recalls", "despatch_advices"):
            body[t] = [r for tt, r in part if tt == t]
        return json.dumps(body)

    for item in rows(n_serials, n_lots):
        part.append(item)
        if len(part) == ROWS:
            yield emit()
            part, index = [], index + 1
    if part:
        yield emit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serials", type=int, default=1_000_000)
    ap.add_argument("--lots", type=int, default=100_000)
    ap.add_argument(
        "--in-memory", action="store_true", help="assemble in memory (no staging; the old way)"
    )
    args = ap.parse_args()
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    with tempfile.TemporaryDirectory(prefix="traceway-snap-") as t:
        path = Path(t) / "gw.db"
        open_database(path).dispose()
        conn = connect(path)
        store = HotStore(conn)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()

        def in_writer(fn: Any) -> None:  # as the gateway's writer: a transaction per call
            store.begin()
            fn(store)
            store.commit()

        assembler = SnapshotAssembler(stager=None if args.in_memory else in_writer)
        snap = None
        n = 0
        for text in chunks(args.serials, args.lots, now):
            data = json.loads(text)
            errors = validate_snapshot(data)
            if errors:
                raise SystemExit(f"invalid chunk: {errors[:3]}")
            snap = assembler.add(data) or snap
            n += 1
        assert snap is not None
        t1 = time.perf_counter()
        store.begin()
        apply_snapshot(store, snap)
        counts = cache_counts(store)
        store.commit()
        t2 = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.close()
    print(
        f"snapshot of {args.serials:,} serials, {args.lots:,} lots, 2,000 products in {n} chunks: "
        f"received and assembled in {t1 - t0:.1f} s, applied in {t2 - t1:.1f} s; "
        f"peak RSS {peak:.0f} MB (before: {base:.0f} MB); {counts}"
    )


if __name__ == "__main__":
    main()
