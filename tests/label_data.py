"""Field values for every built-in template: representative, maximum-length and minimal."""

from __future__ import annotations

#: Twenty characters, none a digit: the longest Code 128 and DataMatrix for an AI (10)/(21).
LONG = "AbCdEfGhIjKlMnOpQrSt"

DATA: dict[str, dict[str, dict[str, str]]] = {
    "lot": {
        "representative": {
            "gtin": "09501101530003",
            "lot": "L2409-A",
            "expiry": "2027-01-31",
            "quantity": "12",
            "description": "Paracetamol 500 mg",
        },
        "maximum": {
            "gtin": "09506000134369",
            "lot": "LoTaBcDeFgHiJkLmNoPq",
            "expiry": "2027-01-31",
            "quantity": "99999999",
            "description": "D" * 80,
        },
        "no expiry": {"gtin": "09506000134369", "lot": "GLOVES-7"},
    },
    "serial": {
        "representative": {
            "gtin": "09501101530003",
            "serial": "SN1001",
            "lot": "PUMPLOT1",
            "expiry": "270131",
            "description": "Infusion pump",
        },
        "maximum": {
            "gtin": "09506000134369",
            "serial": LONG,
            "lot": "LoTaBcDeFgHiJkLmNoPq",
            "expiry": "2027-01-31",
            "description": "D" * 80,
        },
        "underscore and >": {"gtin": "09501101530003", "serial": "SN_ABCDEFGHIJ012345>"},
        "minimal": {"gtin": "09501101530003", "serial": "1"},
    },
    "sscc": {
        "representative": {
            "sscc": "376104250021234569",
            "gtin": "09501101530003",
            "count": "48",
            "lot": "L2409-A",
        },
        "maximum": {
            "sscc": "376104250021234569",
            "gtin": "09506000134369",
            "count": "99999999",
            "lot": "LoTaBcDeFgHiJkLmNoPq",
        },
        "minimal": {"sscc": "376104250021234569"},
    },
}


def cases() -> list[tuple[str, str]]:
    """(template, data set) pairs."""
    return [(name, kind) for name, sets in sorted(DATA.items()) for kind in sets]
