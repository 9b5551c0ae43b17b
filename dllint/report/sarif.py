"""SARIF 2.1.0, for code-scanning dashboards.

One run; ``tool.driver.rules`` holds one descriptor per rule code that occurs in the results, sorted
by code, and every result's ``ruleIndex`` points into that list.  Columns count characters
(``columnKind: unicodeCodePoints``); regions are 1-based with an exclusive end column.

Paths: a relative path becomes a relative URI with forward slashes and ``uriBaseId: %SRCROOT%``; an
absolute path becomes a ``file://`` URI without a base id.

Notebooks: the location is the ``.ipynb`` file itself with the rows and columns *within the cell*,
and the 1-based cell number is recorded in the region's property bag (``region.properties.cell``).
A notebook finding carries no SARIF ``fixes``: its edits are relative to the cell's source, not to
the JSON file, so a consumer applying them to the file would corrupt it (``dllint --fix`` applies
them correctly).

``partialFingerprints.primaryLocationLineHash`` is ``<hash>:<n>``: a SHA-256 prefix of the code,
the URI (and cell) and the stripped text of the finding's line (its line number when the source is
unknown), and ``n`` numbers identical hashes in one run so that each result's fingerprint is
unique and survives unrelated edits elsewhere in the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, List, Mapping, Optional, TextIO, Tuple
from urllib.parse import quote

import dllint
from dllint.report._common import (
    UNPARSABLE_CODE,
    UNPARSABLE_MESSAGE,
    RuleMap,
    clean_edits,
    is_error,
    rule_for,
    rule_name,
    source_text,
    span,
    split_lines,
    strip_eol,
)
from dllint.rule import Finding

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://pypi.org/project/dllint/"
SRCROOT = "%SRCROOT%"

_DRIVE_RE = re.compile(r"^[A-Za-z]:/")
_RELATIVE_SAFE = "/!$&'()*+,;=@"
_ABSOLUTE_SAFE = _RELATIVE_SAFE + ":"


def artifact_location(path: str) -> Dict[str, str]:
    """``{"uri", "uriBaseId"}`` for a relative path, ``{"uri": "file://..."}`` for an absolute one."""
    p = path.replace("\\", "/")
    if _DRIVE_RE.match(p):
        return {"uri": "file:///" + quote(p, safe=_ABSOLUTE_SAFE)}
    if p.startswith("//"):  # UNC path: //server/share/...
        return {"uri": "file:" + quote(p, safe=_ABSOLUTE_SAFE)}
    if p.startswith("/"):
        return {"uri": "file://" + quote(p, safe=_ABSOLUTE_SAFE)}
    while p.startswith("./"):
        p = p[2:]
    return {"uri": quote(p, safe=_RELATIVE_SAFE), "uriBaseId": SRCROOT}


def _level(finding: Finding) -> str:
    return "error" if is_error(finding) else "warning"


def _rule_descriptor(code: str, finding: Finding, rules: RuleMap) -> Dict[str, Any]:
    rule = rule_for(finding, rules)
    name = rule_name(finding, rules)
    if rule is not None:
        short = rule.message or rule.summary() or name
        full = rule.summary() or short
        doc = rule.documentation() or full
        tags = [rule.family] if rule.family else []
    elif code == UNPARSABLE_CODE:
        short = full = doc = UNPARSABLE_MESSAGE[0].upper() + UNPARSABLE_MESSAGE[1:] + "."
        tags = ["engine"]
    else:
        short = full = doc = finding.message or name
        tags = []
    return {
        "id": code,
        "name": name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": doc, "markdown": doc},
        "defaultConfiguration": {"level": _level(finding)},
        "properties": {"tags": tags, "precision": "high"},
    }


def _region(line: int, col: int, end_line: int, end_col: int) -> Dict[str, Any]:
    return {"startLine": line, "startColumn": col, "endLine": end_line, "endColumn": end_col}


def _line_text(finding: Finding, sources: Optional[Mapping[str, str]], cache: Dict[Any, Any]) -> Optional[str]:
    key = (finding.path, finding.cell)
    if key not in cache:
        text = source_text(finding, sources)
        cache[key] = split_lines(text) if text is not None else None
    lines = cache[key]
    line = span(finding)[0]
    if lines is None or line > len(lines):
        return None
    return strip_eol(lines[line - 1]).strip()


def _fingerprint(finding: Finding, uri: str, line_text: Optional[str]) -> str:
    anchor = line_text if line_text is not None else f"line {span(finding)[0]}"
    cell = "" if finding.cell is None else str(finding.cell)
    data = "\0".join((finding.code, uri, cell, anchor))
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _fixes(finding: Finding, location: Dict[str, str]) -> Optional[List[Dict[str, Any]]]:
    if not finding.edits or finding.cell is not None:
        return None
    replacements = []
    for edit in clean_edits(finding.edits):
        start, end = edit["location"], edit["end_location"]
        replacements.append(
            {
                "deletedRegion": _region(
                    max(1, start["row"]), max(1, start["column"]), max(1, end["row"]), max(1, end["column"])
                ),
                "insertedContent": {"text": edit["content"]},
            }
        )
    return [
        {
            "description": {"text": finding.fix_message or f"Fix {finding.code}"},
            "artifactChanges": [{"artifactLocation": dict(location), "replacements": replacements}],
        }
    ]


def build_sarif(
    findings: List[Finding], rules: RuleMap, sources: Optional[Mapping[str, str]] = None
) -> Dict[str, Any]:
    """The SARIF log as a dict."""
    first: Dict[str, Finding] = {}
    for finding in findings:
        first.setdefault(finding.code, finding)
    codes = sorted(first)
    index = {code: i for i, code in enumerate(codes)}
    descriptors = [_rule_descriptor(code, first[code], rules) for code in codes]

    results = []
    seen: Dict[str, int] = {}
    line_cache: Dict[Tuple[str, Optional[int]], Any] = {}
    for finding in findings:
        location = artifact_location(finding.path)
        region = _region(*span(finding))
        if finding.cell is not None:
            region["properties"] = {"cell": finding.cell}
        digest = _fingerprint(finding, location["uri"], _line_text(finding, sources, line_cache))
        seen[digest] = seen.get(digest, 0) + 1
        result: Dict[str, Any] = {
            "ruleId": finding.code,
            "ruleIndex": index[finding.code],
            "level": _level(finding),
            "message": {"text": finding.message or rule_name(finding, rules)},
            "locations": [{"physicalLocation": {"artifactLocation": location, "region": region}}],
            "partialFingerprints": {"primaryLocationLineHash": f"{digest}:{seen[digest]}"},
        }
        fixes = _fixes(finding, location)
        if fixes:
            result["fixes"] = fixes
        results.append(result)

    return {
        "$schema": SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "dllint",
                        "version": dllint.__version__,
                        "informationUri": INFORMATION_URI,
                        "rules": descriptors,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render(
    findings: List[Finding],
    rules: RuleMap,
    out: TextIO,
    *,
    color: bool = False,
    sources: Optional[Mapping[str, str]] = None,
) -> None:
    out.write(json.dumps(build_sarif(findings, rules, sources), indent=2) + "\n")
