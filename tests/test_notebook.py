"""Notebook reading, IPython masking, cell/row mapping and byte-preserving write-back."""

import json

import libcst
import pytest

from dllint.notebook import Notebook, NotebookError


def code(src, outputs=None, as_list=True):
    if as_list:
        src = src.splitlines(keepends=True)
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {"tags": ["x"]},
        "outputs": outputs if outputs is not None else [],
        "source": src,
    }


def markdown(src):
    return {"cell_type": "markdown", "metadata": {}, "source": src.splitlines(keepends=True)}


def notebook(*cells, indent=1, trailing="\n", **dump):
    nb = {
        "cells": list(cells),
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ünï)"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return (json.dumps(nb, indent=indent, ensure_ascii=False, **dump) + trailing).encode("utf-8")


def lines_of(nb):
    return nb.source.splitlines()


def find(nb, text):
    """The 1-based line of ``nb.source`` whose text is ``text``."""
    return lines_of(nb).index(text) + 1


OUTPUT = [{"name": "stdout", "output_type": "stream", "text": ["héllo\n"]}]


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    ["%matplotlib inline", "!pip install torch", "?print", "??print", "print?", "np.zeros??",
     "files = !ls -la", "t = %timeit -o f()", "d[k] = %env HOME"],
)
def test_each_ipython_form_is_masked_in_place(line):
    nb = Notebook.parse(notebook(code(f"import torch\n{line}\nx = torch.ones(3)\n")))
    libcst.parse_module(nb.source)
    masked = lines_of(nb)[find(nb, "import torch")]
    assert "dllint-mask" in masked and masked.lstrip().startswith("pass")
    assert masked[: len(masked) - len(masked.lstrip())] == line[: len(line) - len(line.lstrip())]
    assert nb.locate(find(nb, "x = torch.ones(3)")) == (1, 3)
    assert nb.write_back(nb.source) == nb.raw


def test_masked_line_keeps_indentation_inside_a_block():
    src = "for i in range(3):\n    !echo $i\n    %time f(i)\ny = 1\n"
    nb = Notebook.parse(notebook(code(src)))
    libcst.parse_module(nb.source)
    body = lines_of(nb)[1:]
    assert body[1].startswith("    pass  # dllint-mask") and body[2].startswith("    pass  #")
    assert body[3] == "y = 1"


def test_python_that_looks_like_ipython_is_not_masked():
    src = (
        'msg = ("a %s"\n'
        "       % name)\n"
        'doc = """\n'
        "!not a shell line\n"
        "what?\n"
        '"""\n'
        "total = a + \\\n"
        "    !b if False else 0\n"
        "ok = x != y  # really?\n"
        "s = 'why?'\n"
    )
    nb = Notebook.parse(notebook(code(src)))
    assert "dllint-mask" not in nb.source
    assert nb.source.split("\n", 1)[1] == src


def test_cell_magic_masks_the_whole_cell():
    nb = Notebook.parse(
        notebook(code("%%bash\necho hi\n  indented | grep x\n"), code("%%time"), code("z = 1"))
    )
    libcst.parse_module(nb.source)
    assert "echo" not in nb.source and "grep" not in nb.source
    assert nb.locate(find(nb, "z = 1")) == (3, 1)
    assert nb.write_back(nb.source) == nb.raw
    changed = Notebook.parse(nb.raw).write_back(nb.source.replace("z = 1", "z = 2"))
    cells = json.loads(changed)["cells"]
    assert cells[0]["source"] == ["%%bash\n", "echo hi\n", "  indented | grep x\n"]
    assert cells[1]["source"] == ["%%time"]
    assert cells[2]["source"] == ["z = 2"]


def test_empty_cell_magic_and_empty_cells_parse():
    nb = Notebook.parse(notebook(code(""), code("%%capture\n"), code("   \n"), code("x = 1")))
    libcst.parse_module(nb.source)
    assert nb.locate(find(nb, "x = 1")) == (4, 1)
    assert nb.write_back(nb.source) == nb.raw


def test_masked_source_parses_with_libcst():
    src = "import torch\n%load_ext autoreload\nif True:\n    !ls\n    x = 1\nhelp?\n"
    nb = Notebook.parse(notebook(code(src), code("!nvidia-smi"), code("%%writefile a.py\nimport os")))
    module = libcst.parse_module(nb.source)
    assert module.code == nb.source


# --- locate ----------------------------------------------------------------------------------


