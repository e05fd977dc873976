"""Example payloads for every topic and a scripted warehouse day.

Used by the README, the tests and central-side fixtures. All keys carry valid
GS1 check digits; ids are deterministic UUIDv7-shaped strings.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from gs1.keys import check_digit
from mqtt_topics.cache import build_ack, build_cache_version, build_resync_request
from mqtt_topics.commands import build_command, build_reply, parse_command
from mqtt_topics.events import Item, Place, build_alert, build_event
from mqtt_topics.movements import spec_for
from mqtt_topics.status import build_birth, build_device_status, build_metrics


def with_check_digit(body: str) -> str:
    """``body`` plus its GS1 check digit."""
    return body + str(check_digit(body))


GTIN_A = with_check_digit("0950600013435")  # serialised
GTIN_B = with_check_digit("0401234500001")  # lot-tracked
GTIN_C = with_check_digit("0401234500002")  # repack output
SSCC_1 = with_check_digit("34012345000000001")
SSCC_2 = with_check_digit("34098765000000042")  # a supplier's pallet on its way
GLN_SITE = with_check_digit("401234500000")
GLN_SUPPLIER = with_check_digit("409876500000")
GLN_CUSTOMER = with_check_digit("405555500000")
CET = timezone(timedelta(hours=1))
T0 = datetime(2026, 11, 23, 7, 30, 0, 0, tzinfo=CET)
SITE, GATEWAY = "hamburg-1", "dock-a"


def example_id(n: int) -> str:
    """A deterministic UUIDv7-shaped id."""
    return f"019aaf00-0000-7000-8000-{n:012x}"


def _scan(raw: str, symbology: str = "]d2") -> dict[str, str]:
    return {"raw": raw, "symbology": symbology, "scanner": "scanner-1"}


_ACCEPT = {"verdict": "accept", "reasons": []}


def event(n: int, movement: str, items: list[Item], minutes: int, **kw: Any) -> dict[str, Any]:
    """Event number ``n`` of the scripted day, ``minutes`` after 07:30 CET."""
    spec = spec_for(movement)
    station = kw.pop("station", "dock-1")
    return build_event(
        event_id=example_id(n),
        seq=n,
        gateway_id=GATEWAY,
        site=SITE,
        station=station,
        event_time=T0 + timedelta(minutes=minutes, milliseconds=n),
        clock_synced=True,
        event_type=spec.event_type,
        action=kw.pop("action", spec.action),
        biz_step=spec.biz_step,
        disposition=kw.pop("disposition", spec.disposition),
        read_point=kw.pop("read_point", GLN_SITE + "/" + station),
        biz_location=kw.pop("biz_location", GLN_SITE),
        items=items,
        scan=kw.pop("scan", None),
        decision=kw.pop("decision", _ACCEPT),
        movement=movement,
        **kw,
    )


def _at(item: Item, src: str | None, dst: str | None) -> Item:
    """``item`` with its custody: ``"A-01"`` is a location, ``"party:X"`` a party, None none."""

    def place(p: str | None) -> Place | None:
        if p is None:
            return None
        if p.startswith("party:"):
            return {"type": "party", "id": p[len("party:") :]}
        return {"type": "location", "id": p}

    out: Item = {**item}
    if "gtin" in out:
        out["uom"] = out.get("uom", "EA")
    if "serial" in out:
        out["quantity"] = 1
    out["from"] = place(src)
    out["to"] = place(dst)
    return out


def scripted_day() -> list[dict[str, Any]]:
    """Receive → put-away → pick → pack on a pallet → ship; a repack; a correction."""
    serial_1: Item = {"gtin": GTIN_A, "serial": "S/1001&x", "expiry": "2027-06-30"}
    serial_2: Item = {"gtin": GTIN_A, "serial": "S1002"}
    lot_b: Item = {"gtin": GTIN_B, "lot": "L24-07", "quantity": 40, "expiry": "2027-01-31"}
    lot_12: Item = {"gtin": GTIN_B, "lot": "L24-07", "quantity": 12}
    po = [{"type": "po", "id": "PO-4711"}, {"type": "desadv", "id": "DA 0815/1"}]
    supplier = f"party:{GLN_SUPPLIER}"
    return [
        event(1, "receive", [_at(serial_1, supplier, "DOCK-1"), _at(serial_2, supplier, "DOCK-1"),
                             _at(lot_b, supplier, "DOCK-1")], 0,
              scan=_scan(f"]d201{GTIN_A}21S1001"), biz_transactions=po, location="DOCK-1",
              sources=[{"type": "owning_party", "id": GLN_SUPPLIER},
                       {"type": "location", "id": GLN_SUPPLIER}]),
        event(2, "putaway", [_at(serial_1, "DOCK-1", "A-01-02"), _at(serial_2, "DOCK-1", "A-01-02")],
              20, station="store-1", location="A-01-02", from_location="DOCK-1"),
        event(3, "putaway", [_at(lot_b, "DOCK-1", "B-07-01")], 21, station="store-1",
              location="B-07-01", from_location="DOCK-1"),
        event(4, "transfer", [_at({"gtin": GTIN_B, "lot": "L24-07", "quantity": 10}, "B-07-01",
                                  "A-02-01")], 60,
              station="store-1", from_location="B-07-01", location="A-02-01"),
        event(5, "pick", [_at(serial_1, "A-01-02", "STAGE-1"), _at(lot_12, "B-07-01", "STAGE-1")],
              120, station="pick-1", location="STAGE-1",
              biz_transactions=[{"type": "po", "id": "SO-99"}]),
        event(6, "pack", [_at(serial_1, "STAGE-1", "STAGE-1"), _at(lot_12, "STAGE-1", "STAGE-1")],
              130, station="pack-1", location="STAGE-1", parent={"sscc": SSCC_1}),
        event(7, "repack", [], 150, station="pack-1",
              inputs=[_at({"gtin": GTIN_B, "lot": "L24-07", "quantity": 6}, "B-07-01", None)],
              outputs=[_at({"gtin": GTIN_C, "lot": "R-001", "quantity": 2, "expiry": "2027-01-31"},
                           None, "B-07-01")]),
        event(8, "ship", [_at({"sscc": SSCC_1}, "STAGE-1", f"party:{GLN_CUSTOMER}")], 180,
              station="dock-2",
              biz_transactions=[{"type": "po", "id": "SO-99"}, {"type": "bol", "id": "BOL-1"}],
              destinations=[{"type": "owning_party", "id": GLN_CUSTOMER},
                            {"type": "location", "id": GLN_CUSTOMER}]),
        # the put-away of lot B went to the wrong place: re-stated with the right location
        event(9, "putaway", [_at(lot_b, "DOCK-1", "B-07-03")], 200, station="store-1",
              location="B-07-03", corrects=[example_id(3)], correction_reason="incorrect_data",
              correction_note="wrong shelf scanned"),
        event(10, "hold", [_at({"gtin": GTIN_B, "lot": "L24-07", "quantity": 18}, "B-07-03",
                               "B-07-03")], 220,
              station="store-1", location="B-07-03"),
        event(11, "consume", [], 240, station="line-1",
              inputs=[_at({"gtin": GTIN_B, "lot": "L24-07", "quantity": 1.5, "uom": "KGM"},
                          "B-07-03", None)],
              transformation_id="PRODORDER-77"),
        event(12, "unpack", [], 250, station="dock-2", parent={"sscc": SSCC_1}),
        # the pallet was never actually unpacked: event 12 is declared void
        event(13, "correct", [], 260, station="dock-2",
              corrects=[example_id(12)], correction_reason="did_not_occur"),
        event(14, "commission", [_at({"gtin": GTIN_A, "serial": "S2001", "expiry": "2028-01-31"},
                                     None, "LABEL-1")], 270,
              station="label-1", location="LABEL-1"),
        event(15, "scrap", [_at({"gtin": GTIN_A, "serial": "S1002"}, "A-01-02", None)], 280,
              station="store-1", location="A-01-02"),
        event(16, "return", [_at({"gtin": GTIN_A, "serial": "S1001&x"}, "party:CUST-42",
                                 "QUARANTINE")], 290,
              location="QUARANTINE",
              sources=[{"type": "owning_party", "id": "CUST-42"}],
              biz_transactions=[{"type": "rma", "id": "RMA-5"}]),
        event(17, "cycle_count", [_at({"gtin": GTIN_B, "lot": "L24-07", "quantity": 18},
                                      "B-07-03", "B-07-03")], 300,
              station="store-1", location="B-07-03", read_point="handheld-3"),
    ]  # fmt: skip


def example_payloads() -> dict[str, dict[str, Any]]:
    """One example payload per schema name."""
    day = scripted_day()
    now = T0 + timedelta(hours=2)
    cmd = build_command("set_step", {"station": "dock-1", "step": "shipping"}, "req-17")
    parsed = parse_command(__import__("json").dumps(cmd).encode())
    return {
        "traceway.event": day[0],
        "traceway.alert": build_alert(
            event_id=example_id(100), seq=18, gateway_id=GATEWAY, site=SITE, station="dock-1", event_time=now,
            clock_synced=True, alert="invalid_barcode", severity="error",
            message="check_digit: GTIN 09506000134353 check digit should be 2",
            scan=_scan("]C10109506000134353", "]C1"),
            decision={"verdict": "reject", "reasons": [{"code": "invalid_barcode",
                      "message": "check_digit: GTIN 09506000134353 check digit should be 2"}]},
            interpretation={"input": "]C10109506000134353", "symbology": "]C1", "kind": "gs1",
                            "gtin": "09506000134353", "ais": {"01": "09506000134353"},
                            "errors": ["check_digit: GTIN 09506000134353 check digit should be 2"],
                            "warnings": []},
            extra={"device": "scanner-1"}),
        "traceway.status": build_birth(
            gateway_id=GATEWAY, site=SITE, time=T0, boot=42, version="0.1.0", config_hash="3f2a9c1e5b7d4a60",
            cache_version=1207, clock_synced=True, started_at=T0 - timedelta(seconds=9)),
        "traceway.device_status": build_device_status(
            gateway_id=GATEWAY, site=SITE, time=now, device="zebra-1", kind="printer", state="paper_out",
            previous="ready", detail="~HQES media out", last_seen=now),
        "traceway.metrics": build_metrics(
            gateway_id=GATEWAY, site=SITE, time=now, interval_s=60, scans={"accept": 118, "warn": 3, "reject": 2},
            no_reads=4, outbox_depth=0, oldest_unsent_age_s=None,
            publish_latency_ms={"p50": 4.1, "p95": 12.0, "max": 40.2},
            printers={"zebra-1": "paper_out"}, devices={"scanner-1": now - timedelta(seconds=3)},
            device_states={"scanner-1": "connected"}),
        "traceway.command": cmd,
        "traceway.command_reply": build_reply(gateway_id=GATEWAY, site=SITE, time=now, outcome=parsed,
                                              result={"station": "dock-1", "step": "shipping"}),
        "traceway.cache_snapshot": {
            "schema": {"name": "traceway.cache_snapshot", "version": "1.1"},
            "version": 1207, "generated_at": format_example(now), "request_id": None,
            "chunk": {"index": 0, "count": 1},
            "products": [{"gtin": GTIN_A, "description": "Widget", "serialised": True, "active": True},
                         {"gtin": GTIN_B, "description": "Flour 25 kg", "lot_tracked": True,
                          "shelf_life_days": 365, "expiry_warning_days": 90, "active": True}],
            "lots": [{"gtin": GTIN_B, "lot": "L24-07", "expiry": "2027-01-31", "status": "released"}],
            "serials": [{"gtin": GTIN_A, "serial": "S1001", "state": "in_stock"}],
            "holds": [{"hold_id": "H-1", "scope": {"gtin": GTIN_B, "lot": "L23-99"},
                       "reason": "lab test pending", "since": format_example(T0)}],
            "recalls": [{"recall_id": "R-2026-3", "gtin": GTIN_B, "lots": ["L23-98"],
                         "reason": "foreign body", "since": format_example(T0)}],
            "despatch_advices": [{"sscc": SSCC_2, "desadv_id": "DA 0815/1",
                                  "items": [{"gtin": GTIN_B, "lot": "L24-07", "quantity": 40},
                                            {"gtin": GTIN_A, "serial": "S1003", "lot": "W1",
                                             "quantity": 1}]}],
        },
        "traceway.cache_delta": {
            "schema": {"name": "traceway.cache_delta", "version": "1.1"},
            "from_version": 1207, "version": 1208, "generated_at": format_example(now),
            "changes": [
                {"op": "upsert", "entity": "lot",
                 "record": {"gtin": GTIN_B, "lot": "L24-07", "expiry": "2027-01-31", "status": "quarantined"}},
                {"op": "delete", "entity": "hold", "key": {"hold_id": "H-1"}},
                {"op": "upsert", "entity": "product",
                 "record": {"gtin": GTIN_A, "description": "Widget", "serialised": True,
                            "expiry_warning_days": 14}},
                {"op": "upsert", "entity": "despatch_advice",
                 "record": {"sscc": SSCC_2, "desadv_id": "DA 0815/2",
                            "items": [{"gtin": GTIN_B, "lot": "L24-07", "quantity": 36}]}},
            ],
        },
        "traceway.cache_resync_request": build_resync_request(
            gateway_id=GATEWAY, site=SITE, time=now, request_id="019aaf00-0000-7000-8000-0000000000c8",
            have_version=1205, reason="gap"),
        "traceway.cache_ack": build_ack(gateway_id=GATEWAY, site=SITE, time=now, kind="delta", version=1208),
        "traceway.cache_version": build_cache_version(
            gateway_id=GATEWAY, site=SITE, time=now, version=1208, updated_at=now,
            counts={"products": 2, "lots": 1, "serials": 1, "holds": 0, "recalls": 1,
                    "despatch_advices": 1}),
    }  # fmt: skip


def format_example(dt: datetime) -> str:
    """RFC 3339 with milliseconds (as every payload uses)."""
    return dt.isoformat(timespec="milliseconds")
