"""The answers as SQL: trace, recall, stock, expiring, gateways (one statement each).

Trace and recall walk the lineage with recursive CTEs: a node is a lot (``L``: GTIN +
lot), a serial (``S``: GTIN + serial) or a pallet (``P``: SSCC). Every edge is looked up
through an index (``aggregation_edges`` by child or parent, ``transformation_edges`` by
unit and by transformation id, ``serial_state`` by lot); each walk carries the path of
nodes it took (a node already on the path is not entered again, so bad data with a
cycle ends) and stops at the depth limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, text

from central.trace.model import (
    DEFAULT_DEPTH,
    Direction,
    Place,
    Recall,
    RecallRow,
    Step,
    Trace,
    UnitKey,
)

_INF = "CAST('infinity' AS timestamptz)"
_NINF = "CAST('-infinity' AS timestamptz)"


def _nid(k: str, gtin: str, lot: str, serial: str, sscc: str) -> str:
    """A node's identity as text (for the path a walk carries)."""
    parts = " || '|' || ".join(f"COALESCE({c}, '')" for c in (gtin, lot, serial, sscc))
    return f"({k} || '|' || {parts})"


# The edges out of a walk node ``w`` (columns k, gtin, lot, serial, sscc, via, via_id, lo,
# hi): a UNION ALL whose branches each use one index; ``w.dir`` picks the transformation
# side. Containers keep the window in which the unit was on the pallet.
_TRACE_EDGES = f"""
    SELECT 'S' AS k, s.gtin, s.lot, s.serial, CAST(NULL AS varchar) AS sscc,
           'member' AS via, CAST(NULL AS text) AS via_id, {_NINF} AS lo, {_INF} AS hi
      FROM serial_state s WHERE w.k = 'L' AND s.gtin = w.gtin AND s.lot = w.lot
    UNION ALL
    SELECT 'P', NULL, NULL, NULL, a.parent_sscc, 'pallet', a.event_id, a.added_at,
           COALESCE(a.removed_at, {_INF})
      FROM aggregation_edges a WHERE w.k = 'L' AND a.gtin = w.gtin AND a.lot = w.lot
    UNION ALL
    SELECT 'P', NULL, NULL, NULL, a.parent_sscc, 'pallet', a.event_id, a.added_at,
           COALESCE(a.removed_at, {_INF})
      FROM aggregation_edges a
     WHERE w.k = 'S' AND a.gtin = w.gtin AND a.serial = w.serial AND a.serial IS NOT NULL
    UNION ALL
    SELECT 'P', NULL, NULL, NULL, a.parent_sscc, 'pallet', a.event_id, a.added_at,
           COALESCE(a.removed_at, {_INF})
      FROM aggregation_edges a
     WHERE w.k = 'P' AND a.child_sscc = w.sscc AND a.child_sscc IS NOT NULL
    UNION ALL
    SELECT CASE WHEN a.child_sscc IS NOT NULL THEN 'P' WHEN a.serial IS NOT NULL THEN 'S'
                ELSE 'L' END,
           a.gtin, a.lot, a.serial, a.child_sscc, 'content', a.event_id,
           CASE WHEN w.dir = 'forward' THEN a.added_at ELSE {_NINF} END,
           CASE WHEN w.dir = 'backward' THEN a.added_at ELSE {_INF} END
      FROM aggregation_edges a
     WHERE w.k = 'P' AND w.via IN ('self', 'content') AND a.parent_sscc = w.sscc
    UNION ALL
    SELECT CASE WHEN o.serial IS NULL THEN 'L' ELSE 'S' END, o.gtin, o.lot, o.serial, NULL,
           'transformation', t.transformation_id,
           CASE WHEN w.dir = 'forward' THEN o.event_time ELSE {_NINF} END,
           CASE WHEN w.dir = 'backward' THEN o.event_time ELSE {_INF} END
      FROM transformation_edges t
      JOIN transformation_edges o ON o.transformation_id = t.transformation_id
           AND o.direction = CASE WHEN w.dir = 'forward' THEN 'output' ELSE 'input' END
     WHERE w.k = 'L' AND t.gtin = w.gtin AND t.lot = w.lot
       AND t.direction = CASE WHEN w.dir = 'forward' THEN 'input' ELSE 'output' END
    UNION ALL
    SELECT CASE WHEN o.serial IS NULL THEN 'L' ELSE 'S' END, o.gtin, o.lot, o.serial, NULL,
           'transformation', t.transformation_id,
           CASE WHEN w.dir = 'forward' THEN o.event_time ELSE {_NINF} END,
           CASE WHEN w.dir = 'backward' THEN o.event_time ELSE {_INF} END
      FROM transformation_edges t
      JOIN transformation_edges o ON o.transformation_id = t.transformation_id
           AND o.direction = CASE WHEN w.dir = 'forward' THEN 'output' ELSE 'input' END
     WHERE w.k = 'S' AND t.gtin = w.gtin AND t.serial = w.serial AND t.serial IS NOT NULL
       AND t.direction = CASE WHEN w.dir = 'forward' THEN 'input' ELSE 'output' END
"""

