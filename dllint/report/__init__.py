"""Output formats.  ``render(fmt, findings, rules, out)`` writes findings in one of :data:`FORMATS`.

- ``concise``: ``path:line:col: CODE message``, one finding a line.
- ``full``: code frames, messages, fix diffs and a summary table (rich; colour only when asked).
- ``json``: a list of objects with stable keys.
- ``sarif``: SARIF 2.1.0 for code-scanning dashboards.
- ``github``: GitHub Actions ``::warning`` / ``::error`` workflow commands.

``findings`` arrive sorted; ``rules`` maps each code to its rule class (the engine's DL001 may be
missing and is handled); ``sources`` maps a path to its text, used for code frames and fingerprints.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, TextIO, Type

from dllint.rule import Finding, Rule

FORMATS = ("concise", "full", "json", "sarif", "github")


def render(
    fmt: str,
    findings: List[Finding],
    rules: Mapping[str, Type[Rule]],
    out: TextIO,
    *,
    color: bool = False,
    sources: Optional[Dict[str, str]] = None,
) -> None:
    """Write ``findings`` to ``out`` in format ``fmt``; ``ValueError`` for an unknown format."""
    if fmt == "concise":
        from dllint.report import concise as module
    elif fmt == "full":
        from dllint.report import full as module  # type: ignore[no-redef]
    elif fmt == "json":
        from dllint.report import json_format as module  # type: ignore[no-redef]
    elif fmt == "sarif":
        from dllint.report import sarif as module  # type: ignore[no-redef]
    elif fmt == "github":
        from dllint.report import github as module  # type: ignore[no-redef]
    else:
        raise ValueError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    module.render(list(findings), rules or {}, out, color=color, sources=sources)


__all__ = ["FORMATS", "render"]
