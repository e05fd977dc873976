"""Master data imported at central reaches a real gateway that is already in sync.

``traceway-central serve`` (API + pusher) and ``traceway run`` run as subprocesses on a
private mosquitto and a private PostgreSQL. An import (CLI, then REST) becomes cache
deltas the gateway applies; a large one reaches it as a snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.central.procs import start_central
from tests.central.test_masterdata_import import BOX, PARA, PUMP, sscc
from tests.central.test_push_e2e import central, wait_until
from tests.conftest import Broker, free_port
from tests.gw_util import Collector, GatewayProcess, Pusher, gateway_config, wait_listening

pytestmark = pytest.mark.slow

SSCC1 = sscc(11)
PRODUCTS = (
    f"gtin,tracking,description\n{PUMP},serial,Pump\n{PARA},lot,Paracetamol\n{BOX},none,Box\n"
)
SERIALS = f"gtin,serial,lot,state\n{PUMP},SN1,PL1,expected\n"
ADVICES = (
    "sscc,desadv,gtin,lot,serial,quantity,ship_to\n"
    f"{SSCC1},DA-77,{PARA},LOTA,,12,test-site\n"
    f"{SSCC1},DA-77,{PUMP},PL1,SN2,1,test-site\n"
)
BIG = 6000


def test_an_import_reaches_a_gateway_in_sync_as_deltas_then_a_snapshot(
    tmp_path: Path, broker: Broker, engine: Engine
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    api_port = free_port()
    cfg = tmp_path / "central.toml"
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[broker]\nport = {broker.port}\n'
        f'client_id = "central-md"\n[api]\nport = {api_port}\n'
    )
    added = central("token", "add", "--config", str(cfg), "--role", "admin", "--name", "md")
    assert added.returncode == 0, added.stderr
    auth = {"Authorization": f"Bearer {added.stdout.splitlines()[1]}", "Content-Type": "text/csv"}
    serve, log = start_central("serve", cfg, tmp_path / "central.log")
    col = Collector(broker.port)
    col.start()
    scan_port = free_port()
    gw_cfg = gateway_config(tmp_path, broker.port, scan_port)
    # an unknown GTIN is refused: what the gateway accepts below it learnt from central
    gw_cfg.write_text(
        gw_cfg.read_text().replace('unknown_gtin = "accept"', 'unknown_gtin = "reject"')
    )
    gw = GatewayProcess(gw_cfg, tmp_path / "gw.log")

    def gw_version() -> Any:
        with engine.connect() as c:
            return c.execute(
                text("SELECT version FROM cache_gateways WHERE gateway_id = 'gw1'")
            ).scalar()

    def scanned(n: int) -> dict[str, Any]:
        """The n-th scan outcome (events and alerts share the seq)."""

        def got() -> Any:
            msgs = [m for t, m in col.messages if t.endswith(("/events", "/alerts"))]
            return msgs if len(msgs) >= n else None

        msgs = wait_until(f"scan outcome {n}", got)
        return sorted(msgs, key=lambda m: m["seq"])[n - 1]  # type: ignore[no-any-return]

    try:
        wait_listening(api_port)
        gw.start(wait_port=scan_port)
        assert wait_until("the gateway's first snapshot", gw_version) == 1
        p = Pusher(scan_port)
        p.connect()
        p.send(f"]C101{PUMP}21SN1")
        first = scanned(1)
        assert "unknown_gtin" in [r["code"] for r in first["decision"]["reasons"]]

        # CLI import while the gateway is in sync: one delta, applied at once
        files = {"products": PRODUCTS, "serials": SERIALS, "despatch-advices": ADVICES}
        args = ["import", "--config", str(cfg), "--who", "qa:md"]
        for name, body in files.items():
            (tmp_path / f"{name}.csv").write_text(body)
            args += [f"--{name}", str(tmp_path / f"{name}.csv")]
        done = central(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "gateways: deltas to test-site → v2" in done.stdout
        assert wait_until("the import applied", lambda: gw_version() == 2)

        # the expected serial: its lot is the cache's (a label with another lot is wrong)
        p.send(f"]C101{PUMP}10OTHER\x1d21SN1")
        wrong = scanned(2)
        assert "lot_mismatch" in [r["code"] for r in wrong["decision"]["reasons"]], wrong
        p.send(f"]C101{PUMP}21SN1")  # received: accepted, lot from central's serial list
        ok = scanned(3)
        assert ok["decision"]["verdict"] == "accept", ok
        assert (ok["items"][0]["serial"], ok["items"][0]["lot"]) == ("SN1", "PL1")

        # the bare SSCC of the despatch advice: received with its contents
        p.send(f"]C100{SSCC1}")
        pallet = scanned(4)
        assert pallet["decision"]["verdict"] == "accept", pallet
        contents = {
            (i.get("gtin"), i.get("lot"), i.get("serial"), i.get("quantity"))
            for i in pallet["items"]
        }
        assert (PARA, "LOTA", None, 12) in contents, pallet["items"]
        assert (PUMP, "PL1", "SN2", 1) in contents, pallet["items"]

        # a large import (REST): a snapshot, not 6,000 deltas
        big = "gtin,serial,lot\n" + "".join(f"{PUMP},B{i},PL2\n" for i in range(BIG))
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)
        r = api.post("/masterdata/serials", content=big.encode(), headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["gateways"] == {
            "mode": "snapshot",
            "records": BIG,
            "sites": {"test-site": 3},
        }
        assert wait_until("the snapshot applied", lambda: gw_version() == 3)
        snaps = [m for t, m in col.messages if t.endswith("/cache/snapshot")]
        assert snaps and {m["version"] for m in snaps} == {1, 3}
        assert not [m for t, m in col.messages if t.endswith("/cache/delta") and m["version"] == 3]
        p.send(f"]C101{PUMP}21B{BIG - 1}")
        last = scanned(5)
        assert last["decision"]["verdict"] == "accept", last
        assert last["items"][0]["lot"] == "PL2"
        # what the gateway received at the dock is still there after the snapshot
        p.send(f"]C101{PUMP}21SN1")
        again = scanned(6)
        assert "serial_in_stock" in [r["code"] for r in again["decision"]["reasons"]], again
        p.close()
    finally:
        gw.stop()
        col.stop()
        serve.terminate()
        serve.wait(15)
        log.close()
    text_log = (tmp_path / "central.log").read_text()
    assert "Traceback" not in text_log, text_log