_ITEM_COLS = (
    "i.id, i.event_id, i.event_time, i.site, i.gateway_id, i.movement, i.gtin, i.lot, "
    "i.serial, i.sscc, i.parent_sscc, i.quantity, i.uom, i.from_type, i.from_id, i.to_type, "
    "i.to_id"
)
_ITEM_WINDOW = "AND i.event_time >= w.lo AND i.event_time <= w.hi AND NOT i.corrected"

TRACE_SQL = f"""
WITH RECURSIVE walk (dir, self, k, gtin, lot, serial, sscc, depth, via, via_id, lo, hi, path)
AS (
    SELECT d.dir, true, CAST(:k AS text), CAST(:gtin AS varchar), CAST(:lot AS text),
           CAST(:serial AS text), CAST(:sscc AS varchar), 0, CAST('self' AS text),
           CAST(NULL AS text), {_NINF}, {_INF},
           ARRAY[{_nid(":k", ":gtin", ":lot", ":serial", ":sscc")}]
      FROM unnest(CAST(:dirs AS text[])) AS d (dir)
    UNION ALL
    SELECT w.dir, w.self AND n.via IN ('member', 'pallet'), n.k, n.gtin, n.lot, n.serial, n.sscc,
           w.depth + 1, n.via, n.via_id, GREATEST(w.lo, n.lo), LEAST(w.hi, n.hi),
           w.path || {_nid("n.k", "n.gtin", "n.lot", "n.serial", "n.sscc")}
      FROM walk w
     CROSS JOIN LATERAL ({_TRACE_EDGES}) AS n
     WHERE w.depth < :depth
       AND n.lo <= w.hi AND n.hi >= w.lo
       AND NOT {_nid("n.k", "n.gtin", "n.lot", "n.serial", "n.sscc")} = ANY (w.path)
),
steps AS (
    SELECT DISTINCT ON (label, i.id)
           CASE WHEN w.self THEN 'self' ELSE w.dir END AS label, w.depth, w.via, w.via_id,
           {_ITEM_COLS}
      FROM walk w
     CROSS JOIN LATERAL (
        SELECT {_ITEM_COLS} FROM event_items i
         WHERE w.k = 'L' AND i.gtin = w.gtin AND i.lot = w.lot {_ITEM_WINDOW}
        UNION ALL
        SELECT {_ITEM_COLS} FROM event_items i
         WHERE w.k = 'S' AND i.gtin = w.gtin AND i.serial = w.serial
           AND i.serial IS NOT NULL {_ITEM_WINDOW}
        UNION ALL
        SELECT {_ITEM_COLS} FROM event_items i
         WHERE w.k = 'P' AND i.sscc = w.sscc AND i.sscc IS NOT NULL AND i.gtin IS NULL
           {_ITEM_WINDOW}
     ) AS i
     ORDER BY label, i.id, w.depth
)
SELECT label, depth, via, via_id, event_time, event_id, movement, site, gateway_id, gtin, lot,
       serial, sscc, parent_sscc, quantity, uom, from_type, from_id, to_type, to_id
  FROM steps
 ORDER BY CASE label WHEN 'backward' THEN 0 WHEN 'self' THEN 1 ELSE 2 END, event_time,
          gateway_id, id
"""


def _place(t: str | None, i: str | None) -> Place | None:
    return Place(t, i) if t is not None and i is not None else None


