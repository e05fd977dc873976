"""The EPCIS SQL: events for a query (gateway and captured, one keyset-ordered stream),
capture jobs, and storing captured events with their items and lineage (thin; every
value is bound).

Gateway events answer from ``events`` (their EPCIS form is made from the payload by
:func:`mqtt_topics.epcis.to_epcis_event`); captured events from ``epcis_events``. EPC
and class matches of both go through ``event_items`` (indexed by GTIN + serial, GTIN +
lot, SSCC), which holds the items of both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from central.epcis.models import (
    VALIDATION_EXCEPTION,
    CapturedEvent,
    CaptureError,
    Cursor,
    EventQuery,
    canonical_json,
    document_context,
    document_events,
    normalise_event,
    problem,
)
from central.epcis.uris import KeyMatch, gateway_place
from central.masterdata.holds import audit
from mqtt_topics.epcis import EPCIS_CONTEXT, TW_NAMESPACE, TW_PREFIX, to_epcis_event
from mqtt_topics.events import format_time

#: ``site`` of captured events' items (their ``gateway_id`` is the capture id).
CAPTURE_SITE = "epcis"


class _Binds:
    """Bound parameters for one statement (names p0, p1, …)."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"


def _key_pred(
    b: _Binds,
    m: KeyMatch,
    *,
    gtin: str | None,
    serial: str | None,
    lot: str | None,
    sscc: str | None,
) -> str:
    """SQL that is true when the columns hold a key ``m`` matches (``false`` when the
    columns cannot hold such a key)."""
    c: list[str] = []
    if m.kind == "serial":
        if gtin is None or serial is None:
            return "false"
        c += [f"{gtin} IS NOT NULL", f"{serial} IS NOT NULL"]
        if m.gtin is not None:
            c.append(f"{gtin} = {b(m.gtin)}")
        elif m.prefix is not None:
            c.append(f"substr({gtin}, 2, {b(len(m.prefix))}) = {b(m.prefix)}")
        if m.serial is not None:
            c.append(f"{serial} = {b(m.serial)}")
    elif m.kind == "sscc":
        if sscc is None:
            return "false"
        c.append(f"{sscc} IS NOT NULL")
        if gtin is not None:
            c.append(f"{gtin} IS NULL")
        if m.sscc is not None:
            c.append(f"{sscc} = {b(m.sscc)}")
        elif m.prefix is not None:
            c.append(f"substr({sscc}, 2, {b(len(m.prefix))}) = {b(m.prefix)}")
    elif m.kind == "class":
        if gtin is None or lot is None or serial is None or sscc is None:
            return "false"
        c += [f"{gtin} IS NOT NULL", f"{serial} IS NULL", f"{sscc} IS NULL"]
        if m.gtin is not None:
            c.append(f"{gtin} = {b(m.gtin)}")
        elif m.prefix is not None:
            c.append(f"substr({gtin}, 2, {b(len(m.prefix))}) = {b(m.prefix)}")
        if not m.any_lot:
            c.append(f"{lot} = {b(m.lot)}" if m.lot is not None else f"{lot} IS NULL")
    else:
        return "false"
    return "(" + " AND ".join(c) + ")"


def _items_pred(b: _Binds, roles: Sequence[str], matches: Sequence[KeyMatch]) -> str | None:
    """``event_items i`` rows of ``roles`` that one of ``matches`` matches (None: none can)."""
    preds = [
        p
        for p in (
            _key_pred(b, m, gtin="i.gtin", serial="i.serial", lot="i.lot", sscc="i.sscc")
            for m in matches
        )
        if p != "false"
    ]
    if not preds:
        return None
    return f"i.role = ANY(CAST({b(list(roles))} AS text[])) AND ({' OR '.join(preds)})"