def test_locate_counts_all_cells_including_markdown():
    nb = Notebook.parse(
        notebook(
            markdown("# Title\ntext\n"),
            code("import torch\nx = torch.ones(2)"),
            markdown("more"),
            markdown("and more"),
            code("\n\ny = x.log()\n"),
        )
    )
    assert nb.locate(find(nb, "import torch")) == (2, 1)
    assert nb.locate(find(nb, "x = torch.ones(2)")) == (2, 2)
    assert nb.locate(find(nb, "y = x.log()")) == (5, 3)


def test_locate_clamps_any_line_number():
    nb = Notebook.parse(notebook(markdown("m"), code("a = 1\nb = 2"), code("c = 3")))
    n = len(lines_of(nb))
    for line in [-5, 0, 1, 2, 3, 4, 5, n, n + 1, 10**6]:
        cell, row = nb.locate(line)
        assert cell in (2, 3) and row >= 1
    assert nb.locate(1) == (2, 1)  # a separator line maps to its cell's first row
    assert nb.locate(10**6) == (3, 1)
    assert Notebook.parse(notebook(markdown("only text"))).locate(7) == (1, 1)


# --- write back ------------------------------------------------------------------------------


def test_round_trip_is_byte_for_byte():
    raw = notebook(markdown("# hi"), code("import torch\n%matplotlib inline\nx = 1", OUTPUT), code("y = 2\n"))
    nb = Notebook.parse(raw)
    assert nb.write_back(nb.source) == raw


@pytest.mark.parametrize(
    "dump", [dict(indent=2), dict(indent=None), dict(indent=1, trailing=""), dict(indent="\t")]
)
def test_other_json_layouts_keep_untouched_bytes(dump):
    raw = notebook(code("a = 1\n", OUTPUT), code("b = 2"), markdown("é"), **dump)
    nb = Notebook.parse(raw)
    assert nb.write_back(nb.source) == raw
    out = nb.write_back(nb.source.replace("b = 2", "b = 3"))
    assert out == raw.replace(b'"b = 2"', b'"b = 3"')


def test_odd_formatting_outside_the_changed_cell_is_kept():
    raw = (
        b'{"nbformat_minor":5 , "cells" : [ {"source":"a = 1","cell_type":"code","outputs":[],'
        b'"metadata":{},"execution_count":null},\n{"cell_type" :"code","source":["b = \\u00e9\\n"],'
        b'"outputs":[],"metadata":{},"execution_count":null} ],"metadata":{},"nbformat":4}'
    )
    nb = Notebook.parse(raw)
    assert "b = é" in nb.source
    out = nb.write_back(nb.source.replace("a = 1", "a = 2"))
    assert out == raw.replace(b'"source":"a = 1"', b'"source":"a = 2"')


def test_change_in_one_cell_rewrites_only_that_cell():
    raw = notebook(
        code("import torch\nx = torch.ones(2)\n", OUTPUT),
        markdown("text"),
        code("y = x.softmax(0).log()\nprint(y)", OUTPUT),
        code("!ls\nz = 3"),
    )
    nb = Notebook.parse(raw)
    out = nb.write_back(nb.source.replace("x.softmax(0).log()", "x.log_softmax(0)"))
    before, after = json.loads(raw), json.loads(out)
    assert after["cells"][2]["source"] == ["y = x.log_softmax(0)\n", "print(y)"]
    after["cells"][2]["source"] = before["cells"][2]["source"]
    assert after == before
    # Everything but the changed value is the same bytes.
    old_value = json.dumps(before["cells"][2]["source"], indent=1, ensure_ascii=False)
    new_value = json.dumps(["y = x.log_softmax(0)\n", "print(y)"], indent=1, ensure_ascii=False)
    pad = lambda s: s.replace("\n", "\n   ").encode()  # noqa: E731  (key line indent: 3)
    assert out == raw.replace(pad(old_value), pad(new_value))
    assert out.endswith(b"}\n")


def test_added_lines_at_the_top_of_the_first_code_cell():
    raw = notebook(markdown("intro"), code("x = torch.ones(2)\n"), code("!ls\ny = 1"))
    nb = Notebook.parse(raw)
    # Before the first separator, as an import-adding fix may put it.
    out = json.loads(nb.write_back("import torch\n" + nb.source))
    assert out["cells"][1]["source"] == ["import torch\n", "x = torch.ones(2)\n"]
    assert out["cells"][2]["source"] == ["!ls\n", "y = 1"]
    # After the separator, inside the cell.
    src = nb.source.replace("x = torch", "import torch\nimport numpy\nx = torch", 1)
    out = json.loads(nb.write_back(src))
    assert out["cells"][1]["source"] == ["import torch\n", "import numpy\n", "x = torch.ones(2)\n"]


