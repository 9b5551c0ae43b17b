"""Helpers shared by the output formats: rule lookup, positions, source lines, edits."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

from dllint.rule import Finding, Rule

#: The engine's own code for a file that cannot be read, decoded or parsed.
UNPARSABLE_CODE = "DL001"
UNPARSABLE_NAME = "unparsable-file"
UNPARSABLE_MESSAGE = "file cannot be read, decoded or parsed"

RuleMap = Mapping[str, Type[Rule]]

# A line with its terminator, where a terminator is \r\n, \r or \n (as Python's tokenizer
# counts them; str.splitlines() would also split on form feeds and other separators).
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def rule_for(finding: Finding, rules: Optional[RuleMap]) -> Optional[Type[Rule]]:
    if not rules:
        return None
    return rules.get(finding.code)


def rule_name(finding: Finding, rules: Optional[RuleMap]) -> str:
    """The rule's name; DL001 and codes without a rule class fall back gracefully."""
    rule = rule_for(finding, rules)
    if rule is not None and rule.name:
        return rule.name
    if finding.code == UNPARSABLE_CODE:
        return finding.name or UNPARSABLE_NAME
    return finding.name or finding.code


def is_error(finding: Finding) -> bool:
    """DL001 (the file could not be analysed at all) is an error; everything else a warning."""
    return finding.code == UNPARSABLE_CODE


def span(finding: Finding) -> Tuple[int, int, int, int]:
    """(line, col, end_line, end_col), 1-based, clamped so that the end never precedes the start."""
    line = max(1, int(finding.line or 1))
    col = max(1, int(finding.col or 1))
    end_line = int(finding.end_line or 0)
    end_col = int(finding.end_col or 0)
    if end_line < line or (end_line == line and end_col < col):
        end_line, end_col = line, col
    end_col = max(1, end_col)
    return line, col, end_line, end_col


def location_text(finding: Finding) -> str:
    """``path:line:col`` or, for a notebook cell, ``path:cell N:line:col``."""
    line, col, _, _ = span(finding)
    if finding.cell is not None:
        return f"{finding.path}:cell {finding.cell}:{line}:{col}"
    return f"{finding.path}:{line}:{col}"


def split_lines(text: str) -> List[str]:
    """Lines with their terminators kept; ``"".join(split_lines(t)) == t``."""
    return _LINE_RE.findall(text)


def strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


def source_text(finding: Finding, sources: Optional[Mapping[str, str]]) -> Optional[str]:
    """The text that the finding's rows count in: the file, or for notebooks the cell's source.

    For a notebook (``cell`` set), ``sources[path]`` is expected to be the ``.ipynb`` JSON; the
    cell number is 1-based over all cells.  Anything unreadable gives ``None`` (no frame).
    """
    if not sources or finding.path not in sources:
        return None
    text = sources[finding.path]
    if not isinstance(text, str):
        return None
    if finding.cell is None:
        return text
    try:
        notebook = json.loads(text)
        cell = notebook["cells"][finding.cell - 1]
        source = cell.get("source", "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if isinstance(source, list):
        source = "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else None


def has_fix(finding: Finding) -> bool:
    return finding.edits is not None or finding.fix_message is not None


def clean_edits(edits: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """Edits as plain dicts with a fixed key order (content, location, end_location)."""
    out = []
    for edit in edits or ():
        loc = edit.get("location") or {}
        end = edit.get("end_location") or loc
        out.append(
            {
                "content": str(edit.get("content", "")),
                "location": {"row": int(loc.get("row", 1)), "column": int(loc.get("column", 1))},
                "end_location": {"row": int(end.get("row", 1)), "column": int(end.get("column", 1))},
            }
        )
    return out


def _offset(line_starts: List[int], lines: List[str], row: int, column: int) -> Optional[int]:
    if row < 1 or row > len(lines) + 1:
        return None
    if row == len(lines) + 1:  # just past the end of the text
        return line_starts[-1] if column <= 1 else None
    body = strip_eol(lines[row - 1])
    return line_starts[row - 1] + min(max(column, 1) - 1, len(body))


def apply_edits(text: str, edits: List[Dict[str, Any]]) -> Optional[str]:
    """Apply 1-based (row, column) edits to ``text``; ``None`` if they do not fit or overlap."""
    lines = split_lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    spans = []
    for edit in clean_edits(edits):
        start = _offset(starts, lines, edit["location"]["row"], edit["location"]["column"])
        end = _offset(starts, lines, edit["end_location"]["row"], edit["end_location"]["column"])
        if start is None or end is None or end < start:
            return None
        spans.append((start, end, edit["content"]))
    spans.sort(key=lambda s: (s[0], s[1]))
    for (_, prev_end, _), (start, _, _) in zip(spans, spans[1:]):
        if start < prev_end:
            return None
    for start, end, content in reversed(spans):
        text = text[:start] + content + text[end:]
    return text
