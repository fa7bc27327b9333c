"""A job's results as a file: CSV, JSON or XLSX bytes (pure functions, no I/O).

Results are a list of JSON objects. Tabular formats get one column per key, in the order
keys first appear; nested values (objects, lists) are written as their JSON text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import orjson
import xlsxwriter

XLSX_MAX_ROWS = 1_048_576  # Excel's sheet limit, header row included
XLSX_MAX_CELL_CHARS = 32_767
_EXACT_FLOAT_INT = 2**53  # larger integers would silently lose digits as Excel numbers


class ExportFormat(StrEnum):
    CSV = "CSV"
    JSON = "JSON"
    XLSX = "XLSX"


CONTENT_TYPES: dict[ExportFormat, str] = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXTENSIONS: dict[ExportFormat, str] = {
    ExportFormat.CSV: "csv",
    ExportFormat.JSON: "json",
    ExportFormat.XLSX: "xlsx",
}


class TooManyRows(ValueError):
    pass


def columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode("utf-8")


def render_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    header = columns(rows)
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_text(row.get(name)) for name in header])
    return out.getvalue().encode("utf-8")


def render_json(rows: Sequence[dict[str, Any]]) -> bytes:
    return orjson.dumps(list(rows))


def render_xlsx(rows: Sequence[dict[str, Any]]) -> bytes:
    if len(rows) + 1 > XLSX_MAX_ROWS:
        raise TooManyRows(f"an XLSX sheet holds at most {XLSX_MAX_ROWS - 1} result rows")
    header = columns(rows)
    buffer = io.BytesIO()
    # in_memory: the workbook is assembled in RAM, never in temporary files.
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "nan_inf_to_errors": True})
    sheet = workbook.add_worksheet("results")
    for col, name in enumerate(header):
        sheet.write_string(0, col, name[:XLSX_MAX_CELL_CHARS])
    for r, row in enumerate(rows, start=1):
        for col, name in enumerate(header):
            _write_cell(sheet, r, col, row.get(name))
    workbook.close()
    return buffer.getvalue()


def _write_cell(sheet: Any, row: int, col: int, value: Any) -> None:
    # Explicit writers: a string such as "=HYPERLINK(…)" must stay text, never a formula.
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, (int, float)) and abs(value) < _EXACT_FLOAT_INT:
        sheet.write_number(row, col, value)
    else:
        sheet.write_string(row, col, _text(value)[:XLSX_MAX_CELL_CHARS])


def render(export_format: ExportFormat, rows: Sequence[dict[str, Any]]) -> bytes:
    match export_format:
        case ExportFormat.CSV:
            return render_csv(rows)
        case ExportFormat.JSON:
            return render_json(rows)
        case ExportFormat.XLSX:
            return render_xlsx(rows)
