"""``trace``, ``recall``, ``stock``, ``expiring``, ``gateways`` and ``import``.

Each reads the database named by the config (``-c``; or ``DATABASE_URL`` when no config
is given), prints a table or, with ``--json``, one JSON document. A key that cannot
name a unit (wrong check digit, GTIN without lot or serial) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from central.config import ConfigError, load_config
from central.trace.model import (
    DEFAULT_DEPTH,
    KeyError_,
    Recall,
    Step,
    Trace,
    normalize_gtin,
    parse_serial_list,
    recall_csv,
    table,
    to_json,
    unit_key,
)

EXIT_NOTHING = 1  # a trace or recall that found nothing at all
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the answer commands and ``import``."""
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--config", "-c", type=Path, help="central TOML file (default: $DATABASE_URL)")
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="print one JSON document")

    t = sub.add_parser(
        "trace",
        parents=[db, out],
        help="where a lot, serial or pallet came from and where it went",
        description="Trace GTIN + lot, GTIN + serial, or an SSCC through pallets and "
        "transformations, backward (where it came from) and forward (where it went).",
    )
    _unit_args(t)
    t.add_argument("--sscc", help="pallet SSCC (18 digits)")
    t.add_argument(
        "--direction", choices=("both", "backward", "forward"), default="both", help="default both"
    )
    t.add_argument("--depth", type=_depth, default=DEFAULT_DEPTH, help="edges to follow at most")
    t.set_defaults(func=cmd_trace)

    r = sub.add_parser(
        "recall",
        parents=[db, out],
        help="every unit of a lot or serial list: where it is now, who received it",
        description="Everything affected by a lot (--gtin + --lot) or serials (--serials FILE "
        "of GTIN,serial lines, or --gtin + --serial ...): serials, lot quantities, pallets "
        "holding them, products made of them, and the recipients of shipments.",
    )
    r.add_argument("--gtin", help="GTIN (8 to 14 digits)")
    r.add_argument("--lot", help="batch/lot")
    r.add_argument("--serial", action="append", help="a serial of --gtin (repeatable)")
    r.add_argument("--serials", type=Path, help="file with GTIN,serial lines ('-': stdin)")
    r.add_argument("--csv", type=Path, metavar="FILE", help="also write the answer as CSV")
    r.add_argument("--depth", type=_depth, default=DEFAULT_DEPTH, help="edges to follow at most")
    r.set_defaults(func=cmd_recall)

    s = sub.add_parser("stock", parents=[db, out], help="what is at each site and location now")
    s.add_argument("--site")
    s.add_argument("--location")
    s.add_argument("--gtin")
    s.add_argument("--lot")
    s.set_defaults(func=cmd_stock)

    e = sub.add_parser("expiring", parents=[db, out], help="stock whose lot expires within N days")
    e.add_argument(
        "--days", type=_days, help="window in days (default: each product's warning days)"
    )
    e.add_argument("--site")
    e.add_argument("--today", type=date.fromisoformat, help="YYYY-MM-DD (default: today)")
    e.set_defaults(func=cmd_expiring)

    g = sub.add_parser(
        "gateways",
        parents=[db, out],
        help="every gateway: online, last seen, outbox, cache version, seq gaps",
    )
    g.add_argument("--site")
    g.set_defaults(func=cmd_gateways)

    i = sub.add_parser(
        "import",
        parents=[db],
        help="import products, lots, serials, despatch advices, sites and partners from CSV "
        "(all or nothing); the gateways get the changes",
        description="Products (gtin,description,tracking,expiry_warning_days and the FSMA "
        "product_name,brand,commodity,variety,pack_size,pack_style) and lots "
        "(gtin,lot,expiry,status,tlc_source,tlc_source_reference) in the gateway's CSV format; "
        "serials (gtin,serial,lot,state: expected|destroyed); despatch advices, one row per "
        "line (sscc,desadv,gtin,lot,serial,quantity[,ship_to]); "
        "sites (site,name,gln,street,city,region,postal_code,country,phone) and partners "
        "(party,name,...the same); rows are upserted. Products, lots, serials and despatch "
        "advices reach every site's gateways as cache deltas at commit, or as a snapshot "
        "when more than --snapshot-above records changed.",
    )
    i.add_argument("--products", type=Path, metavar="FILE")
    i.add_argument("--lots", type=Path, metavar="FILE")
    i.add_argument("--serials", type=Path, metavar="FILE", help="serials known before any event")
    i.add_argument(
        "--despatch-advices",
        type=Path,
        metavar="FILE",
        help="what pallets on their way hold (sscc,desadv,gtin,lot,serial,quantity[,ship_to])",
    )
    i.add_argument(
        "--snapshot-above",
        type=_records,
        default=None,
        metavar="N",
        help="send the gateways a snapshot instead of deltas above N records (default 5000)",
    )
    i.add_argument("--who", default=None, help="who imports, for the audit log (default: login)")
    i.add_argument("--sites", type=Path, metavar="FILE", help="our sites and their addresses")
    i.add_argument("--partners", type=Path, metavar="FILE", help="suppliers and customers")
    i.set_defaults(func=cmd_import)


