"""Builders for status and health payloads: birth/Will, device status, metrics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from mqtt_topics.events import format_time

STATUS_SCHEMA = {"name": "traceway.status", "version": "1.0"}
DEVICE_STATUS_SCHEMA = {"name": "traceway.device_status", "version": "1.0"}
METRICS_SCHEMA = {"name": "traceway.metrics", "version": "1.0"}


def build_birth(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    boot: int,
    version: str,
    config_hash: str,
    cache_version: int | None,
    clock_synced: bool,
    started_at: datetime,
) -> dict[str, Any]:
    """The retained ``online`` status published right after connecting."""
    return {
        "schema": dict(STATUS_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "state": "online",
        "reason": "birth",
        "time": format_time(time),
        "boot": boot,
        "version": version,
        "config_hash": config_hash,
        "cache_version": cache_version,
        "clock_synced": clock_synced,
        "started_at": format_time(started_at),
    }


def build_offline(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    boot: int,
    reason: Literal["shutdown", "connection_lost"] = "connection_lost",
) -> dict[str, Any]:
    """The ``offline`` status: the Will (``connection_lost``, set at connect) or a clean shutdown."""
    return {
        "schema": dict(STATUS_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "state": "offline",
        "reason": reason,
        "time": format_time(time),
        "boot": boot,
    }


def build_device_status(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    device: str,
    kind: Literal["scanner", "printer"],
    state: str,
    previous: str | None = None,
    detail: str = "",
    last_seen: datetime | None = None,
) -> dict[str, Any]:
    """A device status change (retained on ``.../devices/{device}``)."""
    payload: dict[str, Any] = {
        "schema": dict(DEVICE_STATUS_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "time": format_time(time),
        "device": device,
        "kind": kind,
        "state": state,
        "previous": previous,
        "last_seen": format_time(last_seen) if last_seen is not None else None,
    }
    if detail:
        payload["detail"] = detail
    return payload


def _rate(no_reads: int, scans: int) -> float | None:
    total = scans + no_reads
    return round(no_reads / total, 6) if total else None


def build_metrics(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    interval_s: float,
    scans: Mapping[str, int],
    no_reads: int,
    outbox_depth: int,
    oldest_unsent_age_s: float | None,
    publish_latency_ms: Mapping[str, float | None],
    printers: Mapping[str, str],
    devices: Mapping[str, datetime | None],
    device_states: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Periodic metrics; counters cover the ``interval_s`` seconds ending at ``time``.

    ``scans`` maps accept/warn/reject to counts; ``no_read_rate`` is derived.
    """
    counts = {v: int(scans.get(v, 0)) for v in ("accept", "warn", "reject")}
    states = device_states or {}
    devs: dict[str, Any] = {}
    for dev, seen in devices.items():
        entry: dict[str, Any] = {"last_seen": format_time(seen) if seen is not None else None}
        if dev in states:
            entry["state"] = states[dev]
        devs[dev] = entry
    return {
        "schema": dict(METRICS_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "time": format_time(time),
        "interval_s": interval_s,
        "scans": counts,
        "no_reads": no_reads,
        "no_read_rate": _rate(no_reads, sum(counts.values())),
        "outbox": {"depth": outbox_depth, "oldest_unsent_age_s": oldest_unsent_age_s},
        "publish_latency_ms": {k: publish_latency_ms.get(k) for k in ("p50", "p95", "max")},
        "printers": dict(printers),
        "devices": devs,
    }
