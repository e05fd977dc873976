"""The read side the API serves: thin stand-ins until ``central.trace`` is merged.

PLACEHOLDERS: they query the projection tables directly (one statement each, bound
parameters only): ``trace`` lists the unit's own events (no lineage walk through
aggregation or transformation), ``recall`` lists where the lot or serial is now and who
received it. At merge, point the API at the ``central.trace`` functions instead.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, text


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in conn.execute(text(sql), params).mappings():
        out.append(
            {k: (v.isoformat() if hasattr(v, "isoformat") else _num(v)) for k, v in r.items()}
        )
    return out


def _num(v: Any) -> Any:
    from decimal import Decimal

    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def trace(
    conn: Connection,
    *,
    gtin: str | None,
    lot: str | None,
    serial: str | None,
    sscc: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Every event item of the unit, oldest first (stand-in: no lineage walk)."""
    return _rows(
        conn,
        """
        SELECT event_time, event_id, site, gateway_id, movement, role, gtin, lot, serial, sscc,
               parent_sscc, quantity, uom, from_type, from_id, to_type, to_id
        FROM event_items
        WHERE NOT corrected AND ((gtin = :g AND (lot = :l OR serial = :s))
              OR sscc = :c OR parent_sscc = :c)
        ORDER BY event_time, id LIMIT :n
        """,
        {"g": gtin, "l": lot, "s": serial, "c": sscc, "n": limit},
    )


def recall(
    conn: Connection, *, gtin: str, lot: str | None, serial: str | None, limit: int
) -> dict[str, list[dict[str, Any]]]:
    """Where a lot or serial is now and who received it (stand-in: no transformations)."""
    p = {"g": gtin, "l": lot, "s": serial, "n": limit}
    return {
        "stock": _rows(
            conn,
            "SELECT site, location, quantity FROM lot_stock WHERE gtin = :g AND lot = :l "
            "AND quantity <> 0 ORDER BY site, location LIMIT :n",
            p,
        ),
        "serials": _rows(
            conn,
            "SELECT serial, lot, site, location, holder, state FROM serial_state "
            "WHERE gtin = :g AND (lot = :l OR serial = :s) ORDER BY serial LIMIT :n",
            p,
        ),
        "recipients": _rows(
            conn,
            "SELECT to_id AS recipient, site, sum(quantity) AS quantity, min(event_time) AS "
            "first_shipped, max(event_time) AS last_shipped FROM event_items "
            "WHERE movement = 'ship' AND to_type = 'party' AND NOT corrected "
            "AND gtin = :g AND (lot = :l OR serial = :s) GROUP BY to_id, site "
            "ORDER BY 1, 2 LIMIT :n",
            p,
        ),
    }


def stock(
    conn: Connection,
    *,
    site: str | None,
    location: str | None,
    gtin: str | None,
    lot: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Lot quantities per site and location (filters are optional)."""
    return _rows(
        conn,
        """
        SELECT gtin, lot, site, location, quantity FROM lot_stock
        WHERE quantity <> 0 AND (CAST(:site AS text) IS NULL OR site = :site)
          AND (CAST(:loc AS text) IS NULL OR location = :loc)
          AND (CAST(:g AS text) IS NULL OR gtin = :g) AND (CAST(:l AS text) IS NULL OR lot = :l)
        ORDER BY site, location, gtin, lot LIMIT :n
        """,
        {"site": site, "loc": location, "g": gtin, "l": lot, "n": limit},
    )


def expiring(conn: Connection, *, days: int, today: date, limit: int) -> list[dict[str, Any]]:
    """Lots in stock that expire within ``days`` (or have expired)."""
    return _rows(
        conn,
        """
        SELECT s.gtin, s.lot, l.expiry, s.site, s.location, s.quantity FROM lot_stock s
        JOIN lots l ON l.gtin = s.gtin AND l.lot = s.lot
        WHERE s.quantity > 0 AND l.expiry <= :until ORDER BY l.expiry, s.gtin, s.lot LIMIT :n
        """,
        {"until": today + timedelta(days=days), "n": limit},
    )


def gateways(conn: Connection) -> list[dict[str, Any]]:
    """Every gateway: online, last seen, seq high-water mark, cache version, open gaps."""
    return _rows(
        conn,
        """
        SELECT g.gateway_id, g.site, g.online, g.last_seen, g.seq_high,
               COALESCE(c.version, g.cache_version) AS cache_version,
               (SELECT count(*) FROM seq_gaps s WHERE s.gateway_id = g.gateway_id
                AND s.closed_at IS NULL) AS open_gaps
        FROM gateways g LEFT JOIN cache_gateways c ON c.gateway_id = g.gateway_id
        UNION ALL
        SELECT c.gateway_id, c.site, NULL, c.reported_at, NULL, c.version, 0
        FROM cache_gateways c WHERE NOT EXISTS
            (SELECT 1 FROM gateways g WHERE g.gateway_id = c.gateway_id)
        ORDER BY 2, 1
        """,
        {},
    )
