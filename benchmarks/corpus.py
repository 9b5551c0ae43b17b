"""Recall of dllint on a corpus of real deep-learning bugs, and how clean it keeps the fixes.

Usage::

    python benchmarks/corpus.py CORPUS_DIR [--json] [--show-missed]

CORPUS_DIR holds one folder per case: ``buggy.py``, optional ``fixed.py`` and ``meta.json``
(``id``, ``seed``, ``summary``, ``framework_bug`` ...; see the corpus README).  dllint runs once,
as a subprocess, over every buggy.py and fixed.py with every rule enabled
(``--select ALL --no-cache --format json --exit-zero``) and an empty configuration file.

Each seed is scored against one rule family (codes starting with the prefix):

    000-optimization -> DL2    001-numerical -> DL1    002-conversion -> DL3
    003-silent -> DL4, DL6     004-nlp -> DL5          other seeds -> any DL code

- a *target* case has a buggy.py and is not a framework bug (``framework_bug`` true, or a case
  from the SilentBugs dataset, whose scripts are all correct user code per the corpus README);
- a target is *hit* when its buggy.py has a finding of the family within one line of a line the
  summary names; when the summary names no line, any finding of the family in the file counts,
  and those hits are shown apart ("no line");
- a fixed.py is *clean* when it has no finding of the family.

DL001 (file does not parse) never counts as a hit.  The script exits 0 with a message when
CORPUS_DIR does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from _command import dllint_command  # benchmarks/ is on sys.path when run as a script
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

FAMILIES: Dict[str, Tuple[str, ...]] = {
    "000-optimization": ("DL2",),
    "001-numerical": ("DL1",),
    "002-conversion": ("DL3",),
    "003-silent": ("DL4", "DL6"),
    "004-nlp": ("DL5",),
}
ANY_FAMILY: Tuple[str, ...] = ("DL",)
PARSE_ERROR = "DL001"
#: every program of this dataset is a user script reproducing a framework bug (corpus README)
FRAMEWORK_BUG_SOURCES = ("amin-nikanjam/SilentBugsInTensorFlowKeras",)
LINE_SLACK = 1
MAX_RANGE = 60  # "lines 10-12" expands to 10, 11, 12; a wider "range" is read as two lines

# ------------------------------------------------------------------ line numbers in summaries

_CODE_SPAN = re.compile(r"`[^`\n]*`")
_SEP = r"(?:\s*(?:-|\u2013|\u2014|to|through|thru|and|or|&|/|,)\s*(?:lines?\s*)?)"
# "line 136", "lines 18-19", "lines 8 and 10", "lines 11, 12 and 14", "buggy line 45",
# "line no. 7", "ln 12"
_WORD_LINES = re.compile(
    r"\b(?:lines?|ln)\b\.?\s*(?:no\.?\s*|#\s*|number\s*)?(?P<list>\d+(?:" + _SEP + r"\d+)*)",
    re.IGNORECASE,
)
# "L12", "L 12", "L12-L14", "L12-14" (not "#L12" URL anchors, not "L1 loss" / "L2 norm")
_L_LINES = re.compile(
    r"(?<![\w#/])L\s?(?P<a>\d+)(?:\s*(?:-|\u2013)\s*L?(?P<b>\d+))?\b"
    r"(?!\s*[-\u2013]?\s*(?:norm|loss|regulari|penalt|distance|weight|decay|cache|error))"
)
_NUMBER_OR_SEP = re.compile(r"\d+|-|\u2013|\u2014|\bto\b|\bthrough\b|\bthru\b", re.IGNORECASE)


def _expand(numbers_and_seps: List[str]) -> Set[int]:
    out: Set[int] = set()
    i = 0
    while i < len(numbers_and_seps):
        token = numbers_and_seps[i]
        if not token.isdigit():
            i += 1
            continue
        start = int(token)
        if (i + 2 < len(numbers_and_seps) and not numbers_and_seps[i + 1].isdigit()
                and numbers_and_seps[i + 2].isdigit()):
            end = int(numbers_and_seps[i + 2])
            if start <= end <= start + MAX_RANGE:
                out.update(range(start, end + 1))
            else:
                out.update((start, end))
            i += 3
            continue
        out.add(start)
        i += 1
    return out


def summary_lines(summary: str) -> List[int]:
    """The buggy.py line numbers a summary names (sorted), [] when it names none.  Code quoted
    in backticks is ignored, so numbers inside quoted code are not taken for line numbers."""
    text = _CODE_SPAN.sub(" ", summary or "")
    found: Set[int] = set()
    for match in _WORD_LINES.finditer(text):
        # keep "-", "to", "through" as range markers; "and", ",", "or" just separate numbers
        tokens = _NUMBER_OR_SEP.findall(match.group("list"))
        found |= _expand(tokens)
    for match in _L_LINES.finditer(text):
        a = int(match.group("a"))
        b = int(match.group("b")) if match.group("b") else None
        if b is not None and a <= b <= a + MAX_RANGE:
            found.update(range(a, b + 1))
        else:
            found.add(a)
            if b is not None:
                found.add(b)
    return sorted(n for n in found if n > 0)


# ------------------------------------------------------------------ corpus

def family_of(seed: str) -> Tuple[str, ...]:
    return FAMILIES.get(seed, ANY_FAMILY)


def family_label(seed: str) -> str:
    fam = family_of(seed)
    return "any DL" if fam == ANY_FAMILY else "+".join(fam)


def load_cases(corpus: str) -> Tuple[List[Dict[str, Any]], List[str]]:
    cases: List[Dict[str, Any]] = []
    problems: List[str] = []
    for name in sorted(os.listdir(corpus)):
        folder = os.path.join(corpus, name)
        meta_path = os.path.join(folder, "meta.json")
        if not os.path.isdir(folder) or not os.path.isfile(meta_path):
            continue
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            problems.append(f"{name}/meta.json: {exc}")
            continue
        buggy = os.path.join(folder, "buggy.py")
        fixed = os.path.join(folder, "fixed.py")
        framework_bug = meta.get("framework_bug") is True or meta.get("source") in FRAMEWORK_BUG_SOURCES
        summary = str(meta.get("summary") or "")
        cases.append({
            "id": str(meta.get("id") or name),
            "folder": name,
            "seed": str(meta.get("seed") or "other"),
            "summary": summary,
            "framework_bug": framework_bug,
            "buggy": os.path.join(name, "buggy.py") if os.path.isfile(buggy) else None,
            "fixed": os.path.join(name, "fixed.py") if os.path.isfile(fixed) else None,
            "lines": summary_lines(summary),
        })
    return cases, problems


class DllintFailed(RuntimeError):
    pass


def run_dllint(corpus: str, files: Sequence[str], select: str = "ALL") -> Tuple[Dict[str, List[Tuple[str, int]]], float]:
    """One dllint run over ``files`` (relative to ``corpus``): {file: [(code, row)]}, seconds."""
    work = tempfile.mkdtemp(prefix="dllint-corpus-")
    try:
        config = os.path.join(work, "dllint.toml")
        with open(config, "w", encoding="utf-8"):
            pass  # empty: dllint's defaults, whatever config sits near the corpus
        command = dllint_command() + ["--config", config, "--select", select, "--no-cache",
                                      "--format", "json", "--exit-zero", "-q"]
        if sum(len(f) + 1 for f in files) < 100_000:
            command += list(files)
        else:  # too long for one command line: the whole folder, filtered below
            command.append(".")
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=corpus, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DllintFailed(f"exit {proc.returncode}: {lines[-1] if lines else '(no message)'}")
    try:
        data = json.loads(proc.stdout.decode("utf-8"))
    except ValueError as exc:
        raise DllintFailed(f"output is not JSON: {exc}") from None
    wanted = {os.path.normpath(f) for f in files}
    found: Dict[str, List[Tuple[str, int]]] = {f: [] for f in wanted}
    for item in data:
        name = os.path.normpath(str(item.get("filename", "")))
        if os.path.isabs(name):
            name = os.path.relpath(name, corpus)
        if name in found:
            row = int((item.get("location") or {}).get("row") or 0)
            found[name].append((str(item.get("code", "")), row))
    return found, seconds


def in_family(code: str, family: Tuple[str, ...]) -> bool:
    return code != PARSE_ERROR and code.startswith(family)


def score(cases: List[Dict[str, Any]], findings: Dict[str, List[Tuple[str, int]]]) -> Dict[str, Any]:
    seeds: Dict[str, Dict[str, Any]] = {}
    missed: List[Dict[str, Any]] = []
    hits: List[Dict[str, Any]] = []
    codes_buggy: Counter = Counter()
    codes_fixed: Counter = Counter()
    for case in cases:
        seed = case["seed"]
        fam = family_of(seed)
        row = seeds.setdefault(seed, {
            "family": family_label(seed), "cases": 0, "framework_bugs": 0, "targets": 0,
            "targets_with_line": 0, "targets_no_line": 0, "hits": 0, "hits_at_line": 0,
            "hits_no_line": 0, "family_in_file": 0, "parse_errors": 0, "fixed": 0, "fixed_clean": 0,
            "fixed_family_findings": 0,
        })
        row["cases"] += 1
        row["framework_bugs"] += int(case["framework_bug"])
        buggy = findings.get(os.path.normpath(case["buggy"]), []) if case["buggy"] else []
        codes_buggy.update(code for code, _ in buggy)
        if case["fixed"]:
            fixed = findings.get(os.path.normpath(case["fixed"]), [])
            codes_fixed.update(code for code, _ in fixed)
            bad = [f for f in fixed if in_family(f[0], fam)]
            row["fixed"] += 1
            row["fixed_clean"] += int(not bad)
            row["fixed_family_findings"] += len(bad)
        if case["framework_bug"] or not case["buggy"]:
            continue
        row["targets"] += 1
        row["parse_errors"] += int(any(code == PARSE_ERROR for code, _ in buggy))
        mine = [(code, r) for code, r in buggy if in_family(code, fam)]
        row["family_in_file"] += int(bool(mine))
        lines = case["lines"]
        if lines:
            row["targets_with_line"] += 1
            near = [(c, r) for c, r in mine if any(abs(r - n) <= LINE_SLACK for n in lines)]
            hit = bool(near)
            row["hits_at_line"] += int(hit)
        else:
            row["targets_no_line"] += 1
            near = mine
            hit = bool(near)
            row["hits_no_line"] += int(hit)
        row["hits"] += int(hit)
        entry = {"id": case["id"], "seed": seed, "lines": lines}
        if hit:
            hits.append(dict(entry, findings=[{"code": c, "row": r} for c, r in sorted(near, key=lambda x: x[1])]))
        else:
            entry["family_findings_elsewhere"] = [{"code": c, "row": r} for c, r in sorted(mine, key=lambda x: x[1])]
            entry["summary"] = case["summary"]
            missed.append(entry)
    hits.sort(key=lambda e: (e["seed"], e["id"]))
    missed.sort(key=lambda e: (e["seed"], e["id"]))
    total: Dict[str, Any] = {"family": "", **{k: 0 for k in next(iter(seeds.values()), {}) if k != "family"}}
    for row in seeds.values():
        for key, value in row.items():
            if key != "family":
                total[key] += value
    for row in list(seeds.values()) + [total]:
        row["recall"] = row["hits"] / row["targets"] if row["targets"] else None
    no_line_all = [c["id"] for c in cases if not c["lines"]]
    no_line_targets = [c["id"] for c in cases if not c["lines"] and not c["framework_bug"] and c["buggy"]]
    return {
        "seeds": dict(sorted(seeds.items())),
        "total": total,
        "hits": hits,
        "missed": missed,
        "no_line_cases": no_line_all,
        "no_line_targets": no_line_targets,
        "codes_on_buggy": dict(sorted(codes_buggy.items())),
        "codes_on_fixed": dict(sorted(codes_fixed.items())),
    }


# ------------------------------------------------------------------ output

COLUMNS = [
    ("seed", None), ("family", "family"), ("cases", "cases"), ("fw bug", "framework_bugs"),
    ("targets", "targets"), ("no line", "targets_no_line"), ("hit", "hits"),
    ("at line", "hits_at_line"), ("no-line hit", "hits_no_line"), ("recall", "recall"),
    ("fam in file", "family_in_file"), ("DL001", "parse_errors"), ("fixed", "fixed"),
    ("fixed clean", "fixed_clean"),
]


def render(result: Dict[str, Any], show_missed: bool) -> str:
    out: List[str] = []
    run = result["run"]
    out.append(f"corpus: {result['corpus']}")
    out.append(f"dllint: {run['files']} files ({run['buggy_files']} buggy.py, {run['fixed_files']} fixed.py) "
               f"in one run, {run['seconds']:.2f} s, {run['findings']} findings")
    absent = result["cases_without_buggy"]
    if absent:
        out.append(f"{absent} cases have no buggy.py (dataset cases not rebuilt?); they are not targets")
    out.append("")

    def cell(row: Dict[str, Any], key: Optional[str], name: str) -> str:
        if key is None:
            return name
        value = row[key]
        if key == "recall":
            return "-" if value is None else f"{100 * value:.0f}%"
        return str(value)

    table = [[c[0] for c in COLUMNS]]
    for seed, row in result["seeds"].items():
        table.append([cell(row, key, seed) for _, key in COLUMNS])
    table.append([cell(result["total"], key, "total") for _, key in COLUMNS])
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    for n, r in enumerate(table):
        if n == len(table) - 1:
            out.append("  ".join("-" * w for w in widths))
        text = "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
        out.append(text.rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.extend(textwrap.wrap(
        "targets: buggy.py present and not a framework bug; hit: a finding of the family within "
        f"+-{LINE_SLACK} line of a line the summary names (no-line hit: anywhere in the file, the "
        "summary names no line); fam in file: any finding of the family in buggy.py; "
        "fixed clean: fixed.py without a finding of the family; DL001 never counts.", 100))
    total = result["total"]
    out.append(f"no parsable line in the summary: {len(result['no_line_cases'])} of {len(result['cases'])} cases "
               f"({len(result['no_line_targets'])} of {total['targets']} targets)")
    if result["no_line_targets"]:
        out.extend(textwrap.wrap(", ".join(result["no_line_targets"]), 100, initial_indent="  ",
                                 subsequent_indent="  ", break_on_hyphens=False))
    for label, key in (("codes on buggy.py", "codes_on_buggy"), ("codes on fixed.py", "codes_on_fixed")):
        codes = result[key]
        out.append(f"{label}: " + (", ".join(f"{c} x{n}" for c, n in codes.items()) if codes else "none"))
    if result["hits"]:
        out.append("")
        out.append(f"hit ({len(result['hits'])}):")
        for hit in result["hits"]:
            where = ", ".join(f"{f['code']}@{f['row']}" for f in hit["findings"])
            named = ",".join(map(str, hit["lines"])) or "none"
            out.append(f"  {hit['id']} [{hit['seed']}] lines {named}: {where}")
    missed = result["missed"]
    out.append("")
    out.append(f"missed targets ({len(missed)}):")
    if show_missed:
        for m in missed:
            named = ",".join(map(str, m["lines"])) or "none"
            elsewhere = ""
            if m["family_findings_elsewhere"]:
                elsewhere = " (family findings at " + ", ".join(
                    f"{f['code']}@{f['row']}" for f in m["family_findings_elsewhere"]) + ")"
            out.append(f"  {m['id']} [{m['seed']}] lines {named}{elsewhere}")
            out.extend(textwrap.wrap(m["summary"], 100, initial_indent="      ", subsequent_indent="      "))
    else:
        by_seed: Dict[str, List[str]] = {}
        for m in missed:
            by_seed.setdefault(m["seed"], []).append(m["id"])
        for seed, ids in sorted(by_seed.items()):
            out.extend(textwrap.wrap(f"{seed}: " + ", ".join(ids), 100, initial_indent="  ",
                                     subsequent_indent="      ", break_on_hyphens=False))
        if missed:
            out.append("  (--show-missed prints their summaries)")
    if result["problems"]:
        out.append("")
        out.append("skipped:")
        out.extend(f"  {p}" for p in result["problems"])
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", metavar="CORPUS_DIR", help="folder with one sub-folder per case")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("--select", default="ALL",
                   help="rules to run (default ALL, which includes rules that are off by default; "
                   "DL runs the default set)")
    p.add_argument("--show-missed", action="store_true", help="print the summary of every missed target")
    args = p.parse_args(argv)
    corpus = args.corpus
    if not os.path.isdir(corpus):
        print(f"corpus.py: {corpus} does not exist; skipping")
        return 0
    cases, problems = load_cases(corpus)
    if not cases:
        print(f"corpus.py: no cases (folders with meta.json) in {corpus}; skipping")
        return 0
    files = [f for c in cases for f in (c["buggy"], c["fixed"]) if f]
    if files:
        try:
            findings, seconds = run_dllint(corpus, files, args.select)
        except DllintFailed as exc:
            sys.stderr.write(f"corpus.py: dllint failed: {exc}\n")
            return 1
    else:
        findings, seconds = {}, 0.0
    result = score(cases, findings)
    result.update({
        "corpus": corpus,
        "cases": [c["id"] for c in cases],
        "problems": problems,
        "run": {
            "files": len(files),
            "buggy_files": sum(1 for c in cases if c["buggy"]),
            "fixed_files": sum(1 for c in cases if c["fixed"]),
            "findings": sum(len(v) for v in findings.values()),
            "seconds": seconds,
        },
        "line_slack": LINE_SLACK,
        "cases_without_buggy": sum(1 for c in cases if not c["buggy"]),
    })
    if args.json:
        payload = dict(result)
        payload["cases"] = len(cases)
        print(json.dumps(payload, indent=2))
    else:
        print(render(result, args.show_missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
