"""Read a rendered report back: the embedded JSON blocks and the visible tables."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.headers: dict[str, list[str]] = {}
        self.kpis: dict[str, str] = {}
        self._script_id: str | None = None
        self._script_buf: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_head = False
        self._kpi: str | None = None
        self._kpi_value = False
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href", "action", "poster", "data"):
            if a.get(key):
                self.urls.append(str(a[key]))
        if tag == "script" and a.get("type") == "application/json":
            self._script_id = a.get("id")
            self._script_buf = []
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = []
            self.headers[self._table or ""] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr" and self._table is not None and not self._in_head:
            self._row = []
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "div" and a.get("data-kpi"):
            self._kpi = a["data-kpi"]
        elif tag == "div" and self._kpi and a.get("class") == "value":
            self._kpi_value = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script_id is not None:
            self.scripts[self._script_id] = "".join(self._script_buf)
            self._script_id = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            text = "".join(self._cell).strip()
            if self._in_head:
                self.headers[self._table].append(text)
            elif self._row is not None:
                self._row.append(text)
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "div" and self._kpi_value:
            self._kpi_value = False
            self._kpi = None

    def handle_data(self, data: str) -> None:
        if self._script_id is not None:
            self._script_buf.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._kpi_value and self._kpi:
            self.kpis[self._kpi] = self.kpis.get(self._kpi, "") + data.strip()


class Report:
    """A parsed report page."""

    def __init__(self, html: str) -> None:
        p = _ReportParser()
        p.feed(html)
        self.html = html
        self.scripts = p.scripts
        self.tables = p.tables
        self.headers = p.headers
        self.kpis = p.kpis
        self.urls = p.urls

    def kpi_block(self, key: str) -> str:
        """The visible text of KPI card ``key`` (label, value, period, comparisons)."""
        start = self.html.index(f'data-kpi="{key}"')
        ends = [
            self.html.find(marker, start + 1) for marker in ('data-kpi="', '<p class="', "<nav")
        ]
        end = min(e for e in ends if e > 0)
        html = self.html[start:end]
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.split(">", 1)[1])).strip()

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.scripts["report-data"])

    def table(self, tid: str) -> list[dict[str, str]]:
        """Rows of table ``tid`` keyed by the column keys the table declares."""
        m = re.search(rf'<table id="{re.escape(tid)}" data-columns="([^"]*)"', self.html)
        assert m, f"no table {tid}"
        keys = m.group(1).split(",")
        return [dict(zip(keys, row, strict=True)) for row in self.tables[tid]]


def parse_number(text: str) -> float | None:
    """A number as the report shows it (Babel, zh or en): 1,234 · 12.3% · 1,234.56 · —."""
    t = text.strip()
    if t in ("—", ""):
        return None
    pct = t.endswith("%")
    t = t.rstrip("%").replace(",", "").replace("\u00a0", "")
    value = float(t)
    return value / 100 if pct else value
