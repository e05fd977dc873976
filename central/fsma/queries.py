"""The event lines and master data of an FSMA 204 spreadsheet (SQL, thin), and the report.

Events are read by ``event_time`` (indexed, partition-pruned) with a day's margin either
side; the builder keeps those whose local date is in the range. Corrected lines (a later
event declared them wrong) are left out. A transformation whose line is in range brings
all its events (inputs and outputs may be separate events). A pallet that was received
or shipped whole is spelled out into what was on it at that moment (aggregation edges),
unless the event lists the content itself (the gateway does: the SSCC line is dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from central.fsma.build import MOVEMENTS, RECEIVING_MOVES, SHIPPING_MOVES, Report, build
from central.fsma.model import Line, LotSource, MasterData, Place, Product, Tlc

_SELECT = """
SELECT i.event_id, e.payload->>'event_time', i.site, i.movement, i.role, i.gtin,
       COALESCE(i.lot, ss.lot), i.serial, i.sscc, i.quantity, i.uom,
       i.from_type, i.from_id, i.to_type, i.to_id,
       e.payload->>'transformation_id', e.payload->'biz_transactions'
FROM events e
JOIN event_items i ON i.event_id = e.event_id AND i.event_time = e.event_time
LEFT JOIN serial_state ss ON i.serial IS NOT NULL AND ss.gtin = i.gtin AND ss.serial = i.serial
"""

_TLC_FILTER = """
AND (i.gtin IS NULL OR EXISTS (
    SELECT 1 FROM unnest(CAST(:g AS text[]), CAST(:l AS text[])) AS t(g, l)
    WHERE t.g = i.gtin AND t.l = COALESCE(i.lot, ss.lot)))
