"""How commands print: the one table renderer (CJK text counts two columns per character, so
Chinese values line up), values on one line, values as JSON, and progress bars on a terminal."""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import click

from syncd.model import json_value, one_line


def char_width(char: str) -> int:
    """Terminal columns of one character: 2 for wide East Asian forms, 0 for combining marks."""
    if unicodedata.combining(char) or unicodedata.category(char) in {"Mn", "Me", "Cf"}:
        return 0
    return 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1


def display_width(text: str) -> int:
    return sum(char_width(c) for c in text)


def pad(text: str, width: int) -> str:
    """`text` left-aligned in `width` terminal columns (CJK characters count double)."""
    return text + " " * max(0, width - display_width(text))


def cut(text: str, width: int) -> str:
    """`text` shortened to at most `width` terminal columns, ending in '…' when cut."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += char_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def cell(value: Any) -> str:
    """A table cell: '-' for nothing, floats with two decimals, anything else as text on one line."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return one_line(str(value))


def table_lines(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A plain text table whose columns line up with CJK text too."""
    rows = [list(r) for r in rows]
    widths = [max([display_width(h), *(display_width(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def dump_json(data: Any) -> str:
    return json.dumps(json_value(data), ensure_ascii=False, indent=2)


class Bars:
    """One progress bar per unit of work (a table copied, a mapping compared), on stderr: done
    so far of an estimate, rows per second and the time left. Used only on a terminal: scripts
    and JSON output see nothing of it."""

    def __init__(self, unit: str = "rows") -> None:
        self.unit = unit
        self.bar: Any = None
        self.name: str | None = None
        self.shown = 0
        self.started = 0.0
        self.extra = ""

    @staticmethod
    def wanted(as_json: bool = False) -> bool:
        return not as_json and sys.stderr.isatty()

    def update(self, name: str, done: int, total: int, extra: str = "") -> None:
        if self.name != name:
            self.close()
            self.name, self.shown, self.started = name, 0, time.monotonic()
            self.bar = click.progressbar(length=max(total, 1), label=name, file=sys.stderr, show_pos=True,
                                         item_show_func=lambda _item: self.extra)
            self.bar.__enter__()
        if self.bar.length is not None and done > self.bar.length:
            self.bar.length = done
        elapsed = time.monotonic() - self.started
        rate = f"{done / elapsed:,.0f} {self.unit}/s" if elapsed > 0 else ""
        self.extra = ", ".join(part for part in (extra, rate) if part)
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
            self.name = None
