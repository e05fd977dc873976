"""The web UI in a real browser (Debian's chromium via Playwright), end to end.

``traceway-central serve`` (API + web UI + recall pusher), an ingest worker and a real
gateway (``traceway run``) run as subprocesses on a private mosquitto and PostgreSQL;
the day at two sites is loaded too, for a lineage tree. A quality manager logs in,
searches by a scanned element string, opens a lot and expands its tree, starts a recall
and watches the gateway apply it (the gateway then refuses the lot), downloads the XLSX
export and logs out. Every page is kept as a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from central.custody.projection import store_events
from central.masterdata.importer import import_master_data
from tests.browser import screenshot_path
from tests.central.test_push_e2e import wait_until
from tests.central.trace_day import Day, run_day
from tests.conftest import Broker, free_port
from tests.gw_util import Collector, GatewayProcess, Pusher, gateway_config, wait_listening
from tests.scenarios.site import LOT_GTIN, PRODUCTS, SALINE

pytestmark = pytest.mark.slow

GTIN = LOT_GTIN  # lot-tracked
LOT = "LOTW1"
SCAN = f"]C101{GTIN}10{LOT}"
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "quality first 2026"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return run_day(tmp_path_factory.mktemp("day"))


class Stack:
    """serve + ingest + one gateway, and where to reach them."""

    def __init__(self, tmp: Path, broker: Broker, engine: Engine) -> None:
        self.tmp = tmp
        self.api_port = free_port()
        self.scan_port = free_port()
        url = engine.url.render_as_string(hide_password=False)
        self.cfg = tmp / "central.toml"
        self.cfg.write_text(
            f'[database]\nurl = "{url}"\n[broker]\nport = {broker.port}\n'
            f'client_id = "central-web"\n[ingest]\nmax_wait_ms = 5\n[api]\nport = {self.api_port}\n'
        )
        self.procs: list[tuple[subprocess.Popen[bytes], Any]] = []
        self.gw = GatewayProcess(gateway_config(tmp, broker.port, self.scan_port), tmp / "gw.log")

    def spawn(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "central", *args, "--config", str(self.cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.procs.append((proc, log))

    def stop(self) -> None:
        self.gw.stop()
        for proc, log in self.procs:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@pytest.fixture
def stack(tmp_path: Path, broker: Broker, engine: Engine, day: Day) -> Iterator[Stack]:
    (tmp_path / "products.csv").write_text(PRODUCTS)
    (tmp_path / "lots.csv").write_text(
        f"gtin,lot,expiry,status\n{LOT_GTIN},L1,2030-12-31,active\n{SALINE},N1,2027-06-30,active\n"
    )
    with engine.begin() as c:
        import_master_data(c, tmp_path / "products.csv", tmp_path / "lots.csv")
        store_events(c, day.all, datetime.now(UTC))
    s = Stack(tmp_path, broker, engine)
    env = {**os.environ, "PW": PASSWORD}
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "central",
            "user",
            "add",
            "anna",
            "--role",
            "recall-manager",
            "--password-env",
            "PW",
            "--config",
            str(s.cfg),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    s.spawn("serve", "serve")
    s.spawn("ingest", "ingest", "--worker", "1")
    try:
        wait_listening(s.api_port)
        s.gw.start(wait_port=s.scan_port)
        yield s
    finally:
        s.stop()
    for name in ("serve", "ingest"):
        log = (tmp_path / f"{name}.log").read_text()
        assert "Traceback" not in log, log


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(screenshot_path(f"web-{name}")), full_page=True)


def test_quality_manager_in_the_browser(
    stack: Stack,
    engine: Engine,
    broker: Broker,
    chromium: Any,
) -> None:
    col = Collector(broker.port)
    col.start()
    pusher = Pusher(stack.scan_port)
    pusher.connect()
    try:
        pusher.send(SCAN)  # the dock receives the lot; ingest brings it to central

        def received() -> Any:
            with engine.connect() as c:
                return c.execute(
                    text("SELECT count(*) FROM event_items WHERE gtin = :g AND lot = :l"),
                    {"g": GTIN, "l": LOT},
                ).scalar_one()

        wait_until("central to ingest the receipt", received)

        context = chromium.new_context(
            accept_downloads=True, viewport={"width": 1280, "height": 900}
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # log in (a page behind the login redirects there and back)
        page.goto(stack.base + "/ui/")
        assert "/ui/login" in page.url
        shot(page, "01-login")
        page.fill("input[name=username]", "anna")
        page.fill("input[name=password]", "not it")
        page.click("button[type=submit]")
        assert page.locator(".error").is_visible()
        page.fill("input[name=username]", "anna")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/")
        shot(page, "02-home")

        # search by a scanned element string (AIM id + GS1 element string)
        page.fill("input[name=q]", SCAN)
        page.press("input[name=q]", "Enter")
        page.wait_for_url("**/ui/unit?**")
        assert page.locator("h1").inner_text().startswith("lot")
        assert "test-site" in page.locator("section.now").inner_text()
        assert "receive" in page.locator("section.timeline").inner_text()
        shot(page, "03-lot-from-scan")
        # reprint: the command goes to the gateway that recorded the event and its reply
        # comes back (this gateway has no printer, so it refuses with its reason)
        page.click("section.timeline button:has-text('Reprint')")
        notice = page.locator("p.notice").inner_text()
        assert notice.startswith("gw1 refused:") and "label job" in notice, notice

        # a lot made of another: expand its tree two levels
        page.fill("input[name=q]", f"(01){SALINE}(10)N1")
        page.press("input[name=q]", "Enter")
        page.wait_for_url("**/ui/unit?**lot=N1**")
        page.click("#tree-up > summary")
        first = page.locator("#tree-up ul.tree-level > li").first
        first.wait_for()
        assert "made from" in first.inner_text().lower() and "L1" in first.inner_text()
        first.locator("summary").first.click()
        page.wait_for_function(
            "() => document.querySelectorAll('#tree-up ul.tree-level').length >= 2 "
            "|| document.querySelector('#tree-up .leaf')"
        )
        shot(page, "04-lot-tree")

        # start a recall of the scanned lot and watch the gateway apply it
        page.goto(stack.base + f"/ui/recalls?gtin={GTIN}&lot={LOT}")
        page.fill("input[name=reason]", "supplier notice 114: foreign body <b>")
        shot(page, "05-recall-desk")
        page.click("#start-block")
        page.wait_for_url("**/ui/recalls/R-*")
        page.wait_for_selector("#push-status tr.applied", timeout=30_000)
        status = page.locator("#push-status").inner_text()
        assert "gw1" in status and "applied" in status
        assert "foreign body <b>" in page.locator("p.what").inner_text()  # shown as text
        shot(page, "06-recall-applied")

        pusher.send(SCAN)  # the next scan of the lot at the dock is refused
        alerts = col.wait_for("alerts", 1, 30)
        assert "lot_recalled" in [r["code"] for r in alerts[0]["decision"]["reasons"]]

        # the export opens as a workbook
        with page.expect_download() as dl:
            page.click("text=Export XLSX")
        path = stack.tmp / "recall.xlsx"
        dl.value.save_as(str(path))
        from openpyxl import load_workbook

        wb = load_workbook(path)
        assert "push" in wb.sheetnames
        push_rows = list(wb["push"].iter_rows(min_row=2, values_only=True))
        assert any(r[1] == "gw1" and r[5] == "applied" for r in push_rows)

        # the FSMA 204 spreadsheet for the lot the dock received, opened as a workbook
        from central.fsma.columns import COLUMNS, SHEETS

        page.click("nav >> text=FSMA 204")
        page.fill("textarea[name=tlcs]", f"{GTIN}+L1\n{GTIN}+{LOT}")
        page.click("#fsma-preview")
        page.wait_for_selector("#fsma-xlsx")
        shot(page, "07-fsma")
        with page.expect_download() as fsma_dl:
            page.click("#fsma-xlsx")
        fsma_path = stack.tmp / "fsma.xlsx"
        fsma_dl.value.save_as(str(fsma_path))
        fsma = load_workbook(fsma_path)
        assert tuple(fsma.sheetnames) == SHEETS
        for sheet in SHEETS:
            assert next(fsma[sheet].iter_rows(max_row=1, values_only=True)) == COLUMNS[sheet]
        received = [r[0] for r in fsma["Receiving"].iter_rows(min_row=2, values_only=True)]
        assert f"{GTIN}+L1" in received

        # the fleet page shows the gateway online
        page.goto(stack.base + "/ui/fleet")
        assert "gw1" in page.locator("table.fleet").inner_text()
        shot(page, "08-fleet")

        page.click("#logout")
        page.wait_for_url("**/ui/login")
        page.goto(stack.base + "/ui/recalls")
        assert "/ui/login" in page.url
        shot(page, "09-logged-out")
        assert errors == [], errors
        context.close()
    finally:
        pusher.close()
        col.stop()
