"""Where a table or key of a TOML document is, by line: `tomllib` gives values, not positions.

Configuration errors must name the line a person has to change. The standard library parser
keeps no positions, so this reads the text once more, line by line, and finds table headers
(`[a.b]`, and the Nth `[[a.b]]`) and `key = ...` lines inside them. Header and key spellings
are normalised through `tomllib` itself, so `[upstreams."my api"]` and `[ upstreams . 'my api' ]`
are the same table. Multi-line strings are skipped; tables written inline (`tools = [{...}]`)
are found only as their key's line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*="""
)


def _dotted(text: str) -> tuple[str, ...] | None:
    """`a."b c".d` -> ("a", "b c", "d"), spelled the way tomllib reads it."""
    try:
        value: object = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(value, dict) and len(value) == 1:
        ((name, value),) = value.items()
        path.append(name)
    return tuple(path)


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # 1-based
    table: tuple[str, ...]  # the table this line belongs to
    element: int | None  # for lines under a [[header]]: which element of that array (0-based)
    key: tuple[str, ...] | None  # the key this line assigns, if it assigns one
    header: bool


class TomlLines:
    def __init__(self, text: str) -> None:
        self._lines: list[_Line] = []
        table: tuple[str, ...] = ()
        element: int | None = None
        counts: dict[tuple[str, ...], int] = {}
        in_string: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if raw.count(in_string) % 2 == 1:
                    in_string = None
                continue
            stripped = raw.strip()
            if stripped.startswith("[[") and "]]" in stripped:
                path = _dotted(stripped[2 : stripped.index("]]")])
                if path is not None:
                    table, element = path, counts.get(path, 0)
                    counts[path] = element + 1
                    self._lines.append(_Line(number, table, element, None, True))
                continue
            if stripped.startswith("[") and "]" in stripped:
                path = _dotted(stripped[1 : stripped.index("]")])
                if path is not None:
                    table, element = path, None
                    self._lines.append(_Line(number, table, None, None, True))
                continue
            match = _KEY.match(raw)
            key = _dotted(match.group(1)) if match else None
            self._lines.append(_Line(number, table, element, key, False))
            for quote in ('"""', "'''"):
                if raw.count(quote) % 2 == 1:
                    in_string = quote
                    break

    def table(self, path: tuple[str, ...], element: int | None = None) -> int | None:
        """The line of `[path]`, or of the `element`-th `[[path]]` header."""
        for line in self._lines:
            if line.header and line.table == path and line.element == element:
                return line.number
        return None

    def key(self, table: tuple[str, ...], key: str, element: int | None = None) -> int | None:
        """The line where `key` is assigned inside `[table]` (or its `element`-th `[[table]]`)."""
        for line in self._lines:
            if line.key is None or line.element != element:
                continue
            if line.table + line.key[:1] == (*table, key):
                return line.number
        return None

    def locate(self, table: tuple[str, ...], key: str | None = None, element: int | None = None) -> int | None:
        """The most precise line known: the key, else its table's header, else the parent's key."""
        found = self.key(table, key, element) if key is not None else None
        if found is None:
            found = self.table(table, element)
        if found is None and table:
            found = self.key(table[:-1], table[-1])
        return found
