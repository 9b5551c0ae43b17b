"""The pre-commit hooks, used as a user uses them.

A throwaway git repository gets a buggy file, and ``pre-commit try-repo PROJECT HOOK --all-files``
runs the hook from ``.pre-commit-hooks.yaml``.  pre-commit builds its own environment and installs
dllint there with pip (the dependencies come from the package index), exactly as for a user.

PROJECT is a local clone of this project's working tree: a fresh git repository holding every
tracked and every untracked, not ignored file as it is on disk now, committed once per test
session.  (``try-repo`` on the working tree itself would also make a shadow commit of uncommitted
changes, but only of files git already tracks, so a new, not yet added module would be missing.)

``try-repo`` installs into a fresh temporary store on every call; the remaining checks use a
``.pre-commit-config.yaml`` and a store shared by the whole session, so the hook environment is
built once for them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from _worktree import copy_worktree

pytestmark = pytest.mark.slow

BUGGY = "import torch\nimport torch.nn.functional as F\n\nloss = -(target * torch.log(F.softmax(logits, dim=-1))).sum()\n"
FIXED = "import torch\nimport torch.nn.functional as F\n\nloss = -(target * F.log_softmax(logits, dim=-1)).sum()\n"
CLEAN = "import torch.nn.functional as F\n\nlogp = F.log_softmax(logits, dim=-1)\n"


def _notebook(source: str) -> str:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# A notebook\n"]},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source.splitlines(True)},
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


def _have_precommit() -> bool:
    try:
        import pre_commit  # noqa: F401
    except ImportError:
        return False
    return True


if shutil.which("git") is None:
    pytest.skip("git is not installed", allow_module_level=True)
if not _have_precommit():
    pytest.skip("pre-commit is not installed", allow_module_level=True)


def _env(home: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT", "PIP_REQUIRE"))}
    for name in ("NO_COLOR", "FORCE_COLOR", "GITHUB_ACTIONS", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PRE_COMMIT_HOME"] = str(home)
    env["PRE_COMMIT_COLOR"] = "never"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "dllint tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@dllint.invalid"
    return env


def _git(args: List[str], cwd: Path, env: Dict[str, str]) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def precommit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture(scope="session")
def project_clone(tmp_path_factory: pytest.TempPathFactory, precommit_home: Path) -> Path:
    """A one-commit git repository with the project's working tree as it is on disk."""
    env = _env(precommit_home)
    clone = copy_worktree(tmp_path_factory.mktemp("project") / "dllint")
    assert (clone / ".pre-commit-hooks.yaml").is_file(), ".pre-commit-hooks.yaml is missing at the project root"
    _git(["init", "-q"], clone, env)
    _git(["add", "-A"], clone, env)
    _git(["commit", "-q", "--no-verify", "-m", "working tree"], clone, env)
    return clone


def _user_repo(root: Path, files: Dict[str, str], env: Dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q"], root, env)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(["add", "-A"], root, env)
    return root


def _precommit(args: List[str], cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    # pre-commit itself failing (exit 3: an error in the hook environment, e.g. pip) is never a pass
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "An unexpected error has occurred" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def _try_repo(clone: Path, hook: str, cwd: Path, env: Dict[str, str], files: Optional[List[str]] = None):
    selection = ["--files", *files] if files else ["--all-files"]
    return _precommit(["try-repo", str(clone), hook, *selection, "--verbose"], cwd, env)


def test_try_repo_dllint_fails_on_a_buggy_file(tmp_path: Path, project_clone: Path, precommit_home: Path) -> None:
    env = _env(precommit_home)
    repo = _user_repo(
        tmp_path / "user",
        {"train.py": BUGGY, "notebook.ipynb": _notebook(BUGGY), "clean.py": CLEAN, "README.md": "torch.log(F.softmax(x))\n"},
        env,
    )
    proc = _try_repo(project_clone, "dllint", repo, env)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "Failed" in out
    assert "train.py:4:19: DL101 " in out
    assert "notebook.ipynb:cell 2:4:19: DL101 " in out  # types_or includes jupyter
    assert "clean.py:" not in out and "README.md" not in out
    assert (repo / "train.py").read_text(encoding="utf-8") == BUGGY  # the check hook writes nothing


def test_try_repo_dllint_fix_rewrites_the_file(tmp_path: Path, project_clone: Path, precommit_home: Path) -> None:
    env = _env(precommit_home)
    repo = _user_repo(tmp_path / "user", {"train.py": BUGGY, "clean.py": CLEAN}, env)
    proc = _try_repo(project_clone, "dllint-fix", repo, env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # --exit-non-zero-on-fix: a file changed
    assert "Failed" in proc.stdout
    assert "files were modified by this hook" in proc.stdout
    assert (repo / "train.py").read_text(encoding="utf-8") == FIXED
    assert (repo / "clean.py").read_text(encoding="utf-8") == CLEAN


def _config(clone: Path) -> str:
    rev = _git(["rev-parse", "HEAD"], clone, {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}).strip()
    return (
        "repos:\n"
        f"-   repo: {json.dumps(str(clone))}\n"
        f"    rev: {rev}\n"
        "    hooks:\n"
        "    -   id: dllint\n"
        "    -   id: dllint-fix\n"
    )


def test_hooks_pass_on_clean_files_and_fail_on_buggy_ones(tmp_path: Path, project_clone: Path, precommit_home: Path) -> None:
    """The usual set-up: a .pre-commit-config.yaml naming both hooks, run as a commit would."""
    env = _env(precommit_home)
    repo = _user_repo(
        tmp_path / "user",
        {
            ".pre-commit-config.yaml": _config(project_clone),
            "clean.py": CLEAN,
            # excluded by default: with --force-exclude the hook skips it even when pre-commit names it
            "build/generated.py": BUGGY,
        },
        env,
    )
    # build/ is ignored by git in many projects, but here it is tracked, so pre-commit passes it
    proc = _precommit(["run", "--all-files"], repo, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Passed") == 2, proc.stdout

    (repo / "train.py").write_text(BUGGY, encoding="utf-8")
    _git(["add", "train.py"], repo, env)
    proc = _precommit(["run", "dllint", "--all-files"], repo, env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "train.py:4:19: DL101 " in proc.stdout
    assert "generated.py" not in proc.stdout

    proc = _precommit(["run", "dllint-fix", "--all-files"], repo, env)
    assert proc.returncode == 1
    assert (repo / "train.py").read_text(encoding="utf-8") == FIXED
    assert (repo / "build" / "generated.py").read_text(encoding="utf-8") == BUGGY

    _git(["add", "train.py"], repo, env)
    proc = _precommit(["run", "--all-files"], repo, env)  # nothing left: both hooks pass
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Passed") == 2, proc.stdout
