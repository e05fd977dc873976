"""``traceway print | printers | jobs | label preview``."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from drivers.printers.templates import DPIS, SIZES, TemplateError, fill, load_templates
from gs1.encode import EncodeError

#: The print queue's job states (gateway.print_queue.STATES; not imported here so that
#: every other command starts without SQLAlchemy).
JOB_STATES = ("queued", "sending", "sent", "confirmed", "held", "failed", "unknown")


def _fields(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--field {item!r}: expected key=value")
        out[key.strip()] = value
    return out


def _labels_dirs(args: argparse.Namespace) -> list[Path]:
    return [Path(d) for d in (getattr(args, "labels", None) or [])]


def _engine(args: argparse.Namespace) -> tuple[Any, Any]:
    """(config, engine) for commands that need the database; raises SystemExit with a message."""
    import sqlalchemy as sa

    from gateway.config import load_config

    cfg = load_config(args.config)
    db = Path(cfg.storage.path)
    if not db.exists():
        raise SystemExit(
            f"error: database {db} does not exist yet (start the gateway once, or check storage.path)"
        )
    engine = sa.create_engine(f"sqlite:///{db}")
    return cfg, engine


def cmd_print(args: argparse.Namespace) -> int:
    """Print a label on demand: through the durable queue with --config, else directly."""
    try:
        values = _fields(args.field)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.config:
        from gateway.print_queue import enqueue, short_tx

        cfg, engine = _engine(args)
        if not args.printer and len(cfg.printers) == 1:
            args.printer = next(iter(cfg.printers))  # the only printer: no need to name it
        if args.printer not in cfg.printers:
            known = ", ".join(cfg.printers) or "none configured"
            what = f"unknown printer {args.printer!r}" if args.printer else "give --printer"
            print(f"error: {what} (known: {known})", file=sys.stderr)
            return 2
        pc = cfg.printers[args.printer]
        try:
            fill(load_templates(_labels_dirs(args)).get(args.template, pc.dpi, pc.size), values)
        except (EncodeError, TemplateError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        key = args.key or f"cli:{uuid.uuid4()}"
        with short_tx(engine) as conn:
            job = enqueue(
                conn,
                idempotency_key=key,
                printer=args.printer,
                template=args.template,
                fields=values,
            )
        print(f"queued job {job}" if job is not None else f"already queued (key {key})")
        return 0
    if not args.host and not args.file:
        print("error: give --config (queue), or --host / --file to print directly", file=sys.stderr)
        return 2
    from drivers.printers.config import PrinterConfig
    from drivers.printers.printer import printer_for
    from drivers.printers.transport import TransportError

    pc = (
        PrinterConfig(transport="tcp", host=args.host, port=args.port, dpi=args.dpi, size=args.size)
        if args.host
        else PrinterConfig(transport="file", path=Path(args.file), dpi=args.dpi, size=args.size)
    )
    printer = printer_for(pc)
    try:
        template = load_templates(_labels_dirs(args)).get(args.template, pc.dpi, pc.size)
        fill(template, values)
        printer.connect()
        st = printer.status()
        if not st.ready:
            print(f"error: printer not ready: {st.describe()}", file=sys.stderr)
            return 1
        printer.print_label(template, values)
        if printer.transport.bidirectional:
            st = printer.wait_idle(pc.confirm_timeout)
            print(f"printed ({st.describe()})")
        else:
            print(f"written to {pc.path}")
        return 0
    except (EncodeError, TemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        printer.close()


def cmd_printers(args: argparse.Namespace) -> int:
    """Each configured printer: transport, queue counts and (with --probe) live status."""
    from gateway.print_queue import queue_counts

    cfg, engine = _engine(args)
    with engine.connect() as conn:
        counts = queue_counts(conn)
    header = f"{'PRINTER':12} {'LINK':6} {'DPI':6} {'SIZE':4}  JOBS"
    print(header + ("  STATUS" if args.probe else ""))
    for name, pc in sorted(cfg.printers.items()):
        c = counts.get(name, {})
        if pc.transport == "file":
            c = _file_counts(c)
        q = " ".join(f"{s}={n}" for s, n in sorted(c.items())) or "no jobs"
        line = f"{name:12} {pc.transport:6} {str(pc.dpi) + 'dpi':6} {pc.size:4}  {q}"
        if args.probe:
            from drivers.printers.printer import printer_for
            from drivers.printers.transport import TransportError

            p = printer_for(pc)
            try:
                p.connect()
                line += f"  [{p.status().describe()}]"
            except TransportError as exc:
                line += f"  [offline: {exc}]"
            finally:
                p.close()
        print(line)
    return 0


def _file_counts(counts: dict[str, int]) -> dict[str, int]:
    """Queue counts of a file printer: nothing confirms a file, so ``confirmed`` is ``sent``."""
    out = dict(counts)
    if "confirmed" in out:
        out["sent"] = out.get("sent", 0) + out.pop("confirmed")
    return out


def _item(fields_json: str) -> str:
    """The item a job's label is for: GTIN/SSCC with serial or lot."""
    import json

    try:
        f = json.loads(fields_json)
    except ValueError:
        return "?"
    key = f.get("gtin") or f.get("sscc") or ""
    if f.get("serial"):
        rest = f"sn {f['serial']}"
    elif f.get("lot"):
        rest = f"lot {f['lot']}"
    else:
        rest = ""
    return " ".join(x for x in (key, rest) if x) or "-"


