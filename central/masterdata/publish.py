"""A master-data import reaches the gateways: cache deltas, or a snapshot when it is large.

:func:`import_all` parses every file first (all problems, every file), checks the
references, writes, and publishes — all in the caller's transaction, so the outbox rows
commit with the data and a running pusher publishes them at commit (``NOTIFY``).

:func:`publish_changes` turns the changed records into cache-sync changes for every
site a gateway is known at (``cache_gateways``, ``gateways``):

- up to ``snapshot_above`` records (default 5,000; a despatch advice counts its lines):
  ordered deltas per site (``cache_outbox``, action ``import``), at most
  ``DELTA_WEIGHT`` records each, every one valid against the contract;
- above: each site's version is bumped with a snapshot marker (action ``snapshot``)
  instead. The pusher sends the site's gateways a snapshot at the new version, and
  :func:`~central.masterdata.holds.deltas_since` never crosses a marker, so a gateway
  that was away gets a snapshot too.

Despatch advices go to their ``ship_to`` site (every site when it has none); a site that
had an SSCC's advice and no longer gets it receives a ``delete``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from central.masterdata.catalog import (
    Advice,
    Serial,
    check_products,
    parse_despatch_advices,
    parse_serials,
    resolve_ship_to,
    store_despatch_advices,
    store_serials,
    stored_ship_to,
)
from central.masterdata.holds import (
    _enqueue,
    audit,
    enqueue_snapshot,
    known_gateways,
    notify_pusher,
    row_weight,
    split_weighted,
)
from central.masterdata.importer import (
    ImportProblems,
    Lot,
    Product,
    _read,
    parse_lots,
    parse_products,
    store_master_data,
)
from central.masterdata.records import (
    advice_records,
    lot_records,
    product_records,
    serial_records,
)

#: Above this many records an import reaches the gateways as a snapshot.
SNAPSHOT_ABOVE = 5_000
#: Records per delta (a despatch advice weighs its lines).
DELTA_WEIGHT = 1_000


@dataclass(frozen=True, slots=True)
class Parsed:
    """The parsed files of one import (empty lists for files not given)."""

    products: list[Product] = field(default_factory=list)
    lots: list[Lot] = field(default_factory=list)
    serials: list[Serial] = field(default_factory=list)
    advices: list[Advice] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Published:
    """How an import went to the gateways: ``deltas``, ``snapshot`` or ``none`` (no
    gateway known yet), and each site's version after it."""

    mode: str
    records: int
    sites: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "records": self.records, "sites": self.sites}


@dataclass(frozen=True, slots=True)
class Imported:
    products: int
    lots: int
    serials: int
    despatch_advices: int
    published: Published

    def summary(self) -> str:
        p = self.published
        how = {
            "deltas": "deltas to",
            "snapshot": "a snapshot to",
            "none": "no gateway known yet:",
        }[p.mode]
        sites = ", ".join(f"{s} → v{v}" for s, v in p.sites.items()) or "sent at their first sync"
        return (
            f"imported {self.products} product(s), {self.lots} lot(s), {self.serials} "
            f"serial(s), {self.despatch_advices} despatch advice(s); {how} {sites}"
        )


# -- the pure core -------------------------------------------------------------------------
def site_changes(
    sites: Sequence[str],
    common: Sequence[Mapping[str, Any]],
    advices: Mapping[str, tuple[str | None, Mapping[str, Any]]],
    before: Mapping[str, str | None],
) -> dict[str, list[dict[str, Any]]]:
    """The changes each site gets: ``common`` (products, lots, serials) and the despatch
    advices meant for it; a delete where an SSCC's advice went before and goes no more.

    ``advices``: SSCC → (ship_to, record); ``before``: SSCC → the ship_to stored before
    this import (absent: new SSCC; None: every site)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for site in sites:
        changes = [dict(c) for c in common]
        for sscc, (ship_to, rec) in advices.items():
            if ship_to is None or ship_to == site:
                changes.append({"op": "upsert", "entity": "despatch_advice", "record": dict(rec)})
            elif sscc in before and before[sscc] in (None, site):
                changes.append({"op": "delete", "entity": "despatch_advice", "key": {"sscc": sscc}})
        out[site] = changes
    return out


def change_weight(change: Mapping[str, Any]) -> int:
    """A change's weight (a despatch advice upsert: its lines)."""
    if change["op"] == "upsert":
        return row_weight(str(change["entity"]), change["record"])
    return 1


