"""``write_batch`` on cases the end-to-end tests met: a private PostgreSQL, no broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from central.ingest.route import Accepted, classify
from central.ingest.store import write_batch
from mqtt_topics.cache import build_cache_version
from mqtt_topics.topics import GatewayTopics

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def report(version: int | None, at: datetime) -> Accepted:
    body = build_cache_version(gateway_id="g1", site="s1", time=at, version=version, counts={})
    got = classify(
        GatewayTopics("s1", "g1").cache_version, json.dumps(body).encode(), "traceway/v1"
    )
    assert isinstance(got, Accepted), got
    return got


def test_a_gateway_without_a_cache_reports_version_null_and_nothing_is_quarantined(
    engine: Engine,
) -> None:
    """A fresh gateway's retained ``cache/version`` has ``version: null`` (it has no cache)."""
    with engine.begin() as c:
        res = write_batch(c, [report(None, NOW)], [], NOW)
    assert res.quarantined == 0
    with engine.begin() as c:
        write_batch(c, [report(1, NOW + timedelta(seconds=1))], [], NOW)
    with engine.connect() as c:
        version = c.execute(text("SELECT cache_version FROM gateways WHERE gateway_id = 'g1'"))
        assert version.scalar_one() == 1
        assert c.execute(text("SELECT count(*) FROM quarantine")).scalar_one() == 0
