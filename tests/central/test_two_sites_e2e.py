"""Two sites, three real gateways, central as subprocesses: trace, recall, recall push.

``traceway run`` ×3 (site A: ``gw-a``; site B: ``gw-b`` for the warehouse and the line,
``gw-b2`` for finished goods), ``traceway-central ingest`` and ``serve`` run as
subprocesses on a private mosquitto and a private PostgreSQL. Scans go in over TCP
(one listening scanner per station), as a fixed-mount reader would send them.

The day (as ``trace_day``, with a second pallet that stays at site B):

- site A receives lot L1 (100) and pump P1 from a supplier, puts them away at A-01 and
  ships 40 of L1 and P1 to site B;
- site B receives them, picks 20 of L1 and P1 to STAGE, packs 10 of L1 and P1 onto
  pallet X and 10 of L1 onto pallet Y, consumes 5 of L1 on its line into lot N1 and
  ships pallet X to customer C. The line's output (50 of N1 at PROD) is published by
  the test in the line's name (``line-b``): a gateway records the inputs of a
  transformation, not its outputs;
- ``gw-b2`` (finished goods, N1's 50 at PROD seeded into its cache) ships 20 of N1
  to C.

``traceway-central trace --json`` and ``recall --json`` must return exactly that chain
and those recipients. Then ``recall-start`` at central: each gateway acks the delta
(``GET /recalls/R-…`` shows it applied by each), and the next scan of L1 at each
gateway, pallet Y at site B and a combined pallet label holding L1 at the two other
gateways are refused ``lot_recalled``. Every wait polls a condition; no sleeps.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from gs1.keys import check_digit
from mqtt_topics.topics import GatewayTopics
from tests.central.procs import stop_all
from tests.central.trace_day import GLN_A, GLN_B, GLN_C, SUPPLIER, _line_output
from tests.conftest import Broker, free_port
from tests.gw_util import Collector, GatewayProcess, Pusher, wait_listening
from tests.scenarios.site import COMMANDS, LOT_GTIN, PRODUCTS, PUMP, SALINE, lot_code, serial_code

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "traceway/v1"
X = "34012345000000001" + str(check_digit("34012345000000001"))
Y = "34012345000000002" + str(check_digit("34012345000000002"))
#: pallets from elsewhere, with a combined label: (00) SSCC, (02) what is on it, (37), (10)
ZA = "34012345000000003" + str(check_digit("34012345000000003"))
ZB2 = "34012345000000004" + str(check_digit("34012345000000004"))
L1 = lot_code(LOT_GTIN, "L1")
N1 = lot_code(SALINE, "N1", "270630")


def wait_until(what: str, fn: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``fn`` until it returns something true (the deadline only guards a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def central(cfg: Path, *args: str) -> str:
    """``traceway-central`` as a subprocess; its stdout (fails the test on a non-zero exit)."""
    out = subprocess.run(
        [sys.executable, "-m", "central", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, f"central {args}: {out.stdout}\n{out.stderr}"
    return out.stdout


@dataclass
class Gateway:
    """A gateway subprocess with one TCP scanner per station."""

    site: str
    gid: str
    proc: GatewayProcess
    ports: dict[str, int]
    pushers: dict[str, Pusher] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return f"{PREFIX}/{self.site}/{self.gid}/"

    def send(self, station: str, *codes: str) -> None:
        if station not in self.pushers:
            p = Pusher(self.ports[station])
            p.connect()
            self.pushers[station] = p
        for c in codes:
            self.pushers[station].send(c)

    def close(self) -> None:
        for p in self.pushers.values():
            p.close()


def write_gateway(
    tmp: Path,
    site: str,
    gid: str,
    broker_port: int,
    stations: dict[str, dict[str, str]],
    lots: str = "",
) -> tuple[Path, dict[str, int]]:
    """A gateway config: the stations, one listening TCP scanner each, seed CSVs."""
    d = tmp / gid
    d.mkdir()
    (d / "products.csv").write_text(PRODUCTS)
    (d / "lots.csv").write_text("gtin,lot,expiry,status,location,quantity\n" + lots)
    ports = {name: free_port() for name in stations}
    blocks = []
    for name, st in stations.items():
        opts = {"duplicate_window": 0, **st}
        body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in opts.items())
        blocks.append(
            f'[stations.{name}]\n{body}\n[scanners.{name}]\ntype = "tcp"\n'
            f'station = "{name}"\nmode = "listen"\nhost = "127.0.0.1"\nport = {ports[name]}\n'
        )
    cfg = d / "gateway.toml"
    cfg.write_text(
        f"""