def _item_ids(b: _Binds, roles: Sequence[str], matches: Sequence[KeyMatch]) -> list[str]:
    """(id, time) of events with an item of ``roles`` that one of ``matches`` matches."""
    pred = _items_pred(b, roles, matches)
    if pred is None:
        return []
    return [f"SELECT i.event_id, i.event_time FROM event_items i WHERE {pred}"]


def _literal_ids(
    b: _Binds, fields: Sequence[str], matches: Sequence[KeyMatch], *, cls: bool
) -> list[str]:
    """(ref, time) of captured events naming an ``other`` URI literally in ``fields``."""
    out = []
    for m in matches:
        if m.kind != "other" or m.uri is None:
            continue
        for f in fields:
            value: Any = [{"epcClass": m.uri}] if cls else [m.uri]
            out.append(f"x.payload @> CAST({b(json.dumps({f: value}))} AS jsonb)")
    if not out:
        return []
    return [f"SELECT x.ref, x.event_time FROM epcis_events x WHERE {' OR '.join(out)}"]


def _semi(alias: str, sources: Sequence[str]) -> str:
    """Events (``e`` gateway, ``c`` captured) among the (id, time) pairs of ``sources``;
    one semi-join driven by the indexed sources, each event looked up in its partition."""
    if not sources:
        return "false"
    ident = "e.event_id" if alias == "e" else "c.ref"
    return f"({ident}, {alias}.event_time) IN ({' UNION ALL '.join(sources)})"


_EPC_FIELDS = {
    "item": ("epcList", "childEPCs"),
    "input": ("inputEPCList",),
    "output": ("outputEPCList",),
}


def _gateway_read_point(b: _Binds, uri: str) -> str:
    """Gateway events whose readPoint is ``uri`` (``place_uri(read_point, site)``)."""
    place = gateway_place(uri)
    rp = "e.payload ->> 'read_point'"
    if place.kind == "gln":
        value = place.value if place.extension is None else f"{place.value}/{place.extension}"
        return f"({rp} = {b(value)})"
    if place.kind == "local":
        if place.extension is not None:
            return "false"
        return f"(e.site = {b(place.site)} AND {rp} = {b(place.value)})"
    return f"({rp} = {b(place.value)})"


def _gateway_location(b: _Binds, uri: str) -> str:
    """Gateway events whose bizLocation is ``uri`` (``place_uri(biz_location, site,
    location)``)."""
    place = gateway_place(uri)
    loc = "e.payload ->> 'biz_location'"
    sub = "COALESCE(e.payload ->> 'location', '')"
    if place.kind == "gln" and place.extension is None:
        return f"({loc} = {b(place.value)} AND {sub} = '')"
    if place.kind == "gln":
        g, x = b(place.value), b(place.extension)
        return (
            f"((({loc} = {g} OR {loc} LIKE {g} || '/%') AND {sub} = {x}) "
            f"OR ({loc} = {g} || '/' || {x} AND {sub} = ''))"
        )
    if place.kind == "local":
        pred = f"(e.site = {b(place.site)} AND {loc} = {b(place.value)}"
        return pred + (
            f" AND {sub} = {b(place.extension)})" if place.extension else f" AND {sub} = '')"
        )
    return f"({loc} = {b(place.value)})"


def _uuid_ids(ids: Sequence[str]) -> list[str]:
    return [i[9:].lower() for i in ids if i.lower().startswith("urn:uuid:")]


