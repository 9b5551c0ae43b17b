"""Tests of the output formats (dllint.report): concise, full, json, sarif, github."""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any, Dict, List, Optional

import pytest

import dllint
from dllint.report import FORMATS, render
from dllint.report._common import apply_edits, split_lines
from dllint.report.github import escape_data, escape_property
from dllint.report.sarif import artifact_location
from dllint.rule import Evidence, FixKind, Rule


class LogOfSoftmax(Rule):
    """``log(softmax(x))`` underflows to ``-inf`` for large logits.

    Use ``log_softmax``, which computes the same value stably.
    """

    code = "DL101"
    name = "log-of-softmax"
    family = "numerical"
    message = "log() of softmax() underflows to -inf; use log_softmax()"
    fix = FixKind.SAFE
    evidence = Evidence("study", "NaN/INF", ("https://example.org/issue/1",))


class ItemInLoop(Rule):
    """``.item()`` in the training loop forces a device sync every step."""

    code = "DL205"
    name = "item-in-loop"
    family = "performance"
    message = ".item() in the training loop synchronises every step"


RULES = {"DL101": LogOfSoftmax, "DL205": ItemInLoop}

SRC = (
    "import torch\n"
    "\n"
    "def step(model, x):\n"
    "    logits = model(x)\n"
    "    y = torch.log(torch.softmax(logits, dim=1))\n"
    "    return y\n"
)
# "torch.log(torch.softmax(logits, dim=1))" on line 5 starts at column 9 and ends before column 48.
LINE5 = "    y = torch.log(torch.softmax(logits, dim=1))"
START, END = 9, 9 + len("torch.log(torch.softmax(logits, dim=1))")


def finding(code="DL101", path="src/train.py", line=5, col=START, end_line=5, end_col=END, cell=None,
            message=None, name=None, edits=None, fix_message=None, fix_applicability=None):
    from dllint.rule import Finding

    rule = RULES.get(code)
    return Finding(
        code=code,
        name=name if name is not None else (rule.name if rule else ""),
        message=message if message is not None else (rule.message if rule else "cannot parse"),
        path=path,
        line=line,
        col=col,
        end_line=end_line,
        end_col=end_col,
        cell=cell,
        edits=edits,
        fix_message=fix_message,
        fix_applicability=fix_applicability,
    )


def fixed_finding(**kw):
    return finding(
        edits=[
            {
                "content": "torch.log_softmax(logits, dim=1)",
                "location": {"row": 5, "column": START},
                "end_location": {"row": 5, "column": END},
            }
        ],
        fix_message="Use torch.log_softmax",
        fix_applicability="safe",
        **kw,
    )


def unparsable(path="bad.py", message="cannot parse: invalid syntax"):
    return finding(code="DL001", path=path, line=1, col=1, end_line=1, end_col=1, message=message, name="")


def run(fmt, findings, rules=RULES, **kw) -> str:
    out = io.StringIO()
    render(fmt, findings, rules, out, **kw)
    return out.getvalue()


NOTEBOOK = json.dumps(
    {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": ["import torch\n"]},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": ["x = torch.randn(3)\n", "p = torch.log(torch.softmax(x, 0))\n"]},
        ],
    },
    indent=1,
)


def nb_finding(**kw):
    return finding(path="nb.ipynb", cell=3, line=2, col=5, end_line=2, end_col=35, **kw)


# -- the entry point ---------------------------------------------------------------------------