[gateway]
site = "{site}"
id = "{gid}"
[broker]
host = "127.0.0.1"
port = {broker_port}
reconnect_max_delay = 2
keepalive = 5
[storage]
path = "state/gw.db"
[cache]
seed_products = "products.csv"
seed_lots = "lots.csv"
{"".join(blocks)}
[[patterns]]
kind = "location"
regex = 'LOC-(?P<value>.+)'
[[patterns]]
kind = "command"
regex = '(?P<value>{COMMANDS})'
"""
    )
    return cfg, ports


@dataclass
class Rig:
    tmp: Path
    engine: Engine
    cfg: Path
    api: httpx.Client
    col: Collector
    gws: dict[str, Gateway]
    procs: list[subprocess.Popen[bytes]]

    def published(self, gw: Gateway, suffix: str) -> list[dict[str, Any]]:
        with self.col.lock:
            return [p for t, p in self.col.messages if t == gw.root + suffix]

    def scan(
        self,
        gw: Gateway,
        station: str,
        *codes: str,
        events: int = 0,
        alerts: int = 0,
        verdicts: frozenset[str] | set[str] = frozenset({"accept"}),
    ) -> None:
        """Send codes to a station; wait until ``events`` / ``alerts`` more are published."""
        e0, a0 = len(self.published(gw, "events")), len(self.published(gw, "alerts"))
        gw.send(station, *codes)
        wait_until(
            f"{gw.gid}/{station}: {events} event(s), {alerts} alert(s)",
            lambda: (
                len(self.published(gw, "events")) >= e0 + events
                and len(self.published(gw, "alerts")) >= a0 + alerts
            ),
        )
        new_events = self.published(gw, "events")[e0:]
        got = {e["decision"]["verdict"] for e in new_events}
        assert len(new_events) == events and got <= verdicts, new_events
        assert len(self.published(gw, "alerts")) == a0 + alerts, self.published(gw, "alerts")


@pytest.fixture
def rig(tmp_path: Path, broker: Broker, engine: Engine) -> Iterator[Rig]:
    url = engine.url.render_as_string(hide_password=False)
    api_port = free_port()
    cfg = tmp_path / "central.toml"
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[broker]\nport = {broker.port}\n'
        f'client_id = "central-e2e"\n[ingest]\nmax_wait_ms = 20\n[api]\nport = {api_port}\n'
    )
    (tmp_path / "products.csv").write_text(PRODUCTS)
    (tmp_path / "lots.csv").write_text(
        f"gtin,lot,expiry,status\n{LOT_GTIN},L1,2030-12-31,active\n"
        f"{SALINE},N1,2027-06-30,active\n{PUMP},PL1,,active\n"
    )
    central(
        cfg, "import", "--products", str(tmp_path / "products.csv"),
        "--lots", str(tmp_path / "lots.csv"),
    )  # fmt: skip
    token = central(cfg, "token", "add", "--role", "recall-manager", "--name", "qa").splitlines()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    for name, args in (("ingest", ["ingest", "--worker", "1"]), ("serve", ["serve"])):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "central", *args, "--config", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=open(tmp_path / f"central-{name}.log", "ab"),  # noqa: SIM115
                cwd=ROOT,
                env=env,
            )
        )
    col = Collector(broker.port)
    col.start()
    specs: dict[str, tuple[str, dict[str, dict[str, str]], str]] = {
        "gw-a": (
            "site-a",
            {
                "dock": {"step": "receiving", "location": "DOCK-A", "source": SUPPLIER},
                "store": {"step": "storing", "location": ""},
                "ship": {"step": "shipping", "location": "A-01", "destination": GLN_B},
            },
            "",
        ),
        "gw-b": (
            "site-b",
            {
                "dock": {"step": "receiving", "location": "DOCK-B", "source": GLN_A},
                "pick": {"step": "picking", "location": "STAGE"},
                "pack": {"step": "packing", "location": "STAGE"},
                "line": {"step": "consuming", "location": "LINE"},
                "ship": {"step": "shipping", "location": "STAGE", "destination": GLN_C},
            },
            "",
        ),
        "gw-b2": (
            "site-b",
            {
                "dock": {"step": "receiving", "location": "DOCK-B2"},
                "ship": {"step": "shipping", "location": "PROD", "destination": GLN_C},
            },
            # the line's output reaches the finished-goods cache as master data
            f"{SALINE},N1,2027-06-30,active,PROD,50\n",
        ),
    }
    gws: dict[str, Gateway] = {}
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{api_port}",
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        wait_listening(api_port, timeout=60)
        for gid, (site, stations, lots) in specs.items():
            gcfg, ports = write_gateway(tmp_path, site, gid, broker.port, stations, lots)
            proc = GatewayProcess(gcfg, tmp_path / f"{gid}.log")
            gws[gid] = Gateway(site, gid, proc, ports)
            proc.start()
        for gw in gws.values():
            for port in gw.ports.values():
                wait_listening(port, gw.proc, timeout=60)
        yield Rig(tmp_path, engine, cfg, api, col, gws, procs)
    finally:
        for gw in gws.values():
            gw.close()
            gw.proc.stop()
        col.stop()
        api.close()
        stop_all(procs)
    for name in ("ingest", "serve"):
        log = (tmp_path / f"central-{name}.log").read_text()
        assert "Traceback" not in log, log


def cache_versions(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {
            r[0]: r[1]
            for r in c.execute(text("SELECT gateway_id, version FROM cache_gateways"))
            if r[1] is not None
        }


def seqs(engine: Engine) -> dict[str, int]:
    """Events stored per gateway."""
    with engine.connect() as c:
        rows = c.execute(text("SELECT gateway_id, count(*) FROM events GROUP BY 1")).all()
        return {str(g): int(n) for g, n in rows}


def step(s: dict[str, Any]) -> tuple[Any, ...]:
    """(gateway, movement, unit, quantity, from, to) of a ``trace --json`` step."""

    def place(p: dict[str, str] | None) -> str | None:
        return None if p is None else p["id"] if p["type"] == "location" else f"party:{p['id']}"

    unit = (
        f"SSCC {s['sscc']}"
        if s["gtin"] is None
        else f"{s['gtin']} #{s['serial']}"
        if s["serial"]
        else f"{s['gtin']}/{s['lot']}"
    )
    return (
        s["gateway_id"],
        s["movement"],
        unit,
        s["quantity"],
        place(s["source"]),
        place(s["destination"]),
    )


def part(t: dict[str, Any], direction: str) -> list[tuple[Any, ...]]:
    return [step(s) for s in t["steps"] if s["direction"] == direction]


UL1, UN1, UP1 = f"{LOT_GTIN}/L1", f"{SALINE}/N1", f"{PUMP} #P1"
B, C, S = f"party:{GLN_B}", f"party:{GLN_C}", f"party:{SUPPLIER}"
L1_SELF = [
    ("gw-a", "receive", UL1, 100, S, "DOCK-A"),
    ("gw-a", "putaway", UL1, 100, "DOCK-A", "A-01"),
    ("gw-a", "ship", UL1, 40, "A-01", B),
    ("gw-b", "receive", UL1, 40, f"party:{GLN_A}", "DOCK-B"),
    ("gw-b", "pick", UL1, 20, "DOCK-B", "STAGE"),
    ("gw-b", "pack", UL1, 10, "STAGE", "STAGE"),
    ("gw-b", "pack", UL1, 10, "STAGE", "STAGE"),
    ("gw-b", "consume", UL1, 5, "DOCK-B", None),
    ("gw-b", "ship", f"SSCC {X}", None, "STAGE", C),
    ("gw-b", "ship", UL1, 10, "STAGE", C),
]
N1_SELF = [
    ("line-b", "consume", UN1, 50, None, "PROD"),
    ("gw-b2", "ship", UN1, 20, "PROD", C),
]
P1_SELF = [
    ("gw-a", "receive", UP1, 1, S, "DOCK-A"),
    ("gw-a", "putaway", UP1, 1, "DOCK-A", "A-01"),
    ("gw-a", "ship", UP1, 1, "A-01", B),
    ("gw-b", "receive", UP1, 1, f"party:{GLN_A}", "DOCK-B"),
    ("gw-b", "pick", UP1, 1, "DOCK-B", "STAGE"),
    ("gw-b", "pack", UP1, 1, "STAGE", "STAGE"),
    ("gw-b", "ship", f"SSCC {X}", None, "STAGE", C),
    ("gw-b", "ship", UP1, 1, "STAGE", C),
]


def run_day(rig: Rig) -> None:
    a, b, b2 = rig.gws["gw-a"], rig.gws["gw-b"], rig.gws["gw-b2"]
    rig.scan(a, "dock", "QTY:100", L1, serial_code(PUMP, "P1", "PL1"), events=2)
    rig.scan(a, "store", "LOC-A-01", "QTY:100", L1, serial_code(PUMP, "P1"), events=2)
    rig.scan(a, "ship", "QTY:40", L1, serial_code(PUMP, "P1"), events=2)
    rig.scan(b, "dock", "QTY:40", L1, serial_code(PUMP, "P1", "PL1"), events=2)
    rig.scan(b, "pick", "QTY:20", L1, serial_code(PUMP, "P1"), events=2)
    rig.scan(b, "pack", f"]C100{X}", "QTY:10", L1, serial_code(PUMP, "P1"), events=2)
    rig.scan(b, "pack", f"]C100{Y}", "QTY:10", L1, events=1)
    rig.scan(b, "line", "FROM:DOCK-B", "QTY:5", L1, events=1)
    consumed = rig.published(b, "events")[-1]
    assert consumed["movement"] == "consume" and consumed["transformation_id"], consumed
    # the line's output, in the line's own name (seq 1 of line-b)
    line = _line_output(consumed)
    info = rig.col.client.publish(
        GatewayTopics("site-b", "line-b", PREFIX).events, json.dumps(line), qos=1
    )
    info.wait_for_publish(30)
    rig.scan(b, "ship", f"]C100{X}", events=1)
    rig.scan(b2, "ship", "QTY:20", N1, events=1)


def test_two_sites_three_gateways_trace_recall_and_recall_push(rig: Rig) -> None:
    wait_until(
        "each gateway's first snapshot",
        lambda: cache_versions(rig.engine) == {"gw-a": 1, "gw-b": 1, "gw-b2": 1},
    )
    run_day(rig)
    expected = {"gw-a": 6, "gw-b": 9, "gw-b2": 1, "line-b": 1}
    wait_until("central has every event", lambda: seqs(rig.engine) == expected)
    gateways = json.loads(central(rig.cfg, "gateways", "--json"))
    assert {g["gateway_id"]: g["open_gaps"] for g in gateways} == dict.fromkeys(expected, 0)

    # -- trace: exactly the chain, both sites and the line --------------------------------
    t = json.loads(central(rig.cfg, "trace", "--gtin", LOT_GTIN, "--lot", "L1", "--json"))
    assert part(t, "self") == L1_SELF
    assert part(t, "backward") == []
    assert part(t, "forward") == N1_SELF
    assert t["recipients"] == [GLN_B, GLN_C]
    t = json.loads(central(rig.cfg, "trace", "--gtin", SALINE, "--lot", "N1", "--json"))
    assert part(t, "self") == N1_SELF
    assert part(t, "backward") == L1_SELF[:8]  # L1 up to its consumption
    t = json.loads(central(rig.cfg, "trace", "--gtin", PUMP, "--serial", "P1", "--json"))
    assert part(t, "self") == P1_SELF
    assert t["recipients"] == [GLN_B, GLN_C]
    t = json.loads(central(rig.cfg, "trace", "--sscc", Y, "--json"))
    assert part(t, "self") == []  # pallet Y never moved
    assert [m for m in part(t, "backward") if m[2] == UL1] == L1_SELF[:7]  # up to packing

    # -- recall: where L1 is now, what was made of it, who received it --------------------
    r = json.loads(central(rig.cfg, "recall", "--gtin", LOT_GTIN, "--lot", "L1", "--json"))
    assert r["serials"] == []
    assert [
        (x["gtin"], x["lot"], x["site"], x["location"], x["quantity"], x["downstream"])
        for x in r["lots"]
    ] == [
        (LOT_GTIN, "L1", "site-a", "A-01", 60, False),
        (LOT_GTIN, "L1", "site-b", "DOCK-B", 15, False),
        (LOT_GTIN, "L1", "site-b", "STAGE", 10, False),  # on pallet Y
        (SALINE, "N1", "site-b", "PROD", 30, True),  # made of L1
    ]
    assert [
        (x["sscc"], x["lot"], x["quantity"], x["state"], x["site"], x["location"])
        for x in r["pallets"]
    ] == [
        (X, "L1", 10, "shipped", None, None),
        (Y, "L1", 10, "at_site", "site-b", "STAGE"),
    ]
    assert [
        (x["party"], x["gtin"], x["lot"], x["quantity"], x["site"], x["downstream"])
        for x in r["recipients"]
    ] == [
        (GLN_B, LOT_GTIN, "L1", 40, "site-a", False),  # the transfer to site B
        (GLN_C, LOT_GTIN, "L1", 10, "site-b", False),  # on pallet X
        (GLN_C, SALINE, "N1", 20, "site-b", True),
    ]
    assert r["recipient_parties"] == [GLN_B, GLN_C]

    # -- recall at central: every gateway applies it and refuses the lot ------------------
    out = central(
        rig.cfg, "recall-start", "--gtin", LOT_GTIN, "--lot", "L1",
        "--reason", "foreign body", "--who", "qa:e2e",
    )  # fmt: skip
    m = re.match(r"(R-\d+) recall", out)
    assert m, out
    rid = m.group(1)

    def applied() -> dict[str, Any]:
        push = rig.api.get(f"/recalls/{rid}").json()["push"]
        return {x["gateway_id"]: x for x in push if x["status"] == "applied"}

    done = wait_until("every gateway's ack", lambda: set(applied()) >= set(rig.gws) and applied())
    assert {g: (x["site"], x["version"]) for g, x in done.items()} == {
        "gw-a": ("site-a", 2),
        "gw-b": ("site-b", 2),
        "gw-b2": ("site-b", 2),
    }
    assert all(x["applied_at"] for x in done.values())
    push = rig.api.get(f"/recalls/{rid}").json()["push"]
    # the line is no gateway: it publishes events but keeps no cache, so it never acks
    assert {x["gateway_id"]: x["status"] for x in push if x["gateway_id"] == "line-b"} in (
        {},
        {"line-b": "pending"},
    )

    a, b, b2 = rig.gws["gw-a"], rig.gws["gw-b"], rig.gws["gw-b2"]
    for gw, station, code in (
        (a, "dock", L1),
        (b, "dock", L1),
        (b2, "dock", L1),
        (b, "ship", f"]C100{Y}"),  # pallet Y, which holds L1, may not leave site B
    ):
        rig.scan(gw, station, code, alerts=1)
        assert reasons(rig.published(gw, "alerts")[-1], "reject") == ["lot_recalled"]
    # a pallet holding L1 (combined label) arriving at the other gateways is refused, as a
    # single case of L1 is (the reason-code table)
    for gw, sscc in ((a, ZA), (b2, ZB2)):
        rig.scan(gw, "dock", f"]C100{sscc}02{LOT_GTIN}3710\x1d10L1", alerts=1)
        assert reasons(rig.published(gw, "alerts")[-1], "reject") == ["lot_recalled"]


def reasons(payload: dict[str, Any], verdict: str) -> list[str]:
    """The reason codes of an event's or alert's decision, which must have ``verdict``."""
    assert payload["decision"]["verdict"] == verdict, payload["decision"]
    return [x["code"] for x in payload["decision"]["reasons"]]
