"""Benchmark: ``traceway cache import`` of a million serials, as a user runs it.

Generates, in a temporary folder outside the repository, 2,000 products (1,000
serial-tracked, 950 lot-tracked, 50 untracked), 100,000 lots (50 per serial-tracked
product without stock, 50 per lot-tracked product with a location and a quantity) plus
one untracked stock row per untracked product, and 1,000,000 serials (20 per serial
lot). Then runs the CLI as a subprocess on a fresh database ``--runs`` times and prints
the wall time and the peak RSS of each run (the child's ``ru_maxrss`` from ``wait4``).
Also timed once each: a re-import of the same files over the full cache, and a refused
import (one bad serial on the last line) that must leave the cache as it was.

    .venv/bin/python bench/import.py [--serials 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS, SERIAL_PRODUCTS, LOT_PRODUCTS = 2000, 1000, 950
LOTS_PER_PRODUCT = 50


def gtin(n: int) -> str:
    """A valid GTIN-14 numbered ``n``."""
    body = f"0950600{n:06d}"
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def generate(folder: Path, n_serials: int, state: str = "expected") -> tuple[Path, Path, Path]:
    """Write products.csv, lots.csv and serials.csv into ``folder``."""
    p, lo, s = folder / "products.csv", folder / "lots.csv", folder / "serials.csv"
    with p.open("w") as f:
        f.write("gtin,description,tracking,expiry_warning_days\n")
        for i in range(PRODUCTS):
            kind = "serial" if i < SERIAL_PRODUCTS else "lot"
            kind = kind if i < SERIAL_PRODUCTS + LOT_PRODUCTS else "none"
            f.write(f"{gtin(i)},Product {i},{kind},30\n")
    with lo.open("w") as f:
        f.write("gtin,lot,expiry,status,location,quantity\n")
        for i in range(SERIAL_PRODUCTS + LOT_PRODUCTS):
            stock = i >= SERIAL_PRODUCTS
            for j in range(LOTS_PER_PRODUCT):
                where = f"A-{j % 40:02d},{1 + j}" if stock else ","
                f.write(f"{gtin(i)},L{i}-{j},2030-0{1 + j % 9}-15,active,{where}\n")
        for i in range(SERIAL_PRODUCTS + LOT_PRODUCTS, PRODUCTS):
            f.write(f"{gtin(i)},,,,D-01,{100 + i}\n")
    per_lot = max(1, n_serials // (SERIAL_PRODUCTS * LOTS_PER_PRODUCT))
    with s.open("w") as f:
        f.write("gtin,serial,lot,state,location\n")
        n = 0
        while n < n_serials:
            i = (n // (per_lot * LOTS_PER_PRODUCT)) % SERIAL_PRODUCTS
            j = (n // per_lot) % LOTS_PER_PRODUCT
            f.write(
                f"{gtin(i)},S{n:09d},L{i}-{j},{state},{'D-01' if state == 'in_stock' else ''}\n"
            )
            n += 1
    return p, lo, s


def run_cli(args: list[str], folder: Path) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, exit code, output) of one CLI run; the peak is the
    child's own ``ru_maxrss`` (kB on Linux), from ``wait4``."""
    out = folder / "cli.out"
    with out.open("w") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, stdout=f, stderr=f
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, proc.returncode, out.read_text()


def counts(db: Path) -> tuple[int, ...]:
    con = sqlite3.connect(db)
    try:
        return tuple(
            con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("products", "lots", "lot_stock", "item_stock", "serials")
        )
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--serials", type=int, default=1_000_000, help="serial rows to generate")
    ap.add_argument("--runs", type=int, default=3, help="fresh imports to time")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument(
        "--state",
        default="expected",
        choices=["expected", "in_stock"],
        help="state of the generated serials (in_stock: on a shelf, counted per lot)",
    )
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="traceway-bench-import-"))
    try:
        t0 = time.perf_counter()
        p, lo, s = generate(tmp, a.serials, a.state)
        print(f"generated {a.serials:,} serials in {time.perf_counter() - t0:.1f} s ({tmp})")
        files = ["--products", str(p), "--lots", str(lo), "--serials", str(s)]
        times, peaks = [], []
        db = tmp / "c.db"
        for run in range(a.runs):
            for f in tmp.glob("c.db*"):
                f.unlink()
            cfg = tmp / "gw.toml"
            cfg.write_text(
                f'[gateway]\nsite = "s"\nid = "g"\n[storage]\npath = "{db}"\n'
                '[stations.a]\nstep = "receiving"\n'
            )
            sec, rss, rc, text = run_cli(["cache", "import", "--config", str(cfg), *files], tmp)
            if rc != 0:
                print(text, file=sys.stderr)
                return 1
            times.append(sec)
            peaks.append(rss)
            print(f"run {run + 1}: fresh import {sec:6.1f} s, peak RSS {rss:6.1f} MB")
        before = counts(db)
        sec, rss, rc, _ = run_cli(["cache", "import", "--config", str(cfg), *files], tmp)
        print(f"re-import over the full cache: {sec:.1f} s, peak RSS {rss:.1f} MB (exit {rc})")
        bad = tmp / "bad.csv"
        shutil.copy(s, bad)
        with bad.open("a") as f:
            f.write(f"{gtin(0)},S000000000,L0-0,lost,\n")
        sec, rss, rc, text = run_cli(
            ["cache", "import", "--config", str(cfg), *files[:4], "--serials", str(bad)], tmp
        )
        first = text.splitlines()[0] if text else ""
        unchanged = "unchanged" if counts(db) == before else "CHANGED"
        print(f"refused import (bad last line): {sec:.1f} s, peak RSS {rss:.1f} MB (exit {rc})")
        print(f"  {first.replace(str(tmp) + '/', '')}; cache {unchanged}")
        print(
            f"fresh import of {a.serials:,} serials, {a.runs} runs: "
            f"{min(times):.1f}–{max(times):.1f} s (median {statistics.median(times):.1f}), "
            f"peak RSS {min(peaks):.0f}–{max(peaks):.0f} MB"
        )
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
