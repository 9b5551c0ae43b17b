"""The full format: for each finding a header, a code frame with the span underlined, the message
and the fix as a small unified diff; then a summary table per code.

Layout of one finding::

    src/train.py:42:17: DL101 [log-of-softmax]
       |
    41 |     logits = model(x)
    42 |     y = torch.log(torch.softmax(logits, dim=1))
       |         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
    43 |     return y
       |
       = log() of softmax() underflows to -inf; use log_softmax()
       = fix (safe): Use torch.log_softmax
         --- src/train.py
         +++ src/train.py
         @@ -42 +42 @@
         -    y = torch.log(torch.softmax(logits, dim=1))
         +    y = torch.log_softmax(logits, dim=1)

The frame needs the file's text (``sources``); without it only the header, the message and the fix
are shown.  For a notebook the text is the ``.ipynb`` JSON and the frame shows the cell's source.
Colour is used only when ``color`` is true, so that piped output and tests are plain text.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Dict, List, Mapping, Optional, TextIO, Tuple

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dllint.report._common import (
    RuleMap,
    apply_edits,
    clean_edits,
    has_fix,
    is_error,
    location_text,
    rule_name,
    source_text,
    span,
    split_lines,
    strip_eol,
)
from dllint.rule import Finding

#: Lines of context shown above and below the finding.
CONTEXT = 2
#: A span longer than this many lines is shown as its first and last lines around an ellipsis.
MAX_SPAN_LINES = 6
TAB_SIZE = 4
WIDTH = 100

STYLE_LOCATION = "bold"
STYLE_WARNING = "bold yellow"
STYLE_ERROR = "bold red"
STYLE_NAME = "cyan"
STYLE_GUTTER = "blue"
STYLE_CARET = "bold red"
STYLE_MESSAGE = "bold"
STYLE_FIX = "green"
STYLE_DIFF_DEL = "red"
STYLE_DIFF_ADD = "green"
STYLE_DIFF_HUNK = "cyan"


def make_console(out: TextIO, color: bool) -> Console:
    """A console whose output depends only on ``color`` (not on the environment or the stream)."""
    return Console(
        file=out,
        force_terminal=color,
        force_jupyter=False,
        force_interactive=False,
        no_color=not color,
        color_system="standard" if color else None,
        width=WIDTH,
        highlight=False,
        markup=False,
        emoji=False,
        legacy_windows=False,
    )


def _visible(line: str) -> str:
    """Make control characters visible (never send a file's escape codes to the terminal), expand tabs."""
    chars = []
    for ch in line:
        code = ord(ch)
        if ch == "\t":
            chars.append(ch)
        elif code < 0x20:
            chars.append(chr(0x2400 + code))
        elif code == 0x7F:
            chars.append("\u2421")
        elif 0x80 <= code < 0xA0:
            chars.append("\ufffd")
        else:
            chars.append(ch)
    return "".join(chars).expandtabs(TAB_SIZE)


def _width(line: str, upto: int) -> int:
    """Display width of the first ``upto`` characters of ``line``."""
    return cell_len(_visible(line[:upto]))


def _frame(finding: Finding, text: str) -> Optional[List[Tuple[Optional[int], str, Optional[Tuple[int, int]]]]]:
    """Rows of the code frame: (line number or None for an ellipsis, display text, caret range)."""
    lines = [strip_eol(line) for line in split_lines(text)]
    if not lines:
        lines = [""]
    line, col, end_line, end_col = span(finding)
    if line > len(lines):
        return None
    end_line = min(end_line, len(lines))
    if end_line < line:
        end_line, end_col = line, col

    span_rows = list(range(line, end_line + 1))
    if len(span_rows) > MAX_SPAN_LINES:
        head = MAX_SPAN_LINES // 2
        tail = MAX_SPAN_LINES - head - 1
        span_rows = span_rows[:head] + [0] + span_rows[-tail:]
    first = max(1, line - CONTEXT)
    last = min(len(lines), end_line + CONTEXT)
    rows: List[Tuple[Optional[int], str, Optional[Tuple[int, int]]]] = []
    for number in list(range(first, line)) + span_rows + list(range(end_line + 1, last + 1)):
        if number == 0:
            rows.append((None, "...", None))
            continue
        source = lines[number - 1]
        caret: Optional[Tuple[int, int]] = None
        if line <= number <= end_line:
            if number == line:
                start = _width(source, col - 1)
            else:
                start = _width(source, len(source) - len(source.lstrip()))
            if number == end_line:
                stop = _width(source, max(end_col - 1, 0))
            else:
                stop = _width(source, len(source))
            if stop > start:
                caret = (start, stop)
            elif number == line:  # an empty span still gets one caret
                caret = (start, start + 1)
        rows.append((number, _visible(source), caret))
    return rows


def _diff(finding: Finding, text: Optional[str]) -> Optional[List[str]]:
    """The fix as unified-diff lines (no context lines), or None when it cannot be shown as one."""
    if text is None or not finding.edits:
        return None
    fixed = apply_edits(text, finding.edits)
    if fixed is None or fixed == text:
        return None
    label = finding.path if finding.cell is None else f"{finding.path} (cell {finding.cell})"
    old = [strip_eol(line) for line in split_lines(text)]
    new = [strip_eol(line) for line in split_lines(fixed)]
    return list(difflib.unified_diff(old, new, fromfile=label, tofile=label, n=0, lineterm=""))


def _edit_lines(finding: Finding) -> List[str]:
    """The fix's edits spelled out, for when there is no source to diff against."""
    out = []
    for edit in clean_edits(finding.edits):
        start, end = edit["location"], edit["end_location"]
        where = f"{start['row']}:{start['column']}-{end['row']}:{end['column']}"
        content = edit["content"].replace("\r", "\\r").replace("\n", "\\n")
        out.append(f"replace {where} with {content!r}" if content else f"delete {where}")
    return out


def _render_finding(console: Console, finding: Finding, rules: RuleMap, text: Optional[str]) -> None:
    code_style = STYLE_ERROR if is_error(finding) else STYLE_WARNING
    header = Text()
    header.append(location_text(finding) + ":", style=STYLE_LOCATION)
    header.append(" ")
    header.append(finding.code, style=code_style)
    header.append(" ")
    header.append(f"[{rule_name(finding, rules)}]", style=STYLE_NAME)
    console.print(header, soft_wrap=True)

    rows = _frame(finding, text) if text is not None else None
    gutter = max((len(str(n)) for n, _, _ in rows or () if n is not None), default=1)
    pad = " " * gutter

    def bar(prefix: str = pad) -> Text:
        out = Text()
        out.append(f"{prefix} |", style=STYLE_GUTTER)
        return out

    if rows:
        console.print(bar(), soft_wrap=True)
        for number, display, caret in rows:
            label = "." * gutter if number is None else str(number).rjust(gutter)
            row = bar(label)
            row.append(" " + display if display else "")
            console.print(row, soft_wrap=True)
            if caret is not None:
                start, stop = caret
                marks = bar()
                marks.append(" " + " " * start)
                marks.append("^" * (stop - start), style=STYLE_CARET)
                console.print(marks, soft_wrap=True)
        console.print(bar(), soft_wrap=True)

    message = Text()
    message.append(f"{pad} = ", style=STYLE_GUTTER)
    message.append(finding.message, style=STYLE_MESSAGE)
    console.print(message, soft_wrap=True)

    if has_fix(finding):
        fix = Text()
        fix.append(f"{pad} = ", style=STYLE_GUTTER)
        label = f"fix ({finding.fix_applicability})" if finding.fix_applicability else "fix"
        fix.append(f"{label}: {finding.fix_message or ''}".rstrip(), style=STYLE_FIX)
        console.print(fix, soft_wrap=True)
        diff = _diff(finding, text)
        indent = pad + "   "
        for line in diff if diff is not None else _edit_lines(finding):
            style = ""
            if diff is not None:
                if line.startswith("@@"):
                    style = STYLE_DIFF_HUNK
                elif line.startswith(("---", "+++")):
                    style = "bold"
                elif line.startswith("-"):
                    style = STYLE_DIFF_DEL
                elif line.startswith("+"):
                    style = STYLE_DIFF_ADD
            row = Text(indent)
            row.append(_visible(line), style=style)
            console.print(row, soft_wrap=True)
    console.print()


def summary_table(findings: List[Finding], rules: RuleMap) -> Table:
    """Count, code and name per code, most frequent first."""
    counts: Counter = Counter(f.code for f in findings)
    names: Dict[str, str] = {}
    for finding in findings:
        names.setdefault(finding.code, rule_name(finding, rules))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Count", justify="right")
    table.add_column("Code")
    table.add_column("Name")
    for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(str(count), code, names[code])
    return table


def render(
    findings: List[Finding],
    rules: RuleMap,
    out: TextIO,
    *,
    color: bool = False,
    sources: Optional[Mapping[str, str]] = None,
) -> None:
    console = make_console(out, color)
    if not findings:
        console.print("No findings.")
        return
    texts: Dict[Tuple[str, Optional[int]], Optional[str]] = {}
    for finding in findings:
        key = (finding.path, finding.cell)
        if key not in texts:
            texts[key] = source_text(finding, sources)
        _render_finding(console, finding, rules, texts[key])
    console.print(summary_table(findings, rules))
    total = len(findings)
    files = len({f.path for f in findings})
    fixable = sum(1 for f in findings if f.edits and f.fix_applicability == "safe")
    line = f"Found {total} finding{'s' if total != 1 else ''} in {files} file{'s' if files != 1 else ''}."
    if fixable:
        line += f" {fixable} fixable with --fix."
    console.print(line, soft_wrap=True)
