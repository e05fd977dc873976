"""A phone in a real browser: chromium with a fake camera playing labels the test renders.

A real ``traceway run`` (phone scanner, demo master data with a recalled lot LOTR, a
private mosquitto) prints a pairing QR code and URL at start; the page pairs, decodes
the video with the vendored WebAssembly decoder (chromium on Linux has no
BarcodeDetector), sends each scan over the WebSocket and shows the verdict the gateway
returns after the commit. The events reach the broker with the symbology and element
string the labels carry; the recalled lot is red with ``lot_recalled``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
zxingcpp = pytest.importorskip("zxingcpp")
from PIL import Image, ImageDraw  # noqa: E402

from tests.browser import chromium_executable, screenshot_path  # noqa: E402
from tests.conftest import Broker, free_port  # noqa: E402
from tests.gw_util import Collector, GatewayProcess, wait_listening  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GS = "\x1d"
W, H, FPS = 960, 540, 5

#: (name, zxing format, content for the writer, what the gateway must receive)
LABELS = [
    (
        "gs1-128 lot",
        "Code128",
        "(01)09506000134352(17)301231(10)LOTA",
        "]C101095060001343521730123110LOTA",
    ),
    (
        "gs1 datamatrix serial",
        "DataMatrix",
        "(01)09506000134369(17)301231(10)PUMPLOT1(21)SN2001",
        f"]d201095060001343691730123110PUMPLOT1{GS}21SN2001",
    ),
    (
        "digital link qr",
        "QRCode",
        "https://id.gs1.org/01/09506000134376/10/SAL1",
        "]Q1https://id.gs1.org/01/09506000134376/10/SAL1",
    ),
    (
        "recalled lot",
        "Code128",
        "(01)09506000134352(10)LOTR",
        "]C10109506000134352" + "10LOTR",
    ),
]


def label_image(fmt: str, content: str, caption: str) -> Image.Image:
    """A label: the symbol (GS1 mode unless it is a URL) with a caption, on white."""
    gs1 = not content.startswith("http")
    kw = {"gs1": True} if gs1 else {}
    bc = zxingcpp.create_barcode(content, getattr(zxingcpp, fmt), **kw)
    scale = 2 if fmt == "Code128" else 6
    m = memoryview(bc.to_image(scale=scale))
    sym = Image.frombuffer("L", (m.shape[1], m.shape[0]), bytes(m))
    if fmt == "Code128":
        sym = sym.resize((sym.width, 160))
    frame = Image.new("L", (W, H), 255)
    frame.paste(sym, ((W - sym.width) // 2, (H - sym.height) // 2 - 20))
    ImageDraw.Draw(frame).text((20, H - 40), caption, fill=0)
    return frame


def write_y4m(path: Path, frames: list[tuple[Image.Image, int]]) -> None:
    """A 4:2:0 y4m video: each image repeated for its number of frames."""
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for img, count in frames:
            y, cb, cr = img.convert("RGB").convert("YCbCr").split()
            planes = y.tobytes() + cb.resize((W // 2, H // 2)).tobytes()
            planes += cr.resize((W // 2, H // 2)).tobytes()
            for _ in range(count):
                f.write(b"FRAME\n" + planes)


#: A BarcodeDetector like Chrome on Android's: finds what the test pushes, one per call.
FAKE_DETECTOR = """
window.__fakeCodes = [];
window.BarcodeDetector = class {
  static async getSupportedFormats() { return ["ean_13", "ean_8", "code_128", "qr_code", "data_matrix"]; }
  constructor(options) { this.options = options; }
  async detect(source) {
    const c = window.__fakeCodes[0];
    if (c && c.format === "code_128") return [c];  // stays: the WASM decoder reads the frame
    return window.__fakeCodes.length ? [window.__fakeCodes.shift()] : [];
  }
};
"""


def _config(tmp: Path, broker_port: int, phone_port: int) -> Path:
    for name in ("products.csv", "lots.csv", "serials.csv"):
        shutil.copy(ROOT / "config" / "demo" / name, tmp / name)
    cfg = tmp / "gateway.toml"
    cfg.write_text(
        f"""
[gateway]
site = "test-site"
id = "gw1"

[broker]
host = "127.0.0.1"
port = {broker_port}
reconnect_max_delay = 2

[storage]
path = "state/gw.db"

[cache]
seed_products = "products.csv"
seed_lots = "lots.csv"
seed_serials = "serials.csv"