def test_formats_tuple():
    assert FORMATS == ("concise", "full", "json", "sarif", "github")


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown output format 'xml'"):
        run("xml", [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_handles_missing_rule_classes(fmt):
    """DL001 has no rule class; a plugin code might not either: never a KeyError."""
    stranger = finding(code="XY999", name="stranger-rule", message="odd", line=2, col=1, end_line=2, end_col=3)
    text = run(fmt, [unparsable(), stranger], rules={})
    assert "DL001" in text and "XY999" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_accepts_no_sources(fmt):
    run(fmt, [fixed_finding(), nb_finding()], sources=None)


# -- concise -----------------------------------------------------------------------------------


def test_concise_lines_exact():
    findings = [
        unparsable(),
        finding(),
        finding(code="DL205", line=9, col=3, end_line=9, end_col=10),
        nb_finding(),
    ]
    assert run("concise", findings) == (
        "bad.py:1:1: DL001 cannot parse: invalid syntax\n"
        "src/train.py:5:9: DL101 log() of softmax() underflows to -inf; use log_softmax()\n"
        "src/train.py:9:3: DL205 .item() in the training loop synchronises every step\n"
        "nb.ipynb:cell 3:2:5: DL101 log() of softmax() underflows to -inf; use log_softmax()\n"
    )


def test_concise_keeps_one_line_per_finding():
    assert run("concise", [finding(message="first\nsecond")]) == "src/train.py:5:9: DL101 first second\n"


def test_concise_empty():
    assert run("concise", []) == ""


# -- json --------------------------------------------------------------------------------------

JSON_KEYS = ["code", "name", "message", "filename", "location", "end_location", "cell", "url", "fix"]


def test_json_empty_is_brackets():
    assert run("json", []).strip() == "[]"
    assert json.loads(run("json", [])) == []


def test_json_structure_exact():
    data = json.loads(run("json", [fixed_finding(), finding(code="DL205", line=7, col=2, end_line=8, end_col=4)]))
    assert isinstance(data, list) and len(data) == 2
    for item in data:
        assert list(item) == JSON_KEYS
    assert data[0] == {
        "code": "DL101",
        "name": "log-of-softmax",
        "message": LogOfSoftmax.message,
        "filename": "src/train.py",
        "location": {"row": 5, "column": START},
        "end_location": {"row": 5, "column": END},
        "cell": None,
        "url": None,
        "fix": {
            "applicability": "safe",
            "message": "Use torch.log_softmax",
            "edits": [
                {
                    "content": "torch.log_softmax(logits, dim=1)",
                    "location": {"row": 5, "column": START},
                    "end_location": {"row": 5, "column": END},
                }
            ],
        },
    }
    assert list(data[0]["fix"]) == ["applicability", "message", "edits"]
    assert list(data[0]["fix"]["edits"][0]) == ["content", "location", "end_location"]
    assert data[1]["fix"] is None
    assert data[1]["location"] == {"row": 7, "column": 2}
    assert data[1]["end_location"] == {"row": 8, "column": 4}


def test_json_notebook_and_unparsable():
    data = json.loads(run("json", [unparsable(), nb_finding()], rules={"DL101": LogOfSoftmax}))
    assert data[0]["code"] == "DL001"
    assert data[0]["name"] == "unparsable-file"
    assert data[0]["fix"] is None
    assert data[1]["filename"] == "nb.ipynb"
    assert data[1]["cell"] == 3
    assert data[1]["location"] == {"row": 2, "column": 5}


def test_json_non_ascii_round_trips():
    data = json.loads(run("json", [finding(path="src/módulo.py", message="λ → -inf")]))
    assert data[0]["filename"] == "src/módulo.py"
    assert data[0]["message"] == "λ → -inf"


# -- sarif -------------------------------------------------------------------------------------

LEVELS = {"none", "note", "warning", "error"}


def _is_pos_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_region(region: Dict[str, Any]) -> None:
    for key in ("startLine", "startColumn", "endLine", "endColumn"):
        assert _is_pos_int(region[key]), (key, region)
    assert (region["endLine"], region["endColumn"]) >= (region["startLine"], region["startColumn"])


def check_artifact_location(loc: Dict[str, Any]) -> None:
    uri = loc["uri"]
    assert isinstance(uri, str) and uri
    assert "\\" not in uri
    assert " " not in uri
    if uri.startswith("file://"):
        assert "uriBaseId" not in loc
    else:
        assert not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri), uri  # relative reference, no scheme
        assert not uri.startswith("/")
        assert loc["uriBaseId"] == "%SRCROOT%"


def check_sarif(log: Dict[str, Any]) -> None:
    """The SARIF 2.1.0 constraints that matter to consumers, checked explicitly."""
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run_ = log["runs"][0]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "dllint"
    assert driver["version"] == dllint.__version__
    assert driver["informationUri"].startswith("https://")
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == sorted(set(ids)), "rule descriptors are unique and sorted"
    for rule in driver["rules"]:
        assert isinstance(rule["name"], str) and rule["name"]
        for key in ("shortDescription", "fullDescription"):
            assert isinstance(rule[key]["text"], str) and rule[key]["text"]
        assert isinstance(rule["help"]["text"], str) and isinstance(rule["help"]["markdown"], str)
        assert rule["defaultConfiguration"]["level"] in LEVELS
        assert isinstance(rule["properties"]["tags"], list)
        assert all(isinstance(tag, str) for tag in rule["properties"]["tags"])
        assert rule["properties"]["precision"] == "high"
        assert "helpUri" not in rule or isinstance(rule["helpUri"], str)
    assert run_.get("columnKind") in (None, "unicodeCodePoints", "utf16CodeUnits")
    for result in run_["results"]:
        assert result["ruleId"] in ids
        assert isinstance(result["ruleIndex"], int)
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in LEVELS
        assert isinstance(result["message"]["text"], str) and result["message"]["text"]
        assert len(result["locations"]) == 1
        physical = result["locations"][0]["physicalLocation"]
        check_artifact_location(physical["artifactLocation"])
        check_region(physical["region"])
        fingerprint = result["partialFingerprints"]["primaryLocationLineHash"]
        assert isinstance(fingerprint, str) and fingerprint
        for fix in result.get("fixes", []):
            assert isinstance(fix["description"]["text"], str)
            assert len(fix["artifactChanges"]) >= 1
            for change in fix["artifactChanges"]:
                check_artifact_location(change["artifactLocation"])
                assert len(change["replacements"]) >= 1
                for replacement in change["replacements"]:
                    check_region(replacement["deletedRegion"])
                    assert isinstance(replacement["insertedContent"]["text"], str)
    fingerprints = [r["partialFingerprints"]["primaryLocationLineHash"] for r in run_["results"]]
    assert len(fingerprints) == len(set(fingerprints))
    _validate_with_schema_if_available(log)


def _validate_with_schema_if_available(log: Dict[str, Any]) -> None:
    """Validate against the official schema only when both a validator and a local copy exist."""
    try:
        import jsonschema  # type: ignore[import-not-found]
    except ImportError:
        return
    candidates = [os.environ.get("DLLINT_SARIF_SCHEMA", ""), os.path.join(os.path.dirname(__file__), "sarif-schema-2.1.0.json")]
    for path in candidates:
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                schema = json.load(fh)
            jsonschema.validate(log, schema)
            return


def sarif(findings, rules=RULES, sources=None) -> Dict[str, Any]:
    text = run("sarif", findings, rules=rules, sources=sources)
    log = json.loads(text)
    check_sarif(log)
    return log


def test_sarif_empty_run():
    log = sarif([])
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["tool"]["driver"]["rules"] == []


def test_sarif_rules_and_results():
    findings = [
        unparsable(),
        fixed_finding(),
        finding(code="DL205", line=6, col=5, end_line=6, end_col=13),
        finding(line=6, col=12, end_line=6, end_col=13),
    ]
    log = sarif(findings, sources={"src/train.py": SRC})
    driver = log["runs"][0]["tool"]["driver"]
    assert [r["id"] for r in driver["rules"]] == ["DL001", "DL101", "DL205"]
    dl001, dl101, dl205 = driver["rules"]
    assert dl001["name"] == "unparsable-file"
    assert dl001["defaultConfiguration"]["level"] == "error"
    assert dl101 == {
        "id": "DL101",
        "name": "log-of-softmax",
        "shortDescription": {"text": LogOfSoftmax.message},
        "fullDescription": {"text": LogOfSoftmax.summary()},
        "help": {"text": LogOfSoftmax.documentation(), "markdown": LogOfSoftmax.documentation()},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["numerical"], "precision": "high"},
    }
    assert dl205["properties"]["tags"] == ["performance"]

    results = log["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["DL001", "DL101", "DL205", "DL101"]
    assert [r["ruleIndex"] for r in results] == [0, 1, 2, 1]
    assert [r["level"] for r in results] == ["error", "warning", "warning", "warning"]
    assert results[1]["message"]["text"] == LogOfSoftmax.message
    physical = results[1]["locations"][0]["physicalLocation"]
    assert physical == {
        "artifactLocation": {"uri": "src/train.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 5, "startColumn": START, "endLine": 5, "endColumn": END},
    }
    assert results[1]["fixes"] == [
        {
            "description": {"text": "Use torch.log_softmax"},
            "artifactChanges": [
                {
                    "artifactLocation": {"uri": "src/train.py", "uriBaseId": "%SRCROOT%"},
                    "replacements": [
                        {
                            "deletedRegion": {"startLine": 5, "startColumn": START, "endLine": 5, "endColumn": END},
                            "insertedContent": {"text": "torch.log_softmax(logits, dim=1)"},
                        }
                    ],
                }
            ],
        }
    ]
    assert "fixes" not in results[2]


def test_sarif_paths():
    assert artifact_location("src\\pkg\\train.py") == {"uri": "src/pkg/train.py", "uriBaseId": "%SRCROOT%"}
    assert artifact_location("./src/train.py") == {"uri": "src/train.py", "uriBaseId": "%SRCROOT%"}
    assert artifact_location("my dir/a.py") == {"uri": "my%20dir/a.py", "uriBaseId": "%SRCROOT%"}
    assert artifact_location("/home/u/a.py") == {"uri": "file:///home/u/a.py"}
    assert artifact_location("C:\\work\\a.py") == {"uri": "file:///C:/work/a.py"}
    assert artifact_location("\\\\server\\share\\a.py") == {"uri": "file://server/share/a.py"}
    log = sarif([finding(path="src\\pkg\\train.py"), finding(path="/abs/train.py")])
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    assert locations == [{"uri": "src/pkg/train.py", "uriBaseId": "%SRCROOT%"}, {"uri": "file:///abs/train.py"}]


def test_sarif_notebook_cell_in_region_properties_and_no_fixes():
    nb = nb_finding(
        edits=[{"content": "torch.log_softmax(x, 0)", "location": {"row": 2, "column": 5},
                "end_location": {"row": 2, "column": 35}}],
        fix_message="Use torch.log_softmax",
        fix_applicability="safe",
    )
    log = sarif([nb], sources={"nb.ipynb": NOTEBOOK})
    result = log["runs"][0]["results"][0]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "nb.ipynb", "uriBaseId": "%SRCROOT%"}
    assert physical["region"] == {"startLine": 2, "startColumn": 5, "endLine": 2, "endColumn": 35,
                                  "properties": {"cell": 3}}
    assert "fixes" not in result  # edits are cell-relative, not file-relative


def test_sarif_fingerprints_stable_and_unique():
    shifted = "# a new comment line\n" + SRC
    a = sarif([finding()], sources={"src/train.py": SRC})
    b = sarif([finding(line=6, end_line=6)], sources={"src/train.py": shifted})
    fa = a["runs"][0]["results"][0]["partialFingerprints"]["primaryLocationLineHash"]
    fb = b["runs"][0]["results"][0]["partialFingerprints"]["primaryLocationLineHash"]
    assert fa == fb, "a line moved by an unrelated edit keeps its fingerprint"
    # two findings of one code on one line are told apart
    both = sarif([finding(col=9, end_col=18), finding(col=19, end_col=47)], sources={"src/train.py": SRC})
    prints = [r["partialFingerprints"]["primaryLocationLineHash"] for r in both["runs"][0]["results"]]
    assert prints[0] != prints[1]
    # without sources the line number anchors the hash, deterministically
    c1 = sarif([finding()])["runs"][0]["results"][0]["partialFingerprints"]
    c2 = sarif([finding()])["runs"][0]["results"][0]["partialFingerprints"]
    assert c1 == c2
    # a different code on the same line differs
    d = sarif([finding(code="DL205")], sources={"src/train.py": SRC})
    assert d["runs"][0]["results"][0]["partialFingerprints"]["primaryLocationLineHash"] != fa


def test_sarif_unknown_code_without_rule_class():
    log = sarif([finding(code="XY999", name="stranger-rule", message="odd")], rules={})
    rule = log["runs"][0]["tool"]["driver"]["rules"][0]
    assert rule["id"] == "XY999" and rule["name"] == "stranger-rule"


def test_sarif_degenerate_positions_are_clamped():
    log = sarif([finding(line=0, col=0, end_line=0, end_col=0)])
    region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1}


