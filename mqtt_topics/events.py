"""Builders for the event and alert payloads the gateway publishes.

Pure functions over plain data; the central side can import them to build test
fixtures. Every payload carries ``schema`` = {name, version}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

EVENT_SCHEMA = {"name": "traceway.event", "version": "2.0"}
ALERT_SCHEMA = {"name": "traceway.alert", "version": "1.1"}


class Place(TypedDict):
    """Where an item came from or went to: a storage location here, or a party."""

    type: str  # location | party
    id: str


#: One thing an event is about: a serial (gtin+serial), a lot or product quantity, or a
#: pallet (sscc); with ``from``/``to`` (a Place, or None where custody starts or ends).
Item = TypedDict(
    "Item",
    {
        "gtin": str,
        "serial": str,
        "lot": str,
        "quantity": int | float,
        "uom": str,
        "expiry": str,
        "sscc": str,
        "from": Place | None,
        "to": Place | None,
    },
    total=False,
)


def format_time(dt: datetime) -> str:
    """RFC 3339 with milliseconds and a numeric offset (``2026-11-21T09:15:02.123+01:00``)."""
    if dt.tzinfo is None:
        raise ValueError("event time must carry an offset")
    return dt.isoformat(timespec="milliseconds")


def tz_offset(dt: datetime) -> str:
    """The ``+HH:MM`` offset of an aware datetime."""
    off = dt.utcoffset()
    assert off is not None
    total = int(off.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{sign}{total // 3600:02d}:{(total % 3600) // 60:02d}"


def _dicts(rows: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    return [dict(r) for r in rows] if rows is not None else None


def _envelope(
    schema: Mapping[str, str],
    event_id: str,
    seq: int,
    gateway_id: str,
    site: str,
    station: str,
    event_time: datetime,
    clock_synced: bool,
) -> dict[str, Any]:
    """The keys every event and alert starts with (one ``seq`` space for both)."""
    return {
        "schema": dict(schema),
        "event_id": event_id,
        "seq": seq,
        "gateway_id": gateway_id,
        "site": site,
        "station": station,
        "event_time": format_time(event_time),
        "tz_offset": tz_offset(event_time),
        "clock_synced": clock_synced,
    }


def build_event(
    *,
    event_id: str,
    seq: int,
    gateway_id: str,
    site: str,
    station: str,
    event_time: datetime,
    clock_synced: bool,
    event_type: str,
    action: str | None,
    biz_step: str,
    disposition: str,
    read_point: str,
    biz_location: str,
    items: Sequence[Item],
    scan: Mapping[str, Any] | None,
    decision: Mapping[str, Any],
    movement: str,
    extra: Mapping[str, Any] | None = None,
    location: str | None = None,
    from_location: str | None = None,
    biz_transactions: Sequence[Mapping[str, str]] | None = None,
    sources: Sequence[Mapping[str, str]] | None = None,
    destinations: Sequence[Mapping[str, str]] | None = None,
    parent: Mapping[str, str] | None = None,
    inputs: Sequence[Item] | None = None,
    outputs: Sequence[Item] | None = None,
    transformation_id: str | None = None,
    corrects: Sequence[str] | None = None,
    correction_reason: str | None = None,
    correction_note: str | None = None,
) -> dict[str, Any]:
    """A movement event payload (topic ``.../events``).

    The movement-specific keywords are omitted from the payload when None.
    """
    payload = _envelope(
        EVENT_SCHEMA, event_id, seq, gateway_id, site, station, event_time, clock_synced
    )
    payload.update(
        {
            "movement": movement,
            "event_type": event_type,
            "action": action,
            "biz_step": biz_step,
            "disposition": disposition,
            "read_point": read_point,
            "biz_location": biz_location,
            "items": [dict(i) for i in items],
            "scan": dict(scan) if scan is not None else None,
            "decision": dict(decision),
        }
    )
    optional: tuple[tuple[str, Any], ...] = (
        ("location", location),
        ("from_location", from_location),
        ("biz_transactions", _dicts(biz_transactions)),
        ("sources", _dicts(sources)),
        ("destinations", _dicts(destinations)),
        ("parent", dict(parent) if parent is not None else None),
        ("inputs", _dicts(inputs)),
        ("outputs", _dicts(outputs)),
        ("transformation_id", transformation_id),
        ("corrects", list(corrects) if corrects is not None else None),
        ("correction_reason", correction_reason),
        ("correction_note", correction_note),
    )
    for key, value in optional:
        if value is not None:
            payload[key] = value
    if extra:
        payload.update(extra)
    return payload


def build_alert(
    *,
    event_id: str,
    seq: int,
    gateway_id: str,
    site: str,
    station: str,
    event_time: datetime,
    clock_synced: bool,
    alert: str,
    severity: str,
    message: str,
    scan: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
    interpretation: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An alert payload (topic ``.../alerts``): a rejected scan, a no-read, a device alarm."""
    payload = _envelope(
        ALERT_SCHEMA, event_id, seq, gateway_id, site, station, event_time, clock_synced
    )
    payload.update(
        {
            "alert": alert,
            "severity": severity,
            "message": message,
            "scan": dict(scan) if scan is not None else None,
            "decision": dict(decision) if decision is not None else None,
        }
    )
    if interpretation is not None:
        payload["interpretation"] = dict(interpretation)
    if extra:
        payload.update(extra)
    return payload