def test_removed_lines_and_lines_added_at_the_end_of_a_cell():
    nb = Notebook.parse(notebook(code("a = 1\nb = 2\nc = 3"), code("d = 4")))
    out = json.loads(nb.write_back(nb.source.replace("b = 2\n", "").replace("c = 3\n", "c = 3\ne = 5\n")))
    assert out["cells"][0]["source"] == ["a = 1\n", "c = 3\n", "e = 5"]
    assert out["cells"][1]["source"] == ["d = 4"]


def test_source_as_string_stays_a_string():
    raw = notebook(code("a = 1\n%time b = 2\nc = 3", as_list=False), code("d = 4\n", as_list=True))
    nb = Notebook.parse(raw)
    assert nb.locate(find(nb, "c = 3")) == (1, 3)
    assert nb.write_back(nb.source) == raw
    out = json.loads(nb.write_back(nb.source.replace("c = 3", "c = 30").replace("d = 4", "d = 40")))
    assert out["cells"][0]["source"] == "a = 1\n%time b = 2\nc = 30"
    assert out["cells"][1]["source"] == ["d = 40\n"]


def test_masked_lines_are_restored_exactly_even_if_moved():
    raw = notebook(code("if x:\n    !echo  'a  b' \nfiles = !ls *.py\n"))
    nb = Notebook.parse(raw)
    src = nb.source.replace("if x:", "if y:")
    out = json.loads(nb.write_back(src))
    assert out["cells"][0]["source"] == ["if y:\n", "    !echo  'a  b' \n", "files = !ls *.py\n"]


def test_empty_cell_gets_new_text():
    nb = Notebook.parse(notebook(code(""), code("x = 1")))
    out = json.loads(nb.write_back("import torch\n" + nb.source))
    assert out["cells"][0]["source"] == ["import torch"]
    assert out["cells"][1]["source"] == ["x = 1"]


def test_bom_and_crlf_json_are_kept():
    raw = b"\xef\xbb\xbf" + notebook(code("a = 1"), code("b = 2")).replace(b"\n", b"\r\n")
    nb = Notebook.parse(raw)
    assert nb.write_back(nb.source) == raw
    out = nb.write_back(nb.source.replace("a = 1", "a = 1\nc = 3"))
    assert out.startswith(b"\xef\xbb\xbf") and b"\n" not in out.replace(b"\r\n", b"")
    assert json.loads(out.decode("utf-8-sig"))["cells"][0]["source"] == ["a = 1\n", "c = 3"]


def test_separator_mismatch_raises():
    nb = Notebook.parse(notebook(code("a = 1"), code("b = 2")))
    with pytest.raises(NotebookError):
        nb.write_back(nb.source.replace("pass  # dllint-cell 2\n", ""))
    with pytest.raises(NotebookError):
        Notebook.parse(notebook(markdown("x"))).write_back("import torch\n")


def test_no_code_cells():
    raw = notebook(markdown("x"))
    nb = Notebook.parse(raw)
    assert nb.source == ""
    assert nb.write_back("") == raw


# --- broken input ----------------------------------------------------------------------------


def _raw(obj):
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b'"text"',
        _raw({"nbformat": 3, "worksheets": []}),
        _raw({"nbformat": "4", "cells": []}),
        _raw({"cells": []}),
        _raw({"nbformat": 4, "cells": {}}),
        _raw({"nbformat": 4}),
        _raw({"nbformat": 4, "cells": ["x"]}),
        _raw({"nbformat": 4, "cells": [{"cell_type": "code", "source": 3}]}),
        _raw({"nbformat": 4, "cells": [{"cell_type": "code", "source": ["a", 1]}]}),
        _raw({"nbformat": 4, "cells": [{"cell_type": "code"}]}),
        b"[" * 100000,
        b'{"nbformat": 4, "cells": [], "n": ' + b"1" * 5000 + b"}",
    ],
)
def test_broken_input_raises_notebook_error(raw):
    with pytest.raises(NotebookError) as info:
        Notebook.parse(raw)
    assert "\n" not in str(info.value) and str(info.value)
