"""Status and health figures: periodic MQTT metrics, device status changes, Prometheus.

One function of the daemon returns :class:`Figures` (cumulative counters and current
gauges). :func:`build_payload` turns two of them into the ``traceway.metrics`` payload
for the interval between; :class:`MetricsLoop` publishes it every ``interval`` seconds;
:func:`start_prometheus` serves the same figures (cumulative) on 127.0.0.1 by default.
:class:`ScanCounters` and :class:`DeviceBoard` collect the inputs thread-safely.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from mqtt_topics.status import build_device_status, build_metrics
from mqtt_topics.topics import METRICS, GatewayTopics

log = logging.getLogger(__name__)
_VERDICTS = ("accept", "warn", "reject")


class MetricsConfig(BaseModel):
    """``[metrics]``: MQTT metrics interval and the optional Prometheus endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: float = Field(default=60.0, gt=0, description="Seconds between metrics messages.")
    prometheus_port: int = Field(default=0, ge=0, le=65535, description="0 = no endpoint.")
    prometheus_addr: str = Field(default="127.0.0.1", description="Address to bind.")


# -- plain inputs --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceSeen:
    """A device's kind, state (contract enum) and when it was last heard from."""

    kind: str
    state: str
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    """Cumulative counters and current gauges at one moment."""

    scans: Mapping[str, int]  # accept/warn/reject since start (no-reads not included)
    no_reads: int
    outbox_depth: int
    oldest_unsent_age_s: float | None
    latencies_s: Sequence[float] = ()  # recent publish latencies (hand-off → PUBACK)
    printers: Mapping[str, str] = field(default_factory=dict)  # contract printer states
    devices: Mapping[str, DeviceSeen] = field(default_factory=dict)  # scanners


_SCANNER_STATE = {
    "connected": "connected",
    "alive": "connected",
    "disconnected": "disconnected",
    "error": "error",
    "heartbeat_lost": "error",
}
_PRINTER_PROBLEM = {
    "paper out": "paper_out",
    "ribbon out": "ribbon_out",
    "head open": "head_open",
    "paused": "paused",
}


def scanner_state(state: str) -> str:
    """A reader's state in the contract's words (connected/disconnected/error/unknown)."""
    return _SCANNER_STATE.get(state, "unknown")


