"""``traceway-central serve`` as a subprocess: capture over real HTTP, query with paging by
the absolute ``Link`` the server sends, the captured event in trace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from central.custody.projection import store_events
from mqtt_topics.examples import scripted_day
from tests.central.epcis_fixtures import (
    NOW,
    SUP_GTIN,
    SUP_LOT,
    official_validator,
    schema_check,
    supplier_document,
)
from tests.central.procs import start_central
from tests.conftest import free_port
from tests.gw_util import wait_listening

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _central(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_serve_captures_and_answers_epcis(tmp_path: Path, engine: Engine) -> None:
    official_validator()  # the server finds the schema the same way ($TRACEWAY_EPCIS_SCHEMA)
    with engine.begin() as c:
        store_events(c, scripted_day(), NOW)
    port = free_port()
    cfg = tmp_path / "central.toml"
    url = engine.url.render_as_string(hide_password=False)
    cfg.write_text(f'[database]\nurl = "{url}"\n[api]\nport = {port}\n', encoding="utf-8")
    tokens = {}
    for role, name in (("viewer", "board"), ("recall-manager", "qa")):
        added = _central("token", "add", "--config", str(cfg), "--role", role, "--name", name)
        assert added.returncode == 0, added.stderr
        tokens[role] = {"Authorization": f"Bearer {added.stdout.splitlines()[1]}"}
    serve, log = start_central("serve", cfg, tmp_path / "serve.log", "--no-push")
    try:
        wait_listening(port)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        r = api.post(
            "/epcis/capture",
            content=httpx.Request("POST", "/", json=supplier_document()).content,
            headers={**tokens["recall-manager"], "Content-Type": "application/ld+json"},
        )
        assert r.status_code == 202, r.text
        job = api.get(r.headers["location"], headers=tokens["viewer"]).json()
        assert job["success"] and job["newEventCount"] == 2
        bad = supplier_document()
        bad["epcisBody"]["eventList"][0]["childQuantityList"][0]["quantity"] = "lots"
        refused = api.post("/epcis/capture", json=bad, headers=tokens["recall-manager"])
        assert refused.status_code == 400
        assert any("quantity" in e for e in refused.json()["errors"])
        assert api.post("/epcis/capture", json=bad, headers=tokens["viewer"]).status_code == 403
        # every event, three at a time, following the absolute Link the server gives
        seen: list[str] = []
        r = api.get("/epcis/events", params={"perPage": 3}, headers=tokens["viewer"])
        while True:
            assert r.status_code == 200 and schema_check(r.json()) == []
            body = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            seen += [e["eventID"] for e in body]
            if "link" not in r.headers:
                break
            nxt = r.headers["link"][1 : r.headers["link"].index(">")]
            assert nxt.startswith(f"http://127.0.0.1:{port}/epcis/events?perPage=3&nextPageToken=")
            r = api.get(nxt, headers=tokens["viewer"])
        assert len(seen) == len(set(seen)) == 18  # 16 gateway events + 2 captured
        trace = api.get(
            "/trace", params={"gtin": SUP_GTIN, "lot": SUP_LOT}, headers=tokens["viewer"]
        ).json()
        assert {(s["site"], s["movement"]) for s in trace["steps"]} == {
            ("epcis", "packing"),
            ("epcis", "shipping"),
        }
    finally:
        serve.terminate()
        serve.wait(15)
        log.close()
