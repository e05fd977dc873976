"""Read-only answers from the gateway database: where is it now, and what happened to it.

Plain SQL over a sqlite3 connection (the CLI and the MQTT ``stock``/``trace`` commands
open the file read-only beside the running gateway's writer).
"""

from __future__ import annotations

import sqlite3
from typing import Any

#: Serial states in which a unit is on hand here.
ON_HAND = ("in_stock", "picked", "on_hold", "recalled")


def _where(conds: list[tuple[str, object]]) -> tuple[str, list[object]]:
    used = [(c, v) for c, v in conds if v is not None]
    if not used:
        return "", []
    return " AND " + " AND ".join(c for c, _ in used), [v for _, v in used]


def stock(
    conn: sqlite3.Connection,
    *,
    gtin: str | None = None,
    lot: str | None = None,
    serial: str | None = None,
    location: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Stock on hand: one row per (gtin, lot, location), per serial, per (gtin, location).

    Keys: gtin, lot, serial, location, quantity, uom, status, expiry.
    """
    out: list[dict[str, Any]] = []
    marks = ",".join("?" * len(ON_HAND))
    if serial is None:
        extra, args = _where(
            [("l.gtin = ?", gtin), ("l.lot = ?", lot), ("s.location = ?", location)]
        )
        for r in conn.execute(
            "SELECT l.gtin, l.lot, s.location, s.quantity, CASE WHEN l.local_hold AND "
            "l.status = 'active' THEN 'hold' ELSE l.status END, l.expiry "
            "FROM lot_stock s JOIN lots l ON l.id = s.lot_id WHERE s.quantity > 0"
            + extra
            + " ORDER BY l.gtin, l.lot, s.location",
            args,
        ):
            out.append(
                {
                    "gtin": r[0],
                    "lot": r[1],
                    "serial": None,
                    "location": r[2],
                    "quantity": int(r[3]),
                    "uom": "EA",
                    "status": r[4],
                    "expiry": r[5],
                }
            )
            if limit is not None and len(out) >= limit:
                return out[:limit]  # stop reading: the caller wants no more
    extra, args = _where(
        [
            ("z.gtin = ?", gtin),
            ("z.lot = ?", lot),
            ("z.serial = ?", serial),
            ("z.location = ?", location),
        ]
    )
    for r in conn.execute(
        "SELECT z.gtin, z.lot, z.serial, z.location, CASE WHEN z.held AND z.state IN "
        "('in_stock', 'picked') THEN 'on_hold' ELSE z.state END, l.expiry "
        "FROM serials z LEFT JOIN lots l ON l.gtin = z.gtin AND l.lot = z.lot "
        f"WHERE z.state IN ({marks})" + extra + " ORDER BY z.gtin, z.serial",
        [*ON_HAND, *args],
    ):
        out.append(
            {
                "gtin": r[0],
                "lot": r[1],
                "serial": r[2],
                "location": r[3],
                "quantity": 1,
                "uom": "EA",
                "status": r[4],
                "expiry": r[5],
            }
        )
        if limit is not None and len(out) >= limit:
            return out[:limit]
    if lot is None and serial is None:
        extra, args = _where([("gtin = ?", gtin), ("location = ?", location)])
        for r in conn.execute(
            "SELECT gtin, location, quantity FROM item_stock WHERE quantity > 0"
            + extra
            + " ORDER BY gtin, location",
            args,
        ):
            out.append(
                {
                    "gtin": r[0],
                    "lot": None,
                    "serial": None,
                    "location": r[1],
                    "quantity": int(r[2]),
                    "uom": "EA",
                    "status": "active",
                    "expiry": None,
                }
            )
    return out[:limit] if limit is not None else out


def trace(
    conn: sqlite3.Connection,
    *,
    gtin: str | None = None,
    lot: str | None = None,
    serial: str | None = None,
    sscc: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The local history of a lot, a serial or a pallet, oldest first (one row per item)."""
    args: list[str | None]
    if sscc is not None:
        where, args = "(h.sscc = ? OR h.parent = ?)", [sscc, sscc]
    elif serial is not None:
        where, args = "h.gtin = ? AND h.serial = ?", [gtin, serial]
    else:
        where, args = "h.gtin = ? AND h.lot = ?", [gtin, lot]
    sql = (
        "SELECT h.seq, h.event_id, h.event_time, h.movement, h.biz_step, h.from_type, "
        "h.from_id, h.to_type, h.to_id, h.gtin, h.lot, h.serial, h.sscc, h.quantity, h.uom, "
        "h.parent, h.station, NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = h.seq "
        f"AND o.published_at IS NULL) FROM history h WHERE {where} ORDER BY h.seq, h.id"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    out: list[dict[str, Any]] = []
    for r in conn.execute(sql, args):
        qty = r[13]
        out.append(
            {
                "seq": r[0],
                "event_id": r[1],
                "event_time": r[2],
                "movement": r[3],
                "biz_step": r[4],
                "from": {"type": r[5], "id": r[6]} if r[5] else None,
                "to": {"type": r[7], "id": r[8]} if r[7] else None,
                "gtin": r[9],
                "lot": r[10],
                "serial": r[11],
                "sscc": r[12],
                "quantity": int(qty) if qty is not None and float(qty).is_integer() else qty,
                "uom": r[14],
                "parent": r[15],
                "station": r[16],
                "published": bool(r[17]),
            }
        )
    return out
