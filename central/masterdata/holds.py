"""Holds and recalls of a lot, a serial or a pallet, pushed to the gateways as cache deltas.

Functional core: :class:`Unit` (what is blocked, validated), :func:`block_changes` (the
cache-sync changes of starting or lifting a block) and :func:`chunk_snapshot`. The SQL
side records a block in ``blocks`` with the sites it went to (``block_sites``), bumps
each site's cache version (``cache_sites``), stores the delta in ``cache_outbox`` and
writes one ``audit_log`` row — all in the caller's transaction, then ``NOTIFY`` so a
running pusher publishes at commit. A gateway that was away gets the deltas it missed
(or a snapshot) from :func:`deltas_since` / :func:`site_snapshot`.

How each unit reaches the gateway's cache (``gateway/store/cache_sync.py``):

- lot: a ``hold`` or ``recall`` record plus an upsert of the lot with the status that
  follows from every active block (``recalled`` > ``quarantined`` > master data);
- serial: a hold is a ``hold`` record (the gateway puts the serial ``on_hold``); a recall
  is an upsert of the serial in state ``recalled`` (released: its state from the
  projection);
- SSCC: a ``hold`` record scoped to the pallet for holds and recalls alike (the cache has
  no pallet recall; the gateway refuses a held pallet and what is on it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, text

from central.masterdata.records import (
    advice_records,
    effective_lot_status,
    lot_records,
    product_records,
    serial_master_state,
    serial_records,
)
from gs1.keys import is_valid_gtin, is_valid_sscc
from mqtt_topics.cache import DELTA_SCHEMA, SNAPSHOT_SCHEMA, validate_delta
from mqtt_topics.events import format_time

Kind = Literal["hold", "recall"]
T = TypeVar("T")
GS1_TEXT = re.compile(r"^[!\"%-?A-Z_a-z]{1,20}$")
NOTIFY_CHANNEL = "traceway_cache"
#: Projection serial state → cache serial state (what lifting a serial recall restores).
SERIAL_STATE = {
    "at_site": "in_stock",
    "shipped": "shipped",
    "consumed": "consumed",
    "destroyed": "destroyed",
}


class BlockError(ValueError):
    """A hold/recall/release that cannot be done; the message says why."""


class NotFound(BlockError):
    """No such block."""


@dataclass(frozen=True, slots=True)
class Unit:
    """A lot (gtin + lot), a serial (gtin + serial) or a pallet (sscc)."""

    gtin: str | None = None
    lot: str | None = None
    serial: str | None = None
    sscc: str | None = None

    @classmethod
    def parse(
        cls,
        gtin: str | None = None,
        lot: str | None = None,
        serial: str | None = None,
        sscc: str | None = None,
    ) -> Unit:
        """A validated unit; raises :class:`BlockError` naming what is wrong."""
        gtin, lot, serial, sscc = (v or None for v in (gtin, lot, serial, sscc))
        if sscc is not None:
            if gtin or lot or serial:
                raise BlockError("give an SSCC alone, or a GTIN with a lot or a serial")
            if not (sscc.isascii() and is_valid_sscc(sscc)):
                raise BlockError(f"SSCC {sscc!r} is not 18 digits with a valid check digit")
            return cls(sscc=sscc)
        if gtin is None:
            raise BlockError("give a GTIN with a lot or a serial, or an SSCC")
        if not (gtin.isascii() and is_valid_gtin(gtin)):
            raise BlockError(f"GTIN {gtin!r} is not 14 digits with a valid check digit")
        if (lot is None) == (serial is None):
            raise BlockError("give exactly one of lot and serial with the GTIN")
        value = lot if lot is not None else serial
        assert value is not None
        if not GS1_TEXT.match(value):
            what = "lot" if lot is not None else "serial"
            raise BlockError(f"{what} {value!r} is not 1-20 characters of GS1 set 82")
        return cls(gtin=gtin, lot=lot, serial=serial)

    @property
    def what(self) -> str:
        if self.sscc:
            return f"SSCC {self.sscc}"
        if self.lot is not None:
            return f"lot {self.gtin}/{self.lot}"
        return f"serial {self.gtin}/{self.serial}"

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("gtin", self.gtin),
                ("lot", self.lot),
                ("serial", self.serial),
                ("sscc", self.sscc),
            )
            if v is not None
        }


# -- the pure core -------------------------------------------------------------------------
def block_changes(
    kind: Kind,
    block_id: str,
    unit: Unit,
    *,
    reason: str,
    since: datetime,
    lift: bool,
    lot_record: Mapping[str, Any] | None = None,
    serial_state: str = "in_stock",
    serial_lot: str | None = None,
) -> list[dict[str, Any]]:
    """The cache-sync changes that start (``lift=False``) or lift a block."""
    changes: list[dict[str, Any]] = []
    as_hold = kind == "hold" or unit.sscc is not None
    if unit.serial is not None and kind == "recall":
        rec: dict[str, Any] = {
            "gtin": unit.gtin,
            "serial": unit.serial,
            "state": serial_state if lift else "recalled",
        }
        if serial_lot and GS1_TEXT.match(serial_lot):
            rec["lot"] = serial_lot
        return [{"op": "upsert", "entity": "serial", "record": rec}]
    if as_hold:
        if lift:
            changes.append({"op": "delete", "entity": "hold", "key": {"hold_id": block_id}})
        else:
            scope = {"sscc": unit.sscc} if unit.sscc else unit.as_dict()
            changes.append(
                {
                    "op": "upsert",
                    "entity": "hold",
                    "record": {
                        "hold_id": block_id,
                        "scope": scope,
                        "reason": reason[:512],
                        "since": format_time(since),
                    },
                }
            )
    elif lift:
        changes.append({"op": "delete", "entity": "recall", "key": {"recall_id": block_id}})
    else:
        changes.append(
            {
                "op": "upsert",
                "entity": "recall",
                "record": {
                    "recall_id": block_id,
                    "gtin": unit.gtin,
                    "lots": [unit.lot],
                    "reason": reason[:512],
                    "since": format_time(since),
                },
            }
        )
    if unit.lot is not None and lot_record is not None:
        changes.append({"op": "upsert", "entity": "lot", "record": dict(lot_record)})
    return changes


def build_delta(
    from_version: int, version: int, changes: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """A ``traceway.cache_delta`` payload; raises ValueError if it breaks the contract."""
    payload = {
        "schema": dict(DELTA_SCHEMA),
        "from_version": from_version,
        "version": version,
        "generated_at": format_time(now),
        "changes": list(changes),
    }
    errors = validate_delta(payload)
    if errors:
        raise ValueError("cache delta breaks the contract: " + "; ".join(errors[:3]))
    return payload


def row_weight(table: str, row: Mapping[str, Any]) -> int:
    """How much a record weighs in a chunk or delta: a despatch advice by its lines."""
    return len(row["items"]) if table in ("despatch_advices", "despatch_advice") else 1


def split_weighted(rows: Sequence[T], weight: Callable[[T], int], max_weight: int) -> list[list[T]]:
    """``rows`` in order, cut into parts of at most ``max_weight`` (a heavier row alone)."""
    parts: list[list[T]] = []
    part: list[T] = []
    w = 0
    for row in rows:
        rw = weight(row)
        if part and w + rw > max_weight:
            parts.append(part)
            part, w = [], 0
        part.append(row)
        w += rw
    if part:
        parts.append(part)
    return parts


def chunk_snapshot(
    version: int,
    now: datetime,
    request_id: str | None,
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    rows_per_chunk: int = 2000,
) -> list[dict[str, Any]]:
    """The snapshot as chunks of at most ``rows_per_chunk`` rows (at least one chunk).

    A despatch advice counts as many rows as it has lines. Every chunk lists
    ``despatch_advices`` (central holds them all: a pallet not listed is no longer
    expected)."""
    names = ("products", "lots", "serials", "holds", "recalls", "despatch_advices")
    flat = [(t, row) for t in names for row in tables.get(t, [])]
    parts = split_weighted(flat, lambda tr: row_weight(*tr), rows_per_chunk) or [[]]
    out = []
    for i, part in enumerate(parts):
        chunk: dict[str, Any] = {
            "schema": dict(SNAPSHOT_SCHEMA),
            "version": version,
            "generated_at": format_time(now),
            "request_id": request_id,
            "chunk": {"index": i, "count": len(parts)},
        }
        for t in names:
            chunk[t] = [dict(row) for tt, row in part if tt == t]
        out.append(chunk)
    return out


# -- SQL (in the caller's transaction) ------------------------------------------------------
_TARGET_SITES = text(
    """
    SELECT site FROM lot_stock WHERE gtin = :g AND lot = :l AND quantity <> 0
    UNION SELECT site FROM serial_state WHERE gtin = :g AND serial = :s AND site IS NOT NULL
    UNION SELECT site FROM sscc_state WHERE sscc = :c AND site IS NOT NULL
    UNION SELECT site FROM event_items
        WHERE (gtin = :g AND (lot = :l OR serial = :s)) OR sscc = :c OR parent_sscc = :c
    ORDER BY 1
    """
)
_KNOWN_GATEWAYS = text(
    "SELECT gateway_id, site FROM cache_gateways "
    "UNION SELECT gateway_id, site FROM gateways ORDER BY 2, 1"
)


def target_sites(conn: Connection, unit: Unit) -> list[str]:
    """Sites that may hold the unit (stock, state, or any event of it); empty: unknown."""
    params = {"g": unit.gtin, "l": unit.lot, "s": unit.serial, "c": unit.sscc}
    return [r[0] for r in conn.execute(_TARGET_SITES, params)]


def known_gateways(conn: Connection) -> list[tuple[str, str]]:
    """(gateway_id, site) of every gateway seen (cache reports or ingest)."""
    return [(r[0], r[1]) for r in conn.execute(_KNOWN_GATEWAYS)]


def _lot_record(conn: Connection, gtin: str, lot: str) -> dict[str, Any]:
    """The cache record of a lot: expiry from master data or its events, effective status."""
    row = conn.execute(
        text(
            """
            SELECT (SELECT status FROM lots WHERE gtin = :g AND lot = :l),
                   COALESCE((SELECT expiry::text FROM lots WHERE gtin = :g AND lot = :l), (
                       SELECT it->>'expiry' FROM event_items i
                       JOIN events e ON e.event_id = i.event_id AND e.event_time = i.event_time
                       CROSS JOIN LATERAL jsonb_array_elements(
                           COALESCE(e.payload->'items', '[]') || COALESCE(e.payload->'outputs', '[]')
                       ) it
                       WHERE i.gtin = :g AND i.lot = :l AND it->>'gtin' = :g
                         AND it->>'lot' = :l AND it ? 'expiry'
                       ORDER BY i.event_time DESC LIMIT 1)),
                   ARRAY(SELECT kind FROM blocks WHERE gtin = :g AND lot = :l
                         AND released_at IS NULL)
            """
        ),
        {"g": gtin, "l": lot},
    ).one()
    return {
        "gtin": gtin,
        "lot": lot,
        "expiry": row[1],
        "status": effective_lot_status(row[0], row[2] or []),
    }


def _serial_info(conn: Connection, gtin: str, serial: str) -> tuple[str, str | None]:
    row = conn.execute(
        text("SELECT state, lot FROM serial_state WHERE gtin = :g AND serial = :s"),
        {"g": gtin, "s": serial},
    ).first()
    if row is None:  # no event of it: its master-data state, if any
        master = serial_master_state(conn, gtin, serial)
        return master if master is not None else ("in_stock", None)
    return SERIAL_STATE.get(row[0], "in_stock"), row[1]


def _bump(conn: Connection, site: str) -> int:
    """The site's next cache version (the row lock orders concurrent writers)."""
    conn.execute(
        text("INSERT INTO cache_sites(site, version) VALUES (:s, 1) ON CONFLICT DO NOTHING"),
        {"s": site},
    )
    return int(
        conn.execute(
            text("UPDATE cache_sites SET version = version + 1 WHERE site = :s RETURNING version"),
            {"s": site},
        ).scalar_one()
    )


