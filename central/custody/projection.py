"""Storing events and updating the projection, in the caller's transaction (SQL, thin).

``store_events`` is idempotent by ``event_id``: an event seen before changes nothing.
Everything an event changes (raw row, items, current state, lineage, gateway seq and
gaps) is written in the transaction the caller commits before acknowledging the
MQTT messages.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from central.custody.model import (
    ItemRow,
    UnitPlace,
    gaps_after,
    item_rows,
    parse_time,
    stock_deltas,
    unit_place,
)


@dataclass
class StoreResult:
    """What a batch did: new events stored, duplicates skipped."""

    stored: int = 0
    duplicates: int = 0


def store_events(
    conn: Connection, events: Sequence[Mapping[str, Any]], received_at: datetime
) -> StoreResult:
    """Store new events (validated payloads) and project them; duplicates are skipped."""
    result = StoreResult()
    if not events:
        return result
    unique: dict[str, Mapping[str, Any]] = {}
    for ev in events:
        unique.setdefault(str(ev["event_id"]), ev)
    rows = conn.execute(
        text(
            "INSERT INTO event_ids (event_id, event_time, gateway_id, seq) "
            "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:times AS timestamptz[]), "
            "CAST(:gws AS text[]), CAST(:seqs AS bigint[])) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        ),
        {
            "ids": list(unique),
            "times": [parse_time(e["event_time"]) for e in unique.values()],
            "gws": [str(e["gateway_id"]) for e in unique.values()],
            "seqs": [int(e["seq"]) for e in unique.values()],
        },
    ).fetchall()
    new_ids = {r[0] for r in rows}
    result.duplicates = len(events) - len(new_ids)
    fresh = [unique[i] for i in unique if i in new_ids]
    if not fresh:
        return result
    ensure_partitions(conn, [parse_time(e["event_time"]) for e in fresh])
    _insert_raw(conn, fresh, received_at)
    deltas: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for ev in sorted(fresh, key=lambda e: (parse_time(e["event_time"]), e["gateway_id"], e["seq"])):
        _project(conn, ev, deltas)
    _apply_deltas(conn, deltas)
    track_seqs(conn, fresh, received_at)
    result.stored = len(fresh)
    return result


#: Months whose partition exists, per database (URL): no catalog lookup per batch.
_KNOWN_MONTHS: set[tuple[str, int, int]] = set()


def ensure_partitions(conn: Connection, times: Sequence[datetime]) -> None:
    """A monthly partition of ``events`` for every month in ``times`` (UTC), so old months
    detach cleanly (``ALTER TABLE events DETACH PARTITION events_2026_01``). Rows of a
    month that reached the DEFAULT partition first stay there."""
    from datetime import UTC

    db = str(conn.engine.url)
    months = {(db, t.astimezone(UTC).year, t.astimezone(UTC).month) for t in times}
    for _db, y, m in sorted(months - _KNOWN_MONTHS):
        name = f"events_{y:04d}_{m:02d}"
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        conn.execute(text("SELECT pg_advisory_xact_lock(7245, :k)"), {"k": y * 100 + m})
        exists = conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar()
        if exists is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        text(
                            f"CREATE TABLE {name} PARTITION OF events FOR VALUES FROM "
                            f"('{y:04d}-{m:02d}-01 00:00:00+00') TO "
                            f"('{ny:04d}-{nm:02d}-01 00:00:00+00')"
                        )
                    )
            except Exception:  # the DEFAULT partition already holds rows of that month
                continue
        _KNOWN_MONTHS.add((db, y, m))


def _insert_raw(
    conn: Connection, fresh: Sequence[Mapping[str, Any]], received_at: datetime
) -> None:
    conn.execute(
        text(
            "INSERT INTO events (event_id, event_time, received_at, site, gateway_id, seq, "
            "station, movement, event_type, biz_step, payload) VALUES (:event_id, :event_time, "
            ":received_at, :site, :gateway_id, :seq, :station, :movement, :event_type, "
            ":biz_step, CAST(:payload AS jsonb))"
        ),
        [
            {
                "event_id": e["event_id"],
                "event_time": parse_time(e["event_time"]),
                "received_at": received_at,
                "site": e["site"],
                "gateway_id": e["gateway_id"],
                "seq": int(e["seq"]),
                "station": e["station"],
                "movement": e["movement"],
                "event_type": e["event_type"],
                "biz_step": e["biz_step"],
                "payload": json.dumps(e, ensure_ascii=False),
            }
            for e in fresh
        ],
    )
    items = []
    for e in fresh:
        t = parse_time(e["event_time"])
        for r in item_rows(e):
            items.append(
                {
                    "event_id": e["event_id"],
                    "event_time": t,
                    "site": e["site"],
                    "gateway_id": e["gateway_id"],
                    "movement": e["movement"],
                    **_row_dict(r),
                }
            )
    if items:
        conn.execute(
            text(
                "INSERT INTO event_items (event_id, event_time, site, gateway_id, movement, role, "
                "gtin, lot, serial, sscc, parent_sscc, quantity, uom, from_type, from_id, "
                "to_type, to_id) VALUES (:event_id, :event_time, :site, :gateway_id, :movement, "
                ":role, :gtin, :lot, :serial, :sscc, :parent_sscc, :quantity, :uom, :from_type, "
                ":from_id, :to_type, :to_id)"
            ),
            items,
        )


def _row_dict(r: ItemRow) -> dict[str, Any]:
    return {
        "role": r.role,
        "gtin": r.gtin,
        "lot": r.lot,
        "serial": r.serial,
        "sscc": r.sscc,
        "parent_sscc": r.parent_sscc,
        "quantity": r.quantity,
        "uom": r.uom,
        "from_type": r.from_type,
        "from_id": r.from_id,
        "to_type": r.to_type,
        "to_id": r.to_id,
    }


def _project(
    conn: Connection,
    ev: Mapping[str, Any],
    deltas: dict[tuple[str, str, str, str], Decimal],
) -> None:
    """One event's effect on the current state and the lineage."""
    site = str(ev["site"])
    mv = str(ev["movement"])
    t = parse_time(ev["event_time"])
    rows = item_rows(ev)
    for wrong in ev.get("corrects") or ():
        _undo(conn, str(wrong), deltas)
    for key in stock_deltas(site, rows):
        deltas[key[:4]] += key[4]
    for r in rows:
        place = unit_place(mv, site, r)
        if place is None:
            continue
        if r.serial is not None and r.gtin is not None:
            conn.execute(
                text(
                    "INSERT INTO serial_state AS s (gtin, serial, lot, site, location, holder, "
                    "state, last_event_time, last_event_id, last_gateway_id, last_seq) VALUES "
                    "(:gtin, :serial, :lot, :site, :location, :holder, :state, :t, :eid, :gw, "
                    ":seq) ON CONFLICT (gtin, serial) DO UPDATE "
                    "SET lot = COALESCE(s.lot, EXCLUDED.lot), site = EXCLUDED.site, "
                    "location = EXCLUDED.location, holder = EXCLUDED.holder, "
                    "state = EXCLUDED.state, last_event_time = EXCLUDED.last_event_time, "
                    "last_event_id = EXCLUDED.last_event_id, "
                    "last_gateway_id = EXCLUDED.last_gateway_id, last_seq = EXCLUDED.last_seq "
                    f"WHERE {_NOT_OLDER.format(r='s')}"
                ),
                {
                    "gtin": r.gtin,
                    "serial": r.serial,
                    "lot": r.lot,
                    "site": place.site,
                    "location": place.location,
                    "holder": place.holder,
                    "state": place.state,
                    "t": t,
                    "eid": ev["event_id"],
                    **_by(ev),
                },
            )
        elif r.sscc is not None and r.gtin is None:
            _pallet_place(conn, r.sscc, place, t, ev)
    parent = ev.get("parent", {}).get("sscc") if ev.get("parent") else None
    if parent and ev.get("event_type") == "AggregationEvent":
        if ev.get("action") == "ADD":
            # the pallet is where its contents were packed (a pallet never moved as a whole
            # still has a place); its own later moves win by time
            packed_at = next(
                (p for p in (unit_place(mv, site, r) for r in rows) if p and p.site), None
            )
            if packed_at is not None:
                _pallet_place(conn, parent, packed_at, t, ev)
            for r in rows:
                conn.execute(
                    text(
                        "INSERT INTO aggregation_edges (parent_sscc, gtin, lot, serial, "
                        "child_sscc, quantity, added_at, event_id) VALUES (:p, :gtin, :lot, "
                        ":serial, :child, :q, :t, :eid)"
                    ),
                    {
                        "p": parent,
                        "gtin": r.gtin,
                        "lot": r.lot,
                        "serial": r.serial,
                        "child": r.sscc if r.gtin is None else None,
                        "q": r.quantity,
                        "t": t,
                        "eid": ev["event_id"],
                    },
                )
        elif ev.get("action") == "DELETE":
            conn.execute(
                text(
                    "UPDATE aggregation_edges SET removed_at = :t WHERE parent_sscc = :p "
                    "AND removed_at IS NULL AND added_at <= :t"
                ),
                {"p": parent, "t": t},
            )
    if ev.get("event_type") == "TransformationEvent" and ev.get("transformation_id"):
        for r in rows:
            if r.role not in ("input", "output"):
                continue
            conn.execute(
                text(
                    "INSERT INTO transformation_edges (transformation_id, direction, gtin, lot, "
                    "serial, quantity, event_time, event_id) VALUES (:x, :d, :gtin, :lot, "
                    ":serial, :q, :t, :eid)"
                ),
                {
                    "x": ev["transformation_id"],
                    "d": r.role,
                    "gtin": r.gtin,
                    "lot": r.lot,
                    "serial": r.serial,
                    "q": r.quantity,
                    "t": t,
                    "eid": ev["event_id"],
                },
            )
    # pallets shipped or received whole: their open aggregation edges stay (the pallet still
    # holds its contents at the customer); trace follows them by SSCC.