def cmd_jobs(args: argparse.Namespace) -> int:
    """List jobs, or queue a reprint of one (marked as a reprint)."""
    from gateway.print_queue import ReprintRefused, list_jobs, reprint, short_tx

    cfg, engine = _engine(args)
    if args.reprint is not None:
        with short_tx(engine) as conn:
            try:
                new = reprint(conn, args.reprint)
            except KeyError as exc:
                print(f"error: {exc.args[0]}", file=sys.stderr)
                return 1
            except ReprintRefused as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        print(f"queued reprint job {new} of job {args.reprint}")
        return 0
    with engine.connect() as conn:
        rows = list_jobs(conn, printer=args.printer, state=args.state, limit=args.limit)
    if not rows:
        print("no print jobs" + (" matching" if args.printer or args.state else ""))
        return 0
    files = {n for n, pc in cfg.printers.items() if pc.transport == "file"}
    print(
        f"{'JOB':>6} {'PRINTER':10} {'TEMPLATE':8} {'STATE':9} {'UPDATED':19} "
        f"{'SCAN':10} {'ITEM':36} NOTE"
    )
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["updated_at"]))
        state = "sent" if r["state"] == "confirmed" and r["printer"] in files else r["state"]
        event = (
            f"seq={r['seq']}"
            if r["seq"] is not None
            else (f"…{r['event_id'][-7:]}" if r["event_id"] else "manual")
        )
        note = " ".join(
            x
            for x in (
                f"reprint of {r['reprint_of']}"
                if r["reprint_of"]
                else "reprint" * bool(r["is_reprint"]),
                r["error"],
            )
            if x
        )
        print(
            f"{r['id']:6} {r['printer']:10} {r['template']:8} {state:9} {when:19} "
            f"{event:10} {_item(r['fields']):36} {note}".rstrip()
        )
    return 0


def _write_png(path: Path, png: bytes) -> str | None:
    """Write one PNG; the reason in one line when it cannot be written."""
    try:
        path.write_bytes(png)
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


def _preview_zpl_file(args: argparse.Namespace) -> int:
    """Render the labels of a ZPL file (e.g. a file printer's output) to PNG files."""
    from drivers.printers.preview import PreviewError, render_labels

    try:
        zpl = Path(args.zpl).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"error: cannot read {args.zpl}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        pngs, _warnings = render_labels(zpl, dpi=args.dpi, size=args.size)
    except PreviewError as exc:
        print(f"error: {args.zpl}: {exc}", file=sys.stderr)
        return 1
    out = Path(args.output)
    if args.index is not None:
        if not 1 <= args.index <= len(pngs):
            print(
                f"error: --index {args.index}: {args.zpl} holds {len(pngs)} label(s)",
                file=sys.stderr,
            )
            return 1
        targets = [(out, pngs[args.index - 1])]
    elif len(pngs) == 1:
        targets = [(out, pngs[0])]
    else:  # label.png -> label-1.png, label-2.png, …
        targets = [
            (out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}"), png)
            for i, png in enumerate(pngs, 1)
        ]
    for path, png in targets:
        err = _write_png(path, png)
        if err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    names = ", ".join(str(p) for p, _ in targets[:3]) + (" …" if len(targets) > 3 else "")
    print(f"wrote {len(targets)} of {len(pngs)} label(s) from {args.zpl}: {names}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Render a template (or the labels of a ZPL file, ``--zpl``) offline to PNG."""
    from drivers.printers.preview import PreviewError, missing_glyph, render_png

    if args.zpl:
        if args.template or args.field:
            print("error: give --zpl FILE or --template with --field, not both", file=sys.stderr)
            return 2
        return _preview_zpl_file(args)
    if not args.template:
        print("error: give --template NAME (with --field KEY=VALUE) or --zpl FILE", file=sys.stderr)
        return 2
    if args.index is not None:
        print("error: --index goes with --zpl", file=sys.stderr)
        return 2
    try:
        values = _fields(args.field)
        template = load_templates(_labels_dirs(args)).get(args.template, args.dpi, args.size)
        zpl = fill(template, values)
    except (ValueError, TemplateError) as exc:  # EncodeError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    notes: list[str] = []
    for _ in range(20):
        try:
            png, _warnings = render_png(zpl, dpi=args.dpi, size=args.size)
            break
        except PreviewError as exc:
            ch = missing_glyph(exc)
            if ch is None:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            notes.append(f"preview font has no {ch!r}; shown as '?' (the printer prints it)")
            values = {k: v.replace(ch, "?") for k, v in values.items()}
            zpl = fill(template, values)
    else:
        print("error: too many characters the preview font lacks", file=sys.stderr)
        return 1
    err = _write_png(Path(args.output), png)
    if err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"wrote {args.output} ({template.name} {args.dpi}dpi {args.size})")
    return 0


