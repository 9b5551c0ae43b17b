"""The flake8 plugin and ``dllint --format concise`` print the same lines on the same files.

Both are run as a user runs them, in a subprocess from this interpreter's environment:
``python -m flake8 --select DL`` and ``python -m dllint --format concise --no-cache``.
flake8 adds 1 to the plugin's 0-based column when it prints; the command line prints 1-based
columns itself, so the two outputs must match character for character.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Set

import pytest

pytest.importorskip("flake8", reason="flake8 is not installed")


def _plugin_registered() -> bool:
    try:
        eps = metadata.entry_points(group="flake8.extension")
    except TypeError:  # Python 3.9
        eps = metadata.entry_points().get("flake8.extension", [])  # type: ignore[attr-defined]
    return any(ep.name == "DL" and ep.value.startswith("dllint.flake8") for ep in eps)


pytestmark = pytest.mark.skipif(
    not _plugin_registered(),
    reason="the dllint flake8 plugin is not registered (install the project: pip install -e .)",
)

LOG_SOFTMAX = "torch.log(F.softmax(x, dim=-1))"

# Several findings in one file, each kind of line comment, and findings away from column 1.
FINDINGS = textwrap.dedent(
    """\
    import torch
    import torch.nn.functional as F

    a = torch.log(F.softmax(x, dim=-1))
    b = torch.log(F.softmax(x, dim=-1))  # noqa
    c = torch.log(F.softmax(x, dim=-1))  # noqa: DL101
    d = torch.log(F.softmax(x, dim=-1))  # noqa: E501
    e = torch.log(F.softmax(x, dim=-1)) + torch.log(torch.softmax(y, 1))
    f = x.softmax(-1).log()  # noqa:DL1
    g = x.softmax(-1).log()  # noqa: E501,W291
    h = torch.log(F.softmax(x, dim=-1))  # NOQA: DL101
    i = torch.log(F.softmax(x, dim=-1))  # noqa: DL2, DL3
    s = "\u00f1\u00e9\u00fc"; j = torch.log(F.softmax(x, dim=-1))


    def head(x):
    \treturn torch.log(F.softmax(x, dim=-1))


    def entropy(logits):
        p = torch.softmax(logits, -1)
        return -(p * p.log()).sum(-1)


    loss = -(
        target
        * torch.log(
            F.softmax(logits, dim=-1)
        )
    ).sum(-1)
    """
)

# The line numbers FINDINGS must yield (checked so that the parity test cannot pass vacuously).
FINDINGS_LINES = [4, 7, 8, 8, 10, 12, 13, 17, 22, 27]

FILE_NOQA = textwrap.dedent(
    """\
    import torch
    import torch.nn.functional as F

    # dllint: noqa
    a = torch.log(F.softmax(x, dim=-1))
    b = x.softmax(-1).log()
    """
)

FILE_NOQA_CODES = textwrap.dedent(
    """\
    import torch
    import torch.nn.functional as F
    # dllint: noqa: DL1

    a = torch.log(F.softmax(x, dim=-1))
    """
)

FILE_NOQA_OTHER_CODES = textwrap.dedent(
    """\
    import torch
    import torch.nn.functional as F
    # dllint: noqa: DL9, E501

    a = torch.log(F.softmax(x, dim=-1))
    """
)

CLEAN = textwrap.dedent(
    """\
    import torch
    import torch.nn.functional as F

    a = F.log_softmax(x, dim=-1)
    b = torch.log(F.softmax(x, dim=-1) + 1e-8)
    """
)


def _run(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for name in ("NO_COLOR", "FORCE_COLOR", "GITHUB_ACTIONS"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _lines(output: str) -> List[str]:
    # flake8 prints "./pkg/a.py" for files it found itself; the command line prints "pkg/a.py".
    return [line[2:] if line.startswith("./") else line for line in output.splitlines() if line.strip()]


def _flake8(paths: List[str], cwd: Path) -> List[str]:
    proc = _run(["flake8", "--isolated", "--select", "DL", *paths], cwd)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return _lines(proc.stdout)


def _dllint(paths: List[str], cwd: Path) -> List[str]:
    proc = _run(["dllint", "--format", "concise", "--no-cache", *paths], cwd)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = _lines(proc.stdout)
    assert proc.returncode == (1 if lines else 0)
    return lines


def _write(root: Path, files: Dict[str, str], select: str = "") -> List[str]:
    # A [tool.dllint] table stops the configuration search here: both tools read the same one.
    table = "[tool.dllint]\n" + (f'select = ["{select}"]\n' if select else "")
    (root / "pyproject.toml").write_text(table, encoding="utf-8")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def _both(root: Path, paths: List[str]) -> List[str]:
    via_flake8 = _flake8(paths, root)
    via_cli = _dllint(paths, root)
    assert set(via_flake8) == set(via_cli), (
        "only flake8: %s\nonly dllint: %s"
        % (sorted(set(via_flake8) - set(via_cli)), sorted(set(via_cli) - set(via_flake8)))
    )
    assert len(via_flake8) == len(via_cli)  # no duplicates on either side
    return via_cli


def _located(lines: List[str], path: str) -> List[int]:
    return [int(line.split(":")[1]) for line in lines if line.startswith(path + ":")]


def test_same_lines_on_buggy_files(tmp_path: Path) -> None:
    paths = _write(
        tmp_path,
        {
            "findings.py": FINDINGS,
            "skipped.py": FILE_NOQA,
            "skipped_codes.py": FILE_NOQA_CODES,
            "other_codes.py": FILE_NOQA_OTHER_CODES,
            "clean.py": CLEAN,
        },
        select="DL101",
    )
    lines = _both(tmp_path, paths)

    assert sorted(_located(lines, "findings.py")) == FINDINGS_LINES
    for line in lines:
        path, row, col, rest = line.split(":", 3)
        assert int(row) >= 1 and int(col) >= 1
        assert rest.startswith(" DL101 ")
    # line 7 has "# noqa: E501": a code list without DL101 suppresses nothing of ours
    assert any(line.startswith("findings.py:7:5: DL101 ") for line in lines)
    # two findings on line 8, the second one away from column 1
    assert any(line.startswith("findings.py:8:39: DL101 ") for line in lines)
    # line 12 names other prefixes only
    assert any(line.startswith("findings.py:12:5: DL101 ") for line in lines)
    # columns count characters, not bytes: 15 characters (three of them two bytes) before the call
    assert any(line.startswith("findings.py:13:16: DL101 ") for line in lines)
    # a tab is one character
    assert any(line.startswith("findings.py:17:9: DL101 ") for line in lines)
    assert _located(lines, "skipped.py") == []
    assert _located(lines, "skipped_codes.py") == []
    assert _located(lines, "other_codes.py") == [5]
    assert _located(lines, "clean.py") == []


def test_same_lines_on_a_folder(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/model.py": FINDINGS, "pkg/sub/skip.py": FILE_NOQA}, select="DL101")
    lines = _both(tmp_path, ["."])
    assert sorted(_located(lines, os.path.join("pkg", "model.py"))) == FINDINGS_LINES


def test_same_lines_when_the_config_ignores_a_rule(tmp_path: Path) -> None:
    _write(tmp_path, {"a.py": FINDINGS})
    (tmp_path / "pyproject.toml").write_text('[tool.dllint]\nselect = ["DL101"]\nignore = ["DL101"]\n', encoding="utf-8")
    assert _both(tmp_path, ["a.py"]) == []


def _rule_examples() -> Dict[str, str]:
    from dllint.registry import all_rules

    files: Dict[str, str] = {}
    for rule in all_rules():
        for i, example in enumerate(rule.INVALID):
            files[f"invalid_{rule.code.lower()}_{i}.py"] = example.code
        for i, example in enumerate(rule.VALID):
            files[f"valid_{rule.code.lower()}_{i}.py"] = example.code
    return files


def test_same_lines_on_every_rule_example(tmp_path: Path) -> None:
    """Every rule in the registry, through both front ends, on its own examples."""
    files = _rule_examples()
    assert files
    lines = _both(tmp_path, _write(tmp_path, files))
    codes: Set[str] = {line.split(": ", 2)[1].split(" ", 1)[0] for line in lines}
    from dllint.registry import all_rules

    assert codes == {rule.code for rule in all_rules() if rule.INVALID and rule.default_enabled}
    for line in lines:  # a rule stays silent on its own VALID examples
        if line.startswith("valid_"):
            own = line.split("_")[1].upper()
            assert not line.split(": ", 1)[1].startswith(own + " "), line


def test_same_lines_on_bundled_examples(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(examples.glob("*.py"))}
    if not files:
        pytest.skip("no bundled examples")
    lines = _both(tmp_path, _write(tmp_path, files))
    assert lines


@pytest.mark.parametrize(
    "text",
    [
        "h = torch.log(F.softmax(x, dim=-1)) + \\\n    1  # noqa\n",
        'k = torch.log(F.softmax(x, dim=-1)) + len("""\n""")  # noqa\n',
    ],
    ids=["backslash", "multi-line-string"],
)
def test_noqa_on_a_joined_line(tmp_path: Path, text: str) -> None:
    header = "import torch\nimport torch.nn.functional as F\n\n"
    _both(tmp_path, _write(tmp_path, {"a.py": header + text}))


def test_flake8_disable_noqa_shows_suppressed_findings(tmp_path: Path) -> None:
    _write(tmp_path, {"a.py": FINDINGS})
    proc = _run(["flake8", "--isolated", "--select", "DL", "--disable-noqa", "a.py"], tmp_path)
    rows = {int(line.split(":")[1]) for line in _lines(proc.stdout)}
    assert {5, 6, 9, 11} <= rows  # bare noqa, noqa: DL101, noqa:DL1, NOQA: DL101
