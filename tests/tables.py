"""What a screen reader needs from a table of data, checked in a page's HTML (no tests of its own).

A data table names itself (a caption), says which way each header cell reads (`scope="col"` or
`scope="row"`) and starts each row with the cell that names the row, a `th scope="row"`: a reader
moving down a column then hears which row it is in. A table only used for layout says so
(`role="presentation"`) and is skipped.
"""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self._open: list[dict | None] = []  # None: a layout table, whose cells are not checked
        self._cell: dict | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            table = None if attrs.get("role") == "presentation" else {
                "caption": "", "rows": [], "id": attrs.get("id") or attrs.get("class") or ""}
            if table is not None:
                self.tables.append(table)
            self._open.append(table)
            return
        table = self._open[-1] if self._open else None
        if table is None:
            return
        if tag == "caption":
            self._in_caption = True
        elif tag == "tr":
            table["rows"].append([])
        elif tag in ("th", "td") and table["rows"]:
            self._cell = {"tag": tag, "scope": attrs.get("scope"), "colspan": attrs.get("colspan"), "text": ""}
            table["rows"][-1].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "table" and self._open:
            self._open.pop()
        elif tag == "caption":
            self._in_caption = False
        elif tag in ("th", "td"):
            self._cell = None

    def handle_data(self, data):
        table = self._open[-1] if self._open else None
        if table is None:
            return
        if self._in_caption:
            table["caption"] += data
        elif self._cell is not None:
            self._cell["text"] += data


def data_table_problems(html: str) -> list[str]:
    """Return what a screen reader would miss in each data table of the page (empty when none)."""
    parser = _Tables()
    parser.feed(html)
    problems = []
    for table in parser.tables:
        name = table["caption"].strip() or table["id"]
        if not table["caption"].strip():
            problems.append(f"{name}: no caption")
        for row in table["rows"]:
            for cell in row:
                if cell["tag"] == "th" and cell["scope"] not in ("row", "col"):
                    problems.append(f"{name}: header {cell['text'].strip()!r} has no scope")
                if cell["tag"] == "th" and not cell["text"].strip():
                    problems.append(f"{name}: a header cell says nothing")
            first = row[0] if row else None
            if first and first["tag"] == "td" and not first["colspan"] and len(row) > 1:
                problems.append(f"{name}: row {first['text'].strip()!r} starts with a data cell, not a row header")
    return problems


def data_tables(html: str) -> list[dict]:
    """Return the data tables of the page: caption, rows of cells (tag, scope, text)."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables
