"""The rule API: a rule is one class in one file, readable top to bottom.

A rule declares its metadata as class attributes, documents itself in its
docstring, carries its own VALID / INVALID examples, and implements
``visit_<NodeType>`` (and optionally ``leave_<NodeType>``) methods for the
libcst node types it wants to see.  The engine walks each tree once and
dispatches every node to the rules that asked for its type.  A rule never
reads files, parses or prints: it looks at the node, asks ``self.ctx`` (the
shared :class:`dllint.context.Context`) and calls ``self.report``.
"""

from __future__ import annotations

import enum
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst

    from dllint.context import Context


class FixKind(str, enum.Enum):
    """What a rule's fix may do: nothing, a rewrite safe to apply unreviewed, or a suggestion."""

    NONE = "none"
    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class Evidence:
    """Where a rule comes from: a seed study and category, and real reports or docs."""

    study: str
    category: str
    links: Tuple[str, ...] = ()


@dataclass
class Fix:
    """A libcst rewrite: node replacements (old node -> new node) plus imports to add.

    ``imports`` holds module names for ``import X`` statements the new code needs.
    """

    message: str
    replacements: List[Tuple[Any, Any]]
    applicability: FixKind = FixKind.SAFE
    imports: Tuple[str, ...] = ()


@dataclass
class Finding:
    """One reported problem.  Line and column are 1-based; ``node`` is dropped after positions are known."""

    code: str
    name: str
    message: str
    path: str = ""
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0
    fix: Optional[Fix] = None
    node: Any = None
    cell: Optional[int] = None
    # Serialised fix edits (for json / sarif), filled once positions are known.
    edits: Optional[List[Dict[str, Any]]] = None
    fix_message: Optional[str] = None
    fix_applicability: Optional[str] = None

    def sort_key(self) -> Tuple[Any, ...]:
        return (self.path, self.cell or 0, self.line, self.col, self.code)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "end_line": self.end_line,
            "end_col": self.end_col,
            "cell": self.cell,
            "edits": self.edits,
            "fix_message": self.fix_message,
            "fix_applicability": self.fix_applicability,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Finding":
        return cls(**data)


@dataclass(frozen=True)
class Valid:
    """Code the rule must stay silent on (near-misses belong here)."""

    code: str
    note: str = ""


@dataclass(frozen=True)
class Invalid:
    """Code the rule must flag; ``fixed`` is the expected code after ``--fix`` (and unsafe fixes if
    ``unsafe`` is set); ``count`` is how many findings of this rule the code yields."""

    code: str
    fixed: Optional[str] = None
    count: int = 1
    unsafe: bool = False
    note: str = ""


def dedent(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


class Rule:
    """Base class of every rule.  Subclasses set the metadata and write visit_/leave_ methods."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    message: ClassVar[str] = ""
    fix: ClassVar[FixKind] = FixKind.NONE
    evidence: ClassVar[Evidence] = Evidence("", "")
    #: Words of which at least one must occur in the file's text for the rule to run.
    triggers: ClassVar[Tuple[str, ...]] = ()
    #: Top-level packages of which at least one must be imported (``import x`` / ``from x...``
    #: anywhere in the file) for the rule to run; empty: no such condition.  Relative imports do
    #: not count, so a framework's own source does not wake its users' rules.
    frameworks: ClassVar[Tuple[str, ...]] = ()
    #: Whether the rule is on unless selected explicitly.
    default_enabled: ClassVar[bool] = True
    VALID: ClassVar[Sequence[Valid]] = ()
    INVALID: ClassVar[Sequence[Invalid]] = ()

    def __init__(self, ctx: "Context", sink: List[Finding]) -> None:
        self.ctx = ctx
        self._sink = sink

    def report(
        self,
        node: "cst.CSTNode",
        message: Optional[str] = None,
        fix: Optional[Fix] = None,
    ) -> None:
        """Report a finding at ``node``.  ``message`` defaults to the rule's message."""
        self._sink.append(
            Finding(
                code=self.code,
                name=self.name,
                message=message or self.message,
                fix=fix,
                node=node,
            )
        )

    # -- introspection used by the engine, the CLI and the docs ---------------------------

    @classmethod
    def documentation(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        doc = cls.documentation()
        return doc.split("\n\n", 1)[0].replace("\n", " ") if doc else cls.message

    @classmethod
    def handlers(cls) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
        """Map node type name -> (visit method name, leave method name)."""
        out: Dict[str, List[Optional[str]]] = {}
        for attr in dir(cls):
            if attr.startswith("visit_"):
                out.setdefault(attr[6:], [None, None])[0] = attr
            elif attr.startswith("leave_"):
                out.setdefault(attr[6:], [None, None])[1] = attr
        return {k: (v[0], v[1]) for k, v in out.items()}

    @classmethod
    def check_metadata(cls) -> List[str]:
        """Problems with this rule's declaration (empty when it is well formed)."""
        import re

        problems = []
        if not re.fullmatch(r"DL\d{3}", cls.code or ""):
            problems.append(f"code {cls.code!r} is not of the form DL123")
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name or ""):
            problems.append(f"name {cls.name!r} is not kebab-case")
        for attr in ("family", "message"):
            if not getattr(cls, attr):
                problems.append(f"missing {attr}")
        if not cls.__doc__:
            problems.append("missing docstring (the rule's documentation)")
        if not cls.evidence.study or not cls.evidence.links:
            problems.append("evidence needs a study and at least one link")
        if not cls.triggers:
            problems.append("no triggers")
        if not cls.handlers():
            problems.append("no visit_/leave_ methods")
        if not cls.VALID or not cls.INVALID:
            problems.append("needs VALID and INVALID examples")
        if cls.fix is not FixKind.NONE and not any(i.fixed is not None for i in cls.INVALID):
            problems.append("a fixing rule needs INVALID examples with fixed code")
        return problems
