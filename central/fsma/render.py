"""The report as an XLSX workbook (one sheet per CTE) or as one CSV (a CTE column first).

XLSX: the sheets of ``SHEETS`` with the headers of ``COLUMNS``, one row per KDE set, one
value per cell (dates as dates, quantities as numbers, everything else as text, never a
formula; a control character XLSX cannot hold shows as U+FFFD), no merged cells, the
header row frozen and an autofilter over every column so the sheet sorts and filters as
it is. CSV: one file, the column ``Critical Tracking
Event`` (Receiving, Shipping, Transformation) and then the columns of all three sheets;
a column that does not belong to a row's CTE is empty on that row. Dates are ISO 8601.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from central.fsma.build import Cell, Report
from central.fsma.columns import COLUMNS, CSV_COLUMNS, CSV_CTE, SHEETS
from central.fsma.model import FsmaError

#: Rows an XLSX sheet holds besides its header (Excel's limit is 1 048 576 rows).
MAX_SHEET_ROWS = 1_048_575
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"


def to_xlsx(report: Report, title: str = "FSMA 204 electronic sortable spreadsheet") -> bytes:
    """The workbook's bytes (written row by row: openpyxl's write-only mode); FsmaError when
    a sheet would hold more rows than a spreadsheet program opens."""
    for name in SHEETS:
        if len(report.rows[name]) > MAX_SHEET_ROWS:
            raise FsmaError(
                f"{len(report.rows[name])} {name} rows do not fit one sheet (at most "
                f"{MAX_SHEET_ROWS}): narrow the dates or lots, or ask for CSV"
            )
    wb = Workbook(write_only=True)
    wb.properties.title = title
    wb.properties.creator = "traceway-central"
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for name in SHEETS:
        ws = wb.create_sheet(name)
        headers = COLUMNS[name]
        rows = report.rows[name]
        last = get_column_letter(len(headers))
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{last}{max(len(rows) + 1, 2)}"
        for i, h in enumerate(headers, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(14, min(40, len(h) // 2))
        head = []
        for h in headers:
            cell = WriteOnlyCell(ws, h)
            cell.font, cell.alignment = bold, wrap
            head.append(cell)
        ws.append(head)
        for row in rows:
            ws.append([_cell(ws, v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _cell(ws: Any, value: Cell) -> Any:
    if isinstance(value, str) and ILLEGAL_CHARACTERS_RE.search(value):
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)  # XLSX cannot hold them: shown as �
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(ws, value)
        cell.data_type = "s"  # text that looks like a formula stays text
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(ws, value)
        cell.number_format = "yyyy-mm-dd"
        return cell
    return value


def _text(v: Cell) -> str:
    return v.isoformat() if isinstance(v, date) else str(v)


def to_csv(report: Report) -> str:
    """One CSV: the CTE, then every sheet's columns (empty where they do not apply)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for name in SHEETS:
        headers = COLUMNS[name]
        for row in report.rows[name]:
            by_column = dict(zip(headers, row, strict=True))
            w.writerow(
                [
                    name if c == CSV_CTE else _text(by_column[c]) if c in by_column else ""
                    for c in CSV_COLUMNS
                ]
            )
    return out.getvalue()