# -- github ------------------------------------------------------------------------------------


def test_github_lines_exact():
    findings = [unparsable(), finding(), nb_finding()]
    assert run("github", findings, rules={"DL101": LogOfSoftmax}).splitlines() == [
        "::error file=bad.py,line=1,col=1,endLine=1,endColumn=1,title=DL001 (unparsable-file)"
        "::cannot parse: invalid syntax",
        f"::warning file=src/train.py,line=5,col={START},endLine=5,endColumn={END},"
        "title=DL101 (log-of-softmax)::log() of softmax() underflows to -inf; use log_softmax()",
        "::warning file=nb.ipynb,line=2,col=5,endLine=2,endColumn=35,"
        "title=DL101 (log-of-softmax) in cell 3::log() of softmax() underflows to -inf; use log_softmax()",
    ]


def test_github_escaping():
    assert escape_data("100% a\r\nb: c, d") == "100%25 a%0D%0Ab: c, d"
    assert escape_property("100% a\r\nb: c, d") == "100%25 a%0D%0Ab%3A c%2C d"
    text = run("github", [finding(path="odd:dir,1/100%.py", message="50% of x\nis: NaN, inf")])
    assert text == (
        f"::warning file=odd%3Adir%2C1/100%25.py,line=5,col={START},endLine=5,endColumn={END},"
        "title=DL101 (log-of-softmax)::50%25 of x%0Ais: NaN, inf\n"
    )
    assert text.count("\n") == 1


