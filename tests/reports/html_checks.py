"""Parsing the pages the reports write: referenced files, balanced table markup, the inline script."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


class Page(HTMLParser):
    """Collects referenced files and checks that table markup is balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.stack: list[str] = []
        self.tables = 0
        self.script = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.refs.append(attrs[key])
        if tag in ("table", "tr", "td", "th", "thead", "tbody"):
            self.stack.append(tag)
            self.tables += tag == "table"
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag in ("table", "tr", "td", "th", "thead", "tbody"):
            assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
            self.stack.pop()
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script += data


def parse_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert not page.stack, f"unclosed tags {page.stack}"
    return page