def register(sub: Any) -> None:
    """Add the printing sub-commands."""
    p = sub.add_parser("print", help="print a label (queued with --config)")
    p.add_argument(
        "--printer", default="", help="printer name from the config (not needed with one printer)"
    )
    p.add_argument(
        "--template", required=True, help="template name: lot, serial, sscc or a site one"
    )
    p.add_argument(
        "--field", action="append", default=[], metavar="KEY=VALUE", help="a field value (repeat)"
    )
    p.add_argument("--config", help="gateway config: queue the job durably")
    p.add_argument("--key", default="", help="idempotency key (default: random)")
    p.add_argument("--host", default="", help="print directly over TCP 9100 (no config)")
    p.add_argument("--port", type=int, default=9100, help="TCP port with --host (default 9100)")
    p.add_argument("--file", default="", help="append ZPL to a file (no config)")
    p.add_argument(
        "--dpi",
        type=int,
        choices=DPIS,
        default=203,
        help="printer resolution without --config (default 203)",
    )
    p.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="4x6",
        help="label size in inches without --config (default 4x6)",
    )
    p.add_argument("--labels", action="append", help="extra template directory (config/labels)")
    p.set_defaults(func=cmd_print)

    p = sub.add_parser("printers", help="printers, their queues and (--probe) live status")
    p.add_argument("--config", required=True, help="gateway TOML file")
    p.add_argument("--probe", action="store_true", help="ask each printer for its status")
    p.set_defaults(func=cmd_printers)

    p = sub.add_parser("jobs", help="list print jobs or reprint one")
    p.add_argument("--config", required=True, help="gateway config (its database)")
    p.add_argument("--printer", help="only this printer's jobs")
    p.add_argument("--state", choices=JOB_STATES, help="only jobs in this state")
    p.add_argument("--limit", type=int, default=50, help="newest N jobs (default 50)")
    p.add_argument("--reprint", type=int, metavar="JOB_ID", help="queue a reprint of this job")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("label", help="label templates")
    lsub = p.add_subparsers(dest="label_command", metavar="ACTION")
    pv = lsub.add_parser(
        "preview", help="render a template, or the labels of a ZPL file, offline to PNG"
    )
    pv.add_argument("--template", help="template to fill with --field values")
    pv.add_argument(
        "--zpl", metavar="FILE", help="render this ZPL file instead (e.g. var/labels.zpl)"
    )
    pv.add_argument(
        "--index",
        type=int,
        metavar="N",
        help="with --zpl: only label N (1 = first); default: every label, OUT-1.png, OUT-2.png…",
    )
    pv.add_argument("--dpi", type=int, choices=(203, 300), default=203, help="printer resolution")
    pv.add_argument("--size", choices=sorted(SIZES), default="4x6", help="label stock, inches")
    pv.add_argument(
        "--field", action="append", default=[], metavar="KEY=VALUE", help="a field value (repeat)"
    )
    pv.add_argument("--labels", action="append", help="extra template directory (config/labels)")
    pv.add_argument("-o", "--output", required=True, help="PNG file to write")
    pv.set_defaults(func=cmd_preview)