def test_github_backslash_paths():
    assert run("github", [finding(path="src\\train.py")]).startswith("::warning file=src/train.py,")


# -- full --------------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[")


def test_full_frame_message_diff_and_summary():
    findings = [unparsable(), fixed_finding(), finding(code="DL205", line=6, col=5, end_line=6, end_col=13)]
    text = run("full", findings, sources={"src/train.py": SRC})
    assert not ANSI.search(text)
    lines = text.splitlines()
    # header
    assert "src/train.py:5:9: DL101 [log-of-softmax]" in lines
    assert "bad.py:1:1: DL001 [unparsable-file]" in lines
    # code frame: context lines and the offending line with its number
    assert "4 |     logits = model(x)" in lines
    assert "5 | " + LINE5 in lines
    assert "6 |     return y" in lines
    # the caret line sits under the exact span
    row = lines.index("5 | " + LINE5)
    carets = lines[row + 1]
    assert carets == "  | " + " " * (START - 1) + "^" * (END - START)
    assert carets.index("^") == len("5 | ") + START - 1
    # message, fix and diff
    assert "  = " + LogOfSoftmax.message in lines
    assert "  = fix (safe): Use torch.log_softmax" in lines
    assert "    --- src/train.py" in lines
    assert "    @@ -5 +5 @@" in lines
    assert "    -" + LINE5 in lines
    assert "    +    y = torch.log_softmax(logits, dim=1)" in lines
    # summary table per code: count, code, name
    header = next(line for line in lines if "Count" in line)
    assert header.split() == ["Count", "Code", "Name"]
    table_rows = [line.split() for line in lines if re.match(r"^\s*\d+\s+DL\d{3}\s", line)]
    assert sorted(table_rows) == sorted([["1", "DL001", "unparsable-file"], ["1", "DL101", "log-of-softmax"],
                                         ["1", "DL205", "item-in-loop"]])
    assert "Found 3 findings in 2 files. 1 fixable with --fix." in lines