def trace(
    conn: Connection,
    key: UnitKey,
    direction: Direction = "both",
    max_depth: int = DEFAULT_DEPTH,
) -> Trace:
    """The unit's own movements and, through any depth, where it came from / went."""
    dirs = ["backward", "forward"] if direction == "both" else [direction]
    rows = conn.execute(
        text(TRACE_SQL),
        {
            "k": key.code,
            "gtin": key.gtin,
            "lot": key.lot,
            "serial": key.serial,
            "sscc": key.sscc,
            "dirs": dirs,
            "depth": max_depth,
        },
    ).fetchall()
    steps = tuple(
        Step(
            direction=r.label,
            depth=int(r.depth),
            via=r.via,
            via_id=r.via_id,
            event_time=r.event_time,
            event_id=r.event_id,
            movement=r.movement,
            site=r.site,
            gateway_id=r.gateway_id,
            gtin=r.gtin,
            lot=r.lot,
            serial=r.serial,
            sscc=r.sscc,
            parent_sscc=r.parent_sscc,
            quantity=r.quantity,
            uom=r.uom,
            source=_place(r.from_type, r.from_id),
            destination=_place(r.to_type, r.to_id),
        )
        for r in rows
    )
    return Trace(key, direction, max_depth, steps)


# -- recall ------------------------------------------------------------------------------

