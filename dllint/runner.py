"""Checking many files: the per-file job (read, decode, lint, fix, write), the content-hash
cache, and spreading files over processes with deterministic results."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from dllint import __version__
from dllint.engine import (
    DecodeError,
    RuleSet,
    Source,
    decode,
    encode,
    filter_noqa,
    lint_module,
    lint_text,
    parse,
    parse_error_finding,
)
from dllint.rule import Finding
from dllint.versions import pins_fingerprint

MAX_FIX_ROUNDS = 10


@dataclass
class Settings:
    """What every file job needs; sent once to each worker process."""

    mode: str = "check"  # "check", "fix" or "diff"
    unsafe: bool = False
    target_versions: Dict[str, str] = field(default_factory=dict)
    max_file_size: int = 2_000_000
    cache_dir: Optional[str] = None
    verbose: bool = False
    #: fingerprint of dllint's own code and rules (part of every cache key)
    code: str = ""


@dataclass
class FileResult:
    path: str
    findings: List[Finding] = field(default_factory=list)
    fixed: int = 0
    changed: bool = False
    diff: str = ""
    notes: List[str] = field(default_factory=list)
    fixed_text: Optional[str] = None  # for --fix on stdin
    source: Optional[str] = None  # decoded text, for the full format's code frames


# ---------------------------------------------------------------------- cache

CACHE_LAYOUT = "1"


class Cache:
    """Results keyed by (file content hash, enabled rules, target versions, dllint version).
    One small JSON file per entry; a corrupt or foreign entry is ignored."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._ready = False

    def _prepare(self) -> None:
        if self._ready:
            return
        os.makedirs(self.folder, exist_ok=True)
        tag = os.path.join(self.folder, "CACHEDIR.TAG")
        if not os.path.exists(tag):
            with open(tag, "w") as handle:
                handle.write(
                    "Signature: 8a477f597d28d172789f06886806bc55\n"
                    "# This file is a cache directory tag created by dllint.\n"
                )
        ignore = os.path.join(self.folder, ".gitignore")
        if not os.path.exists(ignore):
            with open(ignore, "w") as handle:
                handle.write("*\n")
        self._ready = True

    @staticmethod
    def key(raw: bytes, enabled: FrozenSet[str], settings: Settings, kind: str, pins: str = "") -> str:
        digest = hashlib.sha256()
        digest.update(raw)
        meta = json.dumps(
            [__version__, CACHE_LAYOUT, settings.code, sorted(enabled), sorted(settings.target_versions.items()),
             kind, settings.max_file_size, pins],
        )
        digest.update(b"\0" + meta.encode())
        return digest.hexdigest()

    def _file(self, key: str) -> str:
        return os.path.join(self.folder, key[:2], key + ".json")

    def get(self, key: str) -> Optional[List[Finding]]:
        try:
            with open(self._file(key), encoding="utf-8") as handle:
                data = json.load(handle)
            if data.get("key") != key or data.get("version") != __version__:
                return None
            return [Finding.from_dict(item) for item in data["findings"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, findings: List[Finding]) -> None:
        try:
            self._prepare()
            target = self._file(key)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"key": key, "version": __version__, "findings": [f.to_dict() for f in findings]}, handle)
            os.replace(tmp, target)
        except OSError:
            pass  # a read-only or full disk must not fail the run


def code_fingerprint() -> str:
    """A hash of the size and modification time of every module of dllint and of its rules, so
    editing a rule (an editable install, a plugin) never serves stale cached results."""
    import importlib

    digest = hashlib.sha256()
    for package in ("dllint", "dllint.rules"):
        try:
            folders = list(importlib.import_module(package).__path__)
        except ImportError:  # pragma: no cover
            continue
        for folder in folders:
            for root, dirs, files in os.walk(folder):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    if name.endswith(".py"):
                        try:
                            st = os.stat(os.path.join(root, name))
                        except OSError:
                            continue
                        digest.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------- one file

_STATE: Dict[str, Any] = {}