"""


def _documents(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        (str(d.get("type")), str(d.get("id")))
        for d in raw
        if isinstance(d, Mapping) and d.get("type") and d.get("id")
    )


def _line(r: Sequence[Any]) -> Line:
    return Line(
        event_id=r[0],
        time=datetime.fromisoformat(r[1]),
        site=r[2],
        movement=r[3],
        role=r[4],
        gtin=r[5],
        lot=r[6],
        serial=r[7],
        sscc=r[8],
        quantity=Decimal(1) if r[7] is not None and r[9] is None else r[9],
        uom=r[10],
        from_type=r[11],
        from_id=r[12],
        to_type=r[13],
        to_id=r[14],
        transformation_id=r[15],
        documents=_documents(r[16]),
    )


def load_lines(
    conn: Connection, first: date, last: date, tlcs: frozenset[Tlc] | None = None
) -> list[Line]:
    """The receiving, shipping and transformation lines around ``first``..``last``."""
    lo = datetime.combine(first - timedelta(days=1), time.min, UTC)
    hi = datetime.combine(last + timedelta(days=2), time.min, UTC)
    params: dict[str, Any] = {"lo": lo, "hi": hi, "moves": list(MOVEMENTS)}
    where = (
        "WHERE e.event_time >= :lo AND e.event_time < :hi "
        "AND e.movement = ANY (CAST(:moves AS text[])) AND NOT i.corrected "
    )
    if tlcs is not None:
        ordered = sorted(tlcs)
        params |= {"g": [t.gtin for t in ordered], "l": [t.lot for t in ordered]}
        where += _TLC_FILTER
    lines = [_line(r) for r in conn.execute(text(_SELECT + where), params)]
    lines += _other_sides(conn, lines)
    return _spell_out_pallets(conn, lines)


def _other_sides(conn: Connection, lines: Sequence[Line]) -> list[Line]:
    """The events of the transformations in ``lines`` that ``lines`` do not hold."""
    tids = sorted({ln.transformation_id for ln in lines if ln.transformation_id})
    if not tids:
        return []
    have = {ln.event_id for ln in lines}
    refs = [
        (r[0], r[1])
        for r in conn.execute(
            text(
                "SELECT DISTINCT event_id, event_time FROM transformation_edges "
                "WHERE transformation_id = ANY (CAST(:t AS text[]))"
            ),
            {"t": tids},
        )
        if r[0] not in have
    ]
    if not refs:
        return []
    sql = _SELECT.replace(
        "FROM events e",
        "FROM unnest(CAST(:ids AS text[]), CAST(:ts AS timestamptz[])) AS x(id, t) "
        "JOIN events e ON e.event_id = x.id AND e.event_time = x.t",
    )
    rows = conn.execute(
        text(sql + "WHERE NOT i.corrected"),
        {"ids": [r[0] for r in refs], "ts": [r[1] for r in refs]},
    )
    return [_line(r) for r in rows]


def _spell_out_pallets(conn: Connection, lines: list[Line]) -> list[Line]:
    """Each whole pallet received or shipped replaced by what was on it then."""
    moves = (*RECEIVING_MOVES, *SHIPPING_MOVES)
    # the gateway lists a pallet's content next to its SSCC: then the SSCC line is not needed
    listed = {ln.event_id for ln in lines if ln.gtin is not None and ln.role == "item"}
    lines = [ln for ln in lines if not (ln.sscc and ln.gtin is None and ln.event_id in listed)]
    pallets = [
        (n, ln)
        for n, ln in enumerate(lines)
        if ln.sscc is not None and ln.gtin is None and ln.movement in moves
    ]
    if not pallets:
        return lines
    rows = conn.execute(
        text(
            "SELECT x.n, a.gtin, COALESCE(a.lot, ss.lot), a.serial, a.child_sscc, a.quantity, "
            "(SELECT p.uom FROM event_items p WHERE p.event_id = a.event_id "
            " AND p.gtin IS NOT DISTINCT FROM a.gtin LIMIT 1) "
            "FROM unnest(CAST(:s AS text[]), CAST(:t AS timestamptz[]), CAST(:n AS int[])) "
            "AS x(sscc, t, n) "
            "JOIN aggregation_edges a ON a.parent_sscc = x.sscc AND a.added_at <= x.t "
            # what was unpacked in the shipment's own millisecond was on it too (event
            # times are milliseconds; the records err on the side of more, as recall does)
            "AND (a.removed_at IS NULL OR a.removed_at >= x.t) "
            "LEFT JOIN serial_state ss ON a.serial IS NOT NULL AND ss.gtin = a.gtin "
            "AND ss.serial = a.serial ORDER BY x.n, a.id"
        ),
        {
            "s": [ln.sscc for _, ln in pallets],
            "t": [ln.time for _, ln in pallets],
            "n": [n for n, _ in pallets],
        },
    ).fetchall()
    content: dict[int, list[Line]] = {}
    for r in rows:
        ln = lines[r[0]]
        serial = r[3]
        content.setdefault(r[0], []).append(
            replace(
                ln,
                gtin=r[1],
                lot=r[2],
                serial=serial,
                sscc=r[4],
                quantity=Decimal(1) if serial is not None and r[5] is None else r[5],
                uom=r[6] or ("EA" if serial is not None else None),
                pallet=ln.sscc,
                nested=r[4] is not None,
            )
        )
    out: list[Line] = []
    for n, ln in enumerate(lines):
        out.extend(content.get(n, [ln]))
    return out


def _place(r: Sequence[Any]) -> Place:
    return Place(*r)


def load_master(conn: Connection, lines: Iterable[Line]) -> MasterData:
    """Sites, the partners, products and lots ``lines`` name, and where lots were made."""
    lines = list(lines)
    tlcs = sorted({Tlc(ln.gtin, ln.lot) for ln in lines if ln.gtin and ln.lot})
    pairs = {"g": [t.gtin for t in tlcs], "l": [t.lot for t in tlcs]}
    unnest = "unnest(CAST(:g AS text[]), CAST(:l AS text[])) AS x(g, l)"
    lots = {
        Tlc(r[0], r[1]): LotSource(r[2], r[3])
        for r in conn.execute(
            text(
                "SELECT gtin, lot, tlc_source, tlc_source_reference FROM lots "
                f"JOIN {unnest} ON gtin = x.g AND lot = x.l"
            ),
            pairs,
        )
    }
    made_at = {
        Tlc(r[0], r[1]): r[2]
        for r in conn.execute(
            text(
                "SELECT DISTINCT ON (te.gtin, te.lot) te.gtin, te.lot, e.site "
                f"FROM transformation_edges te JOIN {unnest} ON te.gtin = x.g AND te.lot = x.l "
                "JOIN events e ON e.event_id = te.event_id AND e.event_time = te.event_time "
                "WHERE te.direction = 'output' ORDER BY te.gtin, te.lot, te.event_time"
            ),
            pairs,
        )
    }
    cols = "name, phone, street, city, region, postal_code, country"
    sites: dict[str, Place] = {}
    site_glns: dict[str, str] = {}
    for r in conn.execute(text(f"SELECT site, gln, {cols} FROM sites")):
        sites[r[0]] = _place(r[2:])
        if r[1]:
            site_glns[r[1]] = r[0]
    ids = {ln.from_id for ln in lines if ln.from_type == "party"}
    ids |= {ln.to_id for ln in lines if ln.to_type == "party"}
    ids |= {s.tlc_source for s in lots.values() if s.tlc_source}
    partners: dict[str, Place] = {}
    for r in conn.execute(
        text(
            f"SELECT party, gln, {cols} FROM partners "
            "WHERE party = ANY (CAST(:ids AS text[])) OR gln = ANY (CAST(:ids AS text[])) "
            "ORDER BY party"
        ),
        {"ids": sorted(i for i in ids if i)},
    ):
        partners[r[0]] = _place(r[2:])
        if r[1] and r[1] != r[0]:
            partners.setdefault(r[1], _place(r[2:]))
    products = {
        r[0]: Product(*r[1:])
        for r in conn.execute(
            text(
                "SELECT gtin, product_name, brand, commodity, variety, pack_size, pack_style, "
                "NULLIF(description, '') FROM products WHERE gtin = ANY (CAST(:g AS text[]))"
            ),
            {"g": sorted({ln.gtin for ln in lines if ln.gtin})},
        )
    }
    return MasterData(sites, site_glns, partners, products, lots, made_at)


def fsma_report(
    conn: Connection, first: date, last: date, tlcs: frozenset[Tlc] | None = None
) -> Report:
    """The spreadsheet's rows for ``first``..``last`` (and ``tlcs``), from the database."""
    lines = load_lines(conn, first, last, tlcs)
    return build(lines, load_master(conn, lines), first, last, tlcs)
