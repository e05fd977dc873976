"""A warehouse for scenario tests: master data, stations, the real pipeline and writer.

A scenario says what the site holds, scans codes at named stations and checks the
verdicts, the stock (``traceway stock`` rows) and the local trace (``traceway trace``).
Every event the site writes is validated against the MQTT contract.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

from drivers.scanners.types import RawScan
from gateway.config import GatewayConfig, parse_config
from gateway.outcome import Outcome
from gateway.pipeline import ScanProcessor
from gateway.store import queries
from gateway.store.cache_import import import_csv
from gateway.store.db import open_database
from gateway.writer import Writer
from gs1.keys import check_digit
from mqtt_topics.validation import validate

TODAY = date(2026, 11, 21)


def gtin(body: str) -> str:
    """A GTIN-14 from 13 digits (check digit added)."""
    return body + str(check_digit(body))


LOT_GTIN = gtin("0950600013435")  # lot-tracked, 60 warning days
PUMP = gtin("0950600013436")  # serial-tracked
BOX = gtin("0950600013438")  # untracked
SALINE = gtin("0950600013437")  # lot-tracked, 30 warning days

PRODUCTS = f"""gtin,description,tracking,expiry_warning_days
{LOT_GTIN},Paracetamol 500 mg,lot,60
{PUMP},Infusion pump,serial,30
{BOX},Shipper box,none,0
{SALINE},Saline 0.9%,lot,30
"""

COMMANDS = (
    "RECEIVE|PUTAWAY|PICK|PACK|UNPACK|CLOSE|SHIP|HOLD|RELEASE|RETURN|TRANSFER|COUNT|SCRAP"
    "|CONSUME|INSPECT|CLEAR|RELABEL|QTY:\\d+|PO:.+|DESADV:.+|BOL:.+|FROM:.+|TO:.+|REASON:.+"
)


def lot_code(g: str, lot: str, expiry: str | None = "301231", extra: str = "") -> str:
    """A GS1-128 lot label: (01)(17)(10) and more AIs after the lot."""
    exp = f"17{expiry}" if expiry else ""
    tail = f"\x1d{extra}" if extra else ""
    return f"]C101{g}{exp}10{lot}{tail}"


def serial_code(g: str, serial: str, lot: str | None = None) -> str:
    """A GS1 DataMatrix with (01)(21) and optionally (10)."""
    return f"]d201{g}21{serial}" + (f"\x1d10{lot}" if lot else "")


def item_code(g: str) -> str:
    """An EAN/GTIN-only barcode (untracked product)."""
    return f"]C101{g}"


class Site:
    """One gateway with stations ``{name: {step, location, ...}}`` and seeded master data.

    ``site_id`` and ``gateway_id`` name the site and the gateway in its events (several
    sites in one scenario feed one central store).
    """

    def __init__(
        self,
        tmp: Path,
        stations: dict[str, dict[str, Any]],
        *,
        lots: str = "",
        serials: str = "",
        today: date = TODAY,
        synchronous: str = "NORMAL",
        site_id: str = "s1",
        gateway_id: str = "g1",
    ) -> None:
        blocks = []
        for name, st in stations.items():
            opts = {"duplicate_window": 0, **st}
            body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in opts.items())
            blocks.append(
                f'[stations.{name}]\n{body}\n[scanners.{name}]\ntype = "tcp"\n'
                f'station = "{name}"\nport = 9\n'
            )
        self.cfg: GatewayConfig = parse_config(
            f"""
[gateway]
site = "{site_id}"
id = "{gateway_id}"
[storage]
path = "{tmp / "gw.db"}"
synchronous = "{synchronous}"
{"".join(blocks)}
[[patterns]]
kind = "location"
regex = 'LOC-(?P<value>.+)'
[[patterns]]
kind = "command"
regex = '(?P<value>{COMMANDS})'
""",
            "scenario.toml",
        )
        (tmp / "products.csv").write_text(PRODUCTS)
        (tmp / "lots.csv").write_text("gtin,lot,expiry,status,location,quantity\n" + lots)
        (tmp / "serials.csv").write_text("gtin,serial,lot,state,location\n" + serials)
        engine = open_database(self.cfg.storage.path)
        import_csv(engine, tmp / "products.csv", tmp / "lots.csv", tmp / "serials.csv")
        engine.dispose()
        self.outcomes: list[Outcome] = []
        self.cv = threading.Condition()
        self.processor = ScanProcessor(self.cfg, lambda: True, today=lambda: today)
        self.writer = Writer(self.cfg.storage.path, self.processor, on_committed=self._done)
        self.writer.start()
        self.t = 0.0

    def _done(self, outs: list[Outcome]) -> None:
        with self.cv:
            self.outcomes.extend(outs)
            self.cv.notify_all()

    def scan(self, station: str, *codes: str) -> list[Outcome]:
        """Scan codes one after the other at a station (two seconds apart)."""
        start = len(self.outcomes)
        for c in codes:
            self.t += 2.0
            self.writer.submit(RawScan(c, station, time.time(), self.t))
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.outcomes) >= start + len(codes), 10)
            return self.outcomes[start:]

    def verdicts(self, station: str, *codes: str) -> list[tuple[str, tuple[str, ...]]]:
        """(verdict, reason codes) of each item scan; control barcodes are left out."""
        outs = self.scan(station, *codes)
        return [(o.verdict, tuple(r.code for r in o.reasons)) for o in outs if o.kind != "control"]

    def one(self, station: str, code: str) -> Outcome:
        return self.scan(station, code)[0]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.cfg.storage.path)

    def stock(self, **filters: str) -> dict[tuple[str | None, ...], int]:
        """``{(gtin, lot, serial, location): quantity}`` as ``traceway stock`` reports it."""
        con = self.db()
        try:
            rows = queries.stock(con, **filters)  # type: ignore[arg-type]
        finally:
            con.close()
        return {(r["gtin"], r["lot"], r["serial"], r["location"]): r["quantity"] for r in rows}

    def status(self, **filters: str) -> dict[tuple[str | None, ...], str]:
        con = self.db()
        try:
            rows = queries.stock(con, **filters)  # type: ignore[arg-type]
        finally:
            con.close()
        return {(r["gtin"], r["lot"], r["serial"], r["location"]): r["status"] for r in rows}

    def trace(self, **kw: str) -> list[dict[str, Any]]:
        con = self.db()
        try:
            return queries.trace(con, **kw)  # type: ignore[arg-type]
        finally:
            con.close()

    def moves(self, **kw: str) -> list[tuple[str, str | None, str | None, Any]]:
        """(movement, from, to, quantity) of a trace; places as ``id`` or ``party:id``."""

        def show(p: dict[str, str] | None) -> str | None:
            if p is None:
                return None
            return p["id"] if p["type"] == "location" else f"{p['type']}:{p['id']}"

        return [
            (r["movement"], show(r["from"]), show(r["to"]), r["quantity"]) for r in self.trace(**kw)
        ]

    def payloads(self) -> list[dict[str, Any]]:
        con = self.db()
        try:
            rows = [
                json.loads(r[0]) for r in con.execute("SELECT payload FROM outbox ORDER BY seq")
            ]
        finally:
            con.close()
        for p in rows:
            assert validate(p) == [], (p, validate(p))
        return rows

    def events(self) -> list[dict[str, Any]]:
        return [p for p in self.payloads() if p["schema"]["name"] == "traceway.event"]

    def close(self) -> None:
        self.writer.stop()
        self.payloads()  # every message written validates
