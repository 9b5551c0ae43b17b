"""Applying fixes: libcst node replacements plus imports, checked by re-parsing, written atomically."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, Iterable, List, Sequence, Set

import libcst as cst

from dllint.rule import Finding, FixKind


class _Replacer(cst.CSTTransformer):
    def __init__(self, replacements: Dict[int, Any]) -> None:
        super().__init__()
        self.replacements = replacements
        self.done: Set[int] = set()

    def on_leave(self, original_node: Any, updated_node: Any) -> Any:  # type: ignore[override]
        new = self.replacements.get(id(original_node))
        if new is not None:
            self.done.add(id(original_node))
            return new
        return updated_node


def fixable(findings: Iterable[Finding], unsafe: bool) -> List[Finding]:
    allowed = {FixKind.SAFE, FixKind.UNSAFE} if unsafe else {FixKind.SAFE}
    return [f for f in findings if f.fix is not None and f.fix.applicability in allowed and f.fix.replacements]


def _has_import(module: cst.Module, name: str) -> bool:
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Import):
                    for alias in small.names:
                        if alias.asname is None and _dotted(alias.name) == name:
                            return True
    return False


def _dotted(node: Any) -> str:
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    if isinstance(node, cst.Name):
        return node.value
    return ""


def add_imports(module: cst.Module, names: Sequence[str]) -> cst.Module:
    """Add ``import NAME`` statements after the module's docstring, ``__future__`` imports and
    leading imports, unless an identical import is already there."""
    missing = [n for n in dict.fromkeys(names) if not _has_import(module, n)]
    if not missing:
        return module
    body = list(module.body)
    insert_at = 0
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and stmt.body:
            first = stmt.body[0]
            is_doc = i == 0 and isinstance(first, cst.Expr) and isinstance(first.value, (cst.SimpleString, cst.ConcatenatedString))
            if is_doc or isinstance(first, (cst.Import, cst.ImportFrom)):
                insert_at = i + 1
                continue
        break
    new = [cst.parse_statement(f"import {n}\n", config=module.config_for_parsing) for n in missing]
    body[insert_at:insert_at] = new
    return module.with_changes(body=body)


def apply(module: cst.Module, findings: Sequence[Finding]) -> cst.Module:
    """Apply the fixes of ``findings`` to ``module``.  Overlapping replacements resolve to the
    outermost one; the caller re-lints and fixes again until nothing is left."""
    replacements: Dict[int, Any] = {}
    imports: List[str] = []
    for finding in findings:
        assert finding.fix is not None
        for old, new in finding.fix.replacements:
            replacements.setdefault(id(old), new)
        imports.extend(finding.fix.imports)
    new_module = module.visit(_Replacer(replacements))
    if imports:
        new_module = add_imports(new_module, imports)
    return new_module


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename,
    keeping the file's permission bits."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = None
    fd, tmp = tempfile.mkstemp(prefix=".dllint-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def append_keyword(call: cst.Call, name: str, value: Any) -> cst.Call:
    """``call`` with ``name=value`` appended, following its one-line or one-argument-per-line layout."""
    args = list(call.args)
    new = cst.Arg(
        keyword=cst.Name(name),
        value=value,
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
        separator = args[-2].comma.whitespace_after
    elif isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        separator = call.whitespace_before_args
    else:
        separator = cst.SimpleWhitespace(" ")
    if isinstance(last.comma, cst.Comma):  # a trailing comma stays trailing
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=separator))
        new = new.with_changes(comma=last.comma)
    else:
        args[-1] = last.with_changes(
            comma=cst.Comma(whitespace_after=separator), whitespace_after_arg=cst.SimpleWhitespace("")
        )
        new = new.with_changes(whitespace_after_arg=last.whitespace_after_arg)
    args.append(new)
    return call.with_changes(args=args)
