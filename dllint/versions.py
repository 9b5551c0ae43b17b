"""Which framework releases a project targets.

A version-gated rule asks ``Context.target_version("transformers")``.  The answer comes from the
config's ``target-versions`` first, else from the project's pins: requirements files
(``requirements*.txt``, ``requirements/*.txt``), ``pyproject.toml`` (PEP 621 dependencies and
optional dependencies, Poetry dependencies), ``setup.cfg`` / ``setup.py`` ``install_requires``
strings, conda ``environment.yml`` files and the ``pip`` / ``conda install`` commands of Dockerfiles
(``Dockerfile``, ``*.Dockerfile``, ``Dockerfile.*``, also in a ``docker/`` folder), found in the file's
folder and its parents up to the project root (the first folder holding ``.git`` or
``pyproject.toml``); last, the install commands of the file itself (a notebook's
``!pip install torch==1.8.1``, a script's ``os.system("pip install ...")``).  Spellings that install
the same framework count as one (``torch`` / ``pytorch``, ``tensorflow`` / ``tensorflow-gpu`` /
``tensorflow-cpu`` / ``tensorflow-macos``).

The answer is the newest release the pins allow, as a tuple (``==4.30.2`` -> (4, 30, 2); ``<5`` or
``~=4.30`` -> (4, INF)); None when nothing bounds it from above, which rules read as "the newest
release", as the catalogue's conventions say.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

Version = Tuple[int, ...]

#: Stands for "any minor / patch release" in an upper bound such as ``<5`` -> (4, INF).
INF = 10**9

_REQUIREMENT = re.compile(
    r"""^\s*["']?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(?P<spec>(?:[<>=!~]=?|===)\s*[^;#"'\s,]+(?:\s*,\s*(?:[<>=!~]=?|===)\s*[^;#"'\s,]+)*)""",
)
_CONDA = re.compile(r"^\s*-\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<op>==?|>=|<=|<|>)\s*(?P<version>[0-9][^\s#]*)")
_POETRY = re.compile(r"""^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*=\s*(?:\{[^}]*version\s*=\s*)?["'](?P<spec>[^"']+)["']""")

_cache: Dict[str, Dict[str, Optional[Version]]] = {}

_DOCKERFILE = re.compile(r"^(?:dockerfile(?:\..*)?|.*\.dockerfile)$", re.IGNORECASE)
_INSTALL = re.compile(r"\b(?:pip3?|python3?\s+-m\s+pip|conda|mamba|uv\s+pip)\s+install\b(?P<args>[^\n#;&|]*)")
_INSTALL_SPEC = re.compile(
    r"""(?<![\w.-])["']?(?P<name>[A-Za-z][A-Za-z0-9_.-]*)\s*(?P<op>==|<=|<|~=|=)\s*v?(?P<version>\d+(?:\.\d+)*)"""
)

#: Distribution names that install the same framework.
ALIASES: Dict[str, Tuple[str, ...]] = {
    "torch": ("torch", "pytorch"),
    "pytorch": ("torch", "pytorch"),
    "tensorflow": ("tensorflow", "tensorflow-gpu", "tensorflow-cpu", "tensorflow-macos"),
}


def installed_pins(text: str) -> Iterator[Tuple[str, str]]:
    """(package, specifier) pairs of the ``pip`` / ``conda install`` commands in ``text``; only
    exact and upper bounds (``==``, ``=``, ``<``, ``<=``, ``~=``)."""
    for install in _INSTALL.finditer(text):
        for spec in _INSTALL_SPEC.finditer(install.group("args")):
            op = "==" if spec.group("op") == "=" else spec.group("op")
            yield spec.group("name"), op + spec.group("version")


