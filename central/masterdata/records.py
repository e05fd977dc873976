"""Master data as cache-sync records (``mqtt_topics`` contract 1.1), for snapshots and deltas.

Pure mappings (:func:`product_record`, :func:`serial_record`, :func:`advice_record`,
:func:`effective_lot_status`) and set-based reads of the current master data, with the
active holds and recalls applied (a lot's status, a recalled serial's state).

- product: ``serialised`` / ``lot_tracked`` from the tracking, ``expiry_warning_days``;
- serial: ``expected`` → ``commissioned`` (the gateway records it as expected: receiving
  takes it, nothing else moves it), ``destroyed`` → ``destroyed``; under an active
  serial recall ``recalled``;
- despatch advice: ``{sscc, desadv_id, items}``; a site gets the advices shipped to it
  or to no site in particular, while central has no event of the pallet (once it was
  received somewhere the pallet's own movements say what it holds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text

GS1_TEXT = re.compile(r"^[!\"%-?A-Z_a-z]{1,20}$")
#: Central lot status (master data) → cache lot status.
LOT_STATUS = {
    "active": "released",
    "released": "released",
    "quarantined": "quarantined",
    "blocked": "blocked",
    "hold": "quarantined",
    "recalled": "recalled",
    "expired": "expired",
}
#: Central master-data serial state → cache serial state.
SERIAL_STATE = {"expected": "commissioned", "destroyed": "destroyed"}


def effective_lot_status(master: str | None, blocks: Iterable[str]) -> str:
    """Cache status of a lot from its master-data status and the kinds of its active blocks."""
    kinds = set(blocks)
    if "recall" in kinds:
        return "recalled"
    if "hold" in kinds:
        return "quarantined"
    return LOT_STATUS.get(master or "active", "released")


def product_record(gtin: str, description: str | None, tracking: str, days: int) -> dict[str, Any]:
    """The cache record of a product."""
    return {
        "gtin": gtin,
        "description": (description or "")[:256],
        "serialised": tracking == "serial",
        "lot_tracked": tracking == "lot",
        "active": True,
        "expiry_warning_days": int(days),
    }


def serial_record(
    gtin: str, serial: str, lot: str | None, state: str, recalled: bool
) -> dict[str, Any]:
    """The cache record of a master-data serial."""
    rec: dict[str, Any] = {
        "gtin": gtin,
        "serial": serial,
        "state": "recalled" if recalled else SERIAL_STATE[state],
    }
    if lot and GS1_TEXT.match(lot):
        rec["lot"] = lot
    return rec


def advice_record(
    sscc: str, desadv_id: str, lines: Sequence[tuple[str, str | None, str | None, int]]
) -> dict[str, Any]:
    """The cache record of a despatch advice from its (gtin, lot, serial, quantity) lines."""
    items = []
    for gtin, lot, serial, quantity in lines:
        item: dict[str, Any] = {"gtin": gtin, "quantity": int(quantity)}
        if lot:
            item["lot"] = lot
        if serial:
            item["serial"] = serial
        items.append(item)
    return {"sscc": sscc, "desadv_id": desadv_id[:128], "items": items}


# -- reads ----------------------------------------------------------------------------------
def product_records(conn: Connection, gtins: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Products (all, or these GTINs) as cache records."""
    where = "" if gtins is None else "WHERE gtin = ANY (CAST(:g AS varchar[]))"
    return [
        product_record(*r)
        for r in conn.execute(
            text(
                "SELECT gtin, description, tracking, expiry_warning_days FROM products "
                f"{where} ORDER BY gtin"
            ),
            {"g": list(gtins or [])},
        )
    ]


def lot_records(
    conn: Connection, keys: Sequence[tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Lots (all, or these (gtin, lot)) as cache records; lots outside GS1 set 82 are left
    out (no gateway can scan them)."""
    where = (
        ""
        if keys is None
        else "WHERE (l.gtin, l.lot) IN (SELECT * FROM unnest(CAST(:g AS text[]), "
        "CAST(:l AS text[])))"
    )
    rows = conn.execute(
        text(
            "SELECT l.gtin, l.lot, l.expiry::text, l.status, ARRAY(SELECT kind FROM blocks b "
            "WHERE b.gtin = l.gtin AND b.lot = l.lot AND b.released_at IS NULL) "
            f"FROM lots l {where} ORDER BY 1, 2"
        ),
        {"g": [k[0] for k in keys or []], "l": [k[1] for k in keys or []]},
    )
    return [
        {
            "gtin": r[0],
            "lot": r[1],
            "expiry": r[2],
            "status": effective_lot_status(r[3], r[4] or []),
        }
        for r in rows
        if GS1_TEXT.match(r[1])
    ]


def serial_records(
    conn: Connection, keys: Sequence[tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Master-data serials (all, or these (gtin, serial)) as cache records."""
    where = (
        ""
        if keys is None
        else "WHERE (s.gtin, s.serial) IN (SELECT * FROM unnest(CAST(:g AS text[]), "
        "CAST(:s AS text[])))"
    )
    rows = conn.execute(
        text(
            "SELECT s.gtin, s.serial, s.lot, s.state, EXISTS (SELECT 1 FROM blocks b "
            "WHERE b.kind = 'recall' AND b.gtin = s.gtin AND b.serial = s.serial "
            f"AND b.released_at IS NULL) FROM serials s {where} ORDER BY 1, 2"
        ),
        {"g": [k[0] for k in keys or []], "s": [k[1] for k in keys or []]},
    )
    return [serial_record(*r) for r in rows]


def serial_master_state(conn: Connection, gtin: str, serial: str) -> tuple[str, str | None] | None:
    """(cache state, lot) of a master-data serial, or None when it is not one."""
    row = conn.execute(
        text("SELECT state, lot FROM serials WHERE gtin = :g AND serial = :s"),
        {"g": gtin, "s": serial},
    ).first()
    return None if row is None else (SERIAL_STATE[row[0]], row[1])


def advice_records(
    conn: Connection, *, ssccs: Sequence[str] | None = None, site: str | None = None
) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """SSCC → (ship_to, cache record) of the despatch advices asked for: these SSCCs, or
    those a snapshot of ``site`` lists (shipped to it or to any site, pallet not seen)."""
    args: dict[str, Any]
    if ssccs is not None:
        where, args = "WHERE d.sscc = ANY (CAST(:s AS varchar[]))", {"s": list(ssccs)}
    else:
        where = (
            "WHERE (d.ship_to IS NULL OR d.ship_to = :site) "
            "AND NOT EXISTS (SELECT 1 FROM sscc_state x WHERE x.sscc = d.sscc)"
        )
        args = {"site": site}
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    rows = conn.execute(
        text(
            "SELECT d.sscc, d.desadv_id, d.ship_to, ARRAY(SELECT ARRAY[x.gtin, "
            "COALESCE(x.lot, ''), COALESCE(x.serial, ''), x.quantity::text] "
            "FROM despatch_advice_lines x WHERE x.sscc = d.sscc ORDER BY x.line) "
            f"FROM despatch_advices d {where} ORDER BY d.sscc"
        ),
        args,
    )
    for sscc, desadv, ship_to, lines in rows:
        out[sscc] = (
            ship_to,
            advice_record(
                sscc, desadv, [(g, lot or None, sn or None, int(q)) for g, lot, sn, q in lines]
            ),
        )
    return out
