"""The per-file pipeline: decode, prefilter, parse once, one walk for the Context and every
rule, positions only when something was found, noqa, fixes."""

from __future__ import annotations

import re
import tokenize
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Type

from dllint.rule import Finding, FixKind, Rule
from dllint.suppress import NoqaIndex

#: Code of the engine's own finding: a file that cannot be read, decoded or parsed.
PARSE_ERROR = "DL001"
PARSE_ERROR_NAME = "unparsable-file"


@dataclass
class Source:
    """A decoded file: text plus how to write it back unchanged in form."""

    text: str
    encoding: str = "utf-8"
    bom: bool = False


class DecodeError(Exception):
    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


def decode(raw: bytes) -> Source:
    """Decode Python source bytes as the interpreter would (BOM, PEP 263 cookie, UTF-8)."""
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise DecodeError("file contains a NUL byte; not Python source", line)
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as exc:
        if "unknown encoding" in str(exc) or "encoding problem" in str(exc):
            raise DecodeError(f"cannot decode the file: {exc}") from None
        encoding = "utf-8"  # not UTF-8 and no coding line: the decode below says where
    codec = "utf-8-sig" if bom else encoding
    try:
        text = raw.decode(codec)
    except (UnicodeDecodeError, LookupError) as exc:
        start = getattr(exc, "start", 0) or 0
        line = raw[:start].count(b"\n") + 1
        col = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise DecodeError(f"cannot decode the file as {encoding} (add a PEP 263 coding line or convert it): {getattr(exc, 'reason', exc)} at byte {start}", line, col) from None
    if encoding in ("utf-8-sig",):
        encoding = "utf-8"
    return Source(text=text, encoding=encoding, bom=bom)


def encode(source: Source, text: str) -> bytes:
    data = text.encode(source.encoding)
    return (b"\xef\xbb\xbf" + data) if source.bom else data


