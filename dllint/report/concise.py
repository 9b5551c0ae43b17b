"""The concise format: ``path:line:col: CODE message``, one finding a line (the editor contract).

Notebook findings read ``nb.ipynb:cell 3:2:5: DL101 ...``.  A message is kept on one line (line
breaks become spaces) so that every line of output is exactly one finding.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, TextIO

from dllint.report._common import RuleMap, location_text
from dllint.rule import Finding


def format_line(finding: Finding) -> str:
    message = " ".join(finding.message.splitlines()) if finding.message else ""
    return f"{location_text(finding)}: {finding.code} {message}"


def render(
    findings: List[Finding],
    rules: RuleMap,
    out: TextIO,
    *,
    color: bool = False,
    sources: Optional[Mapping[str, str]] = None,
) -> None:
    for finding in findings:
        out.write(format_line(finding) + "\n")
