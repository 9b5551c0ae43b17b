"""Framework versions for the DL3xx rules: ``version(ctx, package)``.

The reading itself lives in ``dllint.versions`` (through ``Context.target_version``): the config's
``target-versions``, the project's pin files and Dockerfiles, then the install commands of the
file itself (a notebook's ``!pip install tensorflow-gpu==2.1.0``).  None means the newest release.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple


def version(ctx: Any, package: str) -> Optional[Tuple[int, ...]]:
    return ctx.target_version(package)