_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+([A-Za-z_]\w*)|import[ \t]+([^\n#;]+))", re.MULTILINE)


def imported_roots(text: str) -> Set[str]:
    """Top-level package names the text imports absolutely, read from its lines (``import a.b, c
    as d`` -> a, c; ``from a.b import x`` -> a; relative imports give nothing).  A line inside a
    string may count too: the answer may say too much, never too little."""
    roots: Set[str] = set()
    for match in _IMPORT_LINE.finditer(text):
        if match.group(1):
            roots.add(match.group(1))
        else:
            for part in match.group(2).split(","):
                name = part.strip().strip("()\\").split(".")[0].split(" ")[0]
                if name:
                    roots.add(name)
    return roots


class RuleSet:
    """An ordered set of enabled rule classes and the dispatch plan built from them."""

    def __init__(self, rules: Sequence[Type[Rule]]) -> None:
        self.rules = tuple(sorted(rules, key=lambda r: r.code))
        self.codes = frozenset(r.code for r in self.rules)
        self._handlers = {r: r.handlers() for r in self.rules}

    def active_for(self, text: str) -> List[Type[Rule]]:
        """The rules whose trigger words occur in ``text`` and, for rules that name frameworks,
        whose framework the text imports."""
        active = [r for r in self.rules if any(t in text for t in r.triggers)]
        if any(r.frameworks for r in active):
            roots = imported_roots(text)
            active = [r for r in active if not r.frameworks or roots.intersection(r.frameworks)]
        return active

    def handlers_of(self, rule: Type[Rule]) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
        return self._handlers[rule]


@dataclass
class LintResult:
    findings: List[Finding] = field(default_factory=list)
    module: Any = None
    context: Any = None


def parse_error_finding(message: str, line: int = 1, col: int = 1) -> Finding:
    return Finding(
        code=PARSE_ERROR,
        name=PARSE_ERROR_NAME,
        message=message,
        line=line,
        col=col,
        end_line=line,
        end_col=col,
    )


def parse(text: str) -> Any:
    """libcst parse, turning every failure into a DecodeError with a position."""
    import libcst as cst

    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        line = getattr(exc, "editor_line", 1) or 1
        col = getattr(exc, "editor_column", 1) or 1
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        # the interpreter's own message names the cause ("'(' was never closed") where it can
        import ast

        try:
            compile(text, "<file>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as py_exc:
            if py_exc.msg:
                message, line, col = py_exc.msg, py_exc.lineno or line, py_exc.offset or col
        except (ValueError, RecursionError, MemoryError):
            pass
        raise DecodeError(f"syntax error: {message}", line, col) from None
    except RecursionError:
        raise DecodeError("the file is nested too deeply to parse") from None
    except Exception as exc:  # libcst raises a few other errors on odd input
        raise DecodeError(f"cannot parse the file: {type(exc).__name__}: {exc}") from None


def syntax_error(text: str) -> Optional[Finding]:
    """A DL001 finding when ``text`` is not valid Python, else None (without libcst)."""
    import ast

    try:
        compile(text, "<file>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # The running interpreter may be older than the code (3.12 syntax on 3.11): libcst's
        # grammar decides, as it does for the files the rules read.
        try:
            parse(text)
        except DecodeError as exc:
            return parse_error_finding(str(exc), exc.line, exc.col)
    return None


_CONTEXT_HANDLERS: Optional[Tuple[List[Tuple[type, str]], List[Tuple[type, str]]]] = None


def _context_handlers() -> Tuple[List[Tuple[type, str]], List[Tuple[type, str]]]:
    """(node class, method name) of the Context's visit_ and leave_ handlers, found once."""
    global _CONTEXT_HANDLERS
    if _CONTEXT_HANDLERS is None:
        from dllint.context import Context
        from dllint.walk import node_class

        visits, leaves = [], []
        for attr in dir(Context):
            cls = node_class(attr[6:]) if attr.startswith(("visit_", "leave_")) else None
            if cls is not None:
                (visits if attr.startswith("visit_") else leaves).append((cls, attr))
        _CONTEXT_HANDLERS = (visits, leaves)
    return _CONTEXT_HANDLERS


def lint_module(
    module: Any,
    text: str,
    path: str,
    rules: Sequence[Type[Rule]],
    ruleset: RuleSet,
    target_versions: Optional[Dict[str, str]] = None,
) -> LintResult:
    """Run the Context and ``rules`` over a parsed module in one walk; return findings with
    positions (1-based line and column)."""
    from dllint.context import Context
    from dllint.walk import node_class, walk

    ctx = Context(module, text, path, target_versions)
    sink: List[Finding] = []
    visit: Dict[type, List[Callable[[Any], Any]]] = {}
    leave: Dict[type, List[Callable[[Any], Any]]] = {}
    owner: Dict[int, Type[Rule]] = {}

    # The Context's handlers first on visit, last on leave.
    context_visits, context_leaves = _context_handlers()
    for cls, attr in context_visits:
        visit.setdefault(cls, []).append(getattr(ctx, attr))

    for rule_cls in rules:
        rule = rule_cls(ctx, sink)
        for type_name, (visit_name, leave_name) in ruleset.handlers_of(rule_cls).items():
            cls = node_class(type_name)
            if cls is None:
                continue
            if visit_name:
                bound = getattr(rule, visit_name)
                owner[id(bound.__func__)] = rule_cls
                visit.setdefault(cls, []).append(bound)
            if leave_name:
                bound = getattr(rule, leave_name)
                owner[id(bound.__func__)] = rule_cls
                leave.setdefault(cls, []).append(bound)
    for cls, attr in context_leaves:
        leave.setdefault(cls, []).append(getattr(ctx, attr))

    failed: Dict[Type[Rule], BaseException] = {}

    def on_error(handler: Callable[[Any], Any], exc: BaseException) -> None:
        func = getattr(handler, "__func__", None)
        rule_cls = owner.get(id(func)) if func is not None else None
        if rule_cls is None:
            raise exc  # the Context itself failed: an internal error of the engine
        if rule_cls not in failed:
            failed[rule_cls] = exc
            # stop dispatching to the broken rule for the rest of this file
            for table in (visit, leave):
                for key, handlers in table.items():
                    table[key] = [h for h in handlers if owner.get(id(getattr(h, "__func__", None))) is not rule_cls]

    walk(module, visit, leave, ctx.stack, on_error)

    findings: List[Finding] = []
    failed_codes = {r.code for r in failed}
    if sink:
        wanted = [f.node for f in sink]
        for f in sink:
            if f.fix is not None:
                wanted.extend(old for old, _ in f.fix.replacements)
        ctx.locate(wanted)
    for finding in sink:
        if finding.code in failed_codes:
            continue
        pos = ctx.position(finding.node)
        if pos is None:
            pos = (1, 0, 1, 0)
        line, col, end_line, end_col = pos
        finding.path = path
        finding.line, finding.col = line, col + 1
        finding.end_line, finding.end_col = end_line, end_col + 1
        if finding.fix is not None:
            finding.fix_message = finding.fix.message
            finding.fix_applicability = finding.fix.applicability.value
            finding.edits = _edits(module, ctx, finding)
        findings.append(finding)
    for rule_cls, exc in failed.items():
        findings.append(
            Finding(
                code=rule_cls.code,
                name=rule_cls.name,
                message=f"internal error in rule {rule_cls.code} ({rule_cls.name}): "
                f"{type(exc).__name__}: {exc}; please report it",
                path=path,
                line=1,
                col=1,
                end_line=1,
                end_col=1,
            )
        )
    return LintResult(findings=findings, module=module, context=ctx)


def _statements_edit(module: Any, ctx: Any, old: Any, new: Any) -> Optional[Dict[str, Any]]:
    """The edit for one statement replaced by several (a FlattenSentinel): whole lines, from
    the old statement's first leading line to the end of its last line, rendered at its indent."""
    from libcst._nodes.internal import CodegenState

    pos = ctx.position(old)
    if pos is None:
        return None
    line, col, end_line, _ = pos
    indent = ctx.source.splitlines(True)[line - 1][:col]
    first = line - len(getattr(old, "leading_lines", ()))
    state = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline)
    if indent:
        state.indent_tokens.append(indent)
    for node in new.nodes:
        node._codegen(state)
    return {
        "content": "".join(state.tokens),
        "location": {"row": first, "column": 1},
        "end_location": {"row": end_line + 1, "column": 1},
    }


def _edits(module: Any, ctx: Any, finding: Finding) -> List[Dict[str, Any]]:
    import libcst as cst

    edits = []
    assert finding.fix is not None
    for old, new in finding.fix.replacements:
        if isinstance(new, cst.FlattenSentinel):
            edit = _statements_edit(module, ctx, old, new)
            if edit is not None:
                edits.append(edit)
            continue
        pos = ctx.position(old)
        if pos is None:
            continue
        edits.append(
            {
                "content": module.code_for_node(new),
                "location": {"row": pos[0], "column": pos[1] + 1},
                "end_location": {"row": pos[2], "column": pos[3] + 1},
            }
        )
    return edits


def lint_text(
    text: str,
    path: str,
    ruleset: RuleSet,
    target_versions: Optional[Dict[str, str]] = None,
    enabled: Optional[Set[str]] = None,
) -> LintResult:
    """Lint source text: prefilter by triggers, parse, walk.  A syntax error is one DL001 finding."""
    rules = [r for r in ruleset.active_for(text) if enabled is None or r.code in enabled]
    if not rules:
        # No rule needs the tree; still tell the user when the file is not valid Python
        # (the standard library's parser is several times cheaper than libcst's).
        error = syntax_error(text)
        if error is not None:
            error.path = path
            return LintResult(findings=[error])
        return LintResult()
    try:
        module = parse(text)
    except DecodeError as exc:
        finding = parse_error_finding(str(exc), exc.line, exc.col)
        finding.path = path
        return LintResult(findings=[finding])
    return lint_module(module, text, path, rules, ruleset, target_versions)


def filter_noqa(findings: List[Finding], text: str) -> List[Finding]:
    """Drop findings suppressed by ``# noqa`` comments or a file-level ``# dllint: noqa``."""
    if "noqa" not in text and "NOQA" not in text.upper():
        return findings
    index = NoqaIndex(text)
    return [f for f in findings if not index.suppresses(f.code, f.line, f.end_line, f.node)]