def test_full_summary_sorted_by_count():
    findings = [finding(code="DL205"), finding(), finding(line=6, end_line=6), finding(line=7, end_line=7)]
    text = run("full", findings)
    rows = [line.split() for line in text.splitlines() if re.match(r"^\s*\d+\s+DL\d{3}\s", line)]
    assert rows == [["3", "DL101", "log-of-softmax"], ["1", "DL205", "item-in-loop"]]


def test_full_without_sources_has_no_frame():
    text = run("full", [fixed_finding()])
    assert "src/train.py:5:9: DL101 [log-of-softmax]" in text
    assert " |" not in text.split("Count")[0]
    assert LogOfSoftmax.message in text
    # without the text the edit is spelled out instead of diffed
    assert f"replace 5:{START}-5:{END} with 'torch.log_softmax(logits, dim=1)'" in text


def test_full_colour_only_when_asked(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    plain = run("full", [fixed_finding()], sources={"src/train.py": SRC})
    assert not ANSI.search(plain)
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.delenv("TTY_COMPATIBLE")
    monkeypatch.setenv("NO_COLOR", "1")
    coloured = run("full", [fixed_finding()], sources={"src/train.py": SRC}, color=True)
    assert ANSI.search(coloured)
    assert ANSI.sub("", re.sub(r"\x1b\[[0-9;]*m", "", coloured)) == plain


def test_full_empty():
    assert run("full", []).strip() == "No findings."


def test_full_notebook_frame_from_cell():
    text = run("full", [nb_finding()], sources={"nb.ipynb": NOTEBOOK})
    lines = text.splitlines()
    assert "nb.ipynb:cell 3:2:5: DL101 [log-of-softmax]" in lines
    assert "1 | x = torch.randn(3)" in lines
    assert "2 | p = torch.log(torch.softmax(x, 0))" in lines
    row = lines.index("2 | p = torch.log(torch.softmax(x, 0))")
    assert lines[row + 1] == "  |     " + "^" * 30


def test_full_notebook_diff_applies_to_the_cell():
    nb = nb_finding(
        edits=[{"content": "torch.log_softmax(x, 0)", "location": {"row": 2, "column": 5},
                "end_location": {"row": 2, "column": 35}}],
        fix_message="Use torch.log_softmax",
        fix_applicability="safe",
    )
    text = run("full", [nb], sources={"nb.ipynb": NOTEBOOK})
    assert "--- nb.ipynb (cell 3)" in text
    assert "-p = torch.log(torch.softmax(x, 0))" in text
    assert "+p = torch.log_softmax(x, 0)" in text


def test_full_tabs_control_characters_and_multiline_spans():
    src = "def f(x):\n\ty = torch.log(torch.softmax(x, 1))\x1b[31m\n\treturn (y +\n\t\t1)\n"
    text = run("full", [finding(line=2, col=6, end_line=2, end_col=36), finding(line=3, col=9, end_line=4, end_col=5)],
               sources={"src/train.py": src})
    assert "\x1b" not in text, "escape codes from the file never reach the terminal"
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("2 |     y = torch.log"))
    # the tab is expanded to 4 columns and the caret follows it
    assert lines[row + 1] == "  | " + " " * len("    y = ") + "^" * 30
    # a multi-line span underlines each of its lines
    row3 = next(i for i, line in enumerate(lines) if line.startswith("3 |     return (y +") and lines[i + 1].strip().startswith("|"))
    assert lines[row3 + 1] == "  |            " + "^" * 4
    assert lines[row3 + 3] == "  |         " + "^" * 2