def _ruleset() -> RuleSet:
    ruleset = _STATE.get("ruleset")
    if ruleset is None:
        from dllint.registry import all_rules

        ruleset = RuleSet(all_rules())
        _STATE["ruleset"] = ruleset
    return ruleset


def check_file(path: str, display: str, enabled: FrozenSet[str], settings: Settings,
               raw: Optional[bytes] = None) -> FileResult:
    """Everything for one file.  Never raises for a problem with the file itself."""
    result = FileResult(path=display)
    try:
        if raw is None:
            try:
                size = os.path.getsize(path)
            except OSError as exc:
                result.findings.append(_located(parse_error_finding(f"cannot read the file: {exc.strerror or exc}"), display))
                return result
            if size > settings.max_file_size:
                result.notes.append(
                    f"{display}: skipped, {size} bytes is more than max-file-size ({settings.max_file_size})"
                )
                return result
            with open(path, "rb") as handle:
                raw = handle.read()
        notebook = display.endswith(".ipynb") or path.endswith(".ipynb")
        cache = Cache(settings.cache_dir) if settings.cache_dir and settings.mode == "check" else None
        key = Cache.key(raw, enabled, settings, "nb" if notebook else "py", pins_fingerprint(path)) if cache else ""
        if cache is not None:
            cached = cache.get(key)
            if cached is not None:
                for finding in cached:
                    finding.path = display
                result.findings = cached
                return result
        if notebook:
            _check_notebook(raw, path, display, enabled, settings, result)
        else:
            _check_python(raw, path, display, enabled, settings, result)
        if cache is not None:
            cache.put(key, result.findings)
    except Exception as exc:  # an engine bug: report it for this file, keep going
        if settings.verbose:
            import traceback

            traceback.print_exc()
        result.findings = [
            _located(parse_error_finding(f"internal error while checking this file: {type(exc).__name__}: {exc}"), display)
        ]
        result.findings[0].code = "DL000"
        result.findings[0].name = "internal-error"
    for finding in result.findings:
        finding.node = None
        finding.fix = None
    return result


def _located(finding: Finding, display: str) -> Finding:
    finding.path = display
    return finding


def _check_python(raw: bytes, path: str, display: str, enabled: FrozenSet[str], settings: Settings, result: FileResult) -> None:
    try:
        source = decode(raw)
    except DecodeError as exc:
        result.findings.append(_located(parse_error_finding(str(exc), exc.line, exc.col), display))
        return
    text, findings, fixed, notes = lint_and_fix(source.text, display, enabled, settings)
    result.findings = findings
    if findings:
        result.source = text  # for code frames; the rows of what is left refer to this text
    result.notes.extend(notes)
    result.fixed = fixed
    if text != source.text:
        result.changed = True
        if settings.mode == "diff":
            result.diff = unified_diff(source.text, text, display)
        elif settings.mode == "fix" and path != "-":
            from dllint.fixes import write_atomic

            write_atomic(path, encode(source, text))
    if settings.mode == "fix" and path == "-":
        result.fixed_text = text


def _check_notebook(raw: bytes, path: str, display: str, enabled: FrozenSet[str], settings: Settings, result: FileResult) -> None:
    from dllint.notebook import Notebook, NotebookError

    try:
        notebook = Notebook.parse(raw)
    except NotebookError as exc:
        result.findings.append(_located(parse_error_finding(f"cannot read the notebook: {exc}"), display))
        return
    text, findings, fixed, notes = lint_and_fix(notebook.source, display, enabled, settings)
    result.notes.extend(notes)
    result.fixed = fixed
    located = notebook
    if text != notebook.source:
        try:
            new_raw = notebook.write_back(text)
            located = Notebook.parse(new_raw)  # rows of what is left refer to the fixed cells
        except NotebookError as exc:
            result.notes.append(f"{display}: fixes not written: {exc}")
            text, findings, _, _ = lint_and_fix(notebook.source, display, enabled, Settings(
                target_versions=settings.target_versions))
            result.fixed = 0
        else:
            result.changed = True
            if settings.mode == "diff":
                result.diff = unified_diff(raw.decode("utf-8", "replace"), new_raw.decode("utf-8", "replace"), display)
            elif settings.mode == "fix" and path != "-":
                from dllint.fixes import write_atomic

                write_atomic(path, new_raw)
    if findings:
        result.source = (new_raw if located is not notebook else raw).decode("utf-8", "replace")
    for finding in findings:
        cell, row = located.locate(finding.line)
        end_cell, end_row = located.locate(finding.end_line) if finding.end_line else (cell, row)
        if finding.edits:
            for edit in finding.edits:
                for loc in ("location", "end_location"):
                    edit[loc]["row"] = located.locate(edit[loc]["row"])[1]
        finding.cell, finding.line = cell, row
        finding.end_line = end_row if end_cell == cell else row
    result.findings = findings


