"""The command line as a user meets it: exit codes, errors, selection, fixes, formats, cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import libcst as cst

from conftest import ROOT

BUGGY = (
    "import torch\n"
    "import torch.nn.functional as F\n"
    "\n"
    "def loss(logits, target):\n"
    "    return -(target * torch.log(F.softmax(logits, dim=-1))).sum()\n"
)
FIXED = BUGGY.replace("torch.log(F.softmax(logits, dim=-1))", "F.log_softmax(logits, dim=-1)")
CLEAN = "import torch\n\nx = torch.zeros(3)\n"


def write(folder, name, text, mode="w"):
    path = os.path.join(str(folder), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as handle:
        handle.write(text)
    return path


def test_findings_exit_one_and_concise_format(tmp_path, run_dllint):
    write(tmp_path, "a.py", BUGGY)
    write(tmp_path, "b.py", CLEAN)
    code, out, err = run_dllint("--no-cache", ".", cwd=tmp_path)
    assert code == 1, err
    assert out == "a.py:5:23: DL101 log(softmax(x)) can produce -inf/NaN when softmax underflows; use log_softmax(x, dim=...)\n"


def test_clean_tree_exits_zero(tmp_path, run_dllint):
    write(tmp_path, "b.py", CLEAN)
    code, out, err = run_dllint("--no-cache", cwd=tmp_path)
    assert (code, out) == (0, "")


def test_bundled_examples_show_every_reference_rule(run_dllint):
    code, out, err = run_dllint("--no-cache", "examples", cwd=ROOT)
    assert code == 1, err
    codes = {line.split(": ")[1].split()[0] for line in out.splitlines()}
    assert {"DL101", "DL206", "DL503"} <= codes, out


def test_fix_then_check_examples(tmp_path, run_dllint):
    shutil.copytree(os.path.join(ROOT, "examples"), tmp_path / "examples")
    code, out, err = run_dllint("--no-cache", "--fix", "examples", cwd=tmp_path)
    assert "Fixed" in err
    code, out, err = run_dllint("--no-cache", "examples", cwd=tmp_path)
    assert "DL101" not in out  # the safe DL101 fix was applied
    for name in os.listdir(tmp_path / "examples"):
        if name.endswith(".py"):
            cst.parse_module((tmp_path / "examples" / name).read_text())


def test_fix_rewrites_and_second_fix_changes_nothing(tmp_path, run_dllint):
    path = write(tmp_path, "a.py", BUGGY)
    code, out, err = run_dllint("--no-cache", "--fix", "a.py", cwd=tmp_path)
    assert code == 0, (out, err)
    assert open(path).read() == FIXED
    assert err.strip().endswith("Fixed 1 finding (0 remaining).")
    code, out, err = run_dllint("--no-cache", "--fix", "--exit-non-zero-on-fix", "a.py", cwd=tmp_path)
    assert code == 0 and open(path).read() == FIXED


def test_exit_non_zero_on_fix(tmp_path, run_dllint):
    write(tmp_path, "a.py", BUGGY)
    code, _, _ = run_dllint("--no-cache", "--fix", "--exit-non-zero-on-fix", "a.py", cwd=tmp_path)
    assert code == 1


def test_fix_keeps_crlf_and_bom(tmp_path, run_dllint):
    raw = b"\xef\xbb\xbf" + BUGGY.replace("\n", "\r\n").encode()
    path = write(tmp_path, "a.py", raw, "wb")
    run_dllint("--no-cache", "--fix", "a.py", cwd=tmp_path)
    assert open(path, "rb").read() == b"\xef\xbb\xbf" + FIXED.replace("\n", "\r\n").encode()


def test_fix_keeps_latin1_encoding(tmp_path, run_dllint):
    text = "# -*- coding: latin-1 -*-\n# caf\xe9\n" + BUGGY
    path = write(tmp_path, "a.py", text.encode("latin-1"), "wb")
    run_dllint("--no-cache", "--fix", "a.py", cwd=tmp_path)
    assert open(path, "rb").read() == ("# -*- coding: latin-1 -*-\n# caf\xe9\n" + FIXED).encode("latin-1")


def test_diff_writes_nothing(tmp_path, run_dllint):
    path = write(tmp_path, "a.py", BUGGY)
    code, out, err = run_dllint("--no-cache", "--diff", "a.py", cwd=tmp_path)
    assert code == 1
    assert "-    return -(target * torch.log(F.softmax(logits, dim=-1))).sum()" in out
    assert "+    return -(target * F.log_softmax(logits, dim=-1)).sum()" in out
    assert open(path).read() == BUGGY


def test_noqa_in_check_and_fix(tmp_path, run_dllint):
    text = BUGGY.replace(".sum()\n", ".sum()  # noqa: DL101\n")
    path = write(tmp_path, "a.py", text)
    write(tmp_path, "b.py", BUGGY.replace(".sum()\n", ".sum()  # noqa\n"))
    write(tmp_path, "c.py", BUGGY.replace(".sum()\n", ".sum()  # noqa: E501\n"))
    write(tmp_path, "d.py", "# dllint: noqa\n" + BUGGY)
    write(tmp_path, "e.py", "# dllint: noqa: DL1\n" + BUGGY)
    write(tmp_path, "f.py", BUGGY.replace(".sum()\n", ".sum()  # NOQA:DL1\n"))
    code, out, err = run_dllint("--no-cache", ".", cwd=tmp_path)
    assert [line.split(":")[0] for line in out.splitlines()] == ["c.py"]
    run_dllint("--no-cache", "--fix", "a.py", cwd=tmp_path)
    assert open(path).read() == text  # a suppressed finding is never fixed


def test_syntax_error_binary_and_undecodable_files(tmp_path, run_dllint):
    write(tmp_path, "a_broken.py", "import torch\ndef f(:\n    pass\n")
    write(tmp_path, "b_binary.py", b"import torch\x00\x01\x02", "wb")
    write(tmp_path, "c_latin.py", "x = 'caf\xe9'\n".encode("latin-1"), "wb")
    write(tmp_path, "d_empty.py", "")
    write(tmp_path, "e_bom.py", b"\xef\xbb\xbf", "wb")
    write(tmp_path, "f_buggy.py", BUGGY)
    code, out, err = run_dllint("--no-cache", ".", cwd=tmp_path)
    assert code == 1
    assert "Traceback" not in err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["a_broken.py", "b_binary.py", "c_latin.py", "f_buggy.py"]
    assert lines[0].startswith("a_broken.py:2:") and " DL001 syntax error" in lines[0]
    assert " DL001 " in lines[1] and "NUL" in lines[1]
    assert " DL001 " in lines[2] and "decode" in lines[2]
    assert " DL101 " in lines[3]


def test_broken_notebook_is_one_finding(tmp_path, run_dllint):
    write(tmp_path, "nb.ipynb", "{not json")
    code, out, err = run_dllint("--no-cache", ".", cwd=tmp_path)
    assert code == 1 and "Traceback" not in err
    assert len(out.splitlines()) == 1 and " DL001 " in out


def test_notebook_findings_and_fix(tmp_path, run_dllint):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["%matplotlib inline\n", "import torch\n", "import torch.nn.functional as F"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["!nvidia-smi\n", "lp = torch.log(F.softmax(z, dim=1))"]},
    ]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = write(tmp_path, "nb.ipynb", json.dumps(nb, indent=1) + "\n")
    code, out, err = run_dllint("--no-cache", "nb.ipynb", cwd=tmp_path)
    assert out.startswith("nb.ipynb:cell 3:2:6: DL101 "), out
    run_dllint("--no-cache", "--fix", "nb.ipynb", cwd=tmp_path)
    fixed = json.load(open(path))
    assert fixed["cells"][2]["source"] == ["!nvidia-smi\n", "lp = F.log_softmax(z, dim=1)"]
    assert fixed["cells"][1] == cells[1] and fixed["cells"][0] == cells[0]


def test_bad_config_key_is_one_line_exit_two(tmp_path, run_dllint):
    write(tmp_path, "pyproject.toml", '[tool.dllint]\nselct = ["DL1"]\n')
    write(tmp_path, "a.py", BUGGY)
    code, out, err = run_dllint(".", cwd=tmp_path)
    assert code == 2
    assert err == "dllint: error: pyproject.toml: [tool.dllint] unknown key 'selct' (did you mean 'select'?)\n"


def test_bad_config_values(tmp_path, run_dllint):
    cases = {
        'select = ["DL999"]': "unknown rule code 'DL999'",
        'select = "DL1"\nignore = 3': "ignore must be a list of strings",
        'target-versions = { torch = "latest" }': "bad version 'latest'",
        'per-file-ignores = { "tests/[" = ["DL1"] }': "bad glob pattern",
        "max-file-size = -1": "max-file-size must be a positive number",
    }
    for body, expected in cases.items():
        write(tmp_path, "pyproject.toml", "[tool.dllint]\n" + body + "\n")
        code, out, err = run_dllint(".", cwd=tmp_path)
        assert code == 2, body
        assert len(err.splitlines()) == 1 and expected in err and "pyproject.toml" in err, err


def test_invalid_toml(tmp_path, run_dllint):
    write(tmp_path, "pyproject.toml", "[tool.dllint\nselect = [\n")
    code, out, err = run_dllint(".", cwd=tmp_path)
    assert code == 2 and len(err.splitlines()) == 1 and "invalid TOML" in err


def test_usage_errors(tmp_path, run_dllint):
    for args, expected in (
        (("missing_dir",), "missing_dir: no such file or directory"),
        (("--select", "DL9x"), "unknown rule code"),
        (("--explain", "DL999"), "unknown rule code"),
        (("--format", "xml"), "invalid choice"),
        (("--no-such-flag",), "unrecognized arguments"),
    ):
        code, out, err = run_dllint(*args, cwd=tmp_path)
        assert code == 2, args
        assert len(err.splitlines()) == 1 and err.startswith("dllint: error: ") and expected in err, err


def test_selection_and_per_file_ignores(tmp_path, run_dllint):
    write(tmp_path, "a.py", BUGGY)
    write(tmp_path, "tests/test_a.py", BUGGY)
    assert run_dllint("--no-cache", "--ignore", "DL1", cwd=tmp_path)[0] == 0
    assert run_dllint("--no-cache", "--select", "DL101", "--ignore", "DL1", cwd=tmp_path)[0] == 1
    assert run_dllint("--no-cache", "--select", "DL5", cwd=tmp_path)[0] == 0
    write(tmp_path, "pyproject.toml", '[tool.dllint]\nper-file-ignores = { "tests/**" = ["DL101"] }\n')
    code, out, err = run_dllint("--no-cache", cwd=tmp_path)
    assert [line.split(":")[0] for line in out.splitlines()] == ["a.py"], out


def test_excludes_and_force_exclude(tmp_path, run_dllint):
    write(tmp_path, "a.py", BUGGY)
    write(tmp_path, "venv/lib/x.py", BUGGY)
    write(tmp_path, "third_party/y.py", BUGGY)
    write(tmp_path, "pyproject.toml", '[tool.dllint]\nextend-exclude = ["third_party/"]\n')
    code, out, err = run_dllint("--no-cache", cwd=tmp_path)
    assert [line.split(":")[0] for line in out.splitlines()] == ["a.py"], out
    # a file named explicitly is checked, unless --force-exclude
    assert run_dllint("--no-cache", "third_party/y.py", cwd=tmp_path)[0] == 1
    assert run_dllint("--no-cache", "--force-exclude", "third_party/y.py", cwd=tmp_path)[0] == 0


def test_statistics_exit_zero_output_file(tmp_path, run_dllint):
    write(tmp_path, "a.py", BUGGY + BUGGY.replace("def loss", "def loss2"))
    code, out, err = run_dllint("--no-cache", "--statistics", "--exit-zero", "--output-file", "r.txt", cwd=tmp_path)
    assert code == 0 and out == ""
    report = (tmp_path / "r.txt").read_text().splitlines()
    assert report[-1].split() == ["2", "DL101", "log-of-softmax"]


def test_formats_from_the_cli(tmp_path, run_dllint):
    write(tmp_path, "a.py", BUGGY)
    code, out, _ = run_dllint("--no-cache", "--format", "json", cwd=tmp_path)
    data = json.loads(out)
    assert data[0]["code"] == "DL101" and data[0]["location"] == {"row": 5, "column": 23}
    assert data[0]["fix"]["applicability"] == "safe"
    code, out, _ = run_dllint("--no-cache", "--format", "sarif", cwd=tmp_path)
    assert json.loads(out)["version"] == "2.1.0"
    code, out, _ = run_dllint("--no-cache", "--format", "github", cwd=tmp_path)
    assert out.startswith("::warning file=a.py,line=5,col=23,")
    code, out, _ = run_dllint("--no-cache", "--format", "full", cwd=tmp_path)
    assert "DL101" in out and "\x1b[" not in out
    code, out, _ = run_dllint("--no-cache", "--format", "json", cwd=tmp_path / "..", env={})
    write(tmp_path, "a.py", CLEAN)
    assert run_dllint("--no-cache", "--format", "json", cwd=tmp_path)[1].strip() == "[]"


def test_explain_and_list_rules(run_dllint):
    code, out, err = run_dllint("--explain", "dl101")
    assert code == 0 and "log-of-softmax" in out and "log_softmax" in out
    code, out, err = run_dllint("--list-rules")
    assert code == 0 and "DL101" in out and "log-of-softmax" in out


def test_version(run_dllint):
    from dllint import __version__

    code, out, _ = run_dllint("--version")
    assert code == 0 and out.strip() == f"dllint {__version__}"


def test_stdin(tmp_path, run_dllint):
    code, out, err = run_dllint("-", "--stdin-filename", "pkg/mod.py", "--no-cache", stdin=BUGGY, cwd=tmp_path)
    assert code == 1 and out.startswith("pkg/mod.py:5:23: DL101")
    code, out, err = run_dllint("-", "--fix", stdin=BUGGY, cwd=tmp_path)
    assert out == FIXED and code == 0


def test_cache_warm_run_and_corrupt_entries(tmp_path, run_dllint):
    write(tmp_path, "a.py", BUGGY)
    first = run_dllint(cwd=tmp_path)
    cache = tmp_path / ".dllint_cache"
    assert (cache / "CACHEDIR.TAG").exists() and (cache / ".gitignore").read_text() == "*\n"
    entries = [p for p in cache.rglob("*.json")]
    assert len(entries) == 1
    assert run_dllint(cwd=tmp_path) == first
    entries[0].write_text("{corrupt")
    assert run_dllint(cwd=tmp_path) == first
    # a changed file is checked again
    write(tmp_path, "a.py", CLEAN)
    assert run_dllint(cwd=tmp_path)[0] == 0


def test_output_is_deterministic_across_jobs(tmp_path, run_dllint):
    for i in range(12):
        write(tmp_path, f"m{i:02d}.py", BUGGY if i % 3 else CLEAN)
    one = run_dllint("--no-cache", "--jobs", "1", cwd=tmp_path)
    two = run_dllint("--no-cache", "--jobs", "2", cwd=tmp_path)
    assert one == two and len(one[1].splitlines()) == 8


def test_broken_pipe_is_quiet(tmp_path):
    for i in range(300):
        write(tmp_path, f"m{i:03d}.py", BUGGY * 3)
    proc = subprocess.run(
        f"{sys.executable} -m dllint --no-cache . | head -n 1", shell=True, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_newer_syntax_than_the_interpreter_is_not_an_error(tmp_path, run_dllint):
    # PEP 695 (Python 3.12) parses with libcst even when the interpreter is older
    write(tmp_path, "a.py", "type Pair[T] = tuple[T, T]\nx = 1\n")
    code, out, err = run_dllint("--no-cache", "a.py", cwd=tmp_path)
    assert (code, out) == (0, ""), out


def test_editing_a_rule_invalidates_the_cache():
    from dllint.runner import code_fingerprint

    assert code_fingerprint() == code_fingerprint() and len(code_fingerprint()) == 16