def test_full_very_long_span_is_elided():
    src = "".join(f"line{i} = {i}\n" for i in range(1, 31))
    text = run("full", [finding(line=3, col=1, end_line=25, end_col=4)], sources={"src/train.py": src})
    assert " | line3 = 3" in text and " | line25 = 25" in text
    assert " | line12 = 12" not in text
    assert ".. | ..." in text


def test_full_overlapping_edits_fall_back_to_listing():
    bad = finding(
        edits=[
            {"content": "a", "location": {"row": 5, "column": 9}, "end_location": {"row": 5, "column": 20}},
            {"content": "b", "location": {"row": 5, "column": 15}, "end_location": {"row": 5, "column": 25}},
        ],
        fix_message="two edits",
        fix_applicability="unsafe",
    )
    text = run("full", [bad], sources={"src/train.py": SRC})
    assert "= fix (unsafe): two edits" in text
    assert "replace 5:9-5:20 with 'a'" in text


# -- helpers -----------------------------------------------------------------------------------


def test_split_lines_counts_like_the_tokenizer():
    text = "a\r\nb\rc\x0cd\ne"
    assert split_lines(text) == ["a\r\n", "b\r", "c\x0cd\n", "e"]
    assert "".join(split_lines(text)) == text


def test_apply_edits():
    text = "ab\ncd\n"
    edits = [
        {"content": "X", "location": {"row": 1, "column": 1}, "end_location": {"row": 1, "column": 2}},
        {"content": "Y", "location": {"row": 2, "column": 2}, "end_location": {"row": 2, "column": 3}},
    ]
    assert apply_edits(text, edits) == "Xb\ncY\n"
    assert apply_edits(text, [{"content": "Z", "location": {"row": 1, "column": 2},
                               "end_location": {"row": 2, "column": 1}}]) == "aZcd\n"
    assert apply_edits(text, [{"content": "", "location": {"row": 9, "column": 1},
                               "end_location": {"row": 9, "column": 1}}]) is None


# -- with the real registry ----------------------------------------------------------------------


def _registry() -> Optional[Dict[str, Any]]:
    try:
        from dllint.registry import all_rules

        return {rule.code: rule for rule in all_rules()}
    except Exception:  # the rule catalogue may not be importable in a partial checkout
        return None


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_registry(fmt):
    rules = _registry()
    if not rules or "DL101" not in rules:
        pytest.skip("the rule catalogue (with DL101) is not available")
    real = rules["DL101"]
    f = finding(name=real.name, message=real.message)
    text = run(fmt, [f, unparsable()], rules={"DL101": real}, sources={"src/train.py": SRC})
    assert "DL101" in text
    if fmt == "sarif":
        log = json.loads(text)
        check_sarif(log)
        descriptor = log["runs"][0]["tool"]["driver"]["rules"][1]
        assert descriptor["name"] == real.name
        assert descriptor["help"]["text"] == real.documentation()
    if fmt == "json":
        assert json.loads(text)[0]["name"] == real.name
