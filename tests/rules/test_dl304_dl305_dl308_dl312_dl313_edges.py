"""Edge cases of DL304 (onnx-export-static-shapes), DL305 (onnx-export-legacy-opset), DL308
(export-without-parity-check), DL312 (onnx-external-data-sidecar), DL313 (onnx-export-to-bytesio),
DL316 (dynamic-dim-with-size-one-example) and DL317 (onnx-dynamic-axis-name-conflict)."""

from __future__ import annotations

import textwrap

import pytest

from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _found(code: str, rule: str, target=None):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "<string>", RULESET, enabled={rule}, target_versions=target)
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return found


def _lines(code: str, rule: str, target=None):
    return [f.line for f in _found(code, rule, target)]


def test_default_enabled_flags():
    rules = {r.code: r for r in all_rules()}
    assert rules["DL304"].default_enabled is False
    assert rules["DL308"].default_enabled is False
    for code in ("DL305", "DL312", "DL313", "DL316", "DL317"):
        assert rules[code].default_enabled is True


# ---------------------------------------------------------------------- DL304

def test_dl304_legacy_by_target_version_gets_dynamic_axes_advice():
    code = """
    import torch
    torch.onnx.export(model, torch.randn(1, 3, 8, 8), "m.onnx", input_names=["x"])
    """
    assert _lines(code, "DL304", {"torch": "2.4"}) == [2]


def test_dl304_static_word_in_comment_silences():
    code = """
    import torch
    # static shape on purpose: the NPU compiler wants a fixed batch
    torch.onnx.export(model, torch.randn(1, 3, 8, 8), "m.onnx")
    """
    assert _lines(code, "DL304") == []


def test_dl304_unknown_dynamo_literal_silent():
    code = """
    import torch
    torch.onnx.export(model, torch.randn(1, 3, 8, 8), "m.onnx", dynamo=use_dynamo)
    """
    assert _lines(code, "DL304") == []


# ---------------------------------------------------------------------- DL305

@pytest.mark.parametrize("opset,target,expected", [
    (13, None, [2]),          # dynamo default: < 18
    (17, None, [2]),
    (18, None, []),
    (12, {"torch": "2.4"}, []),   # legacy by target version: >= 11 fine without attention
    (10, {"torch": "2.4"}, [2]),
])
def test_dl305_exporter_thresholds(opset, target, expected):
    code = f"""
    import torch
    torch.onnx.export(model, (x,), "m.onnx", opset_version={opset})
    """
    assert _lines(code, "DL305", target) == expected


def test_dl305_bitblas_shape_dynamo_default_and_legacy():
    code = """
    import torch
    import torch.nn.functional as F
    class Attn(torch.nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q, is_causal=True)
    model = Attn().eval()
    torch.onnx.export(model, (q,), "a.onnx", opset_version=13)
    torch.onnx.export(model, (q,), "b.onnx", dynamo=False, opset_version=13)
    torch.onnx.export(model, (q,), "c.onnx", dynamo=False, opset_version=12, input_names=["q"])
    """
    found = _found(code, "DL305")
    assert [f.line for f in found] == [7, 8, 9]
    assert "dynamo exporter" in found[0].message
    assert "scaled_dot_product_attention" in found[1].message


def test_dl305_tf2onnx_from_function():
    code = """
    import tf2onnx
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=10)
    """
    assert _lines(code, "DL305") == [2]


# ---------------------------------------------------------------------- DL308

def test_dl308_one_finding_per_file_and_parity_in_file():
    code = """
    import torch
    torch.onnx.export(a, (x,), "a.onnx")
    torch.onnx.export(b, (x,), "b.onnx")
    """
    assert _lines(code, "DL308") == [2]
    checked = code + """
    import numpy as np, onnxruntime as ort
    np.testing.assert_allclose(ort.InferenceSession("a.onnx").run(None, feed)[0], ref)
    """
    assert _lines(checked, "DL308") == []


def test_dl308_project_test_file_counts(tmp_path):
    from dllint.rules.conversion import dl308_export_without_parity_check as mod

    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_export.py").write_text(
        "import onnxruntime, numpy as np\n"
        "def test_parity():\n    np.testing.assert_allclose(onnxruntime.InferenceSession('m.onnx').run(None, f)[0], r)\n"
    )
    script = tmp_path / "export.py"
    script.write_text("import torch\ntorch.onnx.export(m, (x,), 'm.onnx')\n")
    mod._PROJECT_TESTS.clear()
    assert mod._tests_check(str(script)) is True


# ---------------------------------------------------------------------- DL312

def test_dl312_copy_via_string_name_equivalence():
    code = """
    import shutil
    import torch
    path = "m.onnx"
    torch.onnx.export(model, (x,), path)
    shutil.copy2("m.onnx", "/deploy")
    """
    assert _lines(code, "DL312") == [4]


def test_dl312_fstring_data_mention_silences():
    code = """
    import shutil
    import torch
    def ship(path, dest):
        torch.onnx.export(model, (x,), path)
        shutil.copy(path, dest)
        shutil.copy(f"{path}.data", dest)
    """
    assert _lines(code, "DL312") == []


def test_dl312_legacy_target_silent():
    code = """
    import shutil
    import torch
    torch.onnx.export(model, (x,), "m.onnx")
    shutil.copy("m.onnx", dest)
    """
    assert _lines(code, "DL312", {"torch": "2.5"}) == []


# ---------------------------------------------------------------------- DL313

def test_dl313_old_target_silent_and_new_reported():
    code = """
    import io
    import torch
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=True)
    """
    assert _lines(code, "DL313", {"torch": "2.6"}) == []
    assert _lines(code, "DL313", {"torch": "2.13"}) == [4]


# ---------------------------------------------------------------------- DL316

def test_dl316_onnx_only_for_old_targets():
    code = """
    import torch
    from torch.export import Dim
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, (x,), "m.onnx", dynamo=True, dynamic_shapes={"x": {0: Dim("batch", min=1, max=16)}})
    """
    assert _lines(code, "DL316") == []
    assert _lines(code, "DL316", {"torch": "2.7"}) == [4]


def test_dl316_onnx_dynamic_axes_old_target():
    code = """
    import torch
    x = torch.randn(1, 16)
    torch.onnx.export(model, (x,), "m.onnx", dynamo=True, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    """
    assert _lines(code, "DL316", {"torch": "2.6"}) == [3]


def test_dl316_negative_axis():
    code = """
    import torch
    x = torch.randn(4, 1)
    ep = torch.export.export(model, (x,), dynamic_shapes=({-1: torch.export.Dim("n")},))
    """
    assert _lines(code, "DL316") == [3]


# ---------------------------------------------------------------------- DL317

def test_dl317_list_times_n_and_star():
    code = """
    import torch
    src = torch.randn(1, 3, 64, 64)
    rec = [torch.zeros(1, 1, 1, 1)] * 2
    axes = {2: "h"}
    torch.onnx.export(net, (src, *rec), "m.onnx", input_names=["src", "a", "b"],
                      dynamic_axes={"src": axes, "a": axes, "b": axes})
    """
    assert _lines(code, "DL317") == [6, 6]


def test_dl317_more_names_than_inputs_silent():
    code = """
    import torch
    a = torch.randn(2, 4)
    torch.onnx.export(net, (a,), "m.onnx", input_names=["a", "b"], dynamic_axes={"a": {0: "n"}, "b": {0: "n"}})
    """
    assert _lines(code, "DL317") == []