def _pallet_place(
    conn: Connection, sscc: str, place: UnitPlace, t: datetime, ev: Mapping[str, Any]
) -> None:
    """Where a pallet is now (``sscc_state``), unless a later event said otherwise."""
    conn.execute(
        text(
            "INSERT INTO sscc_state AS p (sscc, site, location, holder, state, "
            "last_event_time, last_gateway_id, last_seq) VALUES (:sscc, :site, :location, "
            ":holder, :state, :t, :gw, :seq) "
            "ON CONFLICT (sscc) DO UPDATE SET site = EXCLUDED.site, "
            "location = EXCLUDED.location, holder = EXCLUDED.holder, "
            "state = EXCLUDED.state, last_event_time = EXCLUDED.last_event_time, "
            "last_gateway_id = EXCLUDED.last_gateway_id, last_seq = EXCLUDED.last_seq "
            f"WHERE {_NOT_OLDER.format(r='p')}"
        ),
        {
            "sscc": sscc,
            "site": place.site,
            "location": place.location,
            "holder": place.holder,
            "state": place.state,
            "t": t,
            **_by(ev),
        },
    )


#: When an event may set a unit's current state (``{r}``: the row held). A later event
#: always; one in the same millisecond unless the row came from the same gateway with a
#: higher seq (the gateway's order: the later event was stored first, in another batch
#: or before a redelivery); at a tie between gateways, or without seqs, the event stored
#: last, as before seqs were kept.
_NOT_OLDER = (
    "({r}.last_event_time < EXCLUDED.last_event_time OR ({r}.last_event_time = "
    "EXCLUDED.last_event_time AND ({r}.last_gateway_id IS DISTINCT FROM "
    "EXCLUDED.last_gateway_id OR {r}.last_seq IS NULL OR EXCLUDED.last_seq IS NULL "
    "OR {r}.last_seq <= EXCLUDED.last_seq)))"
)


