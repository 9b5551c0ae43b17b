"""The flake8 plugin: the same engine, the same findings at the same line and column.

Registered as ``[project.entry-points."flake8.extension"] DL = "dllint.flake8:Plugin"``.
flake8 applies line ``# noqa`` comments itself; the plugin also honours the file-level
``# dllint: noqa``.  Rule selection: flake8's own ``--select`` / ``--ignore`` decide what is
shown; the ``[tool.dllint]`` table decides which rules run at all (read once per process).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, FrozenSet, Generator, List, Optional, Sequence, Tuple

from dllint import __version__


@lru_cache(maxsize=8)
def _settings(cwd: str) -> Tuple[FrozenSet[str], Tuple[Tuple[str, str], ...]]:
    from dllint import config as cfg
    from dllint.registry import all_rules

    rules = all_rules()
    try:
        config = cfg.load(cfg.find_config(cwd), [r.code for r in rules])
    except cfg.ConfigError:
        config = cfg.Config()
    enabled = cfg.enabled_codes(rules, config.select, config.extend_select, config.ignore)
    return enabled, tuple(sorted(config.target_versions.items()))


class Plugin:
    name = "dllint"
    version = __version__

    def __init__(self, tree: Any, filename: str = "<stdin>", lines: Optional[Sequence[str]] = None) -> None:
        self.filename = filename
        self.lines = list(lines) if lines is not None else None

    def _text(self) -> str:
        if self.lines is not None:
            return "".join(self.lines)
        with open(self.filename, encoding="utf-8") as handle:  # pragma: no cover - flake8 passes lines
            return handle.read()

    def run(self) -> Generator[Tuple[int, int, str, type], None, None]:
        from dllint.engine import lint_text
        from dllint.runner import _ruleset
        from dllint.suppress import file_noqa

        enabled, versions = _settings(os.getcwd())
        text = self._text()
        result = lint_text(text, self.filename, _ruleset(), dict(versions), enabled)
        # flake8 applies line ``# noqa`` itself (and honours --disable-noqa); the file-level
        # form is dllint's own.
        skip = file_noqa(text)
        findings = [f for f in result.findings if skip is None or not any(
            s == "*" or f.code.startswith(s) for s in skip)]
        for finding in sorted(findings, key=lambda f: (f.line, f.col, f.code)):
            yield finding.line, finding.col - 1, f"{finding.code} {finding.message}", type(self)
