"""A copy of the project's working tree, for tests that build or install it.

Building in the working tree itself would leave ``build/`` and ``*.egg-info`` behind, and a stale
``build/lib`` can slip deleted modules into the next wheel; so those tests work on a copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List

PROJECT = Path(__file__).resolve().parent.parent

_SKIP = {".git", ".venv", "venv", "build", "dist", ".dllint_cache", ".pytest_cache", "__pycache__", ".tox", ".nox"}


def _listed() -> List[str]:
    """Tracked files and untracked, not ignored ones, as they are on disk now."""
    if (PROJECT / ".git").exists() and shutil.which("git"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
        )
        if proc.returncode == 0:
            return sorted({name for name in proc.stdout.split("\0") if name})
    names = []  # an unpacked source tree: everything but build outputs and caches
    for path in PROJECT.rglob("*"):
        parts = path.relative_to(PROJECT).parts
        if path.is_file() and not set(parts) & _SKIP and not any(p.endswith(".egg-info") for p in parts):
            names.append(str(path.relative_to(PROJECT)))
    return sorted(names)


def copy_worktree(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in _listed():
        source = PROJECT / name
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest
