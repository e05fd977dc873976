"""A plant's day for the FSMA 204 tests: receive tomatoes, make salsa of them, ship the salsa.

At plant-1 (its GLN is GLN_SITE): 100 kg of tomatoes lot TOM-1 arrive from the supplier
(PO-1, despatch advice ASN-7) on 2026-11-23; 60 kg go into batch BATCH-42, which makes 30
jars of salsa lot SAL-1 (the line reports the output in an event of its own, production
order WO-9); 20 jars ship to the customer (BOL-5) and 5 more on pallet SSCC_1 (packed,
then shipped whole, BOL-6). A put-away (not a CTE) and a receipt on 2026-11-25 (outside
the range the tests ask for) are in the data too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mqtt_topics.examples import (
    GLN_CUSTOMER,
    GLN_SITE,
    GLN_SUPPLIER,
    GTIN_A,
    GTIN_B,
    GTIN_C,
    SSCC_1,
    event,
)
from mqtt_topics.validation import validate

TOMATO, SALSA, OTHER = GTIN_B, GTIN_C, GTIN_A
SITE = "plant-1"
NOW = datetime(2026, 12, 1, tzinfo=UTC)

SITES_CSV = (
    "site,name,gln,street,city,region,postal_code,country,phone\n"
    f"{SITE},Acme Salsa Plant,{GLN_SITE},1 Canal St,Salinas,CA,93901,US,+1 831 555 0100\n"
)
PARTNERS_CSV = (
    "party,name,street,city,region,postal_code,country,phone\n"
    f"{GLN_SUPPLIER},Sunny Farms,9 Field Rd,Yuma,AZ,85364,US,+1 928 555 0199\n"
    # the customer's phone is not known: the spreadsheet says so
    f"{GLN_CUSTOMER},Corner Grocer,5 Main St,Reno,NV,89501,US,\n"
)
PRODUCTS_CSV = (
    "gtin,tracking,description,product_name,brand,commodity,variety,pack_size,pack_style\n"
    f"{TOMATO},lot,Tomatoes,Roma tomatoes,Sunny,Tomatoes,Roma,25 lb,carton\n"
    f"{SALSA},lot,Salsa,Fresh salsa,Acme,Tomatoes,n/a,16 oz,jar\n"
)
LOTS_CSV = f"gtin,lot,tlc_source,tlc_source_reference\n{TOMATO},TOM-1,{GLN_SUPPLIER},\n"


def _item(gtin: str, lot: str, q: float, uom: str, src: Any, dst: Any) -> dict[str, Any]:
    def place(p: str | None) -> dict[str, str] | None:
        if p is None:
            return None
        kind, _, ident = p.partition(":")
        return {"type": kind, "id": ident}

    return {
        "gtin": gtin,
        "lot": lot,
        "quantity": q,
        "uom": uom,
        "from": place(src),
        "to": place(dst),
    }


def _at(ev: dict[str, Any], day: int, hour: int) -> dict[str, Any]:
    local = datetime(2026, 11, day, hour, 0, tzinfo=ev_tz()) + timedelta(milliseconds=ev["seq"])
    ev.update(site=SITE, event_time=local.isoformat(timespec="milliseconds"))
    return ev


def ev_tz() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=-8))  # the plant's local time (PST)


def plant_day() -> list[dict[str, Any]]:
    """The day's events (validated payloads)."""
    supplier, customer = f"party:{GLN_SUPPLIER}", f"party:{GLN_CUSTOMER}"
    evs = [
        _at(
            event(
                101,
                "receive",
                [_item(TOMATO, "TOM-1", 100, "KGM", supplier, "location:DOCK")],
                0,
                biz_transactions=[{"type": "po", "id": "PO-1"}, {"type": "desadv", "id": "ASN-7"}],
                sources=[{"type": "owning_party", "id": GLN_SUPPLIER}],
                location="DOCK",
            ),
            23,
            7,
        ),
        _at(
            event(
                102,
                "putaway",
                [_item(TOMATO, "TOM-1", 100, "KGM", "location:DOCK", "location:COLD")],
                0,
                station="store-1",
                location="COLD",
                from_location="DOCK",
            ),
            23,
            8,
        ),
        _at(
            event(
                103,
                "consume",
                [],
                0,
                station="line-1",
                inputs=[_item(TOMATO, "TOM-1", 60, "KGM", "location:COLD", None)],
                transformation_id="BATCH-42",
            ),
            23,
            9,
        ),
        _at(
            event(
                104,
                "consume",
                [],
                0,
                station="line-1",
                outputs=[_item(SALSA, "SAL-1", 30, "EA", None, "location:PROD")],
                transformation_id="BATCH-42",
                biz_transactions=[{"type": "prodorder", "id": "WO-9"}],
            ),
            23,
            11,
        ),
        _at(
            event(
                105,
                "ship",
                [_item(SALSA, "SAL-1", 20, "EA", "location:PROD", customer)],
                0,
                station="dock-2",
                biz_transactions=[{"type": "bol", "id": "BOL-5"}],
                destinations=[{"type": "owning_party", "id": GLN_CUSTOMER}],
            ),
            23,
            14,
        ),
        _at(
            event(
                106,
                "pack",
                [_item(SALSA, "SAL-1", 5, "EA", "location:PROD", "location:PROD")],
                0,
                station="pack-1",
                location="PROD",
                parent={"sscc": SSCC_1},
            ),
            23,
            15,
        ),
        _at(
            event(
                107,
                "ship",
                [
                    {
                        "sscc": SSCC_1,
                        "from": {"type": "location", "id": "PROD"},
                        "to": {"type": "party", "id": GLN_CUSTOMER},
                    }
                ],
                0,
                station="dock-2",
                biz_transactions=[{"type": "bol", "id": "BOL-6"}],
            ),
            23,
            16,
        ),
        _at(
            event(
                108,
                "receive",
                [_item(OTHER, "LATE-1", 3, "EA", supplier, "location:DOCK")],
                0,
                biz_transactions=[{"type": "po", "id": "PO-2"}],
            ),
            25,
            7,
        ),
    ]
    for ev in evs:
        assert validate(ev) == [], (ev["seq"], validate(ev))
    return evs