# -- SQL (in the caller's transaction) ------------------------------------------------------
def publish_changes(
    conn: Connection,
    *,
    gtins: Sequence[str] = (),
    lots: Sequence[tuple[str, str]] = (),
    serials: Sequence[tuple[str, str]] = (),
    ssccs: Sequence[str] = (),
    before: Mapping[str, str | None] | None = None,
    now: datetime,
    snapshot_above: int = SNAPSHOT_ABOVE,
) -> Published:
    """Queue the changed master data for every site with a known gateway (see module)."""
    advices = advice_records(conn, ssccs=ssccs) if ssccs else {}
    records = (
        len(gtins) + len(lots) + len(serials) + sum(len(r["items"]) for _, r in advices.values())
    )
    sites = sorted({site for _, site in known_gateways(conn)})
    if not sites or records == 0:
        return Published("none", records, {})
    if records > snapshot_above:
        return Published("snapshot", records, enqueue_snapshot(conn, sites, "import", now))
    common: list[dict[str, Any]] = []
    if gtins:
        common += [
            {"op": "upsert", "entity": "product", "record": r} for r in product_records(conn, gtins)
        ]
    if lots:
        common += [{"op": "upsert", "entity": "lot", "record": r} for r in lot_records(conn, lots)]
    if serials:
        common += [
            {"op": "upsert", "entity": "serial", "record": r} for r in serial_records(conn, serials)
        ]
    versions: dict[str, int] = {}
    for site, changes in site_changes(sites, common, advices, before or {}).items():
        for part in split_weighted(changes, change_weight, DELTA_WEIGHT):
            versions.update(_enqueue(conn, [site], part, None, "import", now, notify=False))
    notify_pusher(conn)
    return Published("deltas", records, versions)


def parse_files(
    products: Path | None = None,
    lots: Path | None = None,
    serials: Path | None = None,
    despatch_advices: Path | None = None,
) -> Parsed:
    """Parse every file given; ImportProblems lists the problems of all of them."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    for key, path, parse in (
        ("products", products, parse_products),
        ("lots", lots, parse_lots),
        ("serials", serials, parse_serials),
        ("advices", despatch_advices, parse_despatch_advices),
    ):
        if path is None:
            continue
        try:
            out[key] = parse(_read(path), str(path))  # type: ignore[operator]
        except ImportProblems as exc:
            problems.extend(exc.problems)
    if problems:
        raise ImportProblems(problems)
    return Parsed(**out)


def store_and_publish(
    conn: Connection,
    parsed: Parsed,
    *,
    names: Sequence[str] = ("lots.csv", "serials.csv", "despatch-advices.csv"),
    who: str,
    now: datetime,
    snapshot_above: int = SNAPSHOT_ABOVE,
) -> Imported:
    """Check references, upsert, queue the cache changes and audit, in one transaction."""
    advices = resolve_ship_to(conn, parsed.advices, names[2]) if parsed.advices else []
    store_master_data(conn, parsed.products, parsed.lots, names[0])
    check_products(conn, parsed.serials, advices, names[1:])
    store_serials(conn, parsed.serials)
    before = stored_ship_to(conn, [a.sscc for a in advices])
    store_despatch_advices(conn, advices)
    published = publish_changes(
        conn,
        gtins=[p.gtin for p in parsed.products],
        lots=[(x.gtin, x.lot) for x in parsed.lots],
        serials=[(s.gtin, s.serial) for s in parsed.serials],
        ssccs=[a.sscc for a in advices],
        before=before,
        now=now,
        snapshot_above=snapshot_above,
    )
    counts = {
        "products": len(parsed.products),
        "lots": len(parsed.lots),
        "serials": len(parsed.serials),
        "despatch_advices": len(advices),
    }
    if any(counts.values()):
        audit(
            conn,
            who,
            "import_masterdata",
            {k: v for k, v in counts.items() if v},
            "master data import",
            now,
            published.as_dict(),
        )
    return Imported(
        counts["products"], counts["lots"], counts["serials"], counts["despatch_advices"], published
    )


def import_all(
    conn: Connection,
    *,
    products: Path | None = None,
    lots: Path | None = None,
    serials: Path | None = None,
    despatch_advices: Path | None = None,
    who: str,
    now: datetime,
    snapshot_above: int = SNAPSHOT_ABOVE,
) -> Imported:
    """Import CSV files (all or nothing) and queue what changed for the gateways."""
    parsed = parse_files(products, lots, serials, despatch_advices)
    return store_and_publish(
        conn,
        parsed,
        names=(str(lots), str(serials), str(despatch_advices)),
        who=who,
        now=now,
        snapshot_above=snapshot_above,
    )
