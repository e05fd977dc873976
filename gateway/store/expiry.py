"""SQL for the expiry check: lots in stock near or past expiry, and what was alerted today.

Thin: the decision is :func:`gateway.rules.expiry.expiry_alerts`. The stock query only
narrows the rows to lots whose expiry is within their product's warning window (the
same condition the pure function applies), so an hourly check reads a few rows, not
the whole cache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date

from gateway.rules.expiry import AlertKey, LotStock
from gateway.store.queries import ON_HAND

#: Warning days of a lot whose product is unknown here (as the scan rules assume).
DEFAULT_WARNING_DAYS = 30


def lots_due(conn: sqlite3.Connection, today: date) -> list[LotStock]:
    """Stock per (gtin, lot, location) of lots expiring within their warning window or
    already expired: lot stock plus serials on hand (counted by their cache lot)."""
    marks = ",".join("?" * len(ON_HAND))
    rows = conn.execute(
        "WITH due AS (SELECT l.id, l.gtin, l.lot, l.expiry, "
        f"COALESCE(p.expiry_warning_days, {DEFAULT_WARNING_DAYS}) AS wd, "
        "CASE WHEN l.local_hold AND l.status = 'active' THEN 'hold' ELSE l.status END AS st "
        "FROM lots l LEFT JOIN products p ON p.gtin = l.gtin WHERE l.expiry IS NOT NULL "
        f"AND l.expiry <= date(?, '+' || MAX(COALESCE(p.expiry_warning_days, "
        f"{DEFAULT_WARNING_DAYS}), 0) || ' days')) "
        "SELECT d.gtin, d.lot, s.location, s.quantity, d.expiry, d.wd, d.st "
        "FROM due d JOIN lot_stock s ON s.lot_id = d.id WHERE s.quantity > 0 "
        "UNION ALL "
        "SELECT d.gtin, d.lot, z.location, COUNT(*), d.expiry, d.wd, d.st "
        "FROM due d JOIN serials z ON z.gtin = d.gtin AND z.lot = d.lot "
        f"WHERE z.state IN ({marks}) GROUP BY d.id, z.location",
        (today.isoformat(), *ON_HAND),
    ).fetchall()
    return [
        LotStock(
            str(r[0]),
            str(r[1]),
            str(r[2] or ""),
            int(r[3]),
            date.fromisoformat(r[4]),
            int(r[5]),
            str(r[6]),
        )
        for r in rows
    ]


def alerted(conn: sqlite3.Connection, day: date) -> set[AlertKey]:
    """The (kind, gtin, lot, location) keys alerted on ``day``."""
    rows = conn.execute(
        "SELECT kind, gtin, lot, location FROM expiry_alerts WHERE day = ?", (day.isoformat(),)
    )
    return {(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows}


def remember(conn: sqlite3.Connection, day: date, alerts: Iterable[tuple[AlertKey, int]]) -> None:
    """Record keys alerted on ``day`` (with the alert's seq); forget every other day."""
    d = day.isoformat()
    conn.execute("DELETE FROM expiry_alerts WHERE day <> ?", (d,))
    conn.executemany(
        "INSERT OR IGNORE INTO expiry_alerts(day, kind, gtin, lot, location, seq) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(d, *key, seq) for key, seq in alerts],
    )