def _by(ev: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway and seq of ``ev`` (None when it has none: a captured EPCIS event)."""
    seq = ev.get("seq")
    return {
        "gw": ev.get("gateway_id"),
        "seq": int(seq) if isinstance(seq, int) and not isinstance(seq, bool) else None,
    }


def _undo(
    conn: Connection, event_id: str, deltas: dict[tuple[str, str, str, str], Decimal]
) -> None:
    """A correction: the corrected event's quantities are taken back (once)."""
    rows = conn.execute(
        text(
            "UPDATE event_items SET corrected = true WHERE event_id = :e AND NOT corrected "
            "RETURNING site, role, gtin, lot, serial, sscc, parent_sscc, quantity, uom, "
            "from_type, from_id, to_type, to_id"
        ),
        {"e": event_id},
    ).fetchall()
    site = rows[0][0] if rows else ""
    items = [ItemRow(*r[1:]) for r in rows]
    for key in stock_deltas(site, items, sign=-1):
        deltas[key[:4]] += key[4]


def _apply_deltas(conn: Connection, deltas: Mapping[tuple[str, str, str, str], Decimal]) -> None:
    todo = [(k, v) for k, v in deltas.items() if v != 0]
    if not todo:
        return
    conn.execute(
        text(
            "INSERT INTO lot_stock AS s (gtin, lot, site, location, quantity) VALUES "
            "(:gtin, :lot, :site, :location, :q) ON CONFLICT (gtin, lot, site, location) "
            "DO UPDATE SET quantity = s.quantity + EXCLUDED.quantity"
        ),
        [
            {"gtin": k[0], "lot": k[1], "site": k[2], "location": k[3], "q": v}
            for k, v in sorted(todo)
        ],
    )


def track_seqs(conn: Connection, fresh: Sequence[Mapping[str, Any]], received_at: datetime) -> None:
    """Per gateway: the seq high-water mark, new gaps, and gaps closed by late messages.

    Events and alerts share one seq space per gateway: pass every newly stored one.
    """
    by_gw: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e in fresh:
        by_gw[(str(e["gateway_id"]), str(e["site"]))].append(int(e["seq"]))
    for (gw, site), seqs in sorted(by_gw.items()):
        row = conn.execute(
            text(
                "INSERT INTO gateways (gateway_id, site, seq_high, last_seen) VALUES (:g, :s, 0, "
                ":t) ON CONFLICT (gateway_id) DO UPDATE SET last_seen = EXCLUDED.last_seen "
                "RETURNING seq_high"
            ),
            {"g": gw, "s": site, "t": received_at},
        ).fetchone()
        high = int(row[0]) if row else 0
        for s in sorted(x for x in seqs if x <= high):
            _close_gap(conn, gw, s, received_at)
        for a, b in gaps_after(high, seqs):
            conn.execute(
                text(
                    "INSERT INTO seq_gaps (gateway_id, from_seq, to_seq, opened_at) "
                    "VALUES (:g, :a, :b, :t)"
                ),
                {"g": gw, "a": a, "b": b, "t": received_at},
            )
        top = max(seqs)
        if top > high:
            conn.execute(
                text("UPDATE gateways SET seq_high = :h WHERE gateway_id = :g"),
                {"h": top, "g": gw},
            )


def _close_gap(conn: Connection, gw: str, seq: int, now: datetime) -> None:
    """A late event fills (part of) an open gap: shrink, split or close it."""
    gap = conn.execute(
        text(
            "SELECT id, from_seq, to_seq FROM seq_gaps WHERE gateway_id = :g AND closed_at IS "
            "NULL AND from_seq <= :s AND to_seq >= :s FOR UPDATE"
        ),
        {"g": gw, "s": seq},
    ).fetchone()
    if gap is None:
        return
    gid, a, b = int(gap[0]), int(gap[1]), int(gap[2])
    conn.execute(text("UPDATE seq_gaps SET closed_at = :t WHERE id = :i"), {"t": now, "i": gid})
    for lo, hi in ((a, seq - 1), (seq + 1, b)):
        if lo <= hi:
            conn.execute(
                text(
                    "INSERT INTO seq_gaps (gateway_id, from_seq, to_seq, opened_at) "
                    "VALUES (:g, :a, :b, :t)"
                ),
                {"g": gw, "a": lo, "b": hi, "t": now},
            )
