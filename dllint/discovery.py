"""Paths -> the files to check: .py, .pyi and .ipynb, recursing into folders, skipping excludes."""

from __future__ import annotations

import os
from typing import Iterator, List, Sequence, Tuple

from dllint.config import ConfigError, glob_match

SUFFIXES = (".py", ".pyi", ".ipynb")


def relative_to(path: str, root: str) -> str:
    """``path`` relative to ``root`` with forward slashes; the absolute path if it is outside."""
    absolute = os.path.abspath(path)
    try:
        rel = os.path.relpath(absolute, root)
    except ValueError:
        return absolute.replace(os.sep, "/")
    if rel == os.curdir:
        return ""
    if rel.startswith(os.pardir):
        return absolute.replace(os.sep, "/")
    return rel.replace(os.sep, "/")


def is_excluded(path: str, patterns: Sequence[str], root: str, components: bool = True) -> bool:
    """Whether ``path`` matches an exclude pattern.  A pattern without a slash matches the file
    or folder name (and, with ``components``, any folder above it below ``root``); a pattern
    with a slash matches the path relative to ``root``."""
    import fnmatch

    rel = relative_to(path, root)
    inside = bool(rel) and not os.path.isabs(rel)
    name = os.path.basename(os.path.abspath(path))
    for pattern in patterns:
        bare = pattern.rstrip("/")
        if "/" not in bare:
            if fnmatch.fnmatchcase(name, bare):
                return True
            if components and inside and any(fnmatch.fnmatchcase(part, bare) for part in rel.split("/")[:-1]):
                return True
        elif inside and glob_match(rel, pattern):
            return True
    return False


def display_path(path: str) -> str:
    """The path as printed: relative to the current folder when under it, else as given."""
    absolute = os.path.abspath(path)
    cwd = os.getcwd()
    if absolute == cwd or absolute.startswith(cwd.rstrip(os.sep) + os.sep):
        return os.path.relpath(absolute, cwd)
    return path


def discover(
    paths: Sequence[str], excludes: Sequence[str], root: str, force_exclude: bool = False
) -> List[Tuple[str, str]]:
    """(path to open, path to display) for every file to check, sorted and without duplicates.
    A missing path is a ConfigError (exit 2).  Files named explicitly are always checked unless
    ``force_exclude`` applies the excludes to them too."""
    seen = set()
    out: List[Tuple[str, str]] = []

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append((path, display_path(path)))

    for given in paths:
        if not os.path.exists(given):
            raise ConfigError(f"{given}: no such file or directory")
        if os.path.isfile(given):
            if force_exclude and is_excluded(given, excludes, root):
                continue
            add(given)
            continue
        if force_exclude and given not in (".", "./") and is_excluded(given, excludes, root):
            continue
        for path in _walk(given, excludes, root):
            add(path)
    out.sort(key=lambda item: item[1])
    return out


def _walk(top: str, excludes: Sequence[str], root: str) -> Iterator[str]:
    for folder, dirs, files in os.walk(top, onerror=None, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not is_excluded(os.path.join(folder, d), excludes, root, False))
        for name in sorted(files):
            if name.endswith(SUFFIXES):
                path = os.path.join(folder, name)
                if not is_excluded(path, excludes, root, False):
                    yield path
