"""What the pages read: one short, indexed statement each (bounded by a LIMIT).

The unit page never runs the whole trace of a lot: its timeline is paged (newest first,
``before`` = the last row's time and id) and its lineage tree is read one level at a
time (:func:`neighbours`), so a lot used in thousands of movements costs the same as one
used in ten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, text

from central.trace.model import UnitKey
from central.web.search import Lookup

TreeDir = Literal["up", "down"]
PAGE = 100
TREE_LIMIT = 200


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(text(sql), params)]


# -- search ----------------------------------------------------------------------------------


def resolve(conn: Connection, lookups: tuple[Lookup, ...], limit: int = 50) -> list[UnitKey]:
    """The units the database knows for each lookup (serials, lots, pallets), bounded."""
    out: list[UnitKey] = []
    for lk in lookups:
        p = {"v": lk.value, "g": lk.gtin, "n": limit}
        if lk.what in ("serial", "any"):
            for r in conn.execute(
                text(
                    "SELECT gtin, serial FROM serial_state WHERE serial = :v "
                    "AND (CAST(:g AS text) IS NULL OR gtin = :g) ORDER BY gtin LIMIT :n"
                ),
                p,
            ):
                out.append(UnitKey("serial", gtin=r[0], serial=r[1]))
        if lk.what in ("lot", "any"):
            for r in conn.execute(
                text(
                    "SELECT gtin, lot FROM ("
                    " SELECT gtin, lot FROM lots WHERE lot = :v"
                    " UNION SELECT gtin, lot FROM lot_stock WHERE lot = :v"
                    ") AS x WHERE (CAST(:g AS text) IS NULL OR gtin = :g) ORDER BY gtin LIMIT :n"
                ),
                p,
            ):
                out.append(UnitKey("lot", gtin=r[0], lot=r[1]))
        if lk.what == "gtin":
            for r in conn.execute(
                text(
                    "SELECT gtin, lot FROM ("
                    " SELECT gtin, lot FROM lots WHERE gtin = :g"
                    " UNION SELECT gtin, lot FROM lot_stock WHERE gtin = :g AND lot <> ''"
                    ") AS x ORDER BY lot LIMIT :n"
                ),
                p,
            ):
                out.append(UnitKey("lot", gtin=r[0], lot=r[1]))
    return list(dict.fromkeys(out))  # each unit once, in the order found


# -- the unit page ---------------------------------------------------------------------------


def _match(key: UnitKey, alias: str = "i") -> str:
    if key.kind == "lot":
        return f"{alias}.gtin = :gtin AND {alias}.lot = :lot"
    if key.kind == "serial":
        return f"{alias}.gtin = :gtin AND {alias}.serial = :serial"
    return f"{alias}.sscc = :sscc AND {alias}.gtin IS NULL"


def _params(key: UnitKey) -> dict[str, Any]:
    return {"gtin": key.gtin, "lot": key.lot, "serial": key.serial, "sscc": key.sscc}


def summary(conn: Connection, key: UnitKey) -> dict[str, Any]:
    """Where the unit is now and its status: master data, places, blocks in force."""
    p = _params(key)
    out: dict[str, Any] = {"key": key, "product": None, "lot": None, "places": [], "serials": []}
    if key.gtin is not None:
        out["product"] = conn.execute(
            text("SELECT gtin, description, tracking FROM products WHERE gtin = :gtin"), p
        ).first()
    if key.kind == "lot":
        out["lot"] = conn.execute(
            text("SELECT expiry, status FROM lots WHERE gtin = :gtin AND lot = :lot"), p
        ).first()
        out["places"] = _rows(
            conn,
            "SELECT site, location, NULL AS holder, 'at_site' AS state, quantity "
            "FROM lot_stock WHERE gtin = :gtin AND lot = :lot AND quantity <> 0 "
            "ORDER BY site, location LIMIT 500",
            p,
        )
        out["serials"] = _rows(
            conn,
            "SELECT state, count(*) AS n FROM serial_state WHERE gtin = :gtin AND lot = :lot "
            "GROUP BY state ORDER BY state",
            p,
        )
    elif key.kind == "serial":
        row = conn.execute(
            text(
                "SELECT lot, site, location, holder, state, last_event_time FROM serial_state "
                "WHERE gtin = :gtin AND serial = :serial"
            ),
            p,
        ).first()
        if row is not None:
            out["places"] = [
                {
                    "site": row.site,
                    "location": row.location,
                    "holder": row.holder,
                    "state": row.state,
                    "quantity": Decimal(1),
                }
            ]
            out["lot_of_serial"] = row.lot
            out["lot"] = conn.execute(
                text("SELECT expiry, status FROM lots WHERE gtin = :gtin AND lot = :l"),
                {**p, "l": row.lot},
            ).first()
    else:
        row = conn.execute(
            text("SELECT site, location, holder, state FROM sscc_state WHERE sscc = :sscc"), p
        ).first()
        if row is not None:
            out["places"] = [{**dict(row._mapping), "quantity": None}]
        out["contents"] = _rows(
            conn,
            "SELECT gtin, lot, serial, child_sscc, quantity, added_at FROM aggregation_edges "
            "WHERE parent_sscc = :sscc AND removed_at IS NULL ORDER BY id LIMIT 500",
            p,
        )
    lot = out.get("lot_of_serial", key.lot)
    out["blocks"] = _rows(
        conn,
        "SELECT block_id, kind, gtin, lot, serial, sscc, reason, created_at FROM blocks "
        "WHERE released_at IS NULL AND ("
        " (sscc IS NOT NULL AND sscc = CAST(:sscc AS text))"
        " OR (gtin = CAST(:gtin AS text) AND lot = CAST(:l AS text))"
        " OR (gtin = CAST(:gtin AS text) AND serial = CAST(:serial AS text))"
        ") ORDER BY created_at",
        {**p, "l": lot},
    )
    return out


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One movement of the unit (one event item), with the event's station."""

    id: int
    event_id: str
    event_time: datetime
    site: str
    gateway_id: str
    station: str | None
    movement: str
    gtin: str | None
    lot: str | None
    serial: str | None
    sscc: str | None
    parent_sscc: str | None
    quantity: Decimal | None
    uom: str | None
    from_type: str | None
    from_id: str | None
    to_type: str | None
    to_id: str | None

    @property
    def recipient(self) -> str | None:
        return self.to_id if self.to_type == "party" else None


