"""``traceway tail`` against a private mosquitto broker, plus its pure helpers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.cli.tail import check, format_line
from mqtt_topics.examples import example_payloads, scripted_day
from mqtt_topics.topics import GatewayTopics
from tests.conftest import Broker, free_port

REPO = Path(__file__).resolve().parents[1]
TOPICS = GatewayTopics("hamburg-1", "dock-a")


def test_check_and_format() -> None:
    ev = scripted_day()[0]
    obj, errors = check(TOPICS.events, json.dumps(ev).encode())
    assert errors == [] and obj == ev
    line = format_line(TOPICS.events, obj, errors, False, b"")
    assert line.startswith(f"{TOPICS.events} OK #1 receive ObjectEvent receiving")
    _, errors = check(TOPICS.alerts, json.dumps(ev).encode())
    assert errors and "on a 'traceway.alert' topic" in errors[0]
    obj, errors = check(TOPICS.events, b"\xff")
    assert obj is None and errors
    rec = json.loads(format_line(TOPICS.events, obj, errors, True, b"\xff"))
    assert rec["valid"] is False and rec["payload"] == "\ufffd"


def _tail(broker: Broker, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "tail", "--port", str(broker.port), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_subscribed(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "subscribed" in line, line


def test_tail_prints_events_and_alerts(broker: Broker) -> None:
    proc = _tail(
        broker,
        "--site",
        "hamburg-1",
        "--gateway",
        "dock-a",
        "--json",
        "--count",
        "3",
        "--timeout",
        "20",
    )
    try:
        _wait_subscribed(proc)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        alert = example_payloads()["traceway.alert"]
        for topic, payload in [
            (TOPICS.events, json.dumps(scripted_day()[0])),
            (GatewayTopics("other", "gw").events, json.dumps(scripted_day()[1])),  # filtered out
            (TOPICS.alerts, json.dumps({**alert, "severity": "fatal"})),
            (TOPICS.events, "not json"),
        ]:
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        out, err = proc.communicate(timeout=20)
        pub.loop_stop()
        pub.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["topic"] for r in recs] == [TOPICS.events, TOPICS.alerts, TOPICS.events]
    assert [r["valid"] for r in recs] == [True, False, False]
    assert any("severity" in e for e in recs[1]["errors"])


def test_tail_timeout_and_unreachable_broker(broker: Broker) -> None:
    t0 = time.monotonic()
    proc = _tail(broker, "--timeout", "0.5")
    assert proc.wait(15) == 1 and time.monotonic() - t0 < 15
    dead = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "tail", "--port", str(free_port()), "--count", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert dead.returncode == 2 and "cannot connect" in dead.stderr


# ``traceway tail`` with a stack dump on SIGUSR1, so a hang names the line it hangs on, and
# Ctrl-C's usual handler: a test run started in the background (``cmd &`` in a script)
# ignores SIGINT, and Python then installs no KeyboardInterrupt for it.
_TAIL_WITH_STACKS = (
    "import faulthandler, runpy, signal, sys; faulthandler.register(signal.SIGUSR1); "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['traceway', *sys.argv[1:]]; runpy.run_module('gateway.cli', run_name='__main__')"
)


def test_tail_exits_cleanly_on_ctrl_c(broker: Broker) -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-c", _TAIL_WITH_STACKS, "tail", "--port", str(broker.port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_subscribed(proc)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            _, err = proc.communicate(5)
            raise AssertionError(f"tail did not stop on SIGINT; its stacks:\n{err}") from None
        assert code == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_lines_show_the_items() -> None:
    """Each event line names its items: GTIN with serial, or lot and quantity, or SSCC."""
    lines = {ev["seq"]: format_line(TOPICS.events, ev, [], False, b"") for ev in scripted_day()}
    assert lines[1].endswith(
        "accept @dock-1: GTIN 09506000134352 serial S/1001&x party 4098765000003 -> DOCK-1; "
        "GTIN 09506000134352 serial S1002 party 4098765000003 -> DOCK-1; "
        "GTIN 04012345000016 lot L24-07 qty 40 party 4098765000003 -> DOCK-1"
    )
    assert lines[6].endswith(": pallet SSCC 340123450000000017 | GTIN 09506000134352 serial "
                             "S/1001&x STAGE-1 -> STAGE-1; GTIN 04012345000016 lot L24-07 qty 12 "
                             "STAGE-1 -> STAGE-1")  # fmt: skip
    assert lines[7].endswith(": inputs: GTIN 04012345000016 lot L24-07 qty 6 B-07-01 -> - | "
                             "outputs: GTIN 04012345000023 lot R-001 qty 2 - -> B-07-01")  # fmt: skip
    assert lines[8].endswith("@dock-2: SSCC 340123450000000017")
    assert lines[11].endswith(": inputs: GTIN 04012345000016 lot L24-07 qty 1.5 KGM B-07-03 -> -")
    many = {**scripted_day()[0], "items": [{"gtin": "09506000134352", "serial": f"S{i}"}
                                           for i in range(5)]}  # fmt: skip
    assert format_line(TOPICS.events, many, [], False, b"").endswith("serial S2; +2 more")
    alert = example_payloads()["traceway.alert"]
    assert format_line(TOPICS.alerts, alert, [], False, b"").endswith(
        "@dock-1: scanned GTIN 09506000134353"
    )


def test_lines_show_control_characters_visibly() -> None:
    ev = {**scripted_day()[0], "items": [{"gtin": "09506000134352", "serial": "A\x1bB\x1dC"}]}
    obj, errors = check(TOPICS.events, json.dumps(ev).encode())
    line = format_line(TOPICS.events, obj, errors, False, b"")
    assert "\x1b" not in line and "\x1d" not in line
    assert "serial A<ESC>B<GS>C" in line and " INVALID(" in line
