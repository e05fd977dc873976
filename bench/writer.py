"""Benchmark: the writer's work per scan, in this process, without MQTT or threads.

Imports the same cache as ``bench/pipeline.py`` (a lot-tracked product with recurring
lot labels, a serial-tracked product with expected serials) into a fresh database with
``traceway cache import``, then feeds the same mix of scans straight through
``ScanProcessor.process`` and ``HotStore`` in transactions of ``--group`` scans, the
way the writer thread does, and prints the CPU time of this thread per scan (split
into processing and commit). Nothing else runs: what it prints is the code's own cost.

``--lot-serials N`` scans GTIN + lot + serial labels (as on pharma packs) of one lot
that already has N serials in stock, instead of the mix: the lot's stock must not be
counted serial by serial.

``--pace`` sleeps between transactions so that scans come at that rate (200: a
transaction of two scans every 10 ms, as the commit delay groups them at 200 scans/s);
``--spin`` busy-waits instead of sleeping (does a sleeping CPU make the next scan
dearer, or the time that passed?). ``--synchronous NORMAL`` shows what the fsync at
each commit costs.

    .venv/bin/python bench/writer.py [--scans 6000] [--group 256]
    .venv/bin/python bench/writer.py --group 2 --pace 200 [--spin] [--synchronous NORMAL]
    .venv/bin/python bench/writer.py --lot-serials 200000 --group 50
    .venv/bin/python bench/writer.py --gateway-root /path/to/other/checkout   # before/after
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    """The options, the same for the runs and for each run's fresh interpreter."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scans", type=int, default=6000, help="scans measured (after 200 warm-up)")
    ap.add_argument("--group", type=int, default=256, help="scans per transaction")
    ap.add_argument("--pace", type=float, default=0.0, help="scans per second (0: back to back)")
    ap.add_argument("--spin", action="store_true", help="busy-wait between transactions")
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    ap.add_argument(
        "--lot-serials",
        type=int,
        default=0,
        help="scan lot + serial labels of one lot with this many serials in stock",
    )
    ap.add_argument("--gateway-root", type=Path, default=ROOT, help="measure another checkout")
    ap.add_argument("--runs", type=int, default=3)
    return ap


def main() -> None:
    args = _parser().parse_args()
    per_scan: list[float] = []
    for _ in range(args.runs):
        # a fresh interpreter per run: caches and the heap start as a new gateway's
        out = subprocess.run(
            [sys.executable, __file__, "--child", *sys.argv[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr.strip()[-2000:])
        line, figure = out.stdout.strip().rsplit("\n", 1)
        print(line)
        per_scan.append(float(figure))
    print(
        f"CPU per scan over {len(per_scan)} runs: min {min(per_scan):.0f} µs, "
        f"median {statistics.median(per_scan):.0f} µs (gateway from {args.gateway_root})"
    )


def _big_lot(d: Path, gtin: str, in_stock: int, n: int) -> list[str]:
    """Lot BIG of the serial-tracked ``gtin`` with ``in_stock`` serials at STORE and ``n``
    more expected; the labels (GTIN, expiry, lot, serial) of the expected ones."""
    (d / "products.csv").write_text(f"gtin,tracking,description\n{gtin},serial,big lot\n")
    (d / "lots.csv").write_text(f"gtin,lot,expiry,status\n{gtin},BIG,2030-03-31,active\n")
    with open(d / "serials.csv", "w") as f:
        f.write("gtin,serial,lot,state,location\n")
        f.writelines(f"{gtin},A{k:08d},BIG,in_stock,STORE\n" for k in range(in_stock))
        f.writelines(f"{gtin},N{k:08d},BIG,expected,\n" for k in range(n))
    return [f"]C101{gtin}17300331\x1d10BIG\x1d21N{k:08d}" for k in range(n)]


def child(argv: list[str]) -> None:
    """One run (in a fresh interpreter)."""
    args = _parser().parse_args(argv)
    root = args.gateway_root.resolve()
    sys.path[:0] = [str(root), str(ROOT / "bench")]
    import pipeline as bp  # bench/pipeline.py: the same data set and scan mix

    from drivers.scanners.types import RawScan
    from gateway.config import load_config
    from gateway.pipeline import ScanProcessor
    from gateway.store.hot import HotStore, connect

    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        n = args.scans + 200
        cfg_path = bp.write_config(d, 1883, 9, False)  # no broker, no scanner: not started
        if args.lot_serials:
            codes = _big_lot(d, bp.SERIAL_GTIN, args.lot_serials, n)
        else:
            codes = bp.mixed(bp.write_dataset(d, 2500, n), n, 0)
        r = bp.cli(
            root, "cache", "import", "--config", str(cfg_path),
            "--products", str(d / "products.csv"), "--lots", str(d / "lots.csv"),
            "--serials", str(d / "serials.csv"),
        )  # fmt: skip
        if r.returncode != 0:
            raise SystemExit(f"cache import failed: {r.stdout}{r.stderr}")
        cfg = load_config(cfg_path)
        proc = ScanProcessor(cfg, lambda: True)
        store = HotStore(connect(cfg.storage.path, args.synchronous, autocheckpoint=False))
        proc.seq = int(store.get_meta("last_seq", "0") or 0)
        t0 = time.time()
        # 10 ms apart: a lot label comes back after the case debounce, as at a dock
        scans = [RawScan(c, "tunnel", t0 + i * 0.01, i * 0.01) for i, c in enumerate(codes)]
        process_s = commit_s = 0.0

        def transaction(batch: list[RawScan]) -> None:
            nonlocal process_s, commit_s
            c0 = time.thread_time()
            store.begin()
            proc.begin()
            for s in batch:
                proc.process(s, store)
            c1 = time.thread_time()
            store.commit()
            proc.settle()
            process_s += c1 - c0
            commit_s += time.thread_time() - c1

        for i in range(0, 200, args.group):
            transaction(scans[i : min(200, i + args.group)])
        process_s = commit_s = 0.0
        gc.collect()
        gc.freeze()  # as the daemon does after start
        rest = scans[200:]
        gap = args.group / args.pace if args.pace > 0 else 0.0
        wall0 = time.perf_counter()
        for i in range(0, len(rest), args.group):
            if gap and args.spin:
                end = time.perf_counter() + gap
                while time.perf_counter() < end:
                    pass
            elif gap:
                time.sleep(gap)
            transaction(rest[i : i + args.group])
        wall = time.perf_counter() - wall0
        k = len(rest)
        commits = (k + args.group - 1) // args.group
        pace = (
            f"{args.pace:g} scans/s{' (spinning)' if args.spin else ''}" if gap else "back to back"
        )
        what = f"lot + serial labels of a lot with {args.lot_serials} in stock, " * bool(
            args.lot_serials
        )
        print(
            f"{k} scans, {what}{args.group} per transaction, {pace}, "
            f"synchronous={args.synchronous}: "
            f"CPU {(process_s + commit_s) / k * 1e6:.0f} µs per scan = processing "
            f"{process_s / k * 1e6:.0f} + commit {commit_s / k * 1e6:.0f} "
            f"({commit_s / commits * 1e6:.0f} µs per commit); wall {wall:.1f} s"
        )
        print(f"{(process_s + commit_s) / k * 1e6:.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        main()
