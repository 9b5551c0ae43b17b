"""Jupyter notebooks (.ipynb, nbformat 4) as Python source, and back.

``Notebook.parse`` reads the JSON with the json module and joins the code cells into one Python
text, ``source``.  Each code cell is preceded by a separator statement ``pass  # dllint-cell N``
(N = the cell's 1-based number over all cells, markdown included).  A statement rather than a bare
comment, so that a fix removing a cell's first statement (and with it that statement's leading
comments) cannot remove the separator.  ``locate`` maps a line of ``source`` to (cell, row).

IPython syntax that is not Python is masked line for line, so every other line keeps its number:
at the start of a logical line (not inside brackets, a string or after a backslash), lines starting
with ``%``, ``!`` or ``?``, lines ending in ``?`` (``obj?``, ``obj??``), and ``x = !cmd`` /
``x = %magic``.  Such a line becomes ``<its indentation>pass  # dllint-mask K``.  Every line of a
cell whose first non-blank line starts with ``%%`` (a cell magic) becomes ``# dllint-mask K``.
``write_back`` restores the original lines exactly.

``write_back`` splices the new ``source`` values of the changed code cells into the original JSON
text; every other byte (key order, indent, escapes, outputs, metadata, trailing newline) is kept.
Limitation: a changed ``source`` value itself is serialized the way nbformat writes it (a list of
lines one indent level below its key, ``ensure_ascii=False``), whatever its original layout was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring
from typing import Dict, List, Tuple

CELL_MARK = "pass  # dllint-cell {}"
_CELL_RE = re.compile(r"^pass[ \t]*#[ \t]*dllint-cell (\d+)[ \t]*$")
_MASK_RE = re.compile(r"^[ \t]*(?:pass[ \t]*)?#[ \t]*dllint-mask (\d+)[ \t]*$")
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_ASSIGN_RE = re.compile(r"^[A-Za-z_][\w.,\s\[\]()*]*=\s*[!%]")
_WS_RE = re.compile(r"[ \t\n\r]*")


class NotebookError(Exception):
    """One-line reason a notebook cannot be checked (not JSON, not nbformat 4, bad cell...)."""


def _lines(text: str) -> List[str]:
    """Lines of ``text`` with their endings (``\\n``, ``\\r\\n`` or ``\\r``); the last may have none."""
    return _LINE_RE.findall(text)


def _split_end(line: str) -> Tuple[str, str]:
    body = line.rstrip("\r\n")
    return body, line[len(body):]


class _Continuation:
    """Just enough tokenizing to tell whether a line starts a new logical line."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote = ""
        self.backslash = False

    def at_start(self) -> bool:
        return self.depth == 0 and not self.quote and not self.backslash

    def feed(self, body: str) -> None:
        i, n = 0, len(body)
        self.backslash = False
        while i < n:
            c = body[i]
            if self.quote:
                if c == "\\":
                    i += 2
                    continue
                if body.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = ""
                    continue
            elif c == "#":
                break
            elif c in "'\"":
                self.quote = body[i:i + 3] if body[i:i + 3] in ('"""', "'''") else c
                i += len(self.quote)
                continue
            elif c in "([{":
                self.depth += 1
            elif c in ")]}":
                self.depth = max(0, self.depth - 1)
            elif c == "\\" and i == n - 1:
                self.backslash = True
            i += 1
        if len(self.quote) == 1 and not body.endswith("\\"):
            self.quote = ""  # an unterminated one-line string ends with its line


def _is_ipython(body: str) -> bool:
    s = body.strip()
    if s.startswith(("%", "!", "?")) or _ASSIGN_RE.match(s):
        return True
    return s.endswith("?") and not any(ch in s for ch in "#'\"")


@dataclass
class _Cell:
    number: int  # 1-based over all cells
    text: str  # the cell's original source text
    as_list: bool  # `source` was a list of strings
    first: int  # line of its separator in Notebook.source
    length: int  # its number of lines in Notebook.source, separator excluded


