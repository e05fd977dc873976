"""Open seq gaps are asked for again (``republish``): the pure rules, then the SQL shell."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from central.ingest.gapfill import Asked, GapFiller, OpenGap, due, request
from mqtt_topics.commands import MAX_REPUBLISH, Command, parse_command
from mqtt_topics.validation import validate

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def gap(a: int, b: int, opened_s_ago: float, gw: str = "gw1") -> OpenGap:
    return OpenGap(gw, "s1", a, b, T0 - timedelta(seconds=opened_s_ago))


def test_only_gaps_open_long_enough_are_due() -> None:
    gaps = [gap(1, 3, 31), gap(7, 7, 29), gap(9, 9, 30)]
    assert [g.from_seq for g in due(gaps, T0, {}, after_s=30, max_asks=5)] == [1, 9]
    assert due(gaps, T0, {}, after_s=0, max_asks=5) == []  # 0: never


def test_a_gap_is_asked_again_after_the_interval_and_at_most_max_asks_times() -> None:
    g = gap(1, 3, 600)
    recent = {g.key: Asked(1, T0 - timedelta(seconds=10))}
    assert due([g], T0, recent, after_s=30, max_asks=5) == []
    older = {g.key: Asked(2, T0 - timedelta(seconds=30))}
    assert due([g], T0, older, after_s=30, max_asks=5) == [g]
    spent = {g.key: Asked(5, T0 - timedelta(seconds=300))}
    assert due([g], T0, spent, after_s=30, max_asks=5) == []


def test_the_request_is_a_valid_command_for_the_gateway_of_the_gap() -> None:
    topic, payload = request(gap(5, 9, 60), "traceway/v1", 2)
    assert topic == "traceway/v1/s1/gw1/commands"
    assert validate(payload) == []
    cmd = parse_command(json.dumps(payload).encode())
    assert isinstance(cmd, Command), cmd
    assert payload["args"] == {"from_seq": 5, "to_seq": 9}
    assert payload["request_id"] == "gap-5-9-2"
    _, big = request(gap(1, 50_000, 60), "traceway/v1", 1)
    assert big["args"] == {"from_seq": 1, "to_seq": MAX_REPUBLISH}  # the first ones first


def test_the_filler_reads_open_gaps_asks_and_forgets_closed_ones(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO gateways (gateway_id, site, seq_high, last_seen) "
                "VALUES ('gw1', 's1', 10, :t), ('gw2', 's2', 4, :t)"
            ),
            {"t": T0},
        )
        c.execute(
            text(
                "INSERT INTO seq_gaps (gateway_id, from_seq, to_seq, opened_at, closed_at) VALUES "
                "('gw1', 2, 4, :old, NULL), ('gw1', 6, 6, :new, NULL), "
                "('gw2', 1, 2, :old, :old)"
            ),
            {"old": T0 - timedelta(seconds=60), "new": T0 - timedelta(seconds=1)},
        )
    sent: list[tuple[str, dict[str, Any]]] = []
    now = [T0]
    filler = GapFiller(
        engine,
        lambda t, p: sent.append((t, p)),
        prefix="traceway/v1",
        after_s=30,
        max_asks=2,
        clock=lambda: now[0],
    )
    filler.tick()
    assert [(t, p["args"]) for t, p in sent] == [
        ("traceway/v1/s1/gw1/commands", {"from_seq": 2, "to_seq": 4})
    ]
    filler.tick()
    assert len(sent) == 1  # not again within after_s
    now[0] = T0 + timedelta(seconds=30)
    filler.tick()
    assert [p["args"] for _, p in sent[1:]] == [
        {"from_seq": 2, "to_seq": 4},
        {"from_seq": 6, "to_seq": 6},
    ]
    now[0] = T0 + timedelta(seconds=120)
    filler.tick()
    assert len(sent) == 4  # 2..4 asked twice (max_asks); 6 asked a second time
    with engine.begin() as c:
        c.execute(text("UPDATE seq_gaps SET closed_at = :t"), {"t": now[0]})
    filler.tick()
    assert filler.asked == {}
