import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run_dllint():
    """Run the CLI as a user does; returns (exit code, stdout, stderr)."""

    def run(*args, cwd=None, stdin=None, env=None):
        full_env = dict(os.environ)
        full_env.pop("GITHUB_ACTIONS", None)
        full_env["NO_COLOR"] = "1"
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "dllint", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=300,
        )
        return proc.returncode, proc.stdout, proc.stderr

    return run
