"""How the benchmarks start dllint: the console script of this interpreter's environment."""

from __future__ import annotations

import os
import shutil
import sys
from typing import List


def dllint_command() -> List[str]:
    """The dllint console script next to this interpreter, else on PATH, else ``python -m dllint``."""
    folder = os.path.dirname(os.path.abspath(sys.executable))
    for name in ("dllint", "dllint.exe"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate]
    found = shutil.which("dllint")
    return [found] if found else [sys.executable, "-m", "dllint"]
