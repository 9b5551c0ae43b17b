"""The command line.  The only module that exits the process.

Exit codes: 0 no findings left (or --exit-zero), 1 findings left, 2 usage, config or internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence, TextIO

from dllint import __version__
from dllint.config import ConfigError

FORMATS = ("concise", "full", "json", "sarif", "github")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        raise ConfigError(message)


def _codes(value: str) -> List[str]:
    return [c for c in value.replace(" ", ",").split(",") if c]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dllint",
        description="Find deep-learning bugs (NaN/INF, silent framework misuse, export, quantization "
        "and pretrained-NLP pitfalls) in Python source and notebooks.",
    )
    p.add_argument("paths", nargs="*", help="files or folders to check (default: .); - reads stdin")
    sel = p.add_argument_group("rule selection")
    sel.add_argument("--select", type=_codes, help="codes or prefixes to enable (replaces the config's select); ALL for every rule")
    sel.add_argument("--ignore", type=_codes, default=[], help="codes or prefixes to disable (added to the config's ignore)")
    sel.add_argument("--extend-select", type=_codes, default=[], help="codes or prefixes to enable on top of select")
    out = p.add_argument_group("output")
    out.add_argument("--format", choices=FORMATS, help="output format (default: concise, or full on a terminal)")
    out.add_argument("--output-file", metavar="FILE", help="write the report to FILE instead of stdout")
    out.add_argument("--statistics", action="store_true", help="print one line per code: count, code, name")
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing but findings")
    out.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of internal errors")
    fix = p.add_argument_group("fixes")
    fix.add_argument("--fix", action="store_true", help="apply safe fixes")
    fix.add_argument("--unsafe-fixes", action="store_true", help="with --fix or --diff, also apply unsafe (suggested) fixes")
    fix.add_argument("--diff", action="store_true", help="print the fixes as a unified diff and write nothing")
    ex = p.add_argument_group("exit status")
    ex.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are left")
    ex.add_argument("--exit-non-zero-on-fix", action="store_true", help="exit 1 when a file was changed, even if nothing is left")
    files = p.add_argument_group("files")
    files.add_argument("--force-exclude", action="store_true", help="apply excludes to files named explicitly too")
    files.add_argument("--stdin-filename", metavar="PATH", help="with -, lint stdin as if it were PATH")
    files.add_argument("--config", metavar="FILE", help="use FILE instead of the nearest pyproject.toml with [tool.dllint]")
    perf = p.add_argument_group("performance")
    perf.add_argument("-j", "--jobs", type=int, default=0, help="processes to use (default: all cores)")
    perf.add_argument("--no-cache", action="store_true", help="do not read or write the result cache")
    perf.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: .dllint_cache next to the config, or here)")
    info = p.add_argument_group("information")
    info.add_argument("--explain", metavar="CODE", help="print a rule's documentation, examples and evidence")
    info.add_argument("--list-rules", action="store_true", help="print the table of rules")
    info.add_argument("--version", action="version", version=f"dllint {__version__}")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except ConfigError as exc:
        _error(str(exc))
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("dllint: interrupted\n")
        return 130
    except Exception as exc:  # an internal error: one line unless --verbose
        if "-v" in (argv or sys.argv) or "--verbose" in (argv or sys.argv):
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (run with --verbose for details)")
        return 2


def _error(message: str) -> None:
    try:
        sys.stderr.write(f"dllint: error: {message}\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def _main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    from dllint import config as cfg
    from dllint.registry import RegistryError, all_rules

    try:
        rules = all_rules()
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    known = [r.code for r in rules]
    by_code = {r.code: r for r in rules}

    if args.explain:
        from dllint.explain import explain

        code = args.explain.strip().upper()
        if code not in by_code:
            raise ConfigError(f"--explain: unknown rule code {args.explain!r}")
        explain(by_code[code], sys.stdout, _use_color(sys.stdout))
        return 0
    if args.list_rules:
        from dllint.explain import list_rules

        list_rules(rules, sys.stdout, _use_color(sys.stdout))
        return 0

    if args.jobs < 0:
        raise ConfigError("--jobs must be 0 (all cores) or more")
    config_path = args.config or cfg.find_config(os.getcwd())
    config = cfg.load(config_path, known)
    select = cfg.check_codes(args.select, known, "command line", "--select") if args.select is not None else config.select
    extend = config.extend_select + cfg.check_codes(args.extend_select, known, "command line", "--extend-select")
    ignore = config.ignore + cfg.check_codes(args.ignore, known, "command line", "--ignore")
    enabled = cfg.enabled_codes(rules, select, extend, ignore)

    from dllint.discovery import discover, relative_to
    from dllint.runner import Settings, check_file, run

    settings = Settings(
        mode="diff" if args.diff else ("fix" if args.fix else "check"),
        unsafe=args.unsafe_fixes,
        target_versions=config.target_versions,
        max_file_size=config.max_file_size,
        verbose=args.verbose,
    )
    if not args.no_cache and settings.mode == "check":
        from dllint.runner import code_fingerprint

        settings.cache_dir = args.cache_dir or os.path.join(config.root, ".dllint_cache")
        settings.code = code_fingerprint()

    def enabled_for(path: str) -> frozenset:
        if not config.per_file_ignores:
            return enabled
        rel = relative_to(path, config.root)
        drop: List[str] = []
        for pattern, codes in config.per_file_ignores.items():
            if cfg.glob_match(rel, pattern):
                drop.extend(codes)
        if not drop:
            return enabled
        return frozenset(c for c in enabled if not any(c.startswith(d) or d == "ALL" for d in drop))

    paths = args.paths or ["."]
    if "-" in paths:
        if len(paths) > 1:
            raise ConfigError("- (stdin) cannot be combined with other paths")
        display = args.stdin_filename or "-"
        raw = sys.stdin.buffer.read()
        result = check_file("-", display, enabled_for(display), settings, raw=raw)
        results = [result]
        if settings.mode == "fix":
            sys.stdout.write(result.fixed_text if result.fixed_text is not None else raw.decode("utf-8", "replace"))
            sys.stdout.flush()
            _summary_fix(results, args.quiet)
            left = len(result.findings)
            return 0 if args.exit_zero or not left else 1
    else:
        excludes = config.all_excludes()
        if settings.cache_dir:
            excludes.append(os.path.basename(settings.cache_dir))
        files = discover(paths, excludes, config.root, args.force_exclude)
        results = run([(p, d, enabled_for(p)) for p, d in files], settings, args.jobs)

    for result in results:
        for note in result.notes:
            if not args.quiet:
                sys.stderr.write(f"dllint: {note}\n")

    findings = sorted((f for r in results for f in r.findings), key=lambda f: f.sort_key())
    changed = sum(1 for r in results if r.changed)

    if settings.mode == "diff":
        text = "".join(r.diff for r in results)
        _write(args.output_file, lambda out: out.write(text))
        return 0 if args.exit_zero else (1 if text else 0)

    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else None)
    target_stream = sys.stdout
    if fmt is None:
        fmt = "full" if (args.output_file is None and _use_color(target_stream)) else "concise"
    sources: Dict[str, str] = {}
    if fmt in ("full", "sarif"):
        sources = _sources(results)

    from dllint.report import render

    def emit(out: TextIO) -> None:
        render(fmt, findings, by_code, out, color=(args.output_file is None and _use_color(out)), sources=sources)
        if args.statistics:
            _statistics(findings, by_code, out)

    _write(args.output_file, emit)
    if settings.mode == "fix":
        _summary_fix(results, args.quiet)
    if args.exit_zero:
        return 0
    if args.exit_non_zero_on_fix and changed:
        return 1
    return 1 if findings else 0


def _write(output_file: Optional[str], emit) -> None:  # type: ignore[no-untyped-def]
    if output_file is None:
        emit(sys.stdout)
        sys.stdout.flush()
        return
    try:
        with open(output_file, "w", encoding="utf-8") as out:
            emit(out)
    except OSError as exc:
        raise ConfigError(f"--output-file: cannot write {output_file}: {exc.strerror or exc}") from None


def _sources(results) -> Dict[str, str]:  # type: ignore[no-untyped-def]
    """Text of every file with findings (code frames, fingerprints); cached results carry none,
    so those files are read again here."""
    from dllint.engine import DecodeError, decode

    out: Dict[str, str] = {}
    for result in results:
        if not result.findings:
            continue
        if result.source is not None:
            out[result.path] = result.source
            continue
        try:
            with open(result.path, "rb") as handle:
                raw = handle.read()
            out[result.path] = raw.decode("utf-8", "replace") if result.path.endswith(".ipynb") else decode(raw).text
        except (OSError, DecodeError):
            continue
    return out


def _statistics(findings, by_code, out: TextIO) -> None:  # type: ignore[no-untyped-def]
    counts: Dict[str, int] = {}
    names: Dict[str, str] = {}
    for f in findings:
        counts[f.code] = counts.get(f.code, 0) + 1
        names[f.code] = f.name
    for code, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        out.write(f"{count:<6} {code}  {names[code]}\n")


def _summary_fix(results, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    fixed = sum(r.fixed for r in results)
    left = sum(len(r.findings) for r in results)
    if not quiet or fixed:
        sys.stderr.write(f"Fixed {fixed} finding{'s' if fixed != 1 else ''} ({left} remaining).\n")
