"""The JSON format: a list with one object per finding and stable keys.

Each object has, in this order: ``code``, ``name``, ``message``, ``filename``, ``location``
(``{"row", "column"}``, 1-based), ``end_location``, ``cell`` (1-based notebook cell or null; rows
then count within the cell), ``url`` (null until the rules have a hosted page) and ``fix``
(``{"applicability", "message", "edits"}`` or null).  An empty run prints ``[]``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, TextIO

from dllint.report._common import RuleMap, clean_edits, has_fix, rule_name, span
from dllint.rule import Finding


def rule_url(code: str) -> Optional[str]:
    """Where a rule's documentation lives; there is no hosted site yet."""
    return None


def finding_to_json(finding: Finding, rules: RuleMap) -> Dict[str, Any]:
    line, col, end_line, end_col = span(finding)
    fix: Optional[Dict[str, Any]] = None
    if has_fix(finding):
        fix = {
            "applicability": finding.fix_applicability,
            "message": finding.fix_message,
            "edits": clean_edits(finding.edits),
        }
    return {
        "code": finding.code,
        "name": rule_name(finding, rules),
        "message": finding.message,
        "filename": finding.path,
        "location": {"row": line, "column": col},
        "end_location": {"row": end_line, "column": end_col},
        "cell": finding.cell,
        "url": rule_url(finding.code),
        "fix": fix,
    }


def render(
    findings: List[Finding],
    rules: RuleMap,
    out: TextIO,
    *,
    color: bool = False,
    sources: Optional[Mapping[str, str]] = None,
) -> None:
    data = [finding_to_json(f, rules) for f in findings]
    out.write(json.dumps(data, indent=2) + "\n")
