"""What a user gets from ``pip install dllint``.

The rule catalogue lives in the top-level ``rules/`` folder but must install as ``dllint.rules``
(never as a generic top-level ``rules`` package), and setuptools only ships the packages listed
in ``[tool.setuptools] packages``: a new family folder left off that list would silently vanish
from the wheel.  The first tests read the list; the slow ones build a wheel from a copy of the
working tree, install it into a fresh virtual environment (dependencies from the package index)
and run the installed console script.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Set

import pytest
from _worktree import PROJECT, copy_worktree

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

BUGGY = "import torch\nimport torch.nn.functional as F\n\nloss = torch.log(F.softmax(logits, dim=-1))\n"


def _pyproject() -> Dict:
    with open(PROJECT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def _packages_under(folder: Path, name: str) -> Set[str]:
    """``name`` and every package below ``folder`` (a folder with an ``__init__.py``)."""
    found = {name}
    for init in folder.rglob("__init__.py"):
        relative = init.parent.relative_to(folder)
        if "__pycache__" in relative.parts or not relative.parts:
            continue
        found.add(".".join((name, *relative.parts)))
    return found


def test_packages_list_covers_every_package() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    listed = setuptools["packages"]
    assert len(listed) == len(set(listed)), "a package is listed twice"
    assert setuptools["package-dir"] == {"dllint": "dllint", "dllint.rules": "rules"}
    expected = _packages_under(PROJECT / "dllint", "dllint") | _packages_under(PROJECT / "rules", "dllint.rules")
    assert {"dllint", "dllint.report", "dllint.rules", "dllint.rules.numerical"} <= expected
    missing = sorted(expected - set(listed))
    stale = sorted(set(listed) - expected)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert not stale, f"listed in [tool.setuptools] packages but no such folder with an __init__.py: {stale}"


def test_every_rules_folder_with_code_is_a_package() -> None:
    """A family folder without ``__init__.py`` would be skipped by both setuptools and the registry."""
    for folder in [PROJECT / "rules", *(p for p in (PROJECT / "rules").rglob("*") if p.is_dir())]:
        if folder.name == "__pycache__" or "__pycache__" in folder.parts:
            continue
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").is_file(), f"{folder.relative_to(PROJECT)} has modules but no __init__.py"


# --- the built wheel, installed -------------------------------------------------------------------


def _run(args: List[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["NO_COLOR"] = "1"
    env.pop("GITHUB_ACTIONS", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree as it is now (the checks below compare against this copy, not the live tree)."""
    return copy_worktree(tmp_path_factory.mktemp("source") / "dllint")


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("dllint-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its scripts folder."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    proc = _run([sys.executable, "-m", "venv", str(venv)], venv.parent)
    if proc.returncode != 0 and "ensurepip" in proc.stdout + proc.stderr:
        pytest.skip("this Python cannot create a virtual environment with pip (no ensurepip)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    proc = _run([str(scripts / "python"), "-m", "pip", "install", "-q", str(wheel)], venv.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return scripts


@pytest.mark.slow
def test_wheel_contents(wheel: Path, source: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_text = archive.read(entry_points).decode("utf-8")
    assert "dllint/rules/numerical/dl101_log_of_softmax.py" in names
    assert "dllint/report/concise.py" in names
    top = {name.split("/", 1)[0] for name in names}
    assert "rules" not in top, "the catalogue must install as dllint.rules, not as a top-level rules package"
    assert top - {"dllint"} == {n for n in top if n.endswith(".dist-info")}, top
    # every module of the catalogue is in the wheel, under dllint/rules/
    for module in (source / "rules").rglob("*.py"):
        if "__pycache__" in module.parts:
            continue
        assert "dllint/rules/" + module.relative_to(source / "rules").as_posix() in names, module
    assert "dllint = dllint.cli:main" in entry_text
    assert "DL = dllint.flake8:Plugin" in entry_text


@pytest.mark.slow
def test_installed_console_script_finds_the_bug(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(BUGGY, encoding="utf-8")
    proc = _run([str(installed / "dllint"), "--no-cache", "train.py"], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("train.py:4:8: DL101 "), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_installed_version_and_rules(installed: Path, source: Path, tmp_path: Path) -> None:
    version = _pyproject()["project"]["version"]
    proc = _run([str(installed / "python"), "-m", "dllint", "--version"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"dllint {version}"

    # every rule of the source tree is found by the installed registry, and no top-level rules module
    script = (
        "import importlib.util, json\n"
        "from dllint.registry import all_rules\n"
        "import dllint.rules\n"
        "print(json.dumps({'codes': [r.code for r in all_rules()],"
        " 'rules': importlib.util.find_spec('rules') is not None,"
        " 'file': dllint.rules.__file__}))\n"
    )
    proc = _run([str(installed / "python"), "-c", script], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    declared = set()
    for module in (source / "rules").rglob("*.py"):
        declared.update(re.findall(r'^\s+code = "(DL[0-9]+)"', module.read_text(encoding="utf-8"), re.MULTILINE))
    found = json.loads(proc.stdout)
    assert "DL101" in declared
    assert set(found["codes"]) == declared
    assert found["rules"] is False
    assert str(installed.parent) in found["file"]
