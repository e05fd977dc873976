"""The writer's hot path: prepared SQL on one sqlite3 connection owned by the writer thread.

SQLAlchemy builds and migrates the schema; the per-scan lookups and writes go straight
through ``sqlite3`` with ``?`` parameters, whose statement cache keeps them prepared
(an indexed lookup costs a few microseconds instead of tens through the ORM).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from gateway.rules.decide import LotInfo, ProductInfo, SerialInfo
from gateway.rules.pallets import Content, PalletInfo


def connect(
    path: Path, synchronous: str = "FULL", autocheckpoint: bool = True, max_size_mb: int = 0
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL and busy timeout.

    The writer turns ``autocheckpoint`` off: checkpoints (which fsync the database file)
    then run in :class:`Checkpointer`'s thread instead of stalling a scan's commit.
    """
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    if max_size_mb > 0:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count={max_size_mb * 1024 * 1024 // page}")
    return conn


class Checkpointer:
    """Copies the WAL into the database file in the background (PASSIVE: never blocks writers)."""

    def __init__(self, path: Path, interval: float = 1.0, min_pages: int = 256) -> None:
        import threading

        self.path = path
        self.interval = interval
        self.min_pages = min_pages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self.checkpoints = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=1000")
        try:
            while not self._stop.wait(self.interval):
                self.run_once(conn)
            self.run_once(conn, "TRUNCATE")
        finally:
            conn.close()

    def run_once(self, conn: sqlite3.Connection, mode: str = "PASSIVE") -> None:
        """One checkpoint when the WAL has grown past ``min_pages`` (always for TRUNCATE)."""
        try:
            if mode == "PASSIVE":
                _busy, log_pages, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if log_pages > 0 and done >= log_pages and log_pages >= self.min_pages * 16:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # keep the WAL file small
            else:
                conn.execute(f"PRAGMA wal_checkpoint({mode})")
            self.checkpoints += 1
        except sqlite3.Error:
            pass  # busy or disk trouble: try again next time


# Shared SQL of the per-scan reads (``scan_view`` joins them in one statement).
_PRODUCT_STATUS = (
    "CASE WHEN EXISTS (SELECT 1 FROM sync_recalls r WHERE r.gtin = p.gtin AND r.lot = '') "
    "THEN 'recalled' WHEN p.local_hold OR EXISTS (SELECT 1 FROM sync_holds h "
    "WHERE h.gtin = p.gtin AND h.lot IS NULL AND h.serial IS NULL) THEN 'hold' "
    "ELSE 'active' END"
)
_SERIAL_HELD = (
    "z.held OR EXISTS (SELECT 1 FROM aggregations a "
    "JOIN pallets p ON p.sscc = a.parent_sscc WHERE a.gtin = z.gtin AND a.serial = "
    "z.serial AND a.unpacked_at IS NULL AND (p.local_hold OR EXISTS (SELECT 1 FROM "
    "sync_holds h WHERE h.sscc = p.sscc)))"
)
#: A lot's stock is ``lot_stock`` (lot-tracked) plus ``serial_stock`` (the in-stock serials
#: of a serial-tracked lot, counted by triggers): both indexed by the lot, so a lot of
#: 200,000 serials costs a scan no more than a lot of one (a COUNT over ``serials`` did:
#: 23 ms a scan). The arrival (FIFO) is the earliest of either, as ``lots_in_stock`` has it.
_LOT_COLUMNS = (
    "l.id, l.lot, l.expiry, CASE WHEN l.local_hold AND l.status = 'active' "
    "THEN 'hold' ELSE l.status END, "
    "(SELECT COALESCE(SUM(s.quantity), 0) FROM lot_stock s WHERE s.lot_id = l.id) "
    "+ (SELECT COALESCE(SUM(z2.quantity), 0) FROM serial_stock z2 "
    "   WHERE z2.gtin = l.gtin AND z2.lot = l.lot), "
    "(SELECT MIN(t) FROM (SELECT s.received_at AS t FROM lot_stock s WHERE s.lot_id = l.id "
    "   UNION ALL SELECT z3.received_at FROM serial_stock z3 "
    "   WHERE z3.gtin = l.gtin AND z3.lot = l.lot))"
)
#: HotStore.scan_view: one row from a one-row key (gtin, serial, lot) and LEFT JOINs.
_SCAN_VIEW = (
    "WITH k(gtin, serial, lot) AS (SELECT ?, ?, ?) "
    f"SELECT p.gtin, p.description, p.tracking, p.expiry_warning_days, {_PRODUCT_STATUS}, "
    f"z.lot, z.state, z.location, {_SERIAL_HELD}, {_LOT_COLUMNS}, "
    "CASE WHEN k.serial IS NOT NULL THEN NULL "
    "WHEN l.id IS NOT NULL THEN (SELECT json_group_object(location, quantity) "
    "  FROM lot_stock WHERE lot_id = l.id AND quantity > 0) "
    "WHEN COALESCE(z.lot, k.lot, '') = '' THEN (SELECT json_group_object(location, quantity) "
    "  FROM item_stock WHERE gtin = k.gtin AND quantity > 0) END "
    "FROM k LEFT JOIN products p ON p.gtin = k.gtin "
    "LEFT JOIN serials z ON k.serial IS NOT NULL AND z.gtin = k.gtin AND z.serial = k.serial "
    "LEFT JOIN lots l ON l.gtin = k.gtin AND l.lot = COALESCE(NULLIF(z.lot, ''), NULLIF(k.lot, ''))"
)


def _date(s: str | None) -> date | None:
    return date.fromisoformat(s) if s else None


class HotStore:
    """Cache reads and writes, outbox rows and meta values for the writer thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        #: Unpublished outbox rows, kept current by insert_outbox/mark_published.
        self.depth = self.outbox_depth()
        #: Rows inserted in the open transaction: handed to the publisher after commit.
        self.fresh: list[tuple[int, str, str]] = []

    # -- transactions -------------------------------------------------------------------
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT scan")

    def release(self) -> None:
        self.conn.execute("RELEASE SAVEPOINT scan")

    def rollback_savepoint(self) -> None:
        self.conn.execute("ROLLBACK TO SAVEPOINT scan")
        self.conn.execute("RELEASE SAVEPOINT scan")

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- cache reads --------------------------------------------------------------------
    def product(self, gtin: str) -> ProductInfo | None:
        """A product with its GTIN-level status (a recall or hold of every lot of it)."""
        row = self.conn.execute(
            "SELECT gtin, description, tracking, expiry_warning_days, "
            f"{_PRODUCT_STATUS} FROM products p WHERE gtin = ?",
            (gtin,),
        ).fetchone()
        return ProductInfo(row[0], row[1], row[2], int(row[3]), row[4]) if row else None

    def set_product_hold(self, gtin: str, held: bool, now: float) -> None:
        """A HOLD (or RELEASE) of an untracked product scanned at this gateway."""
        self.conn.execute(
            "UPDATE products SET local_hold = ?, updated_at = ? WHERE gtin = ?",
            (int(held), now, gtin),
        )

    def lot(self, gtin: str, lot: str) -> tuple[int, LotInfo] | None:
        """A lot, its stock on hand (lot_stock plus in-stock serials) and earliest arrival
        (a local HOLD shows as status ``hold``)."""
        row = self.conn.execute(
            f"SELECT {_LOT_COLUMNS} FROM lots l WHERE l.gtin = ? AND l.lot = ?", (gtin, lot)
        ).fetchone()
        if row is None:
            return None
        return int(row[0]), LotInfo(gtin, lot, _date(row[2]), row[3], int(row[4]), row[5])

    def scan_view(
        self, gtin: str, serial: str | None, lot: str | None
    ) -> tuple[ProductInfo | None, SerialInfo | None, tuple[int, LotInfo] | None, dict[str, int]]:
        """What an item scan's decision reads, in one statement: the product, the serial,
        the lot (the serial's own lot in the cache before the label's) and the stock per
        location (a lot's, or an untracked product's; none for a serial).

        The same answers as :meth:`product`, :meth:`serial`, :meth:`lot` and
        :meth:`lot_stock_at` (a test holds them equal)."""
        row = self.conn.execute(_SCAN_VIEW, (gtin, serial, lot)).fetchone()
        product = (
            ProductInfo(row[0], row[1], row[2], int(row[3]), row[4]) if row[0] is not None else None
        )
        found = (
            SerialInfo(gtin, serial, row[5], row[6], row[7], bool(row[8]))
            if serial is not None and row[6] is not None
            else None
        )
        lot_row = None
        if row[9] is not None:
            info = LotInfo(gtin, row[10], _date(row[11]), row[12], int(row[13]), row[14])
            lot_row = (int(row[9]), info)
        stock = {str(k): int(v) for k, v in orjson.loads(row[15]).items()} if row[15] else {}
        return product, found, lot_row, stock

    def lots_in_stock(self, gtin: str, exclude: Iterable[str] = ()) -> tuple[LotInfo, ...]:
        """Lots of a GTIN with stock outside the ``exclude`` locations (pickable stock):
        ``lot_stock`` for a lot-tracked product, ``serial_stock`` (in-stock serials per
        lot and location, kept by triggers) for a serial-tracked one."""
        skip = sorted(set(exclude))
        marks = ",".join("?" * len(skip)) or "''"
        rows = self.conn.execute(
            "SELECT l.lot, l.expiry, CASE WHEN l.local_hold AND l.status = 'active' "
            "THEN 'hold' ELSE l.status END, SUM(x.q), MIN(x.t) FROM lots l JOIN ("
            "  SELECT s.lot_id AS id, s.quantity AS q, s.received_at AS t FROM lots l1 "
            f"  JOIN lot_stock s ON s.lot_id = l1.id WHERE l1.gtin = ? AND s.location NOT IN ({marks})"
            "  UNION ALL SELECT l2.id, z.quantity, z.received_at FROM serial_stock z "
            "  JOIN lots l2 ON l2.gtin = z.gtin AND l2.lot = z.lot "
            f"  WHERE z.gtin = ? AND z.location NOT IN ({marks})"
            ") x ON x.id = l.id WHERE l.gtin = ? GROUP BY l.id HAVING SUM(x.q) > 0",
            (gtin, *skip, gtin, *skip, gtin),
        ).fetchall()
        return tuple(LotInfo(gtin, r[0], _date(r[1]), r[2], int(r[3]), r[4]) for r in rows)

    def serial(self, gtin: str, serial: str) -> SerialInfo | None:
        """A serial; held when HOLD was scanned for it or for the pallet it is on."""
        row = self.conn.execute(
            f"SELECT z.lot, z.state, z.location, {_SERIAL_HELD} FROM serials z "
            "WHERE z.gtin = ? AND z.serial = ?",
            (gtin, serial),
        ).fetchone()
        return SerialInfo(gtin, serial, row[0], row[1], row[2], bool(row[3])) if row else None

    # -- pallets ----------------------------------------------------------------------------
    def pallet(self, sscc: str) -> PalletInfo | None:
        """A pallet with its hold (scanned here, or an SSCC hold from the central side)."""
        row = self.conn.execute(
            "SELECT state, location, local_hold OR EXISTS (SELECT 1 FROM sync_holds h "
            "WHERE h.sscc = p.sscc) FROM pallets p WHERE sscc = ?",
            (sscc,),
        ).fetchone()
        return PalletInfo(sscc, row[0], row[1], bool(row[2])) if row else None

    def pallet_content(self, sscc: str) -> tuple[Content, ...]:
        """What is on a pallet now, with each line's lot status, serial state and expiry."""
        rows = self.conn.execute(
            "SELECT a.gtin, a.lot, a.serial, a.quantity, "
            "CASE WHEN EXISTS (SELECT 1 FROM sync_recalls r WHERE r.gtin = a.gtin AND r.lot = '') "
            "THEN 'recalled' WHEN l.status = 'recalled' THEN 'recalled' "
            "WHEN l.status = 'hold' OR l.local_hold OR p.local_hold THEN 'hold' "
            "WHEN EXISTS (SELECT 1 FROM sync_holds h WHERE h.gtin = a.gtin AND h.lot IS NULL "
            "AND h.serial IS NULL) THEN 'hold' ELSE 'active' END, "
            "z.state, COALESCE(z.held, 0), l.expiry "
            "FROM aggregations a LEFT JOIN lots l ON l.gtin = a.gtin AND l.lot = a.lot "
            "LEFT JOIN products p ON p.gtin = a.gtin "
            "LEFT JOIN serials z ON z.gtin = a.gtin AND z.serial = a.serial "
            "WHERE a.parent_sscc = ? AND a.unpacked_at IS NULL AND a.gtin IS NOT NULL "
            "ORDER BY a.id",
            (sscc,),
        ).fetchall()
        return tuple(
            Content(r[0], r[1], r[2], int(r[3]), r[4], r[5], bool(r[6]), _date(r[7])) for r in rows
        )

    def stock_at(
        self, location: str, contents: Iterable[Content]
    ) -> dict[tuple[str, str | None, str], int]:
        """(gtin, lot, location) → quantity held at ``location`` for each content line."""
        out: dict[tuple[str, str | None, str], int] = {}
        for c in contents:
            if c.serial:
                continue
            if c.lot:
                row = self.conn.execute(
                    "SELECT COALESCE(SUM(s.quantity), 0) FROM lot_stock s JOIN lots l ON "
                    "l.id = s.lot_id WHERE l.gtin = ? AND l.lot = ? AND s.location = ?",
                    (c.gtin, c.lot, location),
                ).fetchone()
            else:
                row = self.conn.execute(
                    "SELECT COALESCE(SUM(quantity), 0) FROM item_stock WHERE gtin = ? "
                    "AND location = ?",
                    (c.gtin, location),
                ).fetchone()
            out[(c.gtin, c.lot, location)] = int(row[0])
        return out

    def put_pallet(self, sscc: str, state: str, location: str, now: float) -> None:
        self.conn.execute(
            "INSERT INTO pallets(sscc, state, location, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sscc) DO UPDATE SET state = excluded.state, "
            "location = excluded.location, updated_at = excluded.updated_at",
            (sscc, state, location, now),
        )

    def set_pallet_hold(self, sscc: str, held: bool, now: float) -> None:
        self.conn.execute(
            "UPDATE pallets SET local_hold = ?, updated_at = ? WHERE sscc = ?",
            (int(held), now, sscc),
        )

    def lot_stock_at(self, lot_id: int) -> dict[str, int]:
        """Quantity of a lot per location."""
        rows = self.conn.execute(
            "SELECT location, quantity FROM lot_stock WHERE lot_id = ? AND quantity > 0",
            (lot_id,),
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    # -- cache writes -------------------------------------------------------------------
    def ensure_lot(self, gtin: str, lot: str, expiry: date | None, now: float) -> int:
        """The id of lot (gtin, lot), creating it (status active) when it is new."""
        row = self.conn.execute(
            "SELECT id FROM lots WHERE gtin = ? AND lot = ?", (gtin, lot)
        ).fetchone()
        if row is not None:
            return int(row[0])
        cur = self.conn.execute(
            "INSERT INTO lots(gtin, lot, expiry, status, updated_at) VALUES (?, ?, ?, 'active', ?)",
            (gtin, lot, expiry.isoformat() if expiry else None, now),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def add_stock(
        self, lot_id: int, location: str, quantity: int, now: float | None = None
    ) -> None:
        """Add to a lot at a location; the first arrival there is kept for FIFO."""
        self.conn.execute(
            "INSERT INTO lot_stock(lot_id, location, quantity, received_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(lot_id, location) DO UPDATE SET quantity = quantity + excluded.quantity, "
            "received_at = COALESCE(lot_stock.received_at, excluded.received_at)",
            (lot_id, location, quantity, now),
        )

    def take_stock(self, lot_id: int, quantity: int, prefer: str | None = None) -> int:
        """Remove up to ``quantity`` of a lot, from ``prefer`` first, then by location name.

        Returns how much was actually taken (never drives a location below zero).
        """
        rows = self.conn.execute(
            "SELECT location, quantity FROM lot_stock WHERE lot_id = ? AND quantity > 0 "
            "ORDER BY location = ? DESC, location",
            (lot_id, prefer or ""),
        ).fetchall()
        left = quantity
        for location, have in rows:
            if left <= 0:
                break
            take = min(left, int(have))
            if take == have:
                self.conn.execute(
                    "DELETE FROM lot_stock WHERE lot_id = ? AND location = ?", (lot_id, location)
                )
            else:
                self.conn.execute(
                    "UPDATE lot_stock SET quantity = quantity - ? WHERE lot_id = ? AND location = ?",
                    (take, lot_id, location),
                )
            left -= take
        return quantity - left

    def take_stock_at(self, lot_id: int, location: str, quantity: int) -> None:
        """Remove ``quantity`` of a lot from one location (the decision checked it is there)."""
        self.conn.execute(
            "UPDATE lot_stock SET quantity = quantity - ? WHERE lot_id = ? AND location = ?",
            (quantity, lot_id, location),
        )
        self.conn.execute(
            "DELETE FROM lot_stock WHERE lot_id = ? AND location = ? AND quantity <= 0",
            (lot_id, location),
        )

    def add_item_stock(self, gtin: str, location: str, quantity: int) -> None:
        self.conn.execute(
            "INSERT INTO item_stock(gtin, location, quantity) VALUES (?, ?, ?) "
            "ON CONFLICT(gtin, location) DO UPDATE SET quantity = quantity + excluded.quantity",
            (gtin, location, quantity),
        )

    def take_item_stock(self, gtin: str, location: str, quantity: int) -> None:
        self.conn.execute(
            "UPDATE item_stock SET quantity = MAX(0, quantity - ?) WHERE gtin = ? AND location = ?",
            (quantity, gtin, location),
        )
        self.conn.execute(
            "DELETE FROM item_stock WHERE gtin = ? AND location = ? AND quantity = 0",
            (gtin, location),
        )

    def set_lot_hold(self, gtin: str, lot: str, held: bool, now: float) -> None:
        """A HOLD (or RELEASE) scanned at this gateway for a lot."""
        self.conn.execute(
            "UPDATE lots SET local_hold = ?, updated_at = ? WHERE gtin = ? AND lot = ?",
            (int(held), now, gtin, lot),
        )

    def set_serial_hold(self, gtin: str, serial: str, held: bool, now: float) -> None:
        """A HOLD (or RELEASE) scanned at this gateway for a serial."""
        self.conn.execute(
            "UPDATE serials SET held = ?, updated_at = ? WHERE gtin = ? AND serial = ?",
            (int(held), now, gtin, serial),
        )

    def put_serial(
        self, gtin: str, serial: str, lot: str | None, state: str, location: str, now: float
    ) -> None:
        """Insert or move a serial; its lot in the cache is never replaced by a label's."""
        self.conn.execute(
            "INSERT INTO serials(gtin, serial, lot, state, location, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(gtin, serial) DO UPDATE SET "
            "lot = COALESCE(serials.lot, excluded.lot), state = excluded.state, "
            "location = excluded.location, updated_at = excluded.updated_at",
            (gtin, serial, lot, state, location, now),
        )

    def add_history(self, row: tuple[object, ...]) -> None:
        """One movement item for ``traceway trace`` (columns of the ``history`` table)."""
        self.conn.execute(
            "INSERT INTO history(seq, event_id, event_time, movement, biz_step, station, gtin, "
            "lot, serial, sscc, parent, quantity, uom, from_type, from_id, to_type, to_id, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )

    # -- print jobs -----------------------------------------------------------------------
    def insert_print_job(self, row: dict[str, object]) -> bool:
        """Insert a print job row; an existing idempotency key means nothing is added."""
        cols = ", ".join(row)
        marks = ", ".join("?" * len(row))
        cur = self.conn.execute(
            f"INSERT INTO print_jobs({cols}) VALUES ({marks}) ON CONFLICT(idempotency_key) DO NOTHING",
            tuple(row.values()),
        )
        return cur.rowcount == 1

    # -- outbox -------------------------------------------------------------------------
    def insert_outbox(
        self, seq: int, event_id: str, kind: str, topic: str, payload: str, now: float
    ) -> None:
        self.conn.execute(
            "INSERT INTO outbox(seq, event_id, kind, topic, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (seq, event_id, kind, topic, payload, now),
        )
        self.depth += 1
        self.fresh.append((seq, topic, payload))

    def mark_published(self, seqs: Iterable[int], now: float) -> None:
        cur = self.conn.executemany(
            "UPDATE outbox SET published_at = ? WHERE seq = ? AND published_at IS NULL",
            [(now, s) for s in seqs],
        )
        self.depth -= max(0, cur.rowcount)

    def prune_outbox(self, cutoff: float, limit: int = 20_000) -> int:
        """Delete the oldest outbox rows published before ``cutoff`` (at most ``limit``).

        Walks from the lowest seq and stops at the first row published after ``cutoff``,
        so it reads at most ``limit`` rows whatever the table's size (seq order is
        publishing order). Unsent rows on the way are skipped, never deleted.
        """
        return self._prune_outbox(cutoff, limit)[0]

    def _prune_outbox(self, cutoff: float, limit: int) -> tuple[int, bool]:
        rows = self.conn.execute(
            "SELECT seq, published_at FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        last = _old_prefix_end(rows, lambda r: r[1] is None or r[1] < cutoff)
        if last is None:
            return 0, False
        cur = self.conn.execute(
            "DELETE FROM outbox WHERE seq <= ? AND published_at IS NOT NULL AND published_at < ?",
            (last, cutoff),
        )
        deleted = int(cur.rowcount)
        # more only when this chunk deleted something: a chunk of unsent rows (the broker
        # is away) stays until they are sent, and walking it again soon would find the same
        return deleted, deleted > 0 and len(rows) == limit and last == rows[-1][0]

    def prune_history(self, cutoff: float, limit: int = 20_000) -> int:
        """Delete the oldest history rows recorded before ``cutoff`` (insertion order)."""
        return self._prune_history(cutoff, limit)[0]

    def _prune_history(self, cutoff: float, limit: int) -> tuple[int, bool]:
        rows = self.conn.execute(
            "SELECT id, created_at FROM history ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        last = _old_prefix_end(rows, lambda r: r[1] < cutoff)
        if last is None:
            return 0, False
        deleted = int(self.conn.execute("DELETE FROM history WHERE id <= ?", (last,)).rowcount)
        return deleted, len(rows) == limit and last == rows[-1][0]

    def prune(self, outbox_cutoff: float, history_cutoff: float, limit: int) -> bool:
        """One chunk of retention: published outbox rows before ``outbox_cutoff`` and
        history rows before ``history_cutoff``, at most ``limit`` of each. True when a
        walk read a whole chunk of old rows: more may be waiting (run again soon)."""
        _, more_history = self._prune_history(history_cutoff, limit)
        _, more_outbox = self._prune_outbox(outbox_cutoff, limit)
        return more_history or more_outbox

    def outbox_depth(self) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetchone()
        return int(row[0])

    # -- pallets (aggregations) ------------------------------------------------------------
    def pack(
        self,
        parent: str,
        *,
        gtin: str | None,
        serial: str | None,
        lot: str | None,
        child_sscc: str | None,
        quantity: int,
        seq: int,
        now: float,
    ) -> None:
        self.conn.execute(
            "INSERT INTO aggregations(parent_sscc, gtin, serial, lot, child_sscc, quantity, "
            "packed_seq, packed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (parent, gtin, serial, lot, child_sscc, quantity, seq, now),
        )

    def pallet_contents(
        self, parent: str
    ) -> list[tuple[str | None, str | None, str | None, str | None, int]]:
        """(gtin, serial, lot, child_sscc, quantity) of everything on the pallet now."""
        rows = self.conn.execute(
            "SELECT gtin, serial, lot, child_sscc, quantity FROM aggregations "
            "WHERE parent_sscc = ? AND unpacked_at IS NULL ORDER BY id",
            (parent,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]

    def unpack_all(self, parent: str, now: float) -> None:
        self.conn.execute(
            "UPDATE aggregations SET unpacked_at = ? WHERE parent_sscc = ? AND unpacked_at IS NULL",
            (now, parent),
        )


def _old_prefix_end(rows: list[Any], is_old: Callable[[Any], bool]) -> Any:
    """The key (first column) of the last row of the leading run of old rows, or None."""
    last = None
    for r in rows:
        if not is_old(r):
            break
        last = r[0]
    return last