def _unit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gtin", help="GTIN (8 to 14 digits)")
    p.add_argument("--lot", help="batch/lot (with --gtin)")
    p.add_argument("--serial", help="serial (with --gtin)")


def _depth(v: str) -> int:
    n = int(v)
    if not 1 <= n <= 1000:
        raise argparse.ArgumentTypeError("depth must be 1 to 1000")
    return n


def _records(v: str) -> int:
    n = int(v)
    if not 0 <= n <= 10_000_000:
        raise argparse.ArgumentTypeError("must be 0 to 10000000")
    return n


def _days(v: str) -> int:
    n = int(v)
    if not 0 <= n <= 3650:
        raise argparse.ArgumentTypeError("days must be 0 to 3650")
    return n


@contextmanager
def _connection(args: argparse.Namespace) -> Iterator[Connection]:
    """A read-only-ish connection to the configured database (closed afterwards)."""
    from central.db.engine import make_engine

    if args.config is not None:
        url = load_config(args.config).database.resolved_url()
    else:
        url = os.environ.get("DATABASE_URL", "")
        if not url:
            raise ConfigError("<command line>", "--config", "give a config or set DATABASE_URL")
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        url = url.replace("postgres://", "postgresql+psycopg://", 1)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _usage(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _emit_json(obj: Any) -> None:
    print(json.dumps(to_json(obj), ensure_ascii=False, indent=2))


def cmd_trace(args: argparse.Namespace) -> int:
    from central.trace.queries import trace

    try:
        key = unit_key(gtin=args.gtin, lot=args.lot, serial=args.serial, sscc=args.sscc)
    except KeyError_ as exc:
        return _usage(str(exc))
    with _connection(args) as conn:
        result = trace(conn, key, args.direction, args.depth)
    if args.json:
        _emit_json(result)
    else:
        print(render_trace(result))
    return 0 if result.steps else EXIT_NOTHING


def _step_row(s: Step) -> list[Any]:
    qty = None if s.quantity is None else f"{_num(s.quantity)} {s.uom or ''}".strip()
    via = s.via if s.via_id is None else f"{s.via} {s.via_id}"
    return [
        s.event_time.isoformat(sep=" ", timespec="milliseconds"),
        f"{s.site}/{s.gateway_id}",
        s.movement,
        s.unit + (f" on {s.parent_sscc}" if s.parent_sscc else ""),
        qty,
        str(s.source) if s.source else None,
        str(s.destination) if s.destination else None,
        via,
    ]


def _num(v: Any) -> str:
    return str(to_json(v))


_PARTS = {
    "backward": "backward: where it came from (what it was made of; a pallet's contents)",
    "self": "the unit itself (its serials, the pallets it was on)",
    "forward": "forward: where it went (what was made of it; a pallet's contents)",
}


def render_trace(t: Trace) -> str:
    """The trace as text: one table per part, then the recipients."""
    lines = [f"trace {t.subject} ({t.direction}, depth <= {t.max_depth})"]
    header = ("time", "site/gateway", "movement", "unit", "qty", "from", "to", "via")
    for part in ("backward", "self", "forward"):
        if part != "self" and t.direction not in ("both", part):
            continue
        steps = t.part(part)
        lines.append("")
        lines.append(f"{_PARTS[part]}: {len(steps)} step(s)")
        if steps:
            lines.append(table((_step_row(s) for s in steps), header))
    lines.append("")
    lines.append("recipients: " + (", ".join(t.recipients) or "none"))
    return "\n".join(lines)


def cmd_recall(args: argparse.Namespace) -> int:
    from central.trace.queries import recall

    try:
        if args.lot is not None:
            if args.serial or args.serials:
                raise KeyError_("recall a lot or serials, not both")
            lot = unit_key(gtin=args.gtin, lot=args.lot)
            serials = []
        else:
            lot = None
            lines: list[str] = []
            if args.serials is not None:
                src = sys.stdin.read() if str(args.serials) == "-" else _read(args.serials)
                lines.append(src)
            for s in args.serial or ():
                if args.gtin is None:
                    raise KeyError_("--serial needs --gtin")
                lines.append(f"{args.gtin},{s}")
            if not lines:
                raise KeyError_("give --gtin and --lot, or serials (--serials FILE, --serial)")
            serials = parse_serial_list("\n".join(lines), args.gtin)
    except KeyError_ as exc:
        return _usage(str(exc))
    with _connection(args) as conn:
        result = recall(conn, lot=lot, serials=serials, max_depth=args.depth)
    if args.csv is not None:
        args.csv.write_text(recall_csv(result), encoding="utf-8", newline="")
    if args.json:
        _emit_json(result)
    else:
        print(render_recall(result))
        if args.csv is not None:
            print(f"\nCSV: {args.csv} ({len(result.rows)} rows)")
    return 0 if result.rows else EXIT_NOTHING


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyError_(f"{p}: cannot read: {exc.strerror}") from None


def render_recall(r: Recall) -> str:
    """The recall as text: serials, lot quantities, pallets, recipients."""
    title = ", ".join(str(s) for s in r.subjects[:5]) + (
        f" and {len(r.subjects) - 5} more" if len(r.subjects) > 5 else ""
    )
    out = [f"recall {title}"]

    def tag(down: bool, via: str | None) -> str | None:
        return f"made of it ({via})" if down else via

    parts: list[tuple[str, list[str], Callable[[Any], list[Any]]]] = [
        (
            "serial",
            ["gtin", "serial", "lot", "state", "site", "location", "holder", "status", "note"],
            lambda x: [
                x.gtin,
                x.serial,
                x.lot,
                x.state,
                x.site,
                x.location,
                x.holder,
                x.status,
                tag(x.downstream, x.via),
            ],
        ),
        (
            "lot",
            ["gtin", "lot", "site", "location", "quantity", "status", "note"],
            lambda x: [
                x.gtin,
                x.lot,
                x.site,
                x.location,
                x.quantity,
                x.status,
                tag(x.downstream, x.via),
            ],
        ),
        (
            "pallet",
            ["sscc", "holds", "qty", "state", "site", "location", "holder", "inside"],
            lambda x: [
                x.sscc,
                f"{x.gtin} " + (f"#{x.serial}" if x.serial else f"lot {x.lot}"),
                x.quantity,
                x.state,
                x.site,
                x.location,
                x.holder,
                x.via,
            ],
        ),
        (
            "recipient",
            ["party", "date", "gtin", "lot/serial", "qty", "from site", "pallet", "note"],
            lambda x: [
                x.party,
                x.time.isoformat(sep=" ", timespec="seconds") if x.time else None,
                x.gtin,
                f"#{x.serial}" if x.serial else x.lot,
                x.quantity,
                x.site,
                x.via if not x.downstream else None,
                "made of it" if x.downstream else None,
            ],
        ),
    ]
    names = {
        "serial": "serials",
        "lot": "lot quantities now",
        "pallet": "pallets holding them now",
        "recipient": "recipients",
    }
    for sec, header, row in parts:
        rows = r.section(sec)
        out.append("")
        out.append(f"{names[sec]}: {len(rows)}")
        if rows:
            out.append(table((row(x) for x in rows), header))
    return "\n".join(out)


def cmd_stock(args: argparse.Namespace) -> int:
    from central.trace.queries import stock

    try:
        gtin = None if args.gtin is None else normalize_gtin(args.gtin)
    except KeyError_ as exc:
        return _usage(str(exc))
    with _connection(args) as conn:
        rows = stock(conn, site=args.site, location=args.location, gtin=gtin, lot=args.lot)
    if args.json:
        _emit_json(rows)
        return 0
    print(
        table(
            (
                [r.site, r.location, r.gtin, r.description, r.lot, r.expiry, r.quantity, r.kind]
                for r in rows
            ),
            ("site", "location", "gtin", "description", "lot", "expiry", "quantity", "kind"),
        )
    )
    return 0


def cmd_expiring(args: argparse.Namespace) -> int:
    from central.trace.queries import expiring

    today = args.today or date.today()
    with _connection(args) as conn:
        rows = expiring(conn, today, args.days, site=args.site)
    if args.json:
        _emit_json(rows)
        return 0
    window = f"{args.days} days" if args.days is not None else "each product's warning days"
    print(f"expiring within {window} of {today}:")
    print(
        table(
            (
                (
                    r.expiry,
                    r.days_left,
                    r.gtin,
                    r.description,
                    r.lot,
                    r.site,
                    r.location,
                    r.quantity,
                    r.status,
                )
                for r in rows
            ),
            ("expiry", "days", "gtin", "description", "lot", "site", "location", "qty", "status"),
        )
    )
    return 0


def cmd_gateways(args: argparse.Namespace) -> int:
    from central.trace.queries import gateways

    with _connection(args) as conn:
        rows = gateways(conn, site=args.site)
    if args.json:
        _emit_json(rows)
        return 0
    print(
        table(
            (
                [
                    r.gateway_id,
                    r.site,
                    r.state,
                    r.last_seen.isoformat(sep=" ", timespec="seconds") if r.last_seen else None,
                    r.seq_high,
                    r.outbox_depth,
                    r.oldest_unsent_age_s,
                    r.cache_version,
                    f"{r.open_gaps} ({r.missing_events} events)" if r.open_gaps else 0,
                ]
                for r in rows
            ),
            (
                "gateway",
                "site",
                "state",
                "last seen",
                "seq",
                "outbox",
                "oldest unsent s",
                "cache",
                "open gaps",
            ),
        )
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import getpass
    from datetime import UTC, datetime

    from central.masterdata.importer import ImportProblems
    from central.masterdata.parties import import_places
    from central.masterdata.publish import SNAPSHOT_ABOVE, import_all

    files = (
        args.products,
        args.lots,
        args.serials,
        args.despatch_advices,
        args.sites,
        args.partners,
    )
    if all(f is None for f in files):
        return _usage(
            "give --products, --lots, --serials, --despatch-advices, --sites and/or --partners FILE"
        )
    try:
        with _connection(args) as conn:
            places = import_places(conn, args.sites, args.partners)
            done = import_all(
                conn,
                products=args.products,
                lots=args.lots,
                serials=args.serials,
                despatch_advices=args.despatch_advices,
                who=str(args.who or f"cli:{getpass.getuser()}"),
                now=datetime.now(UTC),
                snapshot_above=(
                    SNAPSHOT_ABOVE if args.snapshot_above is None else args.snapshot_above
                ),
            )
    except ImportProblems as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"nothing imported ({len(exc.problems)} problem(s))", file=sys.stderr)
        return 1
    said = f"imported {done.products} product(s), {done.lots} lot(s)"
    if args.serials is not None or args.despatch_advices is not None:
        said += f", {done.serials} serial(s), {done.despatch_advices} despatch advice(s)"
    if args.sites is not None or args.partners is not None:
        said += f", {places.sites} site(s), {places.partners} partner(s)"
    print(said)
    pub = done.published
    if pub.mode == "deltas":
        print("gateways: deltas to " + ", ".join(f"{s} → v{v}" for s, v in pub.sites.items()))
    elif pub.mode == "snapshot":
        print(
            f"gateways: {pub.records} records: a snapshot to "
            + ", ".join(f"{s} → v{v}" for s, v in pub.sites.items())
        )
    return 0
