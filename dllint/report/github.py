"""GitHub Actions workflow commands: one ``::warning`` (``::error`` for DL001) line per finding.

``::warning file=PATH,line=L,col=C,endLine=EL,endColumn=EC,title=CODE (name)::message``

The message is escaped as command data (``%``, ``\\r``, ``\\n``); property values additionally
escape ``:`` and ``,``.  Backslashes in paths become forward slashes.  For a notebook
finding the rows count within the cell, so the title says which cell:
``title=DL101 (log-of-softmax) in cell 3``.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, TextIO

from dllint.report._common import RuleMap, is_error, rule_name, span
from dllint.rule import Finding


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def format_line(finding: Finding, rules: RuleMap) -> str:
    line, col, end_line, end_col = span(finding)
    title = f"{finding.code} ({rule_name(finding, rules)})"
    if finding.cell is not None:
        title += f" in cell {finding.cell}"
    props = [
        ("file", finding.path.replace("\\", "/")),
        ("line", str(line)),
        ("col", str(col)),
        ("endLine", str(end_line)),
        ("endColumn", str(end_col)),
        ("title", title),
    ]
    command = "error" if is_error(finding) else "warning"
    prop_text = ",".join(f"{key}={escape_property(value)}" for key, value in props)
    return f"::{command} {prop_text}::{escape_data(finding.message)}"


def render(
    findings: List[Finding],
    rules: RuleMap,
    out: TextIO,
    *,
    color: bool = False,
    sources: Optional[Mapping[str, str]] = None,
) -> None:
    for finding in findings:
        out.write(format_line(finding, rules) + "\n")
