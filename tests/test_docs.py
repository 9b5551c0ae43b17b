"""The generated documentation is current, and the README's quick start is what CI runs."""

import os
import subprocess
import sys

from conftest import ROOT


def test_rules_table_and_catalogue_are_current():
    proc = subprocess.run([sys.executable, "-m", "dllint.docs", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_ci_runs_the_readme_test_command():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    command = ci.strip().splitlines()[-1]
    assert command in readme
    assert "pytest" in command
