"""The columns of FDA's electronic sortable spreadsheet, per critical tracking event (CTE).

Source: FDA's template "FSMAFoodTraceability-ElectronicSortableSpreadsheet" (June 2024,
https://www.fda.gov/media/179617/download; PDF rendering
https://www.fda.gov/media/179616/download), tabs "Receiving", "Shipping" and
"Transformation". The number, grouping and order of the columns below follow the
template's cells: Receiving and Shipping A–AJ (TLC; quantity; unit of measure; product
description in six parts; the partner's location description in seven parts; our
location in seven parts; the date; the TLC source location in seven parts; the TLC source
reference; two reference document type/number pairs), Transformation A–AE (the input
food: TLC, description, quantity, unit; the new TLC; the transformation location; the TLC
source reference; the date; the new food: description, quantity, unit; two reference
document pairs). That layout was taken from a public cell-by-cell mapping of the
template; the template file itself could not be downloaded where this was written (no
route to fda.gov), so the header wording is the KDE wording of 21 CFR 1.1340 (shipping),
1.1345 (receiving) and 1.1350 (transformation), not a verified copy of the template's
text. Check it against the template and change only these constants if it differs.
"""

from __future__ import annotations

#: Tab names, in the template's order.
RECEIVING, SHIPPING, TRANSFORMATION = "Receiving", "Shipping", "Transformation"
SHEETS = (SHIPPING, RECEIVING, TRANSFORMATION)

PRODUCT_PARTS = (
    "Product Name",
    "Brand Name",
    "Commodity",
    "Variety",
    "Packaging Size",
    "Packaging Style",
)
PLACE_PARTS = (
    "Business Name",
    "Phone Number",
    "Street Address or Geographic Coordinates",
    "City",
    "State or Region",
    "Zip or Postal Code",
    "Country",
)
DOCUMENTS = (
    "Reference Document Type (1)",
    "Reference Document Number (1)",
    "Reference Document Type (2)",
    "Reference Document Number (2)",
)
TLC = "Traceability Lot Code (TLC)"
TLC_SOURCE = "Traceability Lot Code Source Location Description"
TLC_SOURCE_REFERENCE = "Traceability Lot Code Source Reference"


def _product(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}: {p}" for p in PRODUCT_PARTS)


def _place(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}: {p}" for p in PLACE_PARTS)


def _cte(partner: str, own: str, date: str) -> tuple[str, ...]:
    return (
        TLC,
        "Quantity",
        "Unit of Measure",
        *_product("Product Description"),
        *_place(partner),
        *_place(own),
        date,
        *_place(TLC_SOURCE),
        TLC_SOURCE_REFERENCE,
        *DOCUMENTS,
    )


COLUMNS: dict[str, tuple[str, ...]] = {
    RECEIVING: _cte(
        "Immediate Previous Source Location Description",
        "Receiving Location Description",
        "Date Received",
    ),
    SHIPPING: _cte(
        "Immediate Subsequent Recipient Location Description",
        "Ship-From Location Description",
        "Date Shipped",
    ),
    TRANSFORMATION: (
        "Input Traceability Lot Code (TLC)",
        *_product("Input Product Description"),
        "Input Quantity Used",
        "Input Unit of Measure",
        "New Traceability Lot Code (TLC)",
        *_place("Transformation Location Description (TLC Source)"),
        TLC_SOURCE_REFERENCE,
        "Date Transformation Completed",
        *_product("New Product Description"),
        "New Product Quantity",
        "New Product Unit of Measure",
        *DOCUMENTS,
    ),
}

#: The one CSV: the CTE, then every column of the three tabs (first appearance order).
CSV_CTE = "Critical Tracking Event"
CSV_COLUMNS: tuple[str, ...] = (
    CSV_CTE,
    *dict.fromkeys(c for s in (RECEIVING, SHIPPING, TRANSFORMATION) for c in COLUMNS[s]),
)