def site_version(conn: Connection, site: str) -> int:
    """The site's current cache version (1 for a site that never had a change)."""
    conn.execute(
        text("INSERT INTO cache_sites(site, version) VALUES (:s, 1) ON CONFLICT DO NOTHING"),
        {"s": site},
    )
    return int(
        conn.execute(
            text("SELECT version FROM cache_sites WHERE site = :s"), {"s": site}
        ).scalar_one()
    )


def _enqueue(
    conn: Connection,
    sites: Iterable[str],
    changes: Sequence[Mapping[str, Any]],
    block_id: str | None,
    action: str,
    now: datetime,
    *,
    notify: bool = True,
) -> dict[str, int]:
    out = {}
    for site in sorted(set(sites)):
        version = _bump(conn, site)
        payload = build_delta(version - 1, version, changes, now)
        conn.execute(
            text(
                "INSERT INTO cache_outbox(site, version, from_version, block_id, action, "
                "payload, created_at) VALUES (:s, :v, :f, :b, :a, CAST(:p AS jsonb), :t)"
            ),
            {
                "s": site,
                "v": version,
                "f": version - 1,
                "b": block_id,
                "a": action,
                "p": json.dumps(payload),
                "t": now,
            },
        )
        out[site] = version
    if notify:
        notify_pusher(conn)
    return out