def parse_version(text: str) -> Optional[Version]:
    """``"4.30.2"`` -> (4, 30, 2); ``"2.6.0+cpu"`` -> (2, 6, 0); None when it is not a version."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    if not match:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def newest_allowed(spec: str) -> Optional[Version]:
    """The newest release a specifier set allows, or None when it has no upper bound."""
    best: Optional[Version] = None
    for clause in spec.split(","):
        clause = clause.strip()
        match = re.match(r"(===|==|~=|<=|<|!=|>=|>|=)\s*(.+)", clause)
        if not match:
            continue
        op, raw = match.groups()
        if op in ("!=", ">=", ">"):
            continue
        if raw.endswith(".*"):
            base = parse_version(raw[:-2])
            bound = base + (INF,) if base else None
        else:
            version = parse_version(raw)
            if version is None:
                continue
            if op in ("==", "===", "=", "<="):
                bound = version
            elif op == "~=":
                bound = version[:-1] + (INF,) if len(version) > 1 else version + (INF,)
            else:  # "<"
                bound = _just_below(version)
        if bound is not None and (best is None or bound < best):
            best = bound
    return best


def _just_below(version: Version) -> Version:
    """The newest version below ``version``: <5 -> (4, INF); <4.30 -> (4, 29, INF); <2.0.0 -> (1, INF)."""
    parts = list(version)
    while parts and parts[-1] == 0:
        parts.pop()
    if not parts:
        return (0,)
    parts[-1] -= 1
    return tuple(parts) + (INF,)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pin_lines(path: str) -> Iterator[Tuple[str, str]]:
    """(package, specifier) pairs in one file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(1_000_000)
    except OSError:
        return
    base = os.path.basename(path)
    if _DOCKERFILE.match(base):
        yield from installed_pins(text)
        return
    if base.endswith((".yml", ".yaml")):
        for line in text.splitlines():
            match = _CONDA.match(line)
            if match:
                op = match.group("op")
                yield match.group("name"), ("==" if op == "=" else op) + match.group("version")
            else:
                match = _REQUIREMENT.match(line.lstrip(" -"))
                if match:
                    yield match.group("name"), match.group("spec")
        return
    in_poetry = False
    for line in text.splitlines():
        stripped = line.strip()
        if base == "pyproject.toml" and stripped.startswith("["):
            in_poetry = "poetry" in stripped and "dependencies" in stripped
            continue
        if in_poetry:
            match = _POETRY.match(stripped)
            if match:
                spec = match.group("spec").strip()
                if spec.startswith("^"):
                    version = parse_version(spec[1:])
                    if version:
                        spec = f"<{version[0] + 1}" if version[0] > 0 else f"<0.{version[1] + 1 if len(version) > 1 else 1}"
                elif spec and spec[0].isdigit():
                    spec = "==" + spec
                yield match.group("name"), spec
            continue
        quoted = base in ("setup.py", "pyproject.toml")
        for piece in re.findall(r"""["']([^"']+)["']""", stripped) if quoted else [stripped]:
            match = _REQUIREMENT.match(piece)
            if match:
                yield match.group("name"), match.group("spec")


def _pin_files(folder: str) -> List[str]:
    found = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return found
    for name in names:
        lower = name.lower()
        if (lower.startswith("requirements") and lower.endswith(".txt")) or lower in (
            "pyproject.toml",
            "setup.cfg",
            "setup.py",
            "environment.yml",
            "environment.yaml",
        ):
            found.append(os.path.join(folder, name))
        elif _DOCKERFILE.match(name) and os.path.isfile(os.path.join(folder, name)):
            found.append(os.path.join(folder, name))
        elif lower == "docker" and os.path.isdir(os.path.join(folder, name)):
            sub = os.path.join(folder, name)
            found.extend(
                os.path.join(sub, n) for n in sorted(os.listdir(sub))
                if _DOCKERFILE.match(n) and os.path.isfile(os.path.join(sub, n))
            )
        elif lower == "requirements" and os.path.isdir(os.path.join(folder, name)):
            sub = os.path.join(folder, name)
            found.extend(os.path.join(sub, n) for n in sorted(os.listdir(sub)) if n.endswith(".txt"))
    return found


def project_pins(path: str) -> Dict[str, Optional[Version]]:
    """Package -> newest allowed version, from the pin files of the folders from ``path``'s folder
    up to its project root; the nearest file that names a package wins."""
    folder = os.path.dirname(os.path.abspath(path)) if not os.path.isdir(path) else os.path.abspath(path)
    if folder in _cache:
        return _cache[folder]
    chain: List[str] = []
    current = folder
    while True:
        chain.append(current)
        if os.path.exists(os.path.join(current, ".git")) or os.path.exists(os.path.join(current, "pyproject.toml")):
            break
        parent = os.path.dirname(current)
        if parent == current or len(chain) > 8:
            break
        current = parent
    pins: Dict[str, Optional[Version]] = {}
    for directory in reversed(chain):  # nearer folders override
        for pin_file in _pin_files(directory):
            for name, spec in _pin_lines(pin_file):
                pins[_normal(name)] = newest_allowed(spec)
    _cache[folder] = pins
    return pins


def _newest(values: Iterable[Optional[Version]]) -> Optional[Version]:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def target_version(
    package: str, configured: Dict[str, str], path: str, source: str = ""
) -> Optional[Version]:
    """The newest release of ``package`` the project targets (config, then pin files and
    Dockerfiles, then the install commands in ``source``, the file's own text); None when
    unbounded or unknown."""
    names = {_normal(n) for n in ALIASES.get(_normal(package), (package,))}
    for name, value in configured.items():
        if _normal(name) in names:
            return parse_version(value)
    if path and not path.startswith("<"):
        pins = project_pins(path)
        found = _newest(pins.get(name) for name in names)
        if found is not None:
            return found
    if source:
        return _newest(newest_allowed(spec) for name, spec in installed_pins(source) if _normal(name) in names)
    return None


def pins_fingerprint(path: str) -> str:
    """A short text that changes when the pins governing ``path`` change (for the result cache)."""
    if not path or path.startswith("<"):
        return ""
    return repr(sorted(project_pins(path).items()))


def notebook_code(path: str) -> str:
    """The code cells of a notebook, IPython lines included (the notebook reader masks them before
    rules see the code); "" when ``path`` is not a readable notebook."""
    if not path.endswith(".ipynb"):
        return ""
    import json

    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            cells = json.load(handle).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return ""
    parts: List[str] = []
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            text = cell.get("source", "")
            parts.append("".join(text) if isinstance(text, list) else str(text))
    return "\n".join(parts)

