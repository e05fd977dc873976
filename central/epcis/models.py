"""Pure: the EPCIS 2.0 REST query parameters, page tokens, problem documents, and a
captured event normalised into the rows central keeps (no SQL here).

Query parameters follow the REST binding (``pipeDelimited`` lists, repeated parameters
are the same as ``|``); an unknown parameter, a malformed value or a forged page token is
a :class:`QueryParameterError` (``epcisException:QueryParameterException``, HTTP 400).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from central.epcis.uris import (
    KeyMatch,
    UriError,
    absolute_uri,
    cbv_param,
    cbv_short,
    location_key,
    parse_class,
    parse_epc,
    party_id,
)

EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)
ACTIONS = ("ADD", "OBSERVE", "DELETE")

#: Parameters that take a list (``a|b`` or repeated).
LIST_PARAMS = (
    "eventType",
    "EQ_action",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_bizLocation",
    "EQ_readPoint",
    "EQ_eventID",
    "MATCH_epc",
    "MATCH_anyEPC",
    "MATCH_epcClass",
    "MATCH_parentID",
    "MATCH_inputEPC",
    "MATCH_outputEPC",
)
TIME_PARAMS = ("GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime")
PAGING_PARAMS = ("perPage", "nextPageToken")
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 1000
MAX_VALUES = 100  # values per list parameter
TOKEN_LIFETIME = timedelta(hours=24)

QUERY_PARAMETER_EXCEPTION = "epcisException:QueryParameterException"
VALIDATION_EXCEPTION = "epcisException:ValidationException"


class QueryParameterError(ValueError):
    """A query the standard says to refuse with ``QueryParameterException``."""


def problem(kind: str, title: str, status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 7807 problem document as the EPCIS REST binding shapes its exceptions."""
    return {"type": kind, "title": title, "status": status, "detail": detail, **extra}


# -- query parameters ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A validated ``SimpleEventQuery`` (each field: None = not constrained)."""

    event_types: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    biz_steps: tuple[str, ...] | None = None
    dispositions: tuple[str, ...] | None = None
    biz_locations: tuple[str, ...] | None = None
    read_points: tuple[str, ...] | None = None
    event_ids: tuple[str, ...] | None = None
    epc: tuple[KeyMatch, ...] | None = None
    any_epc: tuple[KeyMatch, ...] | None = None
    epc_class: tuple[KeyMatch, ...] | None = None
    parent_id: tuple[KeyMatch, ...] | None = None
    input_epc: tuple[KeyMatch, ...] | None = None
    output_epc: tuple[KeyMatch, ...] | None = None
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    #: the parameters as given (name → values), for page tokens and Link headers
    params: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