def notify_pusher(conn: Connection) -> None:
    """Wake a running pusher at commit (``NOTIFY``)."""
    conn.execute(text("SELECT pg_notify(:c, '')"), {"c": NOTIFY_CHANNEL})


#: ``cache_outbox.action`` of a row that carries no delta: the site's gateways need a
#: snapshot at this version (a large import). ``deltas_since`` never crosses it.
SNAPSHOT_ACTION = "snapshot"


def enqueue_snapshot(
    conn: Connection, sites: Iterable[str], reason: str, now: datetime
) -> dict[str, int]:
    """Bump each site's version with a snapshot marker in the outbox (see SNAPSHOT_ACTION)."""
    out = {}
    for site in sorted(set(sites)):
        version = _bump(conn, site)
        conn.execute(
            text(
                "INSERT INTO cache_outbox(site, version, from_version, block_id, action, "
                "payload, created_at) VALUES (:s, :v, :f, NULL, :a, CAST(:p AS jsonb), :t)"
            ),
            {
                "s": site,
                "v": version,
                "f": version - 1,
                "a": SNAPSHOT_ACTION,
                "p": json.dumps({"snapshot": True, "reason": reason}),
                "t": now,
            },
        )
        out[site] = version
    notify_pusher(conn)
    return out


def audit(
    conn: Connection,
    actor: str,
    action: str,
    target: Mapping[str, Any],
    reason: str,
    now: datetime,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one row to the audit log (the table refuses UPDATE and DELETE)."""
    conn.execute(
        text(
            "INSERT INTO audit_log(at, actor, action, target, reason, detail) "
            "VALUES (:at, :actor, :action, CAST(:target AS jsonb), :reason, CAST(:d AS jsonb))"
        ),
        {
            "at": now,
            "actor": actor,
            "action": action,
            "target": json.dumps(dict(target)),
            "reason": reason,
            "d": json.dumps(dict(detail or {})),
        },
    )


@dataclass(frozen=True, slots=True)
class BlockResult:
    """What a hold, recall or release did: the block and the version each site got."""

    block_id: str
    kind: Kind
    action: str
    unit: Unit
    sites: dict[str, int]
    all_sites: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "block_id": self.block_id,
            "kind": self.kind,
            "action": self.action,
            "unit": self.unit.as_dict(),
            "sites": self.sites,
            "all_sites": self.all_sites,
        }


def _check_text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise BlockError(f"{what} is required")
    if len(value) > 512 or "\x00" in value:
        raise BlockError(f"{what} must be at most 512 characters without NUL")
    return value


def start_block(
    conn: Connection, kind: Kind, unit: Unit, *, reason: str, who: str, now: datetime
) -> BlockResult:
    """Hold or recall ``unit``: record it, push deltas to every site that may hold it, audit."""
    reason, who = _check_text(reason, "reason"), _check_text(who, "who")
    sites = target_sites(conn, unit)
    # A recall goes to every site: a recalled lot may still arrive somewhere it has never
    # been (a transfer in flight, a return). A hold goes where the unit may be, or
    # everywhere when that is not known.
    all_sites = kind == "recall" or not sites
    if all_sites:
        sites = sorted(set(sites) | {site for _, site in known_gateways(conn)})
    seq = int(
        conn.execute(text("SELECT nextval(pg_get_serial_sequence('blocks', 'id'))")).scalar_one()
    )
    block_id = f"{'R' if kind == 'recall' else 'H'}-{seq}"
    conn.execute(
        text(
            "INSERT INTO blocks(id, block_id, kind, gtin, lot, serial, sscc, reason, "
            "created_by, created_at, all_sites) "
            "VALUES (:i, :b, :k, :g, :l, :s, :c, :r, :w, :t, :a)"
        ),
        {
            "i": seq,
            "b": block_id,
            "k": kind,
            "g": unit.gtin,
            "l": unit.lot,
            "s": unit.serial,
            "c": unit.sscc,
            "r": reason,
            "w": who,
            "t": now,
            "a": all_sites,
        },
    )
    if sites:
        conn.execute(
            text("INSERT INTO block_sites(block_id, site) VALUES (:b, :s)"),
            [{"b": block_id, "s": s} for s in sites],
        )
    changes = _changes_for(conn, kind, block_id, unit, reason, now, lift=False)
    versions = _enqueue(conn, sites, changes, block_id, kind, now)
    audit(
        conn,
        who,
        kind,
        {"block_id": block_id, **unit.as_dict()},
        reason,
        now,
        {"sites": versions, "all_sites": all_sites},
    )
    return BlockResult(block_id, kind, kind, unit, versions, all_sites)


def _changes_for(
    conn: Connection,
    kind: Kind,
    block_id: str,
    unit: Unit,
    reason: str,
    since: datetime,
    *,
    lift: bool,
) -> list[dict[str, Any]]:
    lot_record = None
    serial_state, serial_lot = "in_stock", None
    if unit.lot is not None and unit.gtin is not None:
        lot_record = _lot_record(conn, unit.gtin, unit.lot)
    if unit.serial is not None and unit.gtin is not None:
        serial_state, serial_lot = _serial_info(conn, unit.gtin, unit.serial)
    return block_changes(
        kind,
        block_id,
        unit,
        reason=reason,
        since=since,
        lift=lift,
        lot_record=lot_record,
        serial_state=serial_state,
        serial_lot=serial_lot,
    )


def release_block(
    conn: Connection, block_id: str, *, reason: str, who: str, now: datetime
) -> BlockResult:
    """Lift a hold or recall: the sites it went to (and any that hold the unit now) get it."""
    reason, who = _check_text(reason, "reason"), _check_text(who, "who")
    row = conn.execute(
        text(
            "SELECT kind, gtin, lot, serial, sscc, reason, released_at, all_sites, created_at "
            "FROM blocks WHERE block_id = :b FOR UPDATE"
        ),
        {"b": block_id},
    ).first()
    if row is None:
        raise NotFound(f"no hold or recall {block_id!r}")
    if row[6] is not None:
        raise BlockError(f"{block_id} was already released at {row[6].isoformat()}")
    kind: Kind = row[0]
    unit = Unit(gtin=row[1], lot=row[2], serial=row[3], sscc=row[4])
    conn.execute(
        text(
            "UPDATE blocks SET released_at = :t, released_by = :w, release_reason = :r "
            "WHERE block_id = :b"
        ),
        {"t": now, "w": who, "r": reason, "b": block_id},
    )
    sites = {
        r[0]
        for r in conn.execute(
            text("SELECT site FROM block_sites WHERE block_id = :b"), {"b": block_id}
        )
    }
    sites |= set(target_sites(conn, unit))
    if row[7]:
        sites |= {site for _, site in known_gateways(conn)}
    changes = _changes_for(conn, kind, block_id, unit, row[5], row[8], lift=True)
    versions = _enqueue(conn, sites, changes, block_id, "release", now)
    audit(
        conn,
        who,
        "release",
        {"block_id": block_id, "kind": kind, **unit.as_dict()},
        reason,
        now,
        {"sites": versions},
    )
    return BlockResult(block_id, kind, "release", unit, versions, bool(row[7]))


def deltas_since(conn: Connection, site: str, have: int) -> list[dict[str, Any]] | None:
    """The deltas that bring a gateway of ``site`` from ``have`` to now, or None (snapshot)."""
    current = site_version(conn, site)
    if have == current:
        return []
    if have > current:
        return None
    rows = conn.execute(
        text(
            "SELECT from_version, version, payload, action FROM cache_outbox "
            "WHERE site = :s AND version > :v ORDER BY version"
        ),
        {"s": site, "v": have},
    ).all()
    expect = have
    for frm, version, _, action in rows:
        if frm != expect or action == SNAPSHOT_ACTION:
            return None
        expect = version
    if expect != current:
        return None
    return [dict(r[2]) for r in rows]


def site_snapshot(
    conn: Connection, site: str, request_id: str | None, now: datetime
) -> list[dict[str, Any]]:
    """A full snapshot (chunks) for a gateway of ``site`` at the site's current version.

    Products, lots, serials and despatch advices come from master data
    (:mod:`central.masterdata.records`); holds, recalls and recalled serials from the
    active blocks sent to this site (or to every site).
    """
    version = site_version(conn, site)
    blocks = conn.execute(
        text(
            """
            SELECT b.block_id, b.kind, b.gtin, b.lot, b.serial, b.sscc, b.reason, b.created_at
            FROM blocks b WHERE b.released_at IS NULL AND (b.all_sites OR EXISTS (
                SELECT 1 FROM block_sites s WHERE s.block_id = b.block_id AND s.site = :site))
            ORDER BY b.id
            """
        ),
        {"site": site},
    ).all()
    changes: list[dict[str, Any]] = []
    for b in blocks:
        unit = Unit(gtin=b[2], lot=b[3], serial=b[4], sscc=b[5])
        changes += block_changes(b[1], b[0], unit, reason=b[6], since=b[7], lift=False)
    holds = [c["record"] for c in changes if c["entity"] == "hold"]
    recalls = [c["record"] for c in changes if c["entity"] == "recall"]
    serials = {(r["gtin"], r["serial"]): r for r in serial_records(conn)}
    for c in changes:  # a recalled serial: the block's state wins (the lot stays)
        if c["entity"] == "serial":
            key = (c["record"]["gtin"], c["record"]["serial"])
            serials[key] = {**serials.get(key, {}), **c["record"]}
    lots = {(r["gtin"], r["lot"]): r for r in lot_records(conn)}
    for b in blocks:
        if b[2] is not None and b[3] is not None and (b[2], b[3]) not in lots:
            lots[(b[2], b[3])] = _lot_record(conn, b[2], b[3])
    return chunk_snapshot(
        version,
        now,
        request_id,
        {
            "products": product_records(conn),
            "lots": list(lots.values()),
            "serials": list(serials.values()),
            "holds": holds,
            "recalls": recalls,
            "despatch_advices": [rec for _, rec in advice_records(conn, site=site).values()],
        },
    )


def record_gateway_version(
    conn: Connection, gateway_id: str, site: str, version: int | None, now: datetime
) -> None:
    """Remember a gateway's reported cache version (its retained ``cache/version``)."""
    conn.execute(
        text(
            "INSERT INTO cache_gateways(gateway_id, site, version, reported_at) "
            "VALUES (:g, :s, :v, :t) ON CONFLICT (gateway_id) DO UPDATE SET site = :s, "
            "version = :v, reported_at = :t"
        ),
        {"g": gateway_id, "s": site, "v": version, "t": now},
    )


def record_ack(conn: Connection, ack: Mapping[str, Any], now: datetime) -> None:
    """Record a gateway's ``cache/ack`` (idempotent: ingest may record the same row)."""
    conn.execute(
        text(
            "INSERT INTO cache_acks(gateway_id, site, kind, version, ok, error, request_id, "
            "acked_at, received_at) VALUES (:g, :s, :k, :v, :ok, :e, :r, :t, :now) "
            "ON CONFLICT DO NOTHING"
        ),
        {
            "g": ack["gateway_id"],
            "s": ack["site"],
            "k": ack["kind"],
            "v": ack["version"],
            "ok": ack["ok"],
            "e": ack.get("error"),
            "r": ack.get("request_id"),
            "t": datetime.fromisoformat(str(ack["time"]).replace("Z", "+00:00")),
            "now": now,
        },
    )


def block_status(conn: Connection, block_id: str) -> dict[str, Any]:
    """A hold or recall with, per site and gateway, whether each change was applied and when."""
    row = conn.execute(
        text(
            "SELECT block_id, kind, gtin, lot, serial, sscc, reason, created_by, created_at, "
            "all_sites, released_at, released_by, release_reason FROM blocks "
            "WHERE block_id = :b"
        ),
        {"b": block_id},
    ).first()
    if row is None:
        raise NotFound(f"no hold or recall {block_id!r}")
    push = conn.execute(
        text(
            """
            WITH o AS (SELECT action, site, version, created_at FROM cache_outbox
                       WHERE block_id = :b),
                 g AS (SELECT gateway_id, site FROM cache_gateways
                       UNION SELECT gateway_id, site FROM gateways)
            SELECT o.action, o.site, o.version, o.created_at, g.gateway_id, a.acked_at
            FROM o LEFT JOIN g ON g.site = o.site
            LEFT JOIN LATERAL (
                SELECT min(acked_at) AS acked_at FROM cache_acks c
                WHERE c.gateway_id = g.gateway_id AND c.ok AND c.version >= o.version
            ) a ON true
            ORDER BY o.created_at, o.site, g.gateway_id
            """
        ),
        {"b": block_id},
    ).all()
    unit = Unit(gtin=row[2], lot=row[3], serial=row[4], sscc=row[5])
    return {
        "block_id": row[0],
        "kind": row[1],
        "unit": unit.as_dict(),
        "reason": row[6],
        "created_by": row[7],
        "created_at": row[8].isoformat(),
        "all_sites": row[9],
        "released_at": row[10].isoformat() if row[10] else None,
        "released_by": row[11],
        "release_reason": row[12],
        "push": [
            {
                "action": p[0],
                "site": p[1],
                "version": p[2],
                "sent_at": p[3].isoformat(),
                "gateway_id": p[4],
                "status": "applied" if p[5] is not None else "pending",
                "applied_at": p[5].isoformat() if p[5] is not None else None,
            }
            for p in push
        ],
    }