def timeline(
    conn: Connection,
    key: UnitKey,
    *,
    before: tuple[datetime, int] | None = None,
    limit: int = PAGE,
) -> list[TimelineRow]:
    """The unit's own movements, newest first; ``before`` pages on (time, id)."""
    p = {**_params(key), "n": limit}
    cond = ""
    if before is not None:
        cond = "AND (i.event_time, i.id) < (:bt, :bi)"
        p.update(bt=before[0], bi=before[1])
    rows = conn.execute(
        text(
            "SELECT i.id, i.event_id, i.event_time, i.site, i.gateway_id, e.station, i.movement,"
            " i.gtin, i.lot, i.serial, i.sscc, i.parent_sscc, i.quantity, i.uom, i.from_type,"
            " i.from_id, i.to_type, i.to_id"
            " FROM event_items i"
            " LEFT JOIN events e ON e.event_id = i.event_id AND e.event_time = i.event_time"
            f" WHERE {_match(key)} AND NOT i.corrected {cond}"
            " ORDER BY i.event_time DESC, i.id DESC LIMIT :n"
        ),
        p,
    ).fetchall()
    return [TimelineRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A unit one lineage step away, and how it is related."""

    key: UnitKey
    relation: str  # made from | packed in | content | made into | on pallet
    quantity: Decimal | None
    time: datetime | None
    ref: str | None  # the transformation id or the aggregation event


def _key(gtin: str | None, lot: str | None, serial: str | None, sscc: str | None) -> UnitKey:
    if sscc:
        return UnitKey("sscc", sscc=sscc)
    if serial:
        return UnitKey("serial", gtin=gtin, serial=serial)
    return UnitKey("lot", gtin=gtin, lot=lot or "")


_TRANSFORM = """
SELECT o.gtin, o.lot, o.serial, NULL AS sscc, o.quantity, o.event_time AS time,
       t.transformation_id AS ref
  FROM transformation_edges t
  JOIN transformation_edges o ON o.transformation_id = t.transformation_id
       AND o.direction = :other
 WHERE t.direction = :mine AND {match}
 ORDER BY o.event_time, o.id LIMIT :n
"""


def neighbours(
    conn: Connection, key: UnitKey, direction: TreeDir, limit: int = TREE_LIMIT
) -> tuple[list[Neighbour], bool]:
    """One level of the lineage tree: ``up`` = where it came from, ``down`` = where it went.

    Returns the neighbours (at most ``limit``) and whether there were more.
    """
    p = {**_params(key), "n": limit + 1}
    found: list[Neighbour] = []
    if key.kind in ("lot", "serial"):
        match = _match(key, "t")
        mine, other = ("output", "input") if direction == "up" else ("input", "output")
        rel = "made from" if direction == "up" else "made into"
        for r in conn.execute(
            text(_TRANSFORM.format(match=match)), {**p, "mine": mine, "other": other}
        ):
            found.append(Neighbour(_key(r[0], r[1], r[2], None), rel, r[4], r[5], r[6]))
        if direction == "down":
            amatch = (
                "a.gtin = :gtin AND a.lot = :lot AND a.serial IS NULL"
                if key.kind == "lot"
                else "a.gtin = :gtin AND a.serial = :serial"
            )
            for r in conn.execute(
                text(
                    "SELECT a.parent_sscc, a.quantity, a.added_at, a.event_id"
                    f" FROM aggregation_edges a WHERE {amatch} ORDER BY a.added_at, a.id LIMIT :n"
                ),
                p,
            ):
                found.append(Neighbour(_key(None, None, None, r[0]), "packed on", r[1], r[2], r[3]))
    else:
        if direction == "up":
            sql = (
                "SELECT gtin, lot, serial, child_sscc, quantity, added_at, event_id"
                " FROM aggregation_edges WHERE parent_sscc = :sscc ORDER BY added_at, id LIMIT :n"
            )
            rel = "content"
        else:
            sql = (
                "SELECT NULL, NULL, NULL, parent_sscc, quantity, added_at, event_id"
                " FROM aggregation_edges WHERE child_sscc = :sscc ORDER BY added_at, id LIMIT :n"
            )
            rel = "packed on"
        for r in conn.execute(text(sql), p):
            found.append(Neighbour(_key(r[0], r[1], r[2], r[3]), rel, r[4], r[5], r[6]))
    more = len(found) > limit
    return found[:limit], more


# -- recall desk, fleet ----------------------------------------------------------------------


def blocks(
    conn: Connection, *, active_only: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Holds and recalls, newest first, with how many gateways applied each."""
    return _rows(
        conn,
        """
        SELECT b.block_id, b.kind, b.gtin, b.lot, b.serial, b.sscc, b.reason, b.created_by,
               b.created_at, b.released_at,
               (SELECT count(DISTINCT site) FROM cache_outbox o WHERE o.block_id = b.block_id)
                 AS sites
          FROM blocks b
         WHERE (NOT CAST(:a AS boolean) OR b.released_at IS NULL)
         ORDER BY b.created_at DESC LIMIT :n
        """,
        {"a": active_only, "n": limit},
    )


def devices(conn: Connection) -> list[dict[str, Any]]:
    """Each gateway device's last state (scanners, printers)."""
    return _rows(
        conn,
        "SELECT gateway_id, device, kind, state, time FROM gateway_devices "
        "ORDER BY gateway_id, device",
        {},
    )


def sites(conn: Connection) -> list[str]:
    """Every site central knows of."""
    return [
        r[0]
        for r in conn.execute(
            text(
                "SELECT site FROM gateways UNION SELECT site FROM lot_stock "
                "UNION SELECT site FROM cache_sites ORDER BY 1"
            )
        )
    ]


def gateway_of_event(conn: Connection, event_id: str) -> tuple[str, str] | None:
    """(site, gateway) that published an event."""
    row = conn.execute(
        text("SELECT site, gateway_id FROM event_items WHERE event_id = :e LIMIT 1"),
        {"e": event_id},
    ).first()
    return None if row is None else (row[0], row[1])