# ``units``: the recalled lot or serials, the serials of every affected lot (``member``)
# and, recursively, whatever was made of them (``transformation``: downstream).
# ``held``: every pallet that held an affected unit, nested pallets too, with the span
# in which the whole chain held it (``hi`` = infinity: it still does). A shipment in the
# span's first or last millisecond counts (event times are milliseconds: what happened
# in the same one as the packing or unpacking cannot be ordered, and a recall errs on the
# side of more, as the trace's windows do).
RECALL_SQL = f"""
WITH RECURSIVE
start (k, gtin, lot, serial) AS (
    SELECT 'L', CAST(:gtin AS varchar), CAST(:lot AS text), CAST(NULL AS text)
     WHERE CAST(:lot AS text) IS NOT NULL
    UNION ALL
    SELECT 'S', x.gtin, s.lot, x.serial
      FROM unnest(CAST(:sgtins AS varchar[]), CAST(:serials AS text[])) AS x (gtin, serial)
      LEFT JOIN serial_state s ON s.gtin = x.gtin AND s.serial = x.serial
),
units (k, gtin, lot, serial, depth, downstream, via, path) AS (
    SELECT k, gtin, lot, serial, 0, false, CAST(NULL AS text),
           ARRAY[{_nid("k", "gtin", "lot", "serial", "NULL")}]
      FROM start
    UNION ALL
    SELECT n.k, n.gtin, n.lot, n.serial, u.depth + 1, u.downstream OR n.via IS NOT NULL,
           COALESCE(n.via, u.via),
           u.path || {_nid("n.k", "n.gtin", "n.lot", "n.serial", "NULL")}
      FROM units u
     CROSS JOIN LATERAL (
        SELECT 'S' AS k, s.gtin, s.lot, s.serial, CAST(NULL AS text) AS via
          FROM serial_state s WHERE u.k = 'L' AND s.gtin = u.gtin AND s.lot = u.lot
        UNION ALL
        SELECT CASE WHEN o.serial IS NULL THEN 'L' ELSE 'S' END, o.gtin, o.lot, o.serial,
               t.transformation_id
          FROM transformation_edges t
          JOIN transformation_edges o ON o.transformation_id = t.transformation_id
               AND o.direction = 'output'
         WHERE u.k = 'L' AND t.direction = 'input' AND t.gtin = u.gtin AND t.lot = u.lot
        UNION ALL
        SELECT CASE WHEN o.serial IS NULL THEN 'L' ELSE 'S' END, o.gtin, o.lot, o.serial,
               t.transformation_id
          FROM transformation_edges t
          JOIN transformation_edges o ON o.transformation_id = t.transformation_id
               AND o.direction = 'output'
         WHERE u.k = 'S' AND t.direction = 'input' AND t.gtin = u.gtin
           AND t.serial = u.serial AND t.serial IS NOT NULL
     ) AS n
     WHERE u.depth < :depth
       AND NOT {_nid("n.k", "n.gtin", "n.lot", "n.serial", "NULL")} = ANY (u.path)
),
aff AS (
    SELECT DISTINCT ON (k, gtin, lot, serial) k, gtin, lot, serial, downstream, via
      FROM units ORDER BY k, gtin, lot, serial, downstream, depth
),
held (sscc, gtin, lot, serial, quantity, via_sscc, downstream, lo, hi, depth, path) AS (
    SELECT CAST(a.parent_sscc AS text), a.gtin, a.lot, a.serial, a.quantity, CAST(NULL AS text),
           f.downstream, a.added_at, COALESCE(a.removed_at, {_INF}), 1, ARRAY[CAST(a.parent_sscc AS text)]
      FROM aff f JOIN aggregation_edges a
        ON f.k = 'L' AND a.gtin = f.gtin AND a.lot = f.lot AND a.serial IS NULL
    UNION ALL
    SELECT CAST(a.parent_sscc AS text), a.gtin, COALESCE(a.lot, f.lot), a.serial, a.quantity,
           CAST(NULL AS text), f.downstream, a.added_at, COALESCE(a.removed_at, {_INF}), 1,
           ARRAY[CAST(a.parent_sscc AS text)]
      FROM aff f JOIN aggregation_edges a
        ON f.k = 'S' AND a.gtin = f.gtin AND a.serial = f.serial AND a.serial IS NOT NULL
    UNION ALL
    SELECT CAST(a.parent_sscc AS text), h.gtin, h.lot, h.serial, h.quantity, h.sscc, h.downstream,
           GREATEST(h.lo, a.added_at), LEAST(h.hi, COALESCE(a.removed_at, {_INF})),
           h.depth + 1, h.path || CAST(a.parent_sscc AS text)
      FROM held h JOIN aggregation_edges a ON a.child_sscc = h.sscc
     WHERE h.depth < :depth AND NOT CAST(a.parent_sscc AS text) = ANY (h.path)
       AND a.added_at <= h.hi AND COALESCE(a.removed_at, {_INF}) >= h.lo
),
direct AS (
    SELECT DISTINCT ON (i.id) i.*, f.downstream
      FROM aff f
     CROSS JOIN LATERAL (
        SELECT i.* FROM event_items i
         WHERE f.k = 'L' AND i.gtin = f.gtin AND i.lot = f.lot
        UNION ALL
        SELECT i.* FROM event_items i
         WHERE f.k = 'S' AND i.gtin = f.gtin AND i.serial = f.serial AND i.serial IS NOT NULL
     ) AS i
     WHERE i.to_type = 'party' AND NOT i.corrected
     ORDER BY i.id, f.downstream
)
SELECT * FROM (
    SELECT 0 AS ord, 'serial' AS section, s.gtin, s.lot, s.serial, CAST(NULL AS varchar) AS sscc,
           s.site, s.location, s.holder, s.state, l.status, CAST(1 AS numeric) AS quantity,
           CAST(NULL AS text) AS uom, CAST(NULL AS text) AS party, s.last_event_time AS time,
           s.last_event_id AS event_id, f.via, f.downstream
      FROM aff f JOIN serial_state s ON f.k = 'S' AND s.gtin = f.gtin AND s.serial = f.serial
      LEFT JOIN lots l ON l.gtin = s.gtin AND l.lot = s.lot
    UNION ALL
    SELECT 1, 'lot', ls.gtin, ls.lot, NULL, NULL, ls.site, ls.location, NULL, 'at_site',
           l.status, ls.quantity, NULL, NULL, NULL, NULL, f.via, f.downstream
      FROM aff f JOIN lot_stock ls ON f.k = 'L' AND ls.gtin = f.gtin AND ls.lot = f.lot
      LEFT JOIN lots l ON l.gtin = ls.gtin AND l.lot = ls.lot
     WHERE ls.quantity > 0
    UNION ALL
    SELECT DISTINCT 2, 'pallet', h.gtin, h.lot, h.serial, h.sscc, p.site, p.location, p.holder,
           p.state, l.status, h.quantity, NULL, NULL, p.last_event_time, NULL, h.via_sscc,
           h.downstream
      FROM held h LEFT JOIN sscc_state p ON p.sscc = h.sscc
      LEFT JOIN lots l ON l.gtin = h.gtin AND l.lot = h.lot
     WHERE h.hi = {_INF}
    UNION ALL
    SELECT 3, 'recipient', d.gtin, d.lot, d.serial, NULL, d.site, d.from_id, NULL, d.movement,
           NULL, d.quantity, d.uom, d.to_id, d.event_time, d.event_id, NULL, d.downstream
      FROM direct d
    UNION ALL
    SELECT DISTINCT 3, 'recipient', h.gtin, h.lot, h.serial, NULL, i.site, i.from_id, NULL,
           i.movement, NULL, h.quantity, NULL, i.to_id, i.event_time, i.event_id, h.sscc,
           h.downstream
      FROM held h JOIN event_items i
        ON i.sscc = h.sscc AND i.gtin IS NULL AND i.to_type = 'party' AND NOT i.corrected
       AND i.event_time >= h.lo AND i.event_time <= h.hi
     WHERE NOT EXISTS (
        SELECT 1 FROM event_items x
         WHERE x.event_id = i.event_id AND x.gtin = h.gtin AND x.to_type = 'party'
           AND (x.serial = h.serial OR (h.serial IS NULL AND x.serial IS NULL AND x.lot = h.lot)))
) AS answer
ORDER BY ord, downstream, gtin, lot, serial, sscc, site, location, time, party
"""


