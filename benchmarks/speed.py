"""How fast dllint checks one source tree, measured against a bare libcst parse of the same files.

Usage::

    python benchmarks/speed.py TREE [--jobs N] [--repeat N] [--json]

Times (best of --repeat runs each):

(a) ``libcst.parse_module`` of every .py/.pyi file in this process (files read first, only the
    parsing is timed) - the floor any libcst-based checker starts from;
(b) dllint cold, one process, every rule: ``dllint --select ALL --no-cache --jobs 1 --exit-zero -q
    TREE`` as a subprocess, so interpreter start-up and rule loading are counted;
(c) the same on ``--jobs N`` processes (default 0: all cores);
(d) warm cache: one run with a fresh ``--cache-dir`` fills it, then the same command is timed.

dllint runs with an empty configuration file (``--config``), so a ``[tool.dllint]`` table near the
tree or the current folder cannot change what is measured; the parse side finds its files with
dllint's own discovery and default excludes, and skips files over dllint's default size limit,
so both sides see the same files.  Notebooks are checked by dllint but not parsed in (a); their
count is printed so the ratios can be read with that in mind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from _command import dllint_command  # benchmarks/ is on sys.path when run as a script
from typing import Dict, List, Optional, Sequence, Tuple

import libcst

from dllint.config import DEFAULT_EXCLUDE, DEFAULT_MAX_FILE_SIZE
from dllint.discovery import discover

TARGETS = {"cold_1": 1.5, "cold_n": 1.0, "warm_s": 0.3}


def find_files(tree: str) -> Tuple[List[str], List[str], List[str]]:
    """(.py/.pyi files to parse, notebooks, files skipped for size) as dllint would find them."""
    root = os.path.abspath(tree)
    found = discover([tree], list(DEFAULT_EXCLUDE) + [".dllint_cache"], root)
    python: List[str] = []
    notebooks: List[str] = []
    too_big: List[str] = []
    for path, _display in found:
        try:
            if os.path.getsize(path) > DEFAULT_MAX_FILE_SIZE:
                too_big.append(path)
                continue
        except OSError:
            continue
        (notebooks if path.endswith(".ipynb") else python).append(path)
    return python, notebooks, too_big


def read_sources(paths: Sequence[str]) -> Tuple[List[object], int]:
    """Decoded text of each file (bytes when it is not UTF-8, libcst then reads the coding line)
    and the total number of lines."""
    sources: List[object] = []
    lines = 0
    for path in paths:
        with open(path, "rb") as handle:
            raw = handle.read()
        lines += raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
        try:
            sources.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            sources.append(raw)
    return sources, lines


def time_parse(sources: Sequence[object]) -> Tuple[float, int]:
    """Seconds to parse every source once, and how many failed to parse."""
    failed = 0
    start = time.perf_counter()
    for source in sources:
        try:
            libcst.parse_module(source)  # type: ignore[arg-type]
        except Exception:  # a syntax error still costs its parse attempt
            failed += 1
    return time.perf_counter() - start, failed


class DllintFailed(RuntimeError):
    pass


def time_dllint(args: Sequence[str], cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(list(args), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DllintFailed(f"exit {proc.returncode}: {message[-1] if message else '(no message)'}\n  command: {' '.join(args)}")
    return elapsed


def best(times: Sequence[float]) -> float:
    return min(times)


def measure(tree: str, jobs: int, repeat: int) -> Dict[str, object]:
    python, notebooks, too_big = find_files(tree)
    sources, lines = read_sources(python)
    parse_times = []
    parse_failed = 0
    for _ in range(repeat):
        elapsed, parse_failed = time_parse(sources)
        parse_times.append(elapsed)

    work = tempfile.mkdtemp(prefix="dllint-speed-")
    try:
        config = os.path.join(work, "dllint.toml")
        with open(config, "w", encoding="utf-8"):
            pass  # empty: dllint's defaults, whatever config sits near the tree
        target = os.path.abspath(tree)
        base = dllint_command() + ["--config", config, "--select", "ALL", "--exit-zero", "-q"]
        cold_1 = base + ["--no-cache", "--jobs", "1", target]
        cold_n = base + ["--no-cache", "--jobs", str(jobs), target]
        cold_1_times = [time_dllint(cold_1, work) for _ in range(repeat)]
        cold_n_times = [time_dllint(cold_n, work) for _ in range(repeat)]
        cache = os.path.join(work, ".dllint_cache")  # a name discovery already excludes
        warm = base + ["--cache-dir", cache, "--jobs", str(jobs), target]
        fill = time_dllint(warm, work)
        warm_times = [time_dllint(warm, work) for _ in range(repeat)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    parse_s = best(parse_times)
    cold_1_s = best(cold_1_times)
    cold_n_s = best(cold_n_times)
    warm_s = best(warm_times)
    files = len(python) + len(notebooks)

    def ratio(value: float) -> Optional[float]:
        return value / parse_s if parse_s > 0 else None

    return {
        "tree": tree,
        "files": files,
        "py_files": len(python),
        "ipynb_files": len(notebooks),
        "skipped_too_big": len(too_big),
        "lines": lines,
        "parse_failed": parse_failed,
        "cpus": os.cpu_count(),
        "jobs": jobs,
        "repeat": repeat,
        "dllint": " ".join(dllint_command()),
        "times_s": {
            "parse": parse_s,
            "cold_1": cold_1_s,
            "cold_n": cold_n_s,
            "warm_fill": fill,
            "warm": warm_s,
        },
        "all_times_s": {
            "parse": parse_times,
            "cold_1": cold_1_times,
            "cold_n": cold_n_times,
            "warm": warm_times,
        },
        "ratios": {"cold_1": ratio(cold_1_s), "cold_n": ratio(cold_n_s)},
        "targets": {
            "cold_1_max_ratio": TARGETS["cold_1"],
            "cold_n_max_ratio": TARGETS["cold_n"],
            "warm_max_s": TARGETS["warm_s"],
        },
        "meets": {
            "cold_1": (ratio(cold_1_s) or 0) <= TARGETS["cold_1"],
            "cold_n": (ratio(cold_n_s) or 0) <= TARGETS["cold_n"],
            "warm": warm_s < TARGETS["warm_s"],
        },
    }


def render(r: Dict[str, object]) -> str:
    t = r["times_s"]  # type: ignore[index]
    ratios = r["ratios"]  # type: ignore[index]
    meets = r["meets"]  # type: ignore[index]
    files = r["files"]
    py = r["py_files"]
    jobs = r["jobs"] or r["cpus"]
    out = []
    head = f"tree: {r['tree']}"
    out.append(head)
    counts = f"files: {py} .py"
    if r["ipynb_files"]:
        counts += f" + {r['ipynb_files']} .ipynb"
    counts += f", {r['lines']} lines (.py)"
    if r["parse_failed"]:
        counts += f", {r['parse_failed']} do not parse"
    if r["skipped_too_big"]:
        counts += f", {r['skipped_too_big']} skipped (over max-file-size)"
    out.append(counts)
    out.append(f"cpus: {r['cpus']}, best of {r['repeat']} runs each")
    out.append("")

    def fmt_ratio(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.2f}x"

    def ok(flag: bool) -> str:
        return "ok" if flag else "MISSED"

    rows = [
        ("measurement", "time", "files/s", "vs parse", "target"),
        ("(a) libcst parse, 1 process", f"{t['parse']:.3f} s", f"{py / t['parse']:.0f}" if t["parse"] else "-", "1.00x", ""),
        ("(b) dllint cold, --jobs 1", f"{t['cold_1']:.3f} s", f"{files / t['cold_1']:.0f}",
         fmt_ratio(ratios["cold_1"]), f"<= {TARGETS['cold_1']:.1f}x {ok(meets['cold_1'])}"),
        (f"(c) dllint cold, --jobs {r['jobs']} ({jobs} procs)", f"{t['cold_n']:.3f} s", f"{files / t['cold_n']:.0f}",
         fmt_ratio(ratios["cold_n"]), f"<= {TARGETS['cold_n']:.1f}x {ok(meets['cold_n'])}"),
        (f"(d) dllint warm cache, --jobs {r['jobs']}", f"{t['warm']:.3f} s", f"{files / t['warm']:.0f}",
         fmt_ratio(t["warm"] / t["parse"] if t["parse"] else None), f"< {TARGETS['warm_s']:.1f} s {ok(meets['warm'])}"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in (1, 2, 3)] + [row[4].ljust(widths[4])]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append(f"(cache fill run: {t['warm_fill']:.3f} s)")
    if r["ipynb_files"]:
        out.append("note: dllint also checks the notebooks; (a) parses .py files only")
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tree", help="folder (or file) to check")
    p.add_argument("--jobs", type=int, default=0, help="processes for (c) and (d) (default 0: all cores)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept (default 3)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)
    if not os.path.exists(args.tree):
        sys.stderr.write(f"speed.py: {args.tree}: no such file or directory\n")
        return 2
    if args.repeat < 1 or args.jobs < 0:
        sys.stderr.write("speed.py: --repeat must be >= 1 and --jobs >= 0\n")
        return 2
    python, notebooks, _ = find_files(args.tree)
    if not python and not notebooks:
        sys.stderr.write(f"speed.py: no Python files under {args.tree}, nothing to time\n")
        return 0
    try:
        result = measure(args.tree, args.jobs, args.repeat)
    except DllintFailed as exc:
        sys.stderr.write(f"speed.py: dllint failed, no timings: {exc}\n")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