class Notebook:
    """A parsed notebook: ``source`` to check, ``locate`` for positions, ``write_back`` for fixes."""

    def __init__(self, raw: bytes, text: str, bom: bool) -> None:
        self.raw = raw
        self._text = text  # the JSON text, BOM removed
        self._bom = bom
        self._cells: List[_Cell] = []
        self._masked: Dict[int, str] = {}
        self.source = ""

    @classmethod
    def parse(cls, raw: bytes) -> "Notebook":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotebookError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
        bom = text.startswith("\ufeff")
        nb = cls(raw, text[1:] if bom else text, bom)
        out: List[str] = []
        for number, cell in enumerate(_load(nb._text), 1):
            if cell.get("cell_type") != "code":
                continue
            src = cell.get("source")
            if isinstance(src, list) and all(isinstance(s, str) for s in src):
                cell_text, as_list = "".join(src), True
            elif isinstance(src, str):
                cell_text, as_list = src, False
            else:
                raise NotebookError(f"cell {number}: 'source' is not a string or a list of strings")
            out.append(CELL_MARK.format(number) + "\n")
            lines = nb._mask(cell_text)
            nb._cells.append(_Cell(number, cell_text, as_list, len(out), len(lines)))
            out.extend(lines)
        nb.source = "".join(out)
        return nb

    def _mask(self, text: str) -> List[str]:
        lines = _lines(text)
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"
        magic = next((ln.strip() for ln in lines if ln.strip()), "").startswith("%%")
        state = _Continuation()
        for i, line in enumerate(lines):
            body, end = _split_end(line)
            if magic or (state.at_start() and _is_ipython(body)):
                key = len(self._masked)
                self._masked[key] = body
                indent = "" if magic else body[: len(body) - len(body.lstrip())]
                lines[i] = f"{indent}{'' if magic else 'pass  '}# dllint-mask {key}{end}"
            else:
                state.feed(body)
        return lines

    def locate(self, line: int) -> Tuple[int, int]:
        """A 1-based line of ``source`` -> (cell number over all cells, row in that cell), clamped."""
        if not self._cells:
            return 1, 1
        cell = self._cells[0]
        for c in self._cells:
            if c.first <= line:
                cell = c
        return cell.number, min(max(line - cell.first, 1), max(cell.length, 1))

    def write_back(self, new_source: str) -> bytes:
        """The notebook bytes with the code cells whose text changed in ``new_source`` replaced."""
        blocks: List[Tuple[int, List[str]]] = [(0, [])]
        for line in _lines(new_source):
            m = _CELL_RE.match(_split_end(line)[0])
            if m:
                blocks.append((int(m.group(1)), []))
            else:
                blocks[-1][1].append(line)
        lead = blocks.pop(0)[1]
        if [n for n, _ in blocks] != [c.number for c in self._cells]:
            raise NotebookError("the cell separators in the fixed source do not match the cells")
        if not blocks:
            if "".join(lead).strip():
                raise NotebookError("the fixed source has text but the notebook has no code cell")
            return self.raw
        blocks[0][1][:0] = lead  # text a fix put before the first separator belongs to cell 1
        changes: Dict[int, object] = {}
        for cell, (_, lines) in zip(self._cells, blocks):
            for i, line in enumerate(lines):
                body, end = _split_end(line)
                m = _MASK_RE.match(body)
                if m and int(m.group(1)) in self._masked:
                    lines[i] = self._masked[int(m.group(1))] + end
            text = "".join(lines)
            if not cell.text.endswith(("\n", "\r")) and text.endswith("\n"):
                text = text[:-1]
            if text != cell.text:
                changes[cell.number - 1] = _lines(text) if cell.as_list else text
        if not changes:
            return self.raw
        return (("\ufeff" if self._bom else "") + self._splice(changes)).encode("utf-8")

    def _splice(self, changes: Dict[int, object]) -> str:
        text = self._text
        scan = json.JSONDecoder().scan_once
        unit = re.match(r"\s*\{\r?\n([ \t]+)", text)
        nl = "\r\n" if "\r\n" in text else "\n"
        start = _WS_RE.match(text).end()
        cells_span = dict(_members(text, start, scan))["cells"]
        items = _elements(text, cells_span[0], scan)
        parts, pos = [], 0
        for index in sorted(changes):
            s, e = dict(_members(text, items[index][0], scan))["source"]
            value = changes[index]
            if isinstance(value, list) and value and unit:
                line_start = text.rfind("\n", 0, s) + 1
                key_line = text[line_start:s]
                indent = key_line[: len(key_line) - len(key_line.lstrip(" \t"))]
                inner = indent + unit.group(1)
                dumped = (
                    "[" + nl + ("," + nl).join(inner + json.dumps(v, ensure_ascii=False) for v in value)
                    + nl + indent + "]"
                )
            else:
                dumped = json.dumps(value, ensure_ascii=False)
            parts += [text[pos:s], dumped]
            pos = e
        parts.append(text[pos:])
        return "".join(parts)


def _load(text: str) -> list:
    """The ``cells`` list of a valid nbformat 4 notebook, or NotebookError."""
    try:
        nb = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and over-long integers
        raise NotebookError(f"not valid JSON: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise NotebookError("not valid JSON: nested too deeply") from None
    if not isinstance(nb, dict):
        raise NotebookError("not a notebook: the JSON is not an object")
    version = nb.get("nbformat")
    if type(version) is not int or version != 4:
        raise NotebookError(f"not an nbformat 4 notebook (nbformat is {version!r})")
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise NotebookError("not a notebook: 'cells' is not a list")
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            raise NotebookError(f"cell {number} is not an object")
    return cells


def _members(text: str, i: int, scan) -> List[Tuple[str, Tuple[int, int]]]:
    """(key, (start, end) of its value) for each member of the JSON object at ``text[i]``."""
    out = []
    i = _WS_RE.match(text, i + 1).end()
    while text[i] != "}":
        key, i = scanstring(text, i + 1)
        start = _WS_RE.match(text, _WS_RE.match(text, i).end() + 1).end()  # past the colon
        _, end = scan(text, start)
        out.append((key, (start, end)))
        i = _WS_RE.match(text, end).end()
        if text[i] == ",":
            i = _WS_RE.match(text, i + 1).end()
    return out


def _elements(text: str, i: int, scan) -> List[Tuple[int, int]]:
    """(start, end) of each element of the JSON array at ``text[i]``."""
    out = []
    i = _WS_RE.match(text, i + 1).end()
    while text[i] != "]":
        _, end = scan(text, i)
        out.append((i, end))
        i = _WS_RE.match(text, end).end()
        if text[i] == ",":
            i = _WS_RE.match(text, i + 1).end()
    return out
