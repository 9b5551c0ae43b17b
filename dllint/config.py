"""``[tool.dllint]`` configuration: loading, validation, and rule selection.

The configuration file is the nearest ``pyproject.toml`` that has a ``[tool.dllint]`` table,
searched upward from the current directory (or the file given with ``--config``).  Relative
patterns in it are relative to the folder that holds it.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

DEFAULT_EXCLUDE: Tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    ".tox",
    ".nox",
    ".venv",
    "venv",
    "env",
    "__pypackages__",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    ".eggs",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "__pycache__",
    ".dllint_cache",
    ".ipynb_checkpoints",
)

#: Family prefixes that are always valid selectors, even while a family has no rule yet.
FAMILY_PREFIXES = ("DL", "DL0", "DL1", "DL2", "DL3", "DL4", "DL5", "DL6")

KNOWN_KEYS = (
    "select",
    "ignore",
    "extend-select",
    "per-file-ignores",
    "exclude",
    "extend-exclude",
    "target-versions",
    "max-file-size",
)

DEFAULT_MAX_FILE_SIZE = 2_000_000  # bytes; larger files are skipped with a note


class ConfigError(Exception):
    """A one-line configuration or usage problem (exit code 2)."""


@dataclass
class Config:
    select: Optional[List[str]] = None
    ignore: List[str] = field(default_factory=list)
    extend_select: List[str] = field(default_factory=list)
    per_file_ignores: Dict[str, List[str]] = field(default_factory=dict)
    exclude: List[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    extend_exclude: List[str] = field(default_factory=list)
    target_versions: Dict[str, str] = field(default_factory=dict)
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    path: Optional[str] = None  # the file it came from
    root: str = field(default_factory=os.getcwd)  # folder relative patterns start from

    def all_excludes(self) -> List[str]:
        return list(self.exclude) + list(self.extend_exclude)


def _load_toml(path: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # TOMLDecodeError
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def find_config(start: str) -> Optional[str]:
    """The nearest pyproject.toml at or above ``start`` that has a [tool.dllint] table."""
    folder = os.path.abspath(start)
    while True:
        candidate = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(candidate):
            try:
                with open(candidate, "rb") as handle:
                    head = handle.read()
            except OSError:
                head = b""
            if b"tool.dllint" in head:
                return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _display(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _string_list(value: Any, where: str, key: str) -> List[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: [tool.dllint] {key} must be a list of strings")
    return list(value)


def check_glob(pattern: str, where: str, key: str) -> None:
    depth = 0
    for ch in pattern:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
    if depth or not pattern.strip():
        raise ConfigError(f"{where}: [tool.dllint] {key}: bad glob pattern {pattern!r}")


_VERSION = re.compile(r"\d+(\.\d+){0,3}")


def check_codes(codes: Iterable[str], known: Sequence[str], where: str, key: str) -> List[str]:
    """Upper-case and validate rule selectors: ALL, a family prefix, or a prefix of a known code."""
    out = []
    for raw in codes:
        code = raw.strip().upper()
        if code == "ALL" or code in FAMILY_PREFIXES or any(k.startswith(code) for k in known):
            if code != "ALL" and not re.fullmatch(r"DL\d{0,3}", code):
                raise ConfigError(f"{where}: {key}: unknown rule code {raw!r}")
            out.append(code)
            continue
        hint = difflib.get_close_matches(code, list(known), n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{where}: {key}: unknown rule code {raw!r}{suffix}")
    return out


def load(path: Optional[str], known_codes: Sequence[str]) -> Config:
    """Read and validate a configuration file (None: defaults)."""
    config = Config()
    if path is None:
        return config
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    data = _load_toml(path)
    where = _display(path)
    if os.path.basename(path) == "pyproject.toml" or "tool" in data:
        section = data.get("tool", {}).get("dllint", {})
        prefix = "[tool.dllint] "
    else:  # a dedicated dllint.toml: keys at the top level
        section = data
        prefix = ""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [tool.dllint] must be a table")
    config.path = os.path.abspath(path)
    config.root = os.path.dirname(config.path)
    for key, value in section.items():
        if key not in KNOWN_KEYS:
            hint = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where}: {prefix}unknown key {key!r}{suffix}")
        label = f"{where}: {prefix}{key}".rstrip()
        if key in ("select", "ignore", "extend-select"):
            codes = check_codes(_string_list(value, where, key), known_codes, where, f"{prefix}{key}")
            setattr(config, key.replace("-", "_"), codes)
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{label} must be a table of glob = [codes]")
            table = {}
            for glob, codes in value.items():
                check_glob(glob, where, key)
                table[glob] = check_codes(_string_list(codes, where, key), known_codes, where, f"{prefix}{key}")
            config.per_file_ignores = table
        elif key in ("exclude", "extend-exclude"):
            patterns = _string_list(value, where, key)
            for pattern in patterns:
                check_glob(pattern, where, key)
            setattr(config, key.replace("-", "_"), patterns)
        elif key == "target-versions":
            if not isinstance(value, dict):
                raise ConfigError(f"{label} must be a table such as {{ torch = \"2.1\" }}")
            versions = {}
            for package, version in value.items():
                if not isinstance(version, str) or not _VERSION.fullmatch(version):
                    raise ConfigError(f"{label}: bad version {version!r} for {package!r} (expected e.g. \"2.1\")")
                versions[package.lower()] = version
            config.target_versions = versions
        elif key == "max-file-size":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{label} must be a positive number of bytes")
            config.max_file_size = value
    return config


# ---------------------------------------------------------------------- selection

def _best(code: str, selectors: Iterable[str]) -> int:
    best = -1
    for sel in selectors:
        if sel == "ALL":
            best = max(best, 0)
        elif code.startswith(sel):
            best = max(best, len(sel))
    return best


def enabled_codes(
    rules: Sequence[Any],
    select: Optional[Sequence[str]],
    extend_select: Sequence[str],
    ignore: Sequence[str],
) -> FrozenSet[str]:
    """Codes of the enabled rules.  The most specific selector wins (``--select DL101 --ignore
    DL1`` keeps DL101); on a tie ignore wins.  A rule that is off by default is enabled only by
    its exact code or ALL."""
    enabled = set()
    explicit = set(select or ()) | set(extend_select)
    for rule in rules:
        # no select given means the default selector "DL" (length 2)
        chosen = (2 if rule.default_enabled else -1) if select is None else _best(rule.code, select)
        chosen = max(chosen, _best(rule.code, extend_select))
        if not rule.default_enabled and not (rule.code in explicit or "ALL" in explicit):
            chosen = -1
        if chosen > _best(rule.code, ignore):
            enabled.add(rule.code)
    return frozenset(enabled)


def glob_match(rel_path: str, pattern: str) -> bool:
    """Match a forward-slash relative path against a glob: ``**`` spans folders, a pattern
    without a slash matches any path component (or the file name), a trailing slash means a
    folder."""
    import fnmatch

    pattern = pattern.replace(os.sep, "/")
    if pattern.endswith("/"):
        pattern = pattern.rstrip("/")
        parts = rel_path.split("/")[:-1]
        return any(fnmatch.fnmatchcase(p, pattern) for p in parts) or any(
            fnmatch.fnmatchcase("/".join(parts[: i + 1]), pattern) for i in range(len(parts))
        )
    if "/" not in pattern:
        return any(fnmatch.fnmatchcase(part, pattern) for part in rel_path.split("/"))
    regex = _glob_regex(pattern)
    return regex.fullmatch(rel_path) is not None or regex.match(rel_path + "/") is not None and pattern.endswith("**")


_GLOB_CACHE: Dict[str, "re.Pattern[str]"] = {}


def _glob_regex(pattern: str) -> "re.Pattern[str]":
    compiled = _GLOB_CACHE.get(pattern)
    if compiled is not None:
        return compiled
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    compiled = re.compile("".join(out))
    _GLOB_CACHE[pattern] = compiled
    return compiled