def recall(
    conn: Connection,
    *,
    lot: UnitKey | None = None,
    serials: Sequence[UnitKey] = (),
    max_depth: int = DEFAULT_DEPTH,
) -> Recall:
    """Every unit affected by a lot (or a list of serials), where it is now, who received it."""
    if (lot is None) == (not serials):
        raise ValueError("recall a lot or a list of serials")
    if lot is not None and lot.kind != "lot":
        raise ValueError("recall(lot=…) takes a lot")
    if any(s.kind != "serial" for s in serials):
        raise ValueError("recall(serials=…) takes serials")
    rows = conn.execute(
        text(RECALL_SQL),
        {
            "gtin": lot.gtin if lot else None,
            "lot": lot.lot if lot else None,
            "sgtins": [s.gtin for s in serials],
            "serials": [s.serial for s in serials],
            "depth": max_depth,
        },
    ).fetchall()
    out = tuple(
        RecallRow(
            section=r.section,
            gtin=r.gtin,
            lot=r.lot,
            serial=r.serial,
            sscc=r.sscc,
            site=r.site,
            location=r.location,
            holder=r.holder,
            state=r.state,
            status=r.status,
            quantity=r.quantity,
            uom=r.uom,
            party=r.party,
            time=r.time,
            event_id=r.event_id,
            via=r.via,
            downstream=bool(r.downstream),
        )
        for r in rows
    )
    subjects = (lot,) if lot is not None else tuple(serials)
    return Recall(subjects, out)


# -- stock, expiring, gateways -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockRow:
    """A quantity of a lot (or untracked GTIN) or a count of serials at a site location."""

    site: str
    location: str | None
    gtin: str
    description: str | None
    lot: str | None
    expiry: date | None
    status: str | None
    quantity: Decimal
    kind: str  # lot | serials


_STOCK_UNION = """
    SELECT ls.site, ls.location, ls.gtin, NULLIF(ls.lot, '') AS lot, ls.quantity,
           'lot' AS kind
      FROM lot_stock ls WHERE ls.quantity <> 0
    UNION ALL
    SELECT s.site, s.location, s.gtin, s.lot, CAST(count(*) AS numeric), 'serials'
      FROM serial_state s WHERE s.state = 'at_site'
     GROUP BY s.site, s.location, s.gtin, s.lot
"""

STOCK_SQL = f"""
SELECT st.site, st.location, st.gtin, p.description, st.lot, l.expiry, l.status, st.quantity,
       st.kind
  FROM ({_STOCK_UNION}) AS st
  LEFT JOIN products p ON p.gtin = st.gtin
  LEFT JOIN lots l ON l.gtin = st.gtin AND l.lot = st.lot
 WHERE (CAST(:site AS text) IS NULL OR st.site = :site)
   AND (CAST(:location AS text) IS NULL OR st.location = :location)
   AND (CAST(:gtin AS text) IS NULL OR st.gtin = :gtin)
   AND (CAST(:lot AS text) IS NULL OR st.lot = :lot)
 ORDER BY st.site, st.location, st.gtin, st.lot NULLS FIRST, st.kind
"""


