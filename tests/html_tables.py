"""The tables of an HTML page as text, under the heading before each (the standard library's
parser: what a reader of the page sees, not how it is written)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.heading, self.text, self.cell, self.row = "", None, None, None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3"):
            self.text = []
        elif tag == "table":
            self.tables.append((self.heading, []))
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("h2", "h3") and self.text is not None:
            self.heading, self.text = "".join(self.text).strip(), None
        elif tag in ("td", "th") and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables[-1][1].append(self.row)
            self.row = None

    def handle_data(self, data):
        for part in (self.text, self.cell):
            if part is not None:
                part.append(data)


def tables(page: str) -> list[tuple[str, list[list[str]]]]:
    """Every table as (the heading above it, its rows of cell texts, the header row first)."""
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def table_under(page: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first table under ``heading``, as {column heading: cell}."""
    for title, rows in tables(page):
        if title == heading:
            head, *body = rows
            return [dict(zip(head, row, strict=True)) for row in body]
    raise AssertionError(f"no table under {heading!r}")
