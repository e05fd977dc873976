"""Convert gateway events to an EPCIS 2.0 JSON-LD ``EPCISDocument``.

Identifiers go out as GS1 Digital Link URIs (``https://id.gs1.org/...``), which
need no company-prefix length. Business steps and dispositions are CBV short
names, as EPCIS 2.0 JSON-LD allows. Alerts and other payloads are skipped.

Corrections follow EPCIS 2.0 (section "Error declaration"): the erroneous event
is re-issued unchanged (same eventID, eventTime, …) with an ``errorDeclaration``
{declarationTime, reason, correctiveEventIDs}. A ``correct`` movement only
declares; any other event that carries ``corrects`` is itself the corrective
event and is listed in ``correctiveEventIDs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from gs1.keys import is_valid_gln
from gs1.uris import class_uri, gln_uri, party_uri, sgtin_uri, sscc_uri
from mqtt_topics.events import EVENT_SCHEMA, format_time

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
#: JSON-LD prefix of traceway's extension fields (``tw:seq``, ``tw:gatewayID``, …).
TW_PREFIX = "tw"
TW_NAMESPACE = "urn:traceway:epcis:"

_GLN = re.compile(r"^(\d{13})(?:/(.+))?$")
_URI = re.compile(r"^(urn:|https?://)", re.IGNORECASE)


class EpcisExportError(ValueError):
    """The events cannot be exported as they are (e.g. a correction of an unknown event)."""


def _q(value: str) -> str:
    return quote(value, safe=":")


def place_uri(place: str, site: str, location: str | None = None) -> str | None:
    """A read point / business location id.

    ``4012345000009`` (GLN) → ``https://id.gs1.org/414/4012345000009``; a storage
    ``location`` (or ``GLN/ext``) becomes the GLN extension ``/254/{ext}``. An
    absolute URI passes through; any other id is local to the site and becomes
    ``urn:traceway:loc:{site}:{id}[:{location}]``: a station name (the gateway's
    default read point) → ``urn:traceway:loc:{site}:{station}``; the site id (the
    default business location without a GLN) → ``urn:traceway:loc:{site}:{site}``.
    Empty → None.
    """
    if not place:
        return None
    m = _GLN.match(place)
    if m and is_valid_gln(m.group(1)):
        return gln_uri(m.group(1), location or m.group(2))
    if _URI.match(place):
        return place
    tail = f":{quote(location, safe='')}" if location else ""
    return f"urn:traceway:loc:{quote(site, safe='')}:{quote(place, safe='')}{tail}"


def party_or_location_uri(kind: str, ident: str) -> str:
    """A source/destination id: GLN → Digital Link (417 party / 414 location); URIs pass."""
    if _URI.match(ident):
        return ident
    m = _GLN.match(ident)
    if m and is_valid_gln(m.group(1)):
        return gln_uri(m.group(1), m.group(2)) if kind == "location" else party_uri(m.group(1))
    return f"urn:traceway:{'loc' if kind == 'location' else 'party'}:{_q(ident)}"


def biz_transaction_uri(kind: str, ident: str) -> str:
    """A business transaction id: a URI passes, else ``urn:traceway:bt:{type}:{id}``."""
    return ident if _URI.match(ident) else f"urn:traceway:bt:{kind}:{_q(ident)}"


def _items(items: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    epcs: list[str] = []
    quantities: list[dict[str, Any]] = []
    for item in items:
        if "sscc" in item:
            epcs.append(sscc_uri(item["sscc"]))
        elif "serial" in item:
            epcs.append(sgtin_uri(item["gtin"], item["serial"]))
        else:
            q: dict[str, Any] = {
                "epcClass": class_uri(item["gtin"], item.get("lot")),
                "quantity": item["quantity"],
            }
            if item.get("uom") not in (None, "EA"):  # EPCIS: no uom = a count of items
                q["uom"] = item["uom"]
            quantities.append(q)
    return list(dict.fromkeys(epcs)), quantities


def _ilmd(items: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    expiries = {i.get("expiry") for i in items if "sscc" not in i}
    if len(expiries) == 1 and None not in expiries:
        return {"cbvmda:itemExpirationDate": expiries.pop()}
    return None


def event_id_uri(event_id: str) -> str:
    """``urn:uuid:{event_id}``."""
    return f"urn:uuid:{event_id}"


def to_epcis_event(ev: Mapping[str, Any]) -> dict[str, Any] | None:
    """One gateway event as an EPCIS 2.0 event; None for a ``correct`` (declaration only)."""
    if ev["movement"] == "correct":
        return None
    etype = ev["event_type"]
    out: dict[str, Any] = {
        "type": etype,
        "eventID": event_id_uri(ev["event_id"]),
        "eventTime": ev["event_time"],
        "eventTimeZoneOffset": ev["tz_offset"],
    }
    epcs, quantities = _items(ev["items"])
    if etype == "ObjectEvent":
        out["epcList"] = epcs
        if quantities:
            out["quantityList"] = quantities
        out["action"] = ev["action"]
    elif etype == "AggregationEvent":
        out["parentID"] = sscc_uri(ev["parent"]["sscc"])
        if epcs:
            out["childEPCs"] = epcs
        if quantities:
            out["childQuantityList"] = quantities
        out["action"] = ev["action"]
    else:
        for side in ("input", "output"):
            s_epcs, s_qty = _items(ev.get(f"{side}s", []))
            if s_epcs:
                out[f"{side}EPCList"] = s_epcs
            if s_qty:
                out[f"{side}QuantityList"] = s_qty
        if ev.get("transformation_id"):
            tid = ev["transformation_id"]
            out["transformationID"] = tid if _URI.match(tid) else f"urn:traceway:xform:{_q(tid)}"
    out["bizStep"] = ev["biz_step"]
    out["disposition"] = ev["disposition"]
    site = ev["site"]
    read_point = place_uri(ev["read_point"], site)
    if read_point:
        out["readPoint"] = {"id": read_point}
    biz_location = place_uri(ev["biz_location"], site, ev.get("location"))
    if biz_location and ev["disposition"] != "in_transit":
        out["bizLocation"] = {"id": biz_location}
    if ev.get("biz_transactions"):
        out["bizTransactionList"] = [
            {"type": t["type"], "bizTransaction": biz_transaction_uri(t["type"], t["id"])}
            for t in ev["biz_transactions"]
        ]
    for key, list_key in (("sources", "source"), ("destinations", "destination")):
        if ev.get(key):
            out[f"{list_key}List"] = [
                {"type": s["type"], list_key: party_or_location_uri(s["type"], s["id"])}
                for s in ev[key]
            ]
    if (etype == "ObjectEvent" and ev["action"] == "ADD") or etype == "TransformationEvent":
        ilmd = _ilmd(ev["items"] if etype == "ObjectEvent" else ev.get("outputs", []))
        if ilmd:
            out["ilmd"] = ilmd
    out[f"{TW_PREFIX}:gatewayID"] = ev["gateway_id"]
    out[f"{TW_PREFIX}:seq"] = ev["seq"]
    out[f"{TW_PREFIX}:station"] = ev["station"]
    out[f"{TW_PREFIX}:movement"] = ev["movement"]
    if ev.get("reason"):
        out[f"{TW_PREFIX}:reason"] = ev["reason"]["code"]
    if ev.get("from_location"):
        out[f"{TW_PREFIX}:fromLocation"] = place_uri(
            ev["biz_location"] or ev["station"], site, ev["from_location"]
        )
    return out


@dataclass
class _Declaration:
    declarer: str
    time: str
    reason: str
    note: str | None
    corrective: list[str] = field(default_factory=list)


def _is_event(payload: Mapping[str, Any]) -> bool:
    header = payload.get("schema")
    return isinstance(header, Mapping) and header.get("name") == EVENT_SCHEMA["name"]


def to_epcis_events(
    events: Iterable[Mapping[str, Any]],
    *,
    strict: bool = True,
    originals: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The EPCIS event list for gateway payloads (non-events skipped, duplicates dropped).

    A correction re-issues the event it corrects; that event is looked up in ``events``
    and then in ``originals`` (events outside the exported range, e.g. before ``--since``,
    which are not exported themselves). With ``strict`` a correction of an event found in
    neither raises :class:`EpcisExportError`; otherwise that declaration is left out.
    """
    seen: set[str] = set()
    gateway_events: list[Mapping[str, Any]] = []
    for ev in events:
        if _is_event(ev) and ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            gateway_events.append(ev)
    converted = {
        ev["event_id"]: to_epcis_event(ev)
        for ev in originals
        if _is_event(ev) and ev["event_id"] not in seen
    }
    converted.update({ev["event_id"]: to_epcis_event(ev) for ev in gateway_events})
    declarations: dict[str, _Declaration] = {}
    declared_by: dict[str, list[str]] = {}
    for ev in gateway_events:
        for target in ev.get("corrects", ()):
            decl = declarations.setdefault(
                target,
                _Declaration(
                    ev["event_id"],
                    ev["event_time"],
                    ev["correction_reason"],
                    ev.get("correction_note"),
                ),
            )
            if converted[ev["event_id"]] is not None:
                decl.corrective.append(event_id_uri(ev["event_id"]))
            declared_by.setdefault(ev["event_id"], []).append(target)
    missing = [t for t in declarations if converted.get(t) is None]
    if missing and strict:
        raise EpcisExportError(
            "corrections refer to events not in the input: " + ", ".join(sorted(missing))
        )
    out: list[dict[str, Any]] = []
    for ev in gateway_events:
        own = converted[ev["event_id"]]
        if own is not None:
            out.append(own)
        for target in declared_by.get(ev["event_id"], []):
            original = converted.get(target)
            decl = declarations[target]
            if original is None or decl.declarer != ev["event_id"]:
                continue
            out.append(_with_declaration(original, decl))
    return out


def _with_declaration(original: Mapping[str, Any], decl: _Declaration) -> dict[str, Any]:
    declaration: dict[str, Any] = {"declarationTime": decl.time, "reason": decl.reason}
    if decl.corrective:
        declaration["correctiveEventIDs"] = list(dict.fromkeys(decl.corrective))
    if decl.note:
        declaration[f"{TW_PREFIX}:note"] = decl.note
    return {**original, "errorDeclaration": declaration}


def to_epcis_document(
    events: Iterable[Mapping[str, Any]],
    *,
    creation_date: datetime | None = None,
    strict: bool = True,
    originals: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """An EPCIS 2.0 ``EPCISDocument`` (JSON-LD) holding the events; see :func:`to_epcis_events`."""
    created = creation_date or datetime.now(UTC)
    body = to_epcis_events(events, strict=strict, originals=originals)
    return {
        "@context": [EPCIS_CONTEXT, {TW_PREFIX: TW_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_time(created),
        "epcisBody": {"eventList": body},
    }