def printer_state(state: str, problems: Iterable[str] = ()) -> str:
    """A printer driver state (ready/busy/held/unknown/offline) in the contract's words."""
    if state == "ready":
        return "ready"
    if state == "busy":
        return "printing"
    if state == "offline":
        return "offline"
    if state == "held":
        for p in problems:
            if p in _PRINTER_PROBLEM:
                return _PRINTER_PROBLEM[p]
        return "error"
    return "unknown"


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def percentiles(latencies_s: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds (None each when there is nothing)."""
    ordered = sorted(latencies_s)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    out: dict[str, float | None] = {
        k: round(_quantile(ordered, q) * 1000, 3)
        for k, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }
    out["max"] = round(ordered[-1] * 1000, 3)
    return out


def build_payload(
    prev: Figures | None,
    cur: Figures,
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    interval_s: float,
) -> dict[str, Any]:
    """The ``traceway.metrics`` payload for the interval from ``prev`` to ``cur``."""
    base = prev.scans if prev is not None else {}
    scans = {v: max(0, int(cur.scans.get(v, 0)) - int(base.get(v, 0))) for v in _VERDICTS}
    no_reads = max(0, cur.no_reads - (prev.no_reads if prev is not None else 0))
    lat = percentiles(cur.latencies_s)
    return build_metrics(
        gateway_id=gateway_id,
        site=site,
        time=time,
        interval_s=interval_s,
        scans=scans,
        no_reads=no_reads,
        outbox_depth=cur.outbox_depth,
        oldest_unsent_age_s=cur.oldest_unsent_age_s,
        publish_latency_ms={k: lat[k] for k in ("p50", "p95", "max")},
        printers=cur.printers,
        devices={d: s.last_seen for d, s in cur.devices.items()},
        device_states={d: s.state for d, s in cur.devices.items()},
    )


# -- collectors (thread-safe) --------------------------------------------------------------------
class OutcomeLike(Protocol):
    """What :class:`ScanCounters` reads from a pipeline ``Outcome``."""

    @property
    def verdict(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def reasons(self) -> Sequence[Any]: ...


class ScanCounters:
    """Scans by verdict and no-reads since start (control barcodes are not scans)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_verdict = dict.fromkeys(_VERDICTS, 0)
        self._no_reads = 0

    def note(self, outcomes: Iterable[OutcomeLike]) -> None:
        """Count committed outcomes (call from the writer's ``on_committed``)."""
        with self._lock:
            for o in outcomes:
                if o.kind == "control":
                    continue
                if any(getattr(r, "code", None) == "no_read" for r in o.reasons):
                    self._no_reads += 1
                elif o.verdict in self._by_verdict:
                    self._by_verdict[o.verdict] += 1

    def totals(self) -> tuple[dict[str, int], int]:
        """(scans by verdict, no-reads), cumulative."""
        with self._lock:
            return dict(self._by_verdict), self._no_reads


class DeviceBoard:
    """Current state and last-seen time of scanners and printers; reports state changes."""

    def __init__(self, topics: GatewayTopics) -> None:
        self.topics = topics
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceSeen] = {}

    def update(
        self, device: str, kind: str, state: str, detail: str = "", at: datetime | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """Record a status (contract words); (topic, retained payload) when the state changed."""
        when = at or datetime.now().astimezone()
        with self._lock:
            prev = self._devices.get(device)
            self._devices[device] = DeviceSeen(kind, state, when)
        if prev is not None and prev.state == state:
            return None
        payload = build_device_status(
            gateway_id=self.topics.gateway,
            site=self.topics.site,
            time=when,
            device=device,
            kind="printer" if kind == "printer" else "scanner",
            state=state,
            previous=prev.state if prev is not None else None,
            detail=detail[:512],
            last_seen=when,
        )
        return self.topics.device(device), payload

    def seen(self, device: str, at: datetime | None = None) -> None:
        """The device delivered something (a scan, a status answer): bump last-seen."""
        with self._lock:
            d = self._devices.get(device)
            if d is not None:
                self._devices[device] = DeviceSeen(
                    d.kind, d.state, at or datetime.now().astimezone()
                )

    def scanners(self) -> dict[str, DeviceSeen]:
        with self._lock:
            return {k: v for k, v in self._devices.items() if v.kind != "printer"}

    def printers(self) -> dict[str, str]:
        with self._lock:
            return {k: v.state for k, v in self._devices.items() if v.kind == "printer"}


def outbox_figures(db_path: Path, now: float | None = None) -> tuple[int, float | None]:
    """(unsent rows, age in seconds of the oldest unsent), read on a connection of its own."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2.0)
    try:
        depth, oldest = conn.execute(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL"
        ).fetchone()
    finally:
        conn.close()
    t = time.time() if now is None else now
    return int(depth), (round(max(0.0, t - float(oldest)), 3) if oldest is not None else None)


# -- MQTT --------------------------------------------------------------------------------------
class PublishFn(Protocol):
    def __call__(
        self, topic: str, payload: dict[str, Any], qos: int, retain: bool = False
    ) -> None: ...


class MetricsLoop:
    """Publishes a metrics payload every ``interval`` seconds (QoS 0, not retained)."""

    def __init__(
        self,
        topics: GatewayTopics,
        figures: Callable[[], Figures],
        publish: PublishFn,
        interval: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.topics = topics
        self.figures = figures
        self.publish = publish
        self.interval = interval
        self.clock = clock
        self._prev: Figures | None = None
        self._prev_t = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    def start(self) -> None:
        self._prev = self._safe_figures()
        self._prev_t = time.monotonic()
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _safe_figures(self) -> Figures | None:
        try:
            return self.figures()
        except Exception:
            log.exception("collecting metrics failed")
            return None

    def tick(self) -> dict[str, Any] | None:
        """Collect, publish and return one payload (None when collecting failed)."""
        cur = self._safe_figures()
        if cur is None:
            return None
        now = time.monotonic()
        payload = build_payload(
            self._prev,
            cur,
            gateway_id=self.topics.gateway,
            site=self.topics.site,
            time=self.clock(),
            interval_s=round(max(now - self._prev_t, 0.001), 3),
        )
        self._prev, self._prev_t = cur, now
        try:
            self.publish(self.topics.metrics, payload, METRICS.qos)
        except Exception:
            log.exception("publishing metrics failed")
        return payload

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()


# -- Prometheus ----------------------------------------------------------------------------------
_said_missing = False


class FiguresCollector:
    """A prometheus-client collector reading :class:`Figures` on every scrape."""

    def __init__(self, figures: Callable[[], Figures], gateway_id: str, site: str) -> None:
        self.figures = figures
        self.labels = {"gateway": gateway_id, "site": site}

    def describe(self) -> list[Any]:
        return []  # no fixed description: collect() runs on scrape only

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        f = self.figures()
        names, values = list(self.labels), list(self.labels.values())
        scans = CounterMetricFamily(
            "traceway_scans", "Scans by verdict (no-reads excluded).", labels=[*names, "verdict"]
        )
        for v in _VERDICTS:
            scans.add_metric([*values, v], int(f.scans.get(v, 0)))
        yield scans
        no_reads = CounterMetricFamily("traceway_no_reads", "Reader no-reads.", labels=names)
        no_reads.add_metric(values, f.no_reads)
        yield no_reads
        depth = GaugeMetricFamily("traceway_outbox_depth", "Unsent outbox rows.", labels=names)
        depth.add_metric(values, f.outbox_depth)
        yield depth
        age = GaugeMetricFamily(
            "traceway_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unsent outbox row (0 when none).",
            labels=names,
        )
        age.add_metric(values, f.oldest_unsent_age_s or 0.0)
        yield age
        lat = GaugeMetricFamily(
            "traceway_publish_latency_seconds",
            "Recent publish latency (hand-off to PUBACK) by quantile.",
            labels=[*names, "quantile"],
        )
        for q, ms in percentiles(f.latencies_s).items():
            if ms is not None:
                lat.add_metric([*values, q], ms / 1000)
        yield lat
        printers = GaugeMetricFamily(
            "traceway_printer_state",
            "1 for the printer's current state.",
            labels=[*names, "printer", "state"],
        )
        for p, st in f.printers.items():
            printers.add_metric([*values, p, st], 1)
        yield printers
        seen = GaugeMetricFamily(
            "traceway_device_last_seen_timestamp_seconds",
            "When each scanner was last heard from (Unix time).",
            labels=[*names, "device", "state"],
        )
        for d, s in f.devices.items():
            if s.last_seen is not None:
                seen.add_metric([*values, d, s.state], s.last_seen.timestamp())
        yield seen


class PrometheusEndpoint:
    """A running exporter; ``close()`` stops it."""

    def __init__(self, server: Any, thread: threading.Thread, port: int) -> None:
        self.server, self.thread, self.port = server, thread, port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2.0)


def start_prometheus(
    cfg: MetricsConfig, figures: Callable[[], Figures], gateway_id: str, site: str
) -> PrometheusEndpoint | None:
    """Serve the figures on ``cfg.prometheus_addr:port`` (None when off or unavailable)."""
    global _said_missing
    if cfg.prometheus_port == 0:
        return None
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        if not _said_missing:
            log.warning("prometheus-client is not installed: no Prometheus endpoint")
            _said_missing = True
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(figures, gateway_id, site))
    server, thread = start_http_server(
        cfg.prometheus_port, addr=cfg.prometheus_addr, registry=registry
    )
    port = int(server.server_address[1])
    log.info("Prometheus metrics on http://%s:%d/metrics", cfg.prometheus_addr, port)
    return PrometheusEndpoint(server, thread, port)
