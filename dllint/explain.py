"""``--explain CODE`` and ``--list-rules``: the catalogue as a reader sees it (rich)."""

from __future__ import annotations

from typing import Sequence, TextIO, Type

from dllint.rule import Rule


def _console(out: TextIO, color: bool):  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(file=out, force_terminal=color, no_color=not color, highlight=False, width=100, soft_wrap=False)


def explanation_markdown(rule: Type[Rule]) -> str:
    """The rule's documentation, examples and evidence as Markdown."""
    lines = [f"# {rule.code} {rule.name}", "", rule.documentation(), ""]
    lines += [f"**Message:** {rule.message}", "", f"**Family:** {rule.family} · **Fix:** {rule.fix.value}", ""]
    lines += ["## Evidence", "", f"- Study: {rule.evidence.study}", f"- Category: {rule.evidence.category}"]
    lines += [f"- {link}" for link in rule.evidence.links]
    lines.append("")
    if rule.INVALID:
        lines += ["## Flagged", ""]
        for example in rule.INVALID:
            if example.note:
                lines += [f"*{example.note}*", ""]
            lines += ["```python", example.code.rstrip("\n"), "```", ""]
            if example.fixed is not None:
                lines += ["Fixed" + (" (unsafe fix)" if example.unsafe else "") + ":", "",
                          "```python", example.fixed.rstrip("\n"), "```", ""]
    if rule.VALID:
        lines += ["## Not flagged", ""]
        for example in rule.VALID:
            if example.note:
                lines += [f"*{example.note}*", ""]
            lines += ["```python", example.code.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def explain(rule: Type[Rule], out: TextIO, color: bool) -> None:
    from rich.markdown import Markdown

    _console(out, color).print(Markdown(explanation_markdown(rule)))


def list_rules(rules: Sequence[Type[Rule]], out: TextIO, color: bool) -> None:
    from rich.table import Table

    table = Table(title="dllint rules")
    for column in ("Code", "Name", "Family", "Fix", "Default", "Evidence"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        table.add_row(
            rule.code,
            rule.name,
            rule.family,
            rule.fix.value,
            "on" if rule.default_enabled else "off",
            rule.evidence.links[0] if rule.evidence.links else "",
        )
    _console(out, color).print(table)