def lint_and_fix(
    text: str, display: str, enabled: FrozenSet[str], settings: Settings
) -> Tuple[str, List[Finding], int, List[str]]:
    """Lint ``text``; in fix / diff mode apply fixes until none is left.  Returns the final
    text, the findings left, the number of fixes applied, and notes for stderr."""
    ruleset = _ruleset()
    tv = settings.target_versions
    result = lint_text(text, display, ruleset, tv, enabled)
    findings = filter_noqa(result.findings, text)
    if settings.mode == "check" or result.module is None:
        return text, findings, 0, []
    from dllint.fixes import apply, fixable

    notes: List[str] = []
    if not fixable(findings, settings.unsafe):
        return text, findings, 0, notes
    if result.module.code != text:
        notes.append(f"{display}: not fixed: the parser does not reproduce this file exactly")
        return text, findings, 0, notes
    original = text
    fixed = 0
    for _ in range(MAX_FIX_ROUNDS):
        todo = fixable(findings, settings.unsafe)
        if not todo:
            break
        new_text = apply(result.module, todo).code
        if new_text == text:
            break
        try:
            module = parse(new_text)
        except DecodeError as exc:
            notes.append(f"{display}: fixes not applied: they produced code that does not parse ({exc})")
            result = lint_text(original, display, ruleset, tv, enabled)
            return original, filter_noqa(result.findings, original), 0, notes
        fixed += len(todo)
        text = new_text
        rules = [r for r in ruleset.active_for(text) if r.code in enabled]
        result = lint_module(module, text, display, rules, ruleset, tv)
        findings = filter_noqa(result.findings, text)
    else:
        if fixable(findings, settings.unsafe):
            notes.append(f"{display}: fixes did not converge after {MAX_FIX_ROUNDS} rounds; file left unchanged")
            result = lint_text(original, display, ruleset, tv, enabled)
            return original, filter_noqa(result.findings, original), 0, notes
    return text, findings, fixed, notes


def unified_diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
        )
    )


# ---------------------------------------------------------------------- many files

def _init_worker(state: Dict[str, Any]) -> None:
    _STATE.update(state)


def _job(args: Tuple[str, str, FrozenSet[str], Settings]) -> FileResult:
    return check_file(*args)


def run(
    files: Sequence[Tuple[str, str, FrozenSet[str]]], settings: Settings, jobs: int = 0
) -> List[FileResult]:
    """Check ``files`` ((path, display path, enabled codes) each), over ``jobs`` processes
    (0: all cores).  Results come back in input order whatever the number of processes."""
    tasks = [(path, display, enabled, settings) for path, display, enabled in files]
    jobs = jobs or os.cpu_count() or 1
    jobs = min(jobs, len(tasks))
    if jobs <= 1 or len(tasks) < 4:
        return [_job(task) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _ruleset()  # load the catalogue once, before forking
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # pragma: no cover - platforms without fork
        context = multiprocessing.get_context()
    chunk = max(1, len(tasks) // (jobs * 4))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                             initargs=(dict(_STATE),)) as pool:
        return list(pool.map(_job, tasks, chunksize=chunk))
