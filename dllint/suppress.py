"""``# noqa`` handling, shared by the CLI, every output format, ``--fix`` and the flake8 plugin.

* ``# noqa`` on a finding's line suppresses every code there; ``# noqa: DL101,DL2`` suppresses
  those codes or code prefixes (commas and/or spaces between them; the colon is required).
* A comment line ``# dllint: noqa`` anywhere skips the whole file; ``# dllint: noqa: DL5``
  skips those codes in the whole file.
* A finding is matched on its start line.  As in flake8, lines joined by a backslash or by a
  multi-line string form one group: a ``# noqa`` on any line of the group covers all of it.
  The comment and code syntax follow flake8's exactly (``# noqa`` with one space, codes
  compared case-sensitively), so the CLI and the flake8 plugin suppress the same findings.
"""

from __future__ import annotations

import re
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

_LINE_NOQA = re.compile(r"# noqa(?::[\s]?(?P<codes>(?:[A-Z]+[0-9]+(?:[,\s]+)?)+))?", re.IGNORECASE)
_FILE_NOQA = re.compile(
    r"^\s*#\s*dllint:\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]*(?:[\s,]+[A-Za-z]+[0-9]*)*))?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
ALL: FrozenSet[str] = frozenset({"*"})


def _codes(text: Optional[str]) -> FrozenSet[str]:
    if not text:
        return ALL
    return frozenset(c.upper() for c in re.split(r"[\s,]+", text.strip()) if c)


def _matches(code: str, codes: FrozenSet[str]) -> bool:
    return codes is ALL or any(code.startswith(prefix) for prefix in codes)


def file_noqa(text: str) -> Optional[FrozenSet[str]]:
    """Codes the file-level comment suppresses (ALL for a bare ``# dllint: noqa``), or None."""
    if "dllint" not in text:
        return None
    found: Optional[FrozenSet[str]] = None
    for match in _FILE_NOQA.finditer(text):
        codes = _codes(match.group("codes"))
        if codes is ALL:
            return ALL
        found = codes if found is None else frozenset(found | codes)
    return found


class NoqaIndex:
    """Which codes are suppressed on which lines of one file."""

    def __init__(self, text: str) -> None:
        self.file_codes = file_noqa(text)
        self.lines: Dict[int, FrozenSet[str]] = {}
        if "noqa" not in text.lower():
            return
        physical = text.splitlines()
        for first, last in _line_groups(text, len(physical)):
            joined = "\n".join(physical[first - 1 : last])
            if "noqa" not in joined.lower():
                continue
            match = _LINE_NOQA.search(joined)
            if match is None:
                continue
            raw = match.group("codes")
            codes = ALL if not raw else frozenset(c for c in re.split(r"[\s,]+", raw.strip()) if c)
            for number in range(first, last + 1):
                self.lines[number] = codes

    def suppresses(self, code: str, line: int, end_line: int = 0, node: Any = None) -> bool:
        if self.file_codes is not None and _matches(code, self.file_codes):
            return True
        codes = self.lines.get(line)
        return codes is not None and _matches(code, codes)


def _line_groups(text: str, count: int) -> List[Tuple[int, int]]:
    """(first, last) physical line ranges that end at a NEWLINE or NL token: a statement
    continued by a backslash, or holding a multi-line string, is one range."""
    import io
    import tokenize

    groups: List[Tuple[int, int]] = []
    low, high = count + 2, -1
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in (tokenize.ENDMARKER, tokenize.DEDENT):
                continue
            low = min(low, token.start[0])
            high = max(high, token.end[0])
            if token.type in (tokenize.NL, tokenize.NEWLINE):
                groups.append((low, high))
                low, high = count + 2, -1
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    covered = {n for first, last in groups for n in range(first, last + 1)}
    groups.extend((n, n) for n in range(1, count + 1) if n not in covered)
    return groups
