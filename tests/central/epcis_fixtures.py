"""Shared by the EPCIS tests: the official schema, an API with tokens, a supplier document."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator, FormatChecker
from sqlalchemy import Engine

from central.api.app import create_app
from central.api.tokens import DbTokenStore, new_token
from central.custody.projection import store_events
from central.epcis.schema import Validate, load_validator, schema_file
from gs1.keys import check_digit
from mqtt_topics.examples import scripted_day

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


def _with_cd(body: str) -> str:
    return body + str(check_digit(body))


SUPPLIER_GLN = _with_cd("409876500000")
OUR_GLN = _with_cd("401234500000")
#: the supplier's product and lot, and their pallet
SUP_GTIN = _with_cd("0409876501234")  # company prefix 4098765, item reference 001234
SUP_LOT = "SL-77"
SUP_SSCC = _with_cd("34098765000000007")  # urn:epc:id:sscc:4098765.3000000007


def official_validator() -> Validate:
    """The official EPCIS 2.0 schema (skips the test without it, fails in CI)."""
    validate = load_validator()
    if validate is None:
        msg = (
            "official EPCIS 2.0 JSON Schema not found: run `.ci/fetch-epcis-schema` "
            "(or set TRACEWAY_EPCIS_SCHEMA to the schema file or its directory)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return validate


def schema_check(doc: Any) -> list[str]:
    """Errors of ``doc`` under the official schema, format checking on (as tests/test_epcis)."""
    import json

    p = schema_file()
    assert p is not None
    v = Draft7Validator(json.loads(p.read_text(encoding="utf-8")), format_checker=FormatChecker())
    assert {"uri", "date-time"} <= set(v.format_checker.checkers)  # type: ignore[union-attr]
    return [f"{list(e.path)}: {e.message}" for e in v.iter_errors(doc)]


@dataclass
class Api:
    client: TestClient
    h: dict[str, dict[str, str]]
    engine: Engine


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    validate = official_validator()
    store = DbTokenStore(engine)
    headers = {}
    for role in ("viewer", "recall-manager", "admin"):
        token, row = new_token(f"t-{role}", role)
        store.add(row)
        headers[role] = {"Authorization": f"Bearer {token}"}
    with engine.begin() as c:
        store_events(c, scripted_day(), NOW)
    app = create_app(engine, store, clock=lambda: NOW, epcis_validator=validate)
    with TestClient(app) as client:
        yield Api(client, headers, engine)


def supplier_document(
    event_id: str = "urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-000000000001",
) -> dict[str, Any]:
    """A supplier's EPCIS 2.0 document: they pack lot SL-77 on a pallet and ship it to us."""
    sup_party = f"https://id.gs1.org/417/{SUPPLIER_GLN}"
    return {
        "@context": [EPCIS_CONTEXT, {"sup": "https://supplier.example.com/epcis/"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-20T08:00:00Z",
        "epcisBody": {
            "eventList": [
                {
                    "type": "AggregationEvent",
                    "eventID": "urn:uuid:6a0c4a8e-2f6b-4c3e-9d51-0000000000a0",
                    "eventTime": "2026-11-20T06:00:00.000+01:00",
                    "eventTimeZoneOffset": "+01:00",
                    "parentID": "urn:epc:id:sscc:4098765.3000000007",
                    "childQuantityList": [
                        {
                            "epcClass": f"urn:epc:class:lgtin:4098765.001234.{SUP_LOT}",
                            "quantity": 48,
                        }
                    ],
                    "action": "ADD",
                    "bizStep": "packing",
                    "disposition": "in_progress",
                    "bizLocation": {"id": "urn:epc:id:sgln:4098765.00000.0"},
                    "sup:line": "L3",
                },
                {
                    "type": "ObjectEvent",
                    "eventID": event_id,
                    "eventTime": "2026-11-20T07:30:00.000+01:00",
                    "eventTimeZoneOffset": "+01:00",
                    "epcList": ["urn:epc:id:sscc:4098765.3000000007"],
                    "quantityList": [
                        {
                            "epcClass": f"https://id.gs1.org/01/{SUP_GTIN}/10/{SUP_LOT}",
                            "quantity": 48,
                        }
                    ],
                    "action": "OBSERVE",
                    "bizStep": "shipping",
                    "disposition": "in_transit",
                    "readPoint": {"id": "urn:epc:id:sgln:4098765.00000.dock2"},
                    "bizTransactionList": [
                        {
                            "type": "desadv",
                            "bizTransaction": "urn:epcglobal:cbv:bt:4098765000000:DA-1",
                        }
                    ],
                    "sourceList": [{"type": "owning_party", "source": sup_party}],
                    "destinationList": [
                        {"type": "owning_party", "destination": f"https://id.gs1.org/417/{OUR_GLN}"}
                    ],
                },
            ]
        },
    }