def gateway_filters(b: _Binds, q: EventQuery) -> list[str]:
    """WHERE conditions on ``events e`` for the query."""
    w = ["e.movement <> 'correct'"]
    if q.event_types is not None:
        w.append(f"e.event_type = ANY(CAST({b(list(q.event_types))} AS text[]))")
    if q.actions is not None:
        w.append("e.event_type <> 'TransformationEvent'")
        w.append(f"e.payload ->> 'action' = ANY(CAST({b(list(q.actions))} AS text[]))")
    if q.biz_steps is not None:
        w.append(f"e.biz_step = ANY(CAST({b(list(q.biz_steps))} AS text[]))")
    if q.dispositions is not None:
        w.append(f"e.payload ->> 'disposition' = ANY(CAST({b(list(q.dispositions))} AS text[]))")
    if q.biz_locations is not None:
        w.append("COALESCE(e.payload ->> 'disposition', '') <> 'in_transit'")
        w.append("(" + " OR ".join(_gateway_location(b, u) for u in q.biz_locations) + ")")
    if q.read_points is not None:
        w.append("(" + " OR ".join(_gateway_read_point(b, u) for u in q.read_points) + ")")
    if q.event_ids is not None:
        w.append(f"e.event_id = ANY(CAST({b(_uuid_ids(q.event_ids))} AS text[]))")
    parent = "(x.payload -> 'parent' ->> 'sscc')"

    def parents(ms: Sequence[KeyMatch]) -> list[str]:
        preds = [
            p
            for p in (_key_pred(b, m, gtin=None, serial=None, lot=None, sscc=parent) for m in ms)
            if p != "false"
        ]
        if not preds:
            return []
        return [
            "SELECT x.event_id, x.event_time FROM events x "
            f"WHERE x.event_type = 'AggregationEvent' AND ({' OR '.join(preds)})"
        ]

    for ms, roles in (
        (q.epc, ["item"]),
        (q.epc_class, ["item"]),
        (q.input_epc, ["input"]),
        (q.output_epc, ["output"]),
    ):
        if ms is not None:
            w.append(_semi("e", _item_ids(b, roles, ms)))
    if q.parent_id is not None:
        w.append(_semi("e", parents(q.parent_id)))
    if q.any_epc is not None:
        keys = [m for m in q.any_epc if m.kind in ("serial", "sscc")]
        w.append(_semi("e", _item_ids(b, ["item", "input", "output"], keys) + parents(q.any_epc)))
    return w + _time_filters(b, q, "e.event_time", "e.received_at")


def captured_filters(b: _Binds, q: EventQuery) -> list[str]:
    """WHERE conditions on ``epcis_events c`` for the query."""
    w: list[str] = []
    for col, values in (
        ("c.event_type", q.event_types),
        ("c.action", q.actions),
        ("c.biz_step", q.biz_steps),
        ("c.disposition", q.dispositions),
        ("c.biz_location", q.biz_locations),
        ("c.read_point", q.read_points),
        ("c.event_id", q.event_ids),
    ):
        if values is not None:
            w.append(f"{col} = ANY(CAST({b(list(values))} AS text[]))")

    def epcs(roles: Sequence[str], ms: Sequence[KeyMatch]) -> list[str]:
        fields = [f for r in roles for f in _EPC_FIELDS[r]]
        return _item_ids(b, roles, ms) + _literal_ids(b, fields, ms, cls=False)

    def parents(ms: Sequence[KeyMatch]) -> list[str]:
        preds = []
        for m in ms:
            if m.kind == "other":
                preds.append(f"x.parent_id = {b(m.uri)}")
            else:
                cols = {
                    "gtin": "x.parent_gtin",
                    "serial": "x.parent_serial",
                    "sscc": "x.parent_sscc",
                }
                preds.append(_key_pred(b, m, lot=None, **cols))
        preds = [p for p in preds if p != "false"]
        if not preds:
            return []
        return [f"SELECT x.ref, x.event_time FROM epcis_events x WHERE {' OR '.join(preds)}"]

    if q.epc is not None:
        w.append(_semi("c", epcs(["item"], q.epc)))
    if q.input_epc is not None:
        w.append(_semi("c", epcs(["input"], q.input_epc)))
    if q.output_epc is not None:
        w.append(_semi("c", epcs(["output"], q.output_epc)))
    if q.epc_class is not None:
        lit = _literal_ids(b, ["quantityList", "childQuantityList"], q.epc_class, cls=True)
        w.append(_semi("c", _item_ids(b, ["item"], q.epc_class) + lit))
    if q.parent_id is not None:
        w.append(_semi("c", parents(q.parent_id)))
    if q.any_epc is not None:
        w.append(_semi("c", epcs(["item", "input", "output"], q.any_epc) + parents(q.any_epc)))
    return w + _time_filters(b, q, "c.event_time", "c.record_time")


