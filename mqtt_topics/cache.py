"""Cache sync contract: validators for the central side's snapshot/delta messages,
the ordering rule for deltas, and builders for the gateway's resync request, ack
and cache-version report.

A snapshot carries ``version`` N (possibly split into ``chunk.count`` messages);
a delta turns ``from_version`` into ``version``. The gateway applies a delta only
when ``from_version`` equals the version it holds; an older delta is a duplicate,
a newer one means a gap and the gateway asks for a resync.

Contract 1.1 (older 1.x payloads stay valid): a product may carry
``expiry_warning_days``; ``despatch_advice`` records (snapshot list
``despatch_advices``, delta entity ``despatch_advice``) say what a pallet (SSCC) that
is on its way holds, one line per serial, lot or untracked GTIN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from mqtt_topics.events import format_time
from mqtt_topics.validation import check_digit_errors, schema_errors

SNAPSHOT_SCHEMA = {"name": "traceway.cache_snapshot", "version": "1.1"}
DELTA_SCHEMA = {"name": "traceway.cache_delta", "version": "1.1"}
RESYNC_SCHEMA = {"name": "traceway.cache_resync_request", "version": "1.0"}
ACK_SCHEMA = {"name": "traceway.cache_ack", "version": "1.0"}
VERSION_SCHEMA = {"name": "traceway.cache_version", "version": "1.1"}

DeltaVerdict = Literal["apply", "duplicate", "gap"]
ResyncReason = Literal["empty", "gap", "corrupt", "command", "stale"]


def _duplicates(rows: Iterable[Mapping[str, Any]], keys: tuple[str, ...], what: str) -> list[str]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for i, row in enumerate(rows):
        key = tuple(row.get(k) for k in keys)
        if key in seen:
            out.append(f"{what}[{i}]: duplicate key {key}")
        seen.add(key)
    return out


_SNAPSHOT_KEYS = {
    "products": ("gtin",),
    "lots": ("gtin", "lot"),
    "serials": ("gtin", "serial"),
    "holds": ("hold_id",),
    "recalls": ("recall_id",),
    "despatch_advices": ("sscc",),
}


def despatch_advice_errors(record: Mapping[str, Any], where: str) -> list[str]:
    """Lines of one despatch advice that repeat a serial, or a lot / untracked GTIN."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for i, line in enumerate(record["items"]):
        key = (
            (line["gtin"], "serial", line["serial"])
            if "serial" in line
            else (line["gtin"], "lot", line.get("lot"))
        )
        if key in seen:
            what = f"{key[1]} {key[2]}" if key[2] is not None else "untracked line"
            out.append(
                f"{where}.items[{i}]: GTIN {key[0]} {what} is listed twice on SSCC "
                f"{record['sscc']}; send one line with the total"
            )
        seen.add(key)
    return out


def validate_snapshot(payload: Any) -> list[str]:
    """Errors of a snapshot message (schema, check digits, chunk index, duplicate keys)."""
    errors = schema_errors("traceway.cache_snapshot", payload)
    if errors:
        return errors
    errors = check_digit_errors(payload)
    chunk = payload["chunk"]
    if chunk["index"] >= chunk["count"]:
        errors.append(f"chunk: index {chunk['index']} not below count {chunk['count']}")
    for table, keys in _SNAPSHOT_KEYS.items():
        errors += _duplicates(payload.get(table, []), keys, table)
    for i, advice in enumerate(payload.get("despatch_advices", [])):
        errors += despatch_advice_errors(advice, f"despatch_advices[{i}]")
    return errors


_CHANGE_KEYS = {
    "product": ("gtin",),
    "lot": ("gtin", "lot"),
    "serial": ("gtin", "serial"),
    "hold": ("hold_id",),
    "recall": ("recall_id",),
    "despatch_advice": ("sscc",),
}


def change_key(change: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """(entity, key values) of one delta change, for upserts and deletes alike."""
    entity = str(change["entity"])
    row = change["record"] if change["op"] == "upsert" else change["key"]
    return entity, tuple(row.get(k) for k in _CHANGE_KEYS[entity])


def validate_delta(payload: Any) -> list[str]:
    """Errors of a delta message (schema, check digits, version order, one change per key)."""
    errors = schema_errors("traceway.cache_delta", payload)
    if errors:
        return errors
    errors = check_digit_errors(payload)
    if payload["version"] <= payload["from_version"]:
        errors.append(
            f"version: {payload['version']} is not after from_version {payload['from_version']}"
        )
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for i, change in enumerate(payload["changes"]):
        key = change_key(change)
        if key in seen:
            errors.append(f"changes[{i}]: {key[0]} {key[1]} changed twice in one delta")
        seen.add(key)
        if change["entity"] == "despatch_advice" and change["op"] == "upsert":
            errors += despatch_advice_errors(change["record"], f"changes[{i}].record")
    return errors


def delta_verdict(held_version: int | None, delta: Mapping[str, Any]) -> DeltaVerdict:
    """What to do with a valid delta given the cache version held (None = no snapshot yet)."""
    if held_version is None:
        return "gap"
    if delta["version"] <= held_version:
        return "duplicate"
    if delta["from_version"] == held_version:
        return "apply"
    return "gap"


def build_resync_request(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    request_id: str,
    have_version: int | None,
    reason: ResyncReason,
) -> dict[str, Any]:
    """The gateway's request for a full snapshot."""
    return {
        "schema": dict(RESYNC_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "time": format_time(time),
        "request_id": request_id,
        "have_version": have_version,
        "reason": reason,
    }


def build_ack(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    kind: Literal["snapshot", "delta"],
    version: int,
    ok: bool = True,
    error: str = "",
    request_id: str | None = None,
) -> dict[str, Any]:
    """Acknowledge a snapshot (after its last chunk) or a delta; ``ok=False`` needs ``error``."""
    if not ok and not error:
        raise ValueError("a negative ack needs an error message")
    payload: dict[str, Any] = {
        "schema": dict(ACK_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "time": format_time(time),
        "kind": kind,
        "version": version,
        "request_id": request_id,
        "ok": ok,
    }
    if error:
        payload["error"] = error
    return payload


def build_cache_version(
    *,
    gateway_id: str,
    site: str,
    time: datetime,
    version: int | None,
    counts: Mapping[str, int],
    updated_at: datetime | None = None,
) -> dict[str, Any]:
    """The retained cache-version report."""
    return {
        "schema": dict(VERSION_SCHEMA),
        "gateway_id": gateway_id,
        "site": site,
        "time": format_time(time),
        "version": version,
        "updated_at": format_time(updated_at) if updated_at is not None else None,
        "counts": {k: int(counts.get(k, 0)) for k in _SNAPSHOT_KEYS},
    }
