"""One batch of received messages into PostgreSQL, in the caller's transaction (SQL, thin).

Every write is idempotent, so a message redelivered after a crash (committed, not yet
acknowledged) changes nothing: events by ``event_id`` (``store_events``), alerts by
``event_id``, cache acks by (gateway, kind, version, time), quarantine by a digest of
topic + payload; status, metrics, device states and cache versions only move forward.

Gateway rows are touched first, in ``gateway_id`` order, so that concurrent workers take
their row locks in one order (no deadlock between two workers' batches on them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from central.custody.model import parse_time
from central.custody.projection import store_events, track_seqs
from central.ingest.route import Accepted, Rejected, printable


@dataclass
class BatchResult:
    """What one batch did."""

    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchResult) -> None:
        self.events += other.events
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        for k, v in other.by_kind.items():
            self.by_kind[k] = self.by_kind.get(k, 0) + v


def _dumps(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, allow_nan=False)


def write_batch(
    conn: Connection,
    accepted: Sequence[Accepted],
    rejected: Sequence[Rejected],
    received_at: datetime,
) -> BatchResult:
    """Write a batch (the caller commits, then acknowledges every message of it)."""
    res = BatchResult()
    for a in accepted:
        res.by_kind[a.kind] = res.by_kind.get(a.kind, 0) + 1
    _touch_gateways(conn, accepted, received_at)
    events = [a.body for a in accepted if a.kind == "event"]
    if events:
        stored = store_events(conn, events, received_at)
        res.events, res.duplicates = stored.stored, stored.duplicates
    new_alerts = [a.body for a in accepted if a.kind == "alert" and _alert(conn, a.body)]
    if new_alerts:  # alerts share the gateway's seq space with events
        track_seqs(conn, new_alerts, received_at)
    for a in accepted:
        if a.kind == "alert":
            continue
        elif a.kind == "status":
            _status(conn, a.body, received_at)
        elif a.kind == "metrics":
            _metrics(conn, a.body)
        elif a.kind == "device":
            _device(conn, a.body)
        elif a.kind == "cache_ack":
            _cache_ack(conn, a.body, received_at)
        elif a.kind == "cache_version" and a.body.get("version") is not None:
            # null: the gateway holds no cache yet (nothing to record)
            _cache_version(conn, a.body, int(a.body["version"]), a.body["time"])
    if rejected:
        res.quarantined = quarantine(conn, rejected, received_at)
    return res


def quarantine(conn: Connection, rejected: Sequence[Rejected], received_at: datetime) -> int:
    """Keep rejected messages with their reasons (once per topic + payload)."""
    new = 0
    for r in rejected:
        new += conn.execute(
            text(
                "INSERT INTO quarantine (received_at, topic, payload, reason, digest) "
                "VALUES (:t, :topic, :payload, :reason, :digest) ON CONFLICT (digest) DO NOTHING"
            ),
            {
                "t": received_at,
                "topic": printable(r.topic.encode("utf-8", "backslashreplace")),
                "payload": printable(r.payload),
                "reason": printable(r.reason.encode("utf-8", "backslashreplace")),
                "digest": r.digest,
            },
        ).rowcount
    return new


def _touch_gateways(conn: Connection, accepted: Sequence[Accepted], received_at: datetime) -> None:
    seen = sorted({(str(a.body["gateway_id"]), str(a.body["site"])) for a in accepted})
    if not seen:
        return
    conn.execute(
        text(
            "INSERT INTO gateways AS g (gateway_id, site, last_seen) VALUES (:g, :s, :t) "
            "ON CONFLICT (gateway_id) DO UPDATE SET "
            "last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen)"
        ),
        [{"g": g, "s": s, "t": received_at} for g, s in seen],
    )


def _alert(conn: Connection, body: Mapping[str, Any]) -> bool:
    """Store an alert once; True when it is new."""
    row = conn.execute(
        text(
            "INSERT INTO alerts (event_id, event_time, gateway_id, site, alert, severity, "
            "payload) VALUES (:e, :t, :g, :s, :a, :sev, CAST(:p AS jsonb)) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        ),
        {
            "e": body["event_id"],
            "t": parse_time(body["event_time"]),
            "g": body["gateway_id"],
            "s": body["site"],
            "a": body["alert"],
            "sev": body["severity"],
            "p": _dumps(body),
        },
    ).fetchone()
    return row is not None


#: A status replaces the stored one when it is of a later boot, or of the same boot and
#: received later (a Will carries its connect time, older than the births after it).
_NEWER_STATUS = (
    "(g.status IS NULL OR CAST(EXCLUDED.status->>'boot' AS bigint) > "
    "CAST(g.status->>'boot' AS bigint) OR (CAST(EXCLUDED.status->>'boot' AS bigint) = "
    "CAST(g.status->>'boot' AS bigint) AND EXCLUDED.status_time >= g.status_time))"
)


def _status(conn: Connection, body: Mapping[str, Any], received_at: datetime) -> None:
    conn.execute(
        text(
            "INSERT INTO gateways AS g (gateway_id, site, online, last_seen, status, "
            "status_time) VALUES (:g, :s, :online, :t, CAST(:p AS jsonb), :t) "
            "ON CONFLICT (gateway_id) DO UPDATE SET "
            f"online = CASE WHEN {_NEWER_STATUS} THEN EXCLUDED.online ELSE g.online END, "
            f"status = CASE WHEN {_NEWER_STATUS} THEN EXCLUDED.status ELSE g.status END, "
            f"status_time = CASE WHEN {_NEWER_STATUS} THEN EXCLUDED.status_time "
            "ELSE g.status_time END"
        ),
        {
            "g": body["gateway_id"],
            "s": body["site"],
            "online": body["state"] == "online",
            "t": received_at,
            "p": _dumps(body),
        },
    )
    if body["state"] == "online" and body.get("cache_version") is not None:
        _cache_version(conn, body, int(body["cache_version"]), body["time"])


def _metrics(conn: Connection, body: Mapping[str, Any]) -> None:
    outbox = body["outbox"]
    conn.execute(
        text(
            "UPDATE gateways SET metrics = CAST(:p AS jsonb), metrics_time = :t, "
            "outbox_depth = :d, oldest_unsent_age_s = :a WHERE gateway_id = :g "
            "AND (metrics_time IS NULL OR metrics_time <= :t)"
        ),
        {
            "p": _dumps(body),
            "t": parse_time(body["time"]),
            "d": outbox.get("depth"),
            "a": outbox.get("oldest_unsent_age_s"),
            "g": body["gateway_id"],
        },
    )


def _device(conn: Connection, body: Mapping[str, Any]) -> None:
    conn.execute(
        text(
            "INSERT INTO gateway_devices AS d (gateway_id, device, kind, state, time, payload) "
            "VALUES (:g, :dev, :k, :s, :t, CAST(:p AS jsonb)) "
            "ON CONFLICT (gateway_id, device) DO UPDATE SET kind = EXCLUDED.kind, "
            "state = EXCLUDED.state, time = EXCLUDED.time, payload = EXCLUDED.payload "
            "WHERE d.time <= EXCLUDED.time"
        ),
        {
            "g": body["gateway_id"],
            "dev": body["device"],
            "k": body["kind"],
            "s": body["state"],
            "t": parse_time(body["time"]),
            "p": _dumps(body),
        },
    )


def _cache_ack(conn: Connection, body: Mapping[str, Any], received_at: datetime) -> None:
    conn.execute(
        text(
            "INSERT INTO cache_acks (gateway_id, site, kind, version, ok, error, request_id, "
            "acked_at, received_at) VALUES (:g, :s, :k, :v, :ok, :err, :req, :t, :rt) "
            "ON CONFLICT DO NOTHING"
        ),
        {
            "g": body["gateway_id"],
            "s": body["site"],
            "k": body["kind"],
            "v": int(body["version"]),
            "ok": bool(body["ok"]),
            "err": body.get("error"),
            "req": body.get("request_id"),
            "t": parse_time(body["time"]),
            "rt": received_at,
        },
    )
    if body["ok"]:
        _cache_version(conn, body, int(body["version"]), body["time"])


def _cache_version(conn: Connection, body: Mapping[str, Any], version: int, at: str) -> None:
    """The cache version a gateway reports holding (birth, cache/version, ok ack)."""
    conn.execute(
        text(
            "UPDATE gateways SET cache_version = :v, cache_version_time = :t "
            "WHERE gateway_id = :g AND (cache_version_time IS NULL OR cache_version_time <= :t)"
        ),
        {"v": version, "t": parse_time(at), "g": body["gateway_id"]},
    )