def _time_filters(b: _Binds, q: EventQuery, event_time: str, record_time: str) -> list[str]:
    """The query's event and record time ranges (``GE_`` inclusive, ``LT_`` exclusive)."""
    w: list[str] = []
    for col, ge, lt in (
        (event_time, q.ge_event_time, q.lt_event_time),
        (record_time, q.ge_record_time, q.lt_record_time),
    ):
        if ge is not None:
            w.append(f"{col} >= {b(ge)}")
        if lt is not None:
            w.append(f"{col} < {b(lt)}")
    return w


@dataclass(frozen=True, slots=True)
class Row:
    """One event of an answer: where it comes from and its EPCIS JSON."""

    source: str  # g: a gateway event, c: a captured one
    event_time: datetime
    ref: str
    event: dict[str, Any]


def _render(src: str, record_time: datetime, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    if src == "g":
        ev = to_epcis_event(payload)
        if ev is None:
            return None
    else:
        ev = dict(payload)
    ev["recordTime"] = format_time(record_time)
    return ev


def query_events(
    conn: Connection, q: EventQuery, limit: int, after: Cursor | None = None
) -> tuple[list[Row], Cursor | None]:
    """Up to ``limit`` events after ``after`` in (event_time, ref, source) order, and the
    cursor of the next page (None: this was the last)."""
    b = _Binds()
    n = b(limit + 1)
    branches = []
    for src, alias, table, ref, rec, filters in (
        ("g", "e", "events", "e.event_id", "e.received_at", gateway_filters(b, q)),
        ("c", "c", "epcis_events", "c.ref", "c.record_time", captured_filters(b, q)),
    ):
        where = list(filters)
        if after is not None:
            where.append(
                f"({alias}.event_time, CAST({ref} AS text) COLLATE \"C\", '{src}') > "
                f'({b(after.event_time)}, CAST({b(after.ref)} AS text) COLLATE "C", '
                f"CAST({b(after.source)} AS text))"
            )
        branches.append(
            f"(SELECT '{src}' AS src, {alias}.event_time, CAST({ref} AS text) AS ref, "
            f"{rec} AS record_time, {alias}.payload FROM {table} {alias} "
            f"WHERE {' AND '.join(where) or 'true'} "
            f'ORDER BY {alias}.event_time, CAST({ref} AS text) COLLATE "C" LIMIT {n})'
        )
    sql = (
        f"SELECT src, event_time, ref, record_time, payload FROM ({branches[0]} UNION ALL "
        f'{branches[1]}) AS x ORDER BY event_time, ref COLLATE "C", src LIMIT {n}'
    )
    rows = conn.execute(text(sql), b.params).fetchall()
    more = len(rows) > limit
    nxt = (
        Cursor(rows[limit - 1].event_time, rows[limit - 1].ref, rows[limit - 1].src)
        if more
        else None
    )
    declarations = _declarations(conn, [r.ref for r in rows[:limit] if r.src == "g"])
    out = []
    for r in rows[:limit]:
        ev = _render(r.src, r.record_time, r.payload)
        if ev is None:
            continue
        if r.src == "g" and r.ref in declarations:
            ev["errorDeclaration"] = declarations[r.ref]
        out.append(Row(r.src, r.event_time, r.ref, ev))
    return out, nxt


def _declarations(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """EPCIS error declarations of the gateway events ``ids`` (a later event ``corrects``
    them): the first correction declares (time, reason, note); every correction that is an
    event of its own is a corrective event (as :mod:`mqtt_topics.epcis` exports them)."""
    if not ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT target, event_id, movement, reason, note, declared FROM epcis_corrections "
            "WHERE target = ANY(CAST(:ids AS text[])) ORDER BY target, event_time, event_id"
        ),
        {"ids": list(ids)},
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        decl = out.get(r.target)
        if decl is None:
            decl = {"declarationTime": r.declared, "reason": r.reason or "incorrect_data"}
            if r.note:
                decl[f"{TW_PREFIX}:note"] = r.note
            out[r.target] = decl
        if r.movement != "correct":
            ids_ = decl.setdefault("correctiveEventIDs", [])
            uri = f"urn:uuid:{r.event_id}"
            if uri not in ids_:
                ids_.append(uri)
    return out


def query_document(
    events: Sequence[Mapping[str, Any]], created: datetime, query_name: str = "SimpleEventQuery"
) -> dict[str, Any]:
    """An ``EPCISQueryDocument`` (JSON-LD) holding ``events``."""
    return {
        "@context": [EPCIS_CONTEXT, {TW_PREFIX: TW_NAMESPACE}],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": format_time(created),
        "epcisBody": {
            "queryResults": {"queryName": query_name, "resultsBody": {"eventList": list(events)}}
        },
    }


def epcis_document(events: Sequence[Mapping[str, Any]], created: datetime) -> dict[str, Any]:
    """An ``EPCISDocument`` (JSON-LD) holding ``events`` (what a partner captures)."""
    return {
        "@context": [EPCIS_CONTEXT, {TW_PREFIX: TW_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_time(created),
        "epcisBody": {"eventList": list(events)},
    }


def page_secret(conn: Connection) -> bytes:
    """The key that signs page tokens (made by the migration)."""
    row = conn.execute(text("SELECT secret FROM epcis_keys WHERE name = 'page-token'")).fetchone()
    if row is None:
        raise RuntimeError("epcis_keys has no page-token key: run `traceway-central migrate`")
    return bytes(row[0])


# -- capture -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaptureOutcome:
    """A capture job as stored."""

    capture_id: str
    success: bool
    job: dict[str, Any]


def _job(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "captureID": r.capture_id,
        "createdAt": format_time(r.created_at),
        "running": bool(r.running),
        "success": bool(r.success),
        "captureErrorBehaviour": r.error_behaviour,
        "errors": list(r.errors),
        "eventCount": int(r.events_total),
        "newEventCount": int(r.events_new),
        "duplicateEventCount": int(r.events_duplicate),
    }
    if r.finished_at is not None:
        out["finishedAt"] = format_time(r.finished_at)
    return out


_JOB_COLS = (
    "id, capture_id, created_at, finished_at, running, success, error_behaviour, errors, "
    "events_total, events_new, events_duplicate"
)


def capture_jobs(
    conn: Connection, limit: int, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Capture jobs, newest first, and the id to continue before (None: no more)."""
    rows = conn.execute(
        text(
            f"SELECT {_JOB_COLS} FROM epcis_captures "
            "WHERE (CAST(:before AS bigint) IS NULL OR id < :before) ORDER BY id DESC LIMIT :n"
        ),
        {"before": before, "n": limit + 1},
    ).fetchall()
    more = len(rows) > limit
    return [_job(r) for r in rows[:limit]], int(rows[limit - 1].id) if more else None


def capture_job(conn: Connection, capture_id: str) -> dict[str, Any] | None:
    """The capture job ``capture_id`` (None when there is none)."""
    r = conn.execute(
        text(f"SELECT {_JOB_COLS} FROM epcis_captures WHERE capture_id = :c"),
        {"c": capture_id},
    ).fetchone()
    return None if r is None else _job(r)


def _new_job(
    conn: Connection,
    *,
    raw: str,
    content_type: str | None,
    actor: str,
    now: datetime,
    success: bool,
    errors: Sequence[Mapping[str, Any]],
    total: int,
) -> str:
    n = int(
        conn.execute(
            text("SELECT nextval(pg_get_serial_sequence('epcis_captures', 'id'))")
        ).scalar_one()
    )
    capture_id = f"cap-{n}"
    conn.execute(
        text(
            "INSERT INTO epcis_captures (id, capture_id, created_at, finished_at, actor, running, "
            "success, errors, events_total, content_type, sha256, document) VALUES (:id, :c, :t, "
            ":t, :actor, false, :ok, CAST(:errors AS jsonb), :total, :ct, :sha, :doc)"
        ),
        {
            "id": n,
            "c": capture_id,
            "t": now,
            "actor": actor,
            "ok": success,
            "errors": json.dumps(list(errors)),
            "total": total,
            "ct": content_type,
            "sha": hashlib.sha256(raw.encode("utf-8")).hexdigest(),
            "doc": raw.replace("\x00", "\\u0000"),
        },
    )
    return capture_id


def refuse(
    conn: Connection,
    *,
    raw: str,
    content_type: str | None,
    actor: str,
    now: datetime,
    errors: Sequence[str],
    total: int = 0,
) -> CaptureOutcome:
    """Keep a refused document as a failed capture job (and audit it): nothing is lost."""
    problems = [
        problem(VALIDATION_EXCEPTION, "The document is not a valid EPCIS 2.0 document", 400, e)
        for e in errors
    ]
    cid = _new_job(
        conn,
        raw=raw,
        content_type=content_type,
        actor=actor,
        now=now,
        success=False,
        errors=problems,
        total=total,
    )
    audit(
        conn,
        actor,
        "epcis-capture-refused",
        {"capture_id": cid},
        "EPCIS document refused",
        now,
        {"errors": list(errors[:5]), "events": total},
    )
    job = capture_job(conn, cid)
    assert job is not None
    return CaptureOutcome(cid, False, job)


def normalise_document(doc: Mapping[str, Any]) -> list[CapturedEvent]:
    """Every event of a schema-valid document as stored (CaptureError: where, why not)."""
    if "\\u0000" in canonical_json(doc):
        raise CaptureError("the document holds a NUL character (\\u0000), which is not stored")
    context = document_context(doc)
    return [normalise_event(ev, i, context) for i, ev in enumerate(document_events(doc))]


def store_capture(
    conn: Connection,
    *,
    raw: str,
    content_type: str | None,
    actor: str,
    now: datetime,
    events: Sequence[CapturedEvent],
) -> CaptureOutcome:
    """Store a valid document's events (new ones only: idempotent by eventID), their items
    and lineage, the job and an audit row, in the caller's transaction."""
    cid = _new_job(
        conn,
        raw=raw,
        content_type=content_type,
        actor=actor,
        now=now,
        success=True,
        errors=[],
        total=len(events),
    )
    known = {
        r[0]
        for r in conn.execute(
            text("SELECT event_id FROM event_ids WHERE event_id = ANY(CAST(:ids AS text[]))"),
            {"ids": [e.ref for e in events if e.event_id.lower().startswith("urn:uuid:")]},
        )
    }
    new = 0
    for ev in events:
        if ev.ref in known:
            continue  # a gateway event of ours, captured back
        if _insert_event(conn, ev, cid, now):
            new += 1
    conn.execute(
        text(
            "UPDATE epcis_captures SET events_new = :n, events_duplicate = :d WHERE capture_id = :c"
        ),
        {"n": new, "d": len(events) - new, "c": cid},
    )
    audit(
        conn,
        actor,
        "epcis-capture",
        {"capture_id": cid},
        "EPCIS document captured",
        now,
        {"events": len(events), "new": new, "duplicates": len(events) - new},
    )
    job = capture_job(conn, cid)
    assert job is not None
    return CaptureOutcome(cid, True, job)


def _insert_event(conn: Connection, ev: CapturedEvent, cid: str, now: datetime) -> bool:
    p = ev.parent
    row = conn.execute(
        text(
            "INSERT INTO epcis_events (ref, event_id, capture_id, event_time, record_time, "
            "event_type, action, biz_step, disposition, biz_location, read_point, parent_gtin, "
            "parent_serial, parent_sscc, parent_id, payload) VALUES (:ref, :eid, :cid, :t, :rt, "
            ":type, :action, :step, :disp, :loc, :rp, :pg, :ps, :psscc, :pid, "
            "CAST(:payload AS jsonb)) ON CONFLICT DO NOTHING RETURNING ref"
        ),
        {
            "ref": ev.ref,
            "eid": ev.event_id,
            "cid": cid,
            "t": ev.event_time,
            "rt": now,
            "type": ev.event_type,
            "action": ev.action,
            "step": ev.biz_step,
            "disp": ev.disposition,
            "loc": ev.biz_location,
            "rp": ev.read_point,
            "pg": p.gtin if p is not None and p.kind == "serial" else None,
            "ps": p.serial if p is not None and p.kind == "serial" else None,
            "psscc": p.sscc if p is not None and p.kind == "sscc" else None,
            "pid": ev.parent_uri,
            "payload": canonical_json(ev.payload),
        },
    ).fetchone()
    if row is None:
        return False
    parent_sscc = (
        p.sscc
        if p is not None and p.kind == "sscc" and ev.event_type != "TransformationEvent"
        else None
    )
    src_t, src_i = ev.source or (None, None)
    dst_t, dst_i = ev.destination or (None, None)
    if ev.items:
        conn.execute(
            text(
                "INSERT INTO event_items (event_id, event_time, site, gateway_id, movement, role, "
                "gtin, lot, serial, sscc, parent_sscc, quantity, uom, from_type, from_id, "
                "to_type, to_id) VALUES (:e, :t, :site, :gw, :mv, :role, :gtin, :lot, :serial, "
                ":sscc, :parent, :q, :uom, :ft, :fi, :tt, :ti)"
            ),
            [
                {
                    "e": ev.ref,
                    "t": ev.event_time,
                    "site": CAPTURE_SITE,
                    "gw": cid,
                    "mv": ev.movement,
                    "role": it.role,
                    "gtin": it.gtin,
                    "lot": it.lot,
                    "serial": it.serial,
                    "sscc": it.sscc,
                    "parent": parent_sscc,
                    "q": it.quantity,
                    "uom": it.uom,
                    "ft": src_t,
                    "fi": src_i,
                    "tt": dst_t,
                    "ti": dst_i,
                }
                for it in ev.items
            ],
        )
    _lineage(conn, ev, parent_sscc)
    return True


def _lineage(conn: Connection, ev: CapturedEvent, parent_sscc: str | None) -> None:
    if ev.event_type == "AggregationEvent" and parent_sscc is not None:
        if ev.action == "ADD":
            for it in ev.items:
                conn.execute(
                    text(
                        "INSERT INTO aggregation_edges (parent_sscc, gtin, lot, serial, "
                        "child_sscc, quantity, added_at, event_id) VALUES (:p, :gtin, :lot, "
                        ":serial, :child, :q, :t, :e)"
                    ),
                    {
                        "p": parent_sscc,
                        "gtin": it.gtin,
                        "lot": it.lot,
                        "serial": it.serial,
                        "child": it.sscc if it.gtin is None else None,
                        "q": it.quantity,
                        "t": ev.event_time,
                        "e": ev.ref,
                    },
                )
        elif ev.action == "DELETE":
            _unpack(conn, parent_sscc, ev)
    if ev.event_type == "TransformationEvent" and ev.transformation_id:
        for it in ev.items:
            if it.gtin is None or (it.lot is None and it.serial is None):
                continue
            conn.execute(
                text(
                    "INSERT INTO transformation_edges (transformation_id, direction, gtin, lot, "
                    "serial, quantity, event_time, event_id) VALUES (:x, :d, :gtin, :lot, "
                    ":serial, :q, :t, :e)"
                ),
                {
                    "x": ev.transformation_id,
                    "d": it.role,
                    "gtin": it.gtin,
                    "lot": it.lot,
                    "serial": it.serial,
                    "q": it.quantity,
                    "t": ev.event_time,
                    "e": ev.ref,
                },
            )


def _unpack(conn: Connection, parent: str, ev: CapturedEvent) -> None:
    """DELETE: the listed children leave the pallet (all of them when none is listed)."""
    if not ev.items:
        conn.execute(
            text(
                "UPDATE aggregation_edges SET removed_at = :t WHERE parent_sscc = :p "
                "AND removed_at IS NULL AND added_at <= :t"
            ),
            {"p": parent, "t": ev.event_time},
        )
        return
    for it in ev.items:
        conn.execute(
            text(
                "UPDATE aggregation_edges SET removed_at = :t WHERE parent_sscc = :p "
                "AND removed_at IS NULL AND added_at <= :t "
                "AND gtin IS NOT DISTINCT FROM :gtin AND lot IS NOT DISTINCT FROM :lot "
                "AND serial IS NOT DISTINCT FROM :serial "
                "AND child_sscc IS NOT DISTINCT FROM :child"
            ),
            {
                "p": parent,
                "t": ev.event_time,
                "gtin": it.gtin,
                "lot": it.lot,
                "serial": it.serial,
                "child": it.sscc if it.gtin is None else None,
            },
        )


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class CaptureLimitError(ValueError):
    """A document with more events than one capture takes (nothing is stored)."""


def capture(
    conn: Connection,
    body: bytes,
    content_type: str | None,
    actor: str,
    now: datetime,
    validate: Callable[[Any], list[str]],
    *,
    max_events: int = 10_000,
) -> tuple[CaptureOutcome, list[str]]:
    """Capture one document: validated against the schema, normalised, stored (idempotent
    by eventID), audited; or refused and kept as a failed job. Returns the job and the
    errors (empty when captured)."""
    raw = body.decode("utf-8", "backslashreplace")
    errors: list[str] = []
    events: list[CapturedEvent] = []
    doc: Any = None
    try:
        doc = json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        errors = [f"(document): not JSON: {exc}"[:300]]
    if not errors:
        try:
            errors = schema_errors(validate, doc)
        except RecursionError:
            errors = ["(document): nested too deeply"]
    total = len(document_events(doc)) if not errors else 0
    if total > max_events:
        raise CaptureLimitError(f"{total} events; at most {max_events} in one capture")
    if not errors:
        try:
            events = normalise_document(doc)
        except CaptureError as exc:
            errors = [str(exc)]
    kw: dict[str, Any] = {"raw": raw, "content_type": content_type, "actor": actor, "now": now}
    if errors:
        return refuse(conn, errors=errors, total=total, **kw), errors
    return store_capture(conn, events=events, **kw), []


def schema_errors(validate: Callable[[Any], list[str]], doc: Any) -> list[str]:
    """The schema's complaints about ``doc`` plus what a capture needs beyond it."""
    errors = validate(doc)
    if errors:
        return errors
    if not isinstance(doc, Mapping) or doc.get("type") not in (
        "EPCISDocument",
        "EPCISQueryDocument",
    ):
        return ["type: a capture takes an EPCISDocument or an EPCISQueryDocument"]
    return []


__all__ = [
    "CAPTURE_SITE",
    "CaptureError",
    "CaptureLimitError",
    "CaptureOutcome",
    "Row",
    "capture",
    "capture_job",
    "capture_jobs",
    "epcis_document",
    "normalise_document",
    "page_secret",
    "query_document",
    "query_events",
    "refuse",
    "schema_errors",
    "store_capture",
]
