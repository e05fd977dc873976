"""Metrics: payload from plain figures validates, interval counting, device changes, the
loop, and the Prometheus endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.metrics import (
    DeviceBoard,
    DeviceSeen,
    Figures,
    MetricsConfig,
    MetricsLoop,
    ScanCounters,
    build_payload,
    outbox_figures,
    percentiles,
    printer_state,
    scanner_state,
    start_prometheus,
)
from gateway.store.db import open_database
from mqtt_topics.topics import GatewayTopics
from mqtt_topics.validation import validate
from tests.conftest import free_port

TOPICS = GatewayTopics("s1", "g1")
NOW = datetime(2026, 11, 23, 9, 30).astimezone()


def figures(accept: int = 10, no_reads: int = 1) -> Figures:
    return Figures(
        scans={"accept": accept, "warn": 2, "reject": 1},
        no_reads=no_reads,
        outbox_depth=3,
        oldest_unsent_age_s=4.5,
        latencies_s=[0.001 * i for i in range(1, 101)],
        printers={"zebra-1": "paper_out"},
        devices={
            "scanner-1": DeviceSeen("scanner", "connected", NOW),
            "sc-2": DeviceSeen("scanner", "unknown"),
        },
    )


def test_percentiles() -> None:
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}
    p = percentiles([0.001 * i for i in range(100, 0, -1)])
    assert p == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def test_payload_validates_and_counts_the_interval() -> None:
    first = build_payload(None, figures(), gateway_id="g1", site="s1", time=NOW, interval_s=60)
    assert validate(first) == [], validate(first)
    later = build_payload(
        figures(),
        figures(accept=25, no_reads=4),
        gateway_id="g1",
        site="s1",
        time=NOW,
        interval_s=60,
    )
    assert validate(later) == []
    assert later["scans"] == {"accept": 15, "warn": 0, "reject": 0}
    assert (later["no_reads"], later["no_read_rate"]) == (3, round(3 / 18, 6))
    assert later["outbox"] == {"depth": 3, "oldest_unsent_age_s": 4.5}
    assert later["publish_latency_ms"] == {"p50": 50.0, "p95": 95.0, "max": 100.0}
    assert later["printers"] == {"zebra-1": "paper_out"}
    assert later["devices"]["scanner-1"]["state"] == "connected"
    assert later["devices"]["sc-2"] == {"last_seen": None, "state": "unknown"}


class Out:
    def __init__(self, verdict: str, kind: str = "event", code: str = "") -> None:
        self.verdict, self.kind = verdict, kind
        self.reasons = [type("R", (), {"code": code})()] if code else []


def test_scan_counters_keep_no_reads_and_controls_apart() -> None:
    c = ScanCounters()
    c.note(
        [Out("accept"), Out("warn"), Out("reject", "alert", "no_read"), Out("reject", "alert", "x")]
    )
    c.note([Out("accept", "control")])
    assert c.totals() == ({"accept": 1, "warn": 1, "reject": 1}, 1)


def test_state_words_and_device_changes() -> None:
    assert [scanner_state(s) for s in ("alive", "heartbeat_lost", "weird")] == [
        "connected",
        "error",
        "unknown",
    ]
    assert printer_state("held", ["head open"]) == "head_open"
    assert printer_state("held", ["head over temperature"]) == "error"
    assert printer_state("busy") == "printing"
    board = DeviceBoard(TOPICS)
    first = board.update("zebra-1", "printer", "ready", at=NOW)
    assert first is not None and first[0] == TOPICS.device("zebra-1")
    assert board.update("zebra-1", "printer", "ready") is None  # no change, no message
    change = board.update("zebra-1", "printer", "paper_out", "~HQES media out", NOW)
    assert change is not None and validate(change[1]) == []
    assert (change[1]["previous"], change[1]["state"]) == ("ready", "paper_out")
    board.update("scanner-1", "scanner", "connected", at=NOW)
    board.seen("scanner-1", NOW + timedelta(seconds=5))
    assert board.scanners()["scanner-1"].last_seen == NOW + timedelta(seconds=5)
    assert board.printers() == {"zebra-1": "paper_out"}


def test_outbox_figures(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    open_database(path).dispose()
    assert outbox_figures(path) == (0, None)
    con = sqlite3.connect(path)
    for seq, created, published in ((1, 100.0, 101.0), (2, 110.0, None), (3, 120.0, None)):
        con.execute(
            "INSERT INTO outbox(seq, event_id, kind, topic, payload, created_at, published_at) "
            "VALUES (?, ?, 'event', 't', '{}', ?, ?)",
            (seq, f"e{seq}", created, published),
        )
    con.commit()
    con.close()
    assert outbox_figures(path, now=130.0) == (2, 20.0)


def test_loop_publishes_on_the_metrics_topic() -> None:
    sent: list[tuple[str, dict[str, Any], int]] = []
    calls = iter([figures(accept=10), figures(accept=12), figures(accept=20)])
    loop = MetricsLoop(
        TOPICS, lambda: next(calls), lambda t, p, q, retain=False: sent.append((t, p, q)), 0.05
    )
    loop.start()
    deadline = time.monotonic() + 5
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert [s[0] for s in sent[:2]] == [TOPICS.metrics] * 2 and sent[0][2] == 0
    assert [s[1]["scans"]["accept"] for s in sent[:2]] == [2, 8]
    assert all(validate(s[1]) == [] for s in sent)


def test_prometheus_endpoint_on_localhost_serves_the_figures() -> None:
    assert start_prometheus(MetricsConfig(), figures, "g1", "s1") is None  # port 0 = off
    cfg = MetricsConfig(prometheus_port=free_port())
    assert cfg.prometheus_addr == "127.0.0.1"
    ep = start_prometheus(cfg, figures, "g1", "s1")
    assert ep is not None
    try:
        assert ep.server.server_address[0] == "127.0.0.1"
        t0 = time.perf_counter()
        body = urllib.request.urlopen(f"http://127.0.0.1:{ep.port}/metrics", timeout=5).read()
        print(f"\nPrometheus scrape: {(time.perf_counter() - t0) * 1000:.1f} ms")
    finally:
        ep.close()
    text = body.decode()
    want = [
        'traceway_scans_total{gateway="g1",site="s1",verdict="accept"} 10.0',
        'traceway_no_reads_total{gateway="g1",site="s1"} 1.0',
        'traceway_outbox_depth{gateway="g1",site="s1"} 3.0',
        'traceway_outbox_oldest_unsent_age_seconds{gateway="g1",site="s1"} 4.5',
        'traceway_publish_latency_seconds{gateway="g1",quantile="p99",site="s1"} 0.099',
        'traceway_printer_state{gateway="g1",printer="zebra-1",site="s1",state="paper_out"} 1.0',
        'traceway_device_last_seen_timestamp_seconds{device="scanner-1",gateway="g1",site="s1",state="connected"}',
    ]
    for line in want:
        assert line in text, (line, text)


def test_config_is_strict() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError):
        MetricsConfig.model_validate({"interval": 0})
    with pytest.raises(pydantic.ValidationError):
        MetricsConfig.model_validate({"prometheus": 1})
    assert json.loads(MetricsConfig().model_dump_json())["interval"] == 60.0