_RFC3339 = re.compile(
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def rfc3339(value: str) -> datetime:
    """An RFC 3339 date-time (``T`` or ``t``, ``Z`` or ``z``, any number of fraction
    digits: beyond microseconds they are cut); ValueError otherwise."""
    m = _RFC3339.match(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time: {value[:60]!r}")
    frac = (m.group(3) or "")[:7]
    tz = "+00:00" if m.group(4) in ("Z", "z") else m.group(4)
    t = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{tz}")
    t.astimezone(UTC)  # OverflowError near the ends of the calendar
    return t


def parse_time(value: str, name: str = "time") -> datetime:
    """An RFC 3339 date-time with an offset (a ``+`` decoded as a space is put back)."""
    v = value.strip()
    if len(v) > 40:
        raise QueryParameterError(f"{name}: not an RFC 3339 date-time")
    m = re.match(r"^(.*T[0-9:.]+) ([0-9]{2}:?[0-9]{2})$", v)
    if m:
        v = f"{m.group(1)}+{m.group(2)}"
    if re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+$", v):
        raise QueryParameterError(f"{name}: {value[:60]!r} needs an offset (Z or +hh:mm)")
    try:
        return rfc3339(v)
    except ValueError:
        raise QueryParameterError(f"{name}: {value[:60]!r} is not an RFC 3339 date-time") from None
    except OverflowError:
        raise QueryParameterError(f"{name}: {value[:60]!r} is out of range") from None


def _split(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out.extend(p for p in v.split("|"))
    return out


def _check_text(name: str, v: str) -> None:
    if v == "":
        raise QueryParameterError(f"{name}: an empty value")
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise QueryParameterError(f"{name}: control characters are not allowed")


def _matches(name: str, values: Sequence[str], parse: Any) -> tuple[KeyMatch, ...]:
    out = []
    for v in values:
        try:
            out.append(parse(v))
        except UriError as exc:
            raise QueryParameterError(f"{name}: {exc}") from None
    return tuple(out)


def parse_query(pairs: Iterable[tuple[str, str]]) -> tuple[EventQuery, int, str | None]:
    """(query, perPage, nextPageToken) from the request's query string pairs."""
    grouped: dict[str, list[str]] = {}
    for k, v in pairs:
        grouped.setdefault(k, []).append(v)
    unknown = sorted(set(grouped) - set(LIST_PARAMS) - set(TIME_PARAMS) - set(PAGING_PARAMS))
    if unknown:
        raise QueryParameterError(
            f"unknown parameter {unknown[0][:60]!r} (this service answers "
            + ", ".join(LIST_PARAMS + TIME_PARAMS + PAGING_PARAMS)
            + ")"
        )
    per_page = DEFAULT_PER_PAGE
    if "perPage" in grouped:
        raw = grouped.pop("perPage")
        if len(raw) != 1 or not re.fullmatch(r"[0-9]{1,9}", raw[0]) or int(raw[0]) < 1:
            raise QueryParameterError("perPage: a positive whole number")
        per_page = min(int(raw[0]), MAX_PER_PAGE)
    token = None
    if "nextPageToken" in grouped:
        raw = grouped.pop("nextPageToken")
        if len(raw) != 1 or not raw[0]:
            raise QueryParameterError("nextPageToken: give it once")
        token = raw[0]
    return build_query({k: _split(v) for k, v in grouped.items()}), per_page, token


def build_query(params: Mapping[str, Sequence[str]]) -> EventQuery:
    """Validate the filter parameters (name → list of values)."""
    kw: dict[str, Any] = {}
    for name, values in params.items():
        if len(values) > MAX_VALUES:
            raise QueryParameterError(f"{name}: at most {MAX_VALUES} values")
        for v in values:
            _check_text(name, v)
        if name in TIME_PARAMS:
            if len(values) != 1:
                raise QueryParameterError(f"{name}: give one date-time")
            attr = {
                "GE_eventTime": "ge_event_time",
                "LT_eventTime": "lt_event_time",
                "GE_recordTime": "ge_record_time",
                "LT_recordTime": "lt_record_time",
            }[name]
            kw[attr] = parse_time(values[0], name)
        elif name == "eventType":
            for v in values:
                if v not in EVENT_TYPES:
                    raise QueryParameterError(
                        f"eventType: {v[:60]!r} is not one of {', '.join(EVENT_TYPES)}"
                    )
            kw["event_types"] = tuple(values)
        elif name == "EQ_action":
            for v in values:
                if v not in ACTIONS:
                    raise QueryParameterError(
                        f"EQ_action: {v[:60]!r} is not ADD, OBSERVE or DELETE"
                    )
            kw["actions"] = tuple(values)
        elif name in ("EQ_bizStep", "EQ_disposition"):
            vocab: Literal["bizstep", "disp"] = "bizstep" if name == "EQ_bizStep" else "disp"
            try:
                norm = tuple(cbv_param(v, vocab) for v in values)
            except UriError as exc:
                raise QueryParameterError(f"{name}: {exc} (nor a CBV bare word)") from None
            kw["biz_steps" if vocab == "bizstep" else "dispositions"] = norm
        elif name in ("EQ_bizLocation", "EQ_readPoint"):
            try:
                places = tuple(location_key(v) for v in values)
            except UriError as exc:
                raise QueryParameterError(f"{name}: {exc}") from None
            kw["biz_locations" if name == "EQ_bizLocation" else "read_points"] = places
        elif name == "EQ_eventID":
            try:
                kw["event_ids"] = tuple(absolute_uri(v, "eventID") for v in values)
            except UriError as exc:
                raise QueryParameterError(f"EQ_eventID: {exc}") from None
        elif name == "MATCH_epcClass":
            kw["epc_class"] = _matches(name, values, parse_class)
        else:
            attr = {
                "MATCH_epc": "epc",
                "MATCH_anyEPC": "any_epc",
                "MATCH_parentID": "parent_id",
                "MATCH_inputEPC": "input_epc",
                "MATCH_outputEPC": "output_epc",
            }[name]
            kw[attr] = _matches(name, values, parse_epc)
    canon = tuple(sorted((k, tuple(v)) for k, v in params.items()))
    return EventQuery(**kw, params=canon)


# -- page tokens ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last event's (event_time, ref, source)."""

    event_time: datetime
    ref: str
    source: str


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode("ascii").rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sign(secret: bytes, kind: str, body: Mapping[str, Any], now: datetime) -> tuple[str, datetime]:
    """An opaque page token: ``body`` with its kind and expiry, HMAC-SHA256 signed."""
    expires = (now + TOKEN_LIFETIME).astimezone(UTC).replace(microsecond=0)
    payload = {**body, "k": kind, "x": int(expires.timestamp())}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sig = hmac.new(secret, raw, hashlib.sha256).digest()
    return f"{_b64(raw)}.{_b64(sig)}", expires


def unsign(secret: bytes, kind: str, token: str, now: datetime) -> dict[str, Any]:
    """The body of a token :func:`sign` made for ``kind`` (QueryParameterError otherwise)."""
    bad = QueryParameterError("nextPageToken: not a token this service issued (or altered)")
    if len(token) > 20_000 or token.count(".") != 1:
        raise bad
    body_b64, sig_b64 = token.split(".")
    try:
        raw, sig = _unb64(body_b64), _unb64(sig_b64)
    except (ValueError, TypeError):
        raise bad from None
    if not hmac.compare_digest(sig, hmac.new(secret, raw, hashlib.sha256).digest()):
        raise bad
    try:
        body = json.loads(raw)
        expires = int(body["x"])
        ok = isinstance(body, dict) and body["k"] == kind
    except (ValueError, KeyError, TypeError):
        raise bad from None
    if not ok:
        raise QueryParameterError("nextPageToken: a token of another listing")
    if expires < now.timestamp():
        raise QueryParameterError("nextPageToken: expired; run the query again")
    return dict(body)


def encode_token(
    secret: bytes, query: EventQuery, after: Cursor, now: datetime
) -> tuple[str, datetime]:
    """An opaque token for the page after ``after`` (signed; binds the query); its expiry."""
    body = {
        "q": [[k, list(v)] for k, v in query.params],
        "a": [after.event_time.astimezone(UTC).isoformat(), after.ref, after.source],
    }
    return sign(secret, "events", body, now)


def decode_token(secret: bytes, token: str, now: datetime) -> tuple[dict[str, list[str]], Cursor]:
    """The query parameters and cursor of a token made by :func:`encode_token`."""
    body = unsign(secret, "events", token, now)
    try:
        t, ref, src = body["a"]
        params = {str(k): [str(x) for x in v] for k, v in body["q"]}
        return params, Cursor(datetime.fromisoformat(t), str(ref), str(src))
    except (ValueError, KeyError, TypeError):
        raise QueryParameterError("nextPageToken: not a token of this query") from None


# -- captured events -----------------------------------------------------------------------

#: Namespace of the ids central derives (event refs from eventIDs, assigned eventIDs).
NAMESPACE = uuid.UUID("6f1c2d4e-8a5b-5c3d-9e7f-0a1b2c3d4e5f")


class CaptureError(ValueError):
    """A captured document whose content central cannot take (the message says where)."""


@dataclass(frozen=True, slots=True)
class ItemOut:
    """One row of ``event_items`` for a captured event."""

    role: str  # item | input | output
    gtin: str | None
    lot: str | None
    serial: str | None
    sscc: str | None
    quantity: Decimal | None
    uom: str | None


@dataclass(frozen=True, slots=True)
class CapturedEvent:
    """A captured EPCIS event as central keeps it."""

    ref: str  # 36-character id used in event_items and lineage
    event_id: str
    event_time: datetime
    event_type: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    biz_location: str | None
    read_point: str | None
    parent: KeyMatch | None
    parent_uri: str | None
    source: tuple[str, str] | None
    destination: tuple[str, str] | None
    transformation_id: str | None
    items: tuple[ItemOut, ...]
    payload: dict[str, Any]

    @property
    def movement(self) -> str:
        """How trace names it: the CBV business step, or the event type."""
        if self.biz_step and "/" not in self.biz_step and ":" not in self.biz_step:
            return self.biz_step
        return self.event_type


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces: the same event gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_events(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The event list of an ``EPCISDocument`` or an ``EPCISQueryDocument``."""
    body = doc.get("epcisBody") or {}
    if doc.get("type") == "EPCISQueryDocument":
        body = (body.get("queryResults") or {}).get("resultsBody") or {}
    events = body.get("eventList") or []
    return [e for e in events if isinstance(e, Mapping)]


def event_ref(event_id: str) -> str:
    """The 36-character id of an eventID: its UUID for ``urn:uuid:``, else a UUIDv5."""
    if event_id.lower().startswith("urn:uuid:"):
        try:
            return str(uuid.UUID(event_id[9:]))
        except ValueError:
            pass
    return str(uuid.uuid5(NAMESPACE, event_id))


def _place(entries: Any, kinds: Sequence[str]) -> tuple[str, str] | None:
    """The first source/destination of the preferred kinds as (party|location, id)."""
    if not isinstance(entries, list):
        return None
    for want in kinds:
        for e in entries:
            if not isinstance(e, Mapping):
                continue
            t = str(e.get("type", ""))
            ident = e.get("source") or e.get("destination")
            if isinstance(ident, str) and t.endswith(want):
                return ("location" if want == "location" else "party", party_id(ident))
    return None


def _epc_items(role: str, uris: Any, where: str) -> list[ItemOut]:
    out: list[ItemOut] = []
    for n, uri in enumerate(uris or ()):
        try:
            m = parse_epc(str(uri), pattern=False)
        except UriError as exc:
            raise CaptureError(f"{where}[{n}]: {exc}") from None
        if m.kind == "serial":
            out.append(ItemOut(role, m.gtin, None, m.serial, None, None, None))
        elif m.kind == "sscc":
            out.append(ItemOut(role, None, None, None, m.sscc, None, None))
    return out


def _quantity_items(role: str, elements: Any, where: str) -> list[ItemOut]:
    out: list[ItemOut] = []
    for n, q in enumerate(elements or ()):
        try:
            m = parse_class(str(q.get("epcClass")), pattern=False)
        except UriError as exc:
            raise CaptureError(f"{where}[{n}].epcClass: {exc}") from None
        if m.kind != "class" or m.gtin is None:
            continue
        qty = q.get("quantity")
        try:
            quantity = Decimal(str(qty)) if qty is not None else None
        except InvalidOperation:
            raise CaptureError(f"{where}[{n}].quantity: not a number") from None
        if quantity is not None and not quantity.is_finite():
            raise CaptureError(f"{where}[{n}].quantity: not a finite number")
        uom = q.get("uom")
        out.append(ItemOut(role, m.gtin, m.lot, None, None, quantity, str(uom) if uom else None))
    return out


def normalise_event(ev: Mapping[str, Any], index: int, context: Any = None) -> CapturedEvent:
    """A schema-valid EPCIS event as central keeps it (CaptureError: where and why not).

    An event without an ``eventID`` gets ``urn:uuid:{UUIDv5 of its canonical JSON}``, so
    the same document captured twice stores its events once.
    """
    where = f"eventList[{index}]"
    payload = dict(ev)
    if "eventID" not in payload:
        payload["eventID"] = f"urn:uuid:{uuid.uuid5(NAMESPACE, canonical_json(ev))}"
    if context is not None and "@context" not in payload:
        payload["@context"] = context
    event_id = str(payload["eventID"])
    try:
        event_time = rfc3339(str(ev["eventTime"]))
    except (KeyError, ValueError, OverflowError):
        raise CaptureError(f"{where}.eventTime: not a date-time with an offset") from None
    etype = str(ev["type"])
    try:
        biz_location = (
            location_key(ev["bizLocation"]["id"])
            if isinstance(ev.get("bizLocation"), Mapping) and "id" in ev["bizLocation"]
            else None
        )
        read_point = (
            location_key(ev["readPoint"]["id"])
            if isinstance(ev.get("readPoint"), Mapping) and "id" in ev["readPoint"]
            else None
        )
    except UriError as exc:
        raise CaptureError(f"{where}: {exc}") from None
    parent = None
    parent_uri = ev.get("parentID")
    if isinstance(parent_uri, str):
        try:
            parent = parse_epc(parent_uri, pattern=False)
        except UriError as exc:
            raise CaptureError(f"{where}.parentID: {exc}") from None
    items: list[ItemOut] = []
    transformation_id = None
    if etype == "TransformationEvent":
        items += _epc_items("input", ev.get("inputEPCList"), f"{where}.inputEPCList")
        items += _quantity_items("input", ev.get("inputQuantityList"), f"{where}.inputQuantityList")
        items += _epc_items("output", ev.get("outputEPCList"), f"{where}.outputEPCList")
        items += _quantity_items(
            "output", ev.get("outputQuantityList"), f"{where}.outputQuantityList"
        )
        tid = ev.get("transformationID")
        transformation_id = str(tid) if tid else f"urn:uuid:{event_ref(event_id)}"
    elif etype in EVENT_TYPES:
        epcs = "epcList" if etype in ("ObjectEvent", "TransactionEvent") else "childEPCs"
        qtys = "quantityList" if epcs == "epcList" else "childQuantityList"
        items += _epc_items("item", ev.get(epcs), f"{where}.{epcs}")
        items += _quantity_items("item", ev.get(qtys), f"{where}.{qtys}")
    source = _place(ev.get("sourceList"), ("possessing_party", "owning_party", "location"))
    destination = _place(
        ev.get("destinationList"), ("possessing_party", "owning_party", "location")
    )
    if destination is None and biz_location is not None:
        destination = ("location", party_id(biz_location))
    action = ev.get("action")
    return CapturedEvent(
        ref=event_ref(event_id),
        event_id=event_id,
        event_time=event_time,
        event_type=etype,
        action=str(action) if action else None,
        biz_step=cbv_short(str(ev["bizStep"]), "bizstep") if ev.get("bizStep") else None,
        disposition=(cbv_short(str(ev["disposition"]), "disp") if ev.get("disposition") else None),
        biz_location=biz_location,
        read_point=read_point,
        parent=parent,
        parent_uri=parent_uri if isinstance(parent_uri, str) else None,
        source=source,
        destination=destination,
        transformation_id=transformation_id,
        items=tuple(items),
        payload=payload,
    )


def document_context(doc: Mapping[str, Any]) -> Any:
    """The document's ``@context`` when it defines more than the EPCIS context (prefixes of
    extension fields), so each stored event keeps the meaning of its own fields."""
    ctx = doc.get("@context")
    items = ctx if isinstance(ctx, list) else [ctx]
    if any(isinstance(c, Mapping) for c in items) or len(items) > 1:
        return ctx
    return None
