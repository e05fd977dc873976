"""A recall issued at central reaches a real gateway: its next scan of the lot is refused.

``traceway-central serve`` (API + pusher) and ``traceway run`` run as subprocesses on a
private mosquitto and a private PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.central.procs import start_central
from tests.conftest import Broker, free_port
from tests.gw_util import Collector, GatewayProcess, Pusher, gateway_config, wait_listening

pytestmark = pytest.mark.slow

GTIN = "09506000134352"
LOT = "LOTR1"
SCAN = f"]C101{GTIN}10{LOT}"
ROOT = Path(__file__).resolve().parents[2]


def central(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def wait_until(what: str, fn: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_recall_at_central_makes_the_gateway_reject_the_lot(
    tmp_path: Path, broker: Broker, engine: Engine
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    api_port = free_port()
    cfg = tmp_path / "central.toml"
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[broker]\nport = {broker.port}\n'
        f'client_id = "central-test"\n[api]\nport = {api_port}\n'
    )
    with engine.begin() as c:
        c.execute(
            text("INSERT INTO products(gtin, description, tracking) VALUES (:g, 'Para', 'lot')"),
            {"g": GTIN},
        )
    added = central(
        "token", "add", "--config", str(cfg), "--role", "recall-manager", "--name", "qa"
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.splitlines()[1]
    serve, log = start_central("serve", cfg, tmp_path / "central.log")
    col = Collector(broker.port)
    col.start()
    scan_port = free_port()
    gw = GatewayProcess(gateway_config(tmp_path, broker.port, scan_port), tmp_path / "gw.log")
    try:
        wait_listening(api_port)
        gw.start(wait_port=scan_port)

        def gw_version() -> Any:
            with engine.connect() as c:
                return c.execute(
                    text("SELECT version FROM cache_gateways WHERE gateway_id = 'gw1'")
                ).scalar()

        assert wait_until("the gateway's first snapshot", gw_version) == 1
        p = Pusher(scan_port)
        p.connect()
        p.send(SCAN)  # received: accepted
        events = col.wait_for("events", 1, 30)
        assert events[0]["items"][0]["lot"] == LOT

        auth = {"Authorization": f"Bearer {token}"}
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10)
        assert (
            api.post("/recalls", json={"gtin": GTIN, "lot": LOT, "reason": "x"}).status_code == 401
        )
        r = api.post(
            "/recalls", json={"gtin": GTIN, "lot": LOT, "reason": "foreign body"}, headers=auth
        )
        assert r.status_code == 201, r.text
        rid = r.json()["block_id"]
        assert r.json()["sites"] == {"test-site": 2}  # no stock known yet: every known site

        def applied() -> Any:
            push = api.get(f"/recalls/{rid}", headers=auth).json()["push"]
            return [x for x in push if x["status"] == "applied"]

        done = wait_until("the gateway's ack of the recall", applied)
        assert [(x["gateway_id"], x["version"]) for x in done] == [("gw1", 2)]
        assert done[0]["applied_at"] is not None

        p.send(SCAN)  # the next scan of the lot
        alerts = col.wait_for("alerts", 1, 30)
        reasons = [x["code"] for x in alerts[0]["decision"]["reasons"]]
        assert "lot_recalled" in reasons, alerts[0]

        # lifted at central (CLI): the lot is accepted again
        rel = central("release", "--config", str(cfg), rid, "--reason", "cleared", "--who", "qa")
        assert rel.returncode == 0, rel.stdout + rel.stderr
        assert wait_until("the release", lambda: gw_version() == 3)
        p.send(SCAN)
        events = col.wait_for("events", 2, 30)
        assert events[-1]["decision"]["verdict"] in ("accept", "warn")
        p.close()
    finally:
        gw.stop()
        col.stop()
        serve.terminate()
        serve.wait(15)
        log.close()
    text_log = (tmp_path / "central.log").read_text()
    assert "Traceback" not in text_log, text_log