[stations.dock]
step = "receiving"
location = "DOCK-1"
unknown_gtin = "accept"
duplicate_window = 0

[scanners.phones]
type = "phone"
station = "dock"
host = "127.0.0.1"
port = {phone_port}
hostnames = ["127.0.0.1"]
"""
    )
    return cfg


def _pairing_url(log: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"or open (https://\S+#pair=[A-Za-z0-9_-]+)", log.read_text())
        if m:
            return m.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no pairing URL on the console:\n{log.read_text()[-3000:]}")


def _poll(ok: Any, timeout: float = 20) -> None:
    """Wait until ``ok()`` (the page's CSP forbids Playwright's string predicates)."""
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _verdicts(page: Any) -> list[dict[str, str]]:
    return list(
        page.eval_on_selector_all(
            "#history li",
            "els => els.map(e => ({verdict: e.dataset.verdict, reasons: e.dataset.reasons || '',"
            " code: e.querySelector('.code').textContent, what: e.innerText}))",
        )
    )


def test_phone_pairs_scans_and_shows_the_gateways_verdict(
    tmp_path: Path,
    broker: Broker,
    chromium: Any,
) -> None:
    frames: list[tuple[Image.Image, int]] = []
    blank = Image.new("L", (W, H), 255)
    for name, fmt, content, _ in LABELS:
        frames += [(label_image(fmt, content, name), 2 * FPS), (blank, 2 * FPS)]
    video = tmp_path / "labels.y4m"
    write_y4m(video, frames)
    for name, fmt, content, want in LABELS:  # the labels themselves decode as intended
        img = label_image(fmt, content, name)
        r = zxingcpp.read_barcode(img, text_mode=zxingcpp.TextMode.Plain)
        assert r is not None and r.symbology_identifier + r.text == want, name

    phone_port = free_port()
    cfg = _config(tmp_path, broker.port, phone_port)
    collector = Collector(broker.port, "traceway/v1/#")
    collector.start()
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    gw.start()
    browser = None
    try:
        wait_listening(phone_port, gw)
        url = _pairing_url(tmp_path / "gw.log")
        assert url.startswith(f"https://127.0.0.1:{phone_port}/#pair=")
        browser = chromium.browser_type.launch(
            executable_path=chromium_executable(),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={video}",
            ],
        )
        ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 420, "height": 900})
        page = ctx.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(str(f))))
        page.goto(url)
        page.wait_for_selector("#pair-name", state="visible")
        assert "#pair" not in page.url  # the code does not stay in the address bar
        page.fill("#pair-name", "dockcam")
        page.screenshot(path=str(screenshot_path("phone-1-pairing")))
        page.click("#pair-button")
        page.wait_for_selector("#conn.online", timeout=20000)
        assert page.inner_text("#who") == "phones.dockcam"
        assert page.inner_text("#step") == "receiving"
        assert page.inner_text("#location") == "DOCK-1"

        want = {w for *_, w in LABELS}
        shown = lambda t: t.replace(GS, "<GS>")  # noqa: E731
        deadline = time.monotonic() + 90
        red_shot = False
        while time.monotonic() < deadline:
            got = {v["code"]: v for v in _verdicts(page) if v["verdict"]}
            if not red_shot and any(v["verdict"] == "reject" for v in got.values()):
                page.screenshot(path=str(screenshot_path("phone-2-recalled-red")))
                red_shot = True
            if all(shown(w) in got for w in want):
                break
            time.sleep(0.3)
        page.screenshot(path=str(screenshot_path("phone-3-history")))
        got = {v["code"]: v for v in _verdicts(page) if v["verdict"]}
        missing = [w for w in want if shown(w) not in got]
        assert not missing, f"not scanned: {missing}; history {got}; console {console[-10:]}"

        stats = page.evaluate("window.traceway.stats")
        print(  # a figure for the README: WebAssembly decode time per 960x540 frame
            f"\nWASM decode: {stats['decodes']} frames, mean "
            f"{stats['decodeMs'] / max(1, stats['decodes']):.1f} ms, slowest {stats['slowestMs']:.0f} ms"
        )
        recalled = got[shown(LABELS[3][3])]
        assert recalled["verdict"] == "reject" and "lot_recalled" in recalled["reasons"]
        for _, _, _, w in LABELS[:3]:
            assert got[shown(w)]["verdict"] in ("accept", "warn"), got[shown(w)]

        published = lambda: {e["scan"]["raw"]: e for e in collector.of("events")}  # noqa: E731
        _poll(lambda: all(w in published() for *_, w in LABELS[:3]))
        by_raw = published()
        for _, _, _, w in LABELS[:3]:
            assert w in by_raw, f"{w!r} not published; events: {list(by_raw)}"
            e = by_raw[w]
            assert e["scan"]["symbology"] == w[:3]
            assert e["scan"]["scanner"] == "phones.dockcam"
        assert by_raw[LABELS[1][3]]["scan"]["raw"].count(GS) == 1

        def recall_alerts() -> list[dict[str, Any]]:
            return [
                a
                for a in collector.of("alerts")
                if (a.get("scan") or {}).get("raw") == LABELS[3][3]
            ]

        _poll(lambda: bool(recall_alerts()))  # the recalled lot's reject is published
        assert recall_alerts()[0]["alert"] == "lot_recalled"
        assert LABELS[3][3] not in by_raw  # a reject is no movement
        assert not [c for c in console if "Content Security Policy" in c], console

        # a second phone, paired with `traceway phone-pair` while the gateway runs, whose
        # browser has a BarcodeDetector (faked here): EAN-13 goes from it directly as ]E0,
        # a GS1 symbol it finds is read again by the WebAssembly decoder (AIM id and GS)
        out = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "phone-pair", "-c", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=True,
        ).stdout
        second = re.search(r"or open (https://\S+#pair=[A-Za-z0-9_-]+)", out)
        assert second is not None, out
        ctx2 = browser.new_context(ignore_https_errors=True, viewport={"width": 420, "height": 900})
        ctx2.add_init_script(FAKE_DETECTOR)
        page2 = ctx2.new_page()
        page2.goto(second.group(1))
        page2.fill("#pair-name", "native")
        page2.click("#pair-button")
        page2.wait_for_selector("#conn.online", timeout=20000)
        _poll(lambda: page2.inner_text("#decoder") == "decoder: BarcodeDetector + WebAssembly")
        page2.evaluate("window.__fakeCodes.push({format: 'ean_13', rawValue: '9506000134383'})")
        page2.wait_for_selector('#history li[data-verdict="accept"]', timeout=20000)
        page2.evaluate("window.__fakeCodes.push({format: 'code_128', rawValue: 'ignored'})")
        _poll(lambda: len([v for v in _verdicts(page2) if v["verdict"]]) >= 2)
        page2.screenshot(path=str(screenshot_path("phone-6-second-phone-native")))
        codes2 = [v["code"] for v in _verdicts(page2) if v["verdict"]]
        assert codes2[-1] == "]E09506000134383", codes2
        assert codes2[0][:3] in ("]C1", "]d2", "]Q1"), codes2  # from the WebAssembly decoder

        def ean_events() -> list[dict[str, Any]]:
            return [e for e in collector.of("events") if e["scan"]["raw"] == "]E09506000134383"]

        _poll(lambda: bool(ean_events()))
        ean = ean_events()
        assert ean and ean[0]["scan"]["scanner"] == "phones.native"
        assert ean[0]["scan"]["symbology"] == "]E0"
        ctx2.close()

        # the gateway goes away: the page says offline, a scan meanwhile is "not sent"
        assert gw.stop() == 0
        page.wait_for_selector("#conn.offline", timeout=15000)
        page.wait_for_selector('#history li[data-verdict="not_sent"]', timeout=30000)
        page.screenshot(path=str(screenshot_path("phone-4-offline-not-sent")))
        unsent = page.eval_on_selector(
            '#history li[data-verdict="not_sent"]', "e => e.querySelector('.code').textContent"
        )
        page.evaluate("window.traceway.send(']C1OFFLINE-TEST')")  # as the decoder does
        # every not-sent entry (the looping camera video may add one right after ours)
        not_sent = page.eval_on_selector_all(
            '#history li[data-verdict="not_sent"] .code', "els => els.map(e => e.textContent)"
        )
        assert any("OFFLINE-TEST" in code for code in not_sent), not_sent
        # ... and back: it reconnects by itself; what was not sent is never sent later
        gw.start()
        page.wait_for_selector("#conn.online", timeout=30000)
        time.sleep(2)
        page.screenshot(path=str(screenshot_path("phone-5-online-again")))
        assert sent, "no WebSocket frames were recorded"
        assert not [f for f in sent if "OFFLINE-TEST" in f]
        assert unsent
    finally:
        if browser is not None:
            browser.close()
        collector.stop()
        assert gw.stop() == 0
