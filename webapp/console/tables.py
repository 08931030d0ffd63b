"""What every console chart is made of: a table of numbers, drawn, shown and downloadable as CSV.

A page builds :class:`Table` objects once; the template shows each as an HTML table, a
:class:`Chart` draws one from the same rows (static/console.js with the vendored Chart.js), and
``?csv=<table name>`` downloads exactly those rows (:func:`respond`). One source, so the chart,
the table and the file cannot disagree.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Response, abort, g, render_template, request

from tracking.spreadsheet import safe_cell

# Formats a cell for the HTML table: text, int, money, pct (a share 0..1), float, date.
KINDS = ("text", "int", "money", "pct", "float", "date")


@dataclass(frozen=True)
class Column:
    """One column: its key in each row, its header, how to format it."""

    key: str
    label: str
    kind: str = "text"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class Chart:
    """A chart of a table: ``x`` is a column key, ``series`` the column keys drawn against it."""

    kind: str  # "line" or "bar"
    x: str
    series: tuple[str, ...]
    stacked: bool = False
    horizontal: bool = False


@dataclass
class Table:
    """Rows of numbers with a name (the CSV's), a title, columns and, optionally, a chart."""

    name: str
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    chart: Chart | None = None
    note: str = ""
    empty: str = "No data in this period."
    links: dict[str, Callable[[dict[str, Any]], str]] = field(default_factory=dict)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9_]+", self.name):
            raise ValueError(f"table name {self.name!r}: lower-case letters, digits, _ only")

    def chart_data(self) -> dict[str, Any] | None:
        """The chart's description for static/console.js (JSON in the page, no inline script)."""
        if self.chart is None or not self.rows:
            return None
        labels = {c.key: c.label for c in self.columns}
        kinds = {c.key: c.kind for c in self.columns}
        return {
            "kind": self.chart.kind,
            "stacked": self.chart.stacked,
            "horizontal": self.chart.horizontal,
            "title": self.title,
            "labels": [_plain(row.get(self.chart.x)) for row in self.rows],
            "series": [
                {
                    "label": labels.get(key, key),
                    "kind": kinds.get(key, "float"),
                    "values": [_number(row.get(key)) for row in self.rows],
                }
                for key in self.chart.series
            ],
        }

    def csv(self) -> str:
        """Exactly the table's rows under one header line, unformatted (dot decimals, ISO dates)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([c.label for c in self.columns])
        for row in self.rows:
            writer.writerow([_csv_cell(row.get(c.key), c.kind) for c in self.columns])
        return out.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return "" if value is None else value


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _csv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, float) and kind in ("pct", "float"):
        return repr(round(value, 6))
    return safe_cell(value) if kind == "text" else str(value)


def format_cell(value: Any, kind: str) -> str:
    """The HTML table's text for a cell (the template escapes it)."""
    if value is None:
        return "–"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "money":
        return f"{Decimal(value):,.2f}"
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "float":
        return f"{float(value):,.3f}"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def kpi(label: str, value: Any, previous: Any = None, kind: str = "int", compare: bool = True):
    """A KPI card: the value, the previous period's and the relative change (None if undefined)."""
    change = None
    if compare and value is not None and previous:
        change = float(value) / float(previous) - 1.0
    return {
        "label": label,
        "value": value,
        "previous": previous,
        "kind": kind,
        "compare": compare,
        "change": change,
    }


def csv_response(table: Table) -> Response:
    """The table as a CSV download named after the site, the table and the period."""
    site = getattr(g, "site", None)
    period = getattr(g, "period", None)
    parts = [f"site{site.site_id}" if site else "ecrm", table.name]
    if period is not None:
        parts += [period.start.isoformat(), period.end.isoformat()]
    response = Response(table.csv(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{"-".join(parts)}.csv"'
    return response


def respond(template: str, tables: Sequence[Table] = (), **context: Any):
    """Render the page, or with ``?csv=NAME`` download that table of it (404 if it has none)."""
    wanted = request.args.get("csv")
    if wanted is not None:
        for table in tables:
            if table.name == wanted:
                return csv_response(table)
        abort(404, f"this page has no table named {wanted[:40]!r}")
    return render_template(template, tables={t.name: t for t in tables}, **context)