def stock(
    conn: Connection,
    *,
    site: str | None = None,
    location: str | None = None,
    gtin: str | None = None,
    lot: str | None = None,
) -> list[StockRow]:
    """What is at each site and location now (lot quantities and serial counts)."""
    rows = conn.execute(
        text(STOCK_SQL), {"site": site, "location": location, "gtin": gtin, "lot": lot}
    ).fetchall()
    return [StockRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class ExpiringRow:
    """Stock of a lot whose expiry is within the window (or past: ``days_left`` < 0)."""

    gtin: str
    description: str | None
    lot: str
    expiry: date
    days_left: int
    site: str
    location: str | None
    quantity: Decimal
    status: str | None


EXPIRING_SQL = f"""
SELECT st.gtin, p.description, st.lot, l.expiry, (l.expiry - CAST(:today AS date)) AS days_left,
       st.site, st.location, sum(st.quantity) AS quantity, l.status
  FROM ({_STOCK_UNION}) AS st
  JOIN lots l ON l.gtin = st.gtin AND l.lot = st.lot
  LEFT JOIN products p ON p.gtin = st.gtin
 WHERE st.quantity > 0 AND l.expiry IS NOT NULL
   AND l.expiry <= CAST(:today AS date)
       + COALESCE(CAST(:days AS integer), p.expiry_warning_days, 30)
   AND (CAST(:site AS text) IS NULL OR st.site = :site)
 GROUP BY st.gtin, p.description, st.lot, l.expiry, st.site, st.location, l.status
 ORDER BY l.expiry, st.gtin, st.lot, st.site, st.location
"""


def expiring(
    conn: Connection, today: date, days: int | None = None, *, site: str | None = None
) -> list[ExpiringRow]:
    """Stock expiring within ``days`` (None: each product's warning days), soonest first."""
    rows = conn.execute(text(EXPIRING_SQL), {"today": today, "days": days, "site": site}).fetchall()
    return [ExpiringRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class GatewayRow:
    """A gateway as central sees it."""

    gateway_id: str
    site: str
    state: str  # online | offline | unknown
    last_seen: datetime | None
    seq_high: int
    outbox_depth: int | None
    oldest_unsent_age_s: float | None
    metrics_time: str | None
    cache_version: int | None
    open_gaps: int
    missing_events: int


GATEWAYS_SQL = """
SELECT g.gateway_id, g.site,
       CASE WHEN g.online IS NULL THEN 'unknown' WHEN g.online THEN 'online' ELSE 'offline' END,
       g.last_seen, g.seq_high,
       CAST(g.metrics -> 'outbox' ->> 'depth' AS integer),
       CAST(g.metrics -> 'outbox' ->> 'oldest_unsent_age_s' AS double precision),
       g.metrics ->> 'time',
       COALESCE(g.cache_version, CAST(g.status ->> 'cache_version' AS bigint)),
       COALESCE(gp.n, 0), COALESCE(gp.missing, 0)
  FROM gateways g
  LEFT JOIN (
        SELECT gateway_id, count(*) AS n, sum(to_seq - from_seq + 1) AS missing
          FROM seq_gaps WHERE closed_at IS NULL GROUP BY gateway_id
  ) AS gp ON gp.gateway_id = g.gateway_id
 WHERE (CAST(:site AS text) IS NULL OR g.site = :site)
 ORDER BY g.site, g.gateway_id
"""


def gateways(conn: Connection, *, site: str | None = None) -> list[GatewayRow]:
    """Every gateway: online or not, last seen, outbox, cache version, open seq gaps."""
    rows = conn.execute(text(GATEWAYS_SQL), {"site": site}).fetchall()
    return [
        GatewayRow(
            r[0],
            r[1],
            r[2],
            r[3],
            int(r[4]),
            None if r[5] is None else int(r[5]),
            None if r[6] is None else float(r[6]),
            r[7],
            None if r[8] is None else int(r[8]),
            int(r[9]),
            int(r[10]),
        )
        for r in rows
    ]


__all__ = [
    "EXPIRING_SQL",
    "GATEWAYS_SQL",
    "RECALL_SQL",
    "STOCK_SQL",
    "TRACE_SQL",
    "ExpiringRow",
    "GatewayRow",
    "StockRow",
    "expiring",
    "gateways",
    "recall",
    "stock",
    "trace",
]
