"""``# noqa`` handling, shared by the CLI, every output format, ``--fix`` and the flake8 plugin.

* ``# noqa`` on a finding's line suppresses every code there; ``# noqa: DL101,DL2`` suppresses
  those codes or code prefixes (commas and/or spaces between them; the colon is required).
* A comment line ``# dllint: noqa`` anywhere skips the whole file; ``# dllint: noqa: DL5``
  skips those codes in the whole file.
* A finding is matched on its start line; for a finding on a multi-line string, on the line
  where the string ends.
"""

from __future__ import annotations

import re
from typing import Any, Dict, FrozenSet, Optional

_LINE_NOQA = re.compile(r"#\s*noqa(?::[\s]*(?P<codes>[A-Za-z]+[0-9]*(?:[\s,]+[A-Za-z]+[0-9]*)*))?", re.IGNORECASE)
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
        for number, line in enumerate(text.splitlines(), start=1):
            if "#" not in line:
                continue
            lowered = line.lower()
            if "noqa" not in lowered or "dllint:" in lowered.split("#", 1)[1][:12]:
                continue
            match = _LINE_NOQA.search(line)
            if match:
                self.lines[number] = _codes(match.group("codes"))

    def suppresses(self, code: str, line: int, end_line: int = 0, node: Any = None) -> bool:
        if self.file_codes is not None and _matches(code, self.file_codes):
            return True
        codes = self.lines.get(line)
        if codes is not None and _matches(code, codes):
            return True
        if end_line and end_line != line and _is_string(node):
            codes = self.lines.get(end_line)
            if codes is not None and _matches(code, codes):
                return True
        return False


def _is_string(node: Any) -> bool:
    return type(node).__name__ in ("SimpleString", "ConcatenatedString", "FormattedString")
