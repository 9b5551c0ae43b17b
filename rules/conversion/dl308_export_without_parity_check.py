from __future__ import annotations

import os
import re
from typing import Dict, Optional

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import export_call

#: Conversions to another runtime whose output nobody compares (kinds of ``export_call``).
CONVERSIONS = frozenset({"onnx", "onnx-dynamo", "tf2onnx", "tflite", "coreml"})

#: Something that runs (or checks) the converted artefact.
RUNTIME = re.compile(
    r"InferenceSession|onnxruntime|ai_edge_litert|lite\.Interpreter|tflite_runtime|Interpreter\s*\(|"
    r"onnx\.checker|check_model|MLModel|\.predict\s*\(|ReferenceEvaluator|verify\s*=\s*True"
)
#: A numerical comparison of two outputs.
COMPARISON = re.compile(
    r"allclose|assert_close|assert_almost_equal|assert_array_almost_equal|np\.abs\(|torch\.abs\(|"
    r"\.abs\(\)\s*\.max\(|max_abs|verify\s*=\s*True|cosine_similarity|mean_squared_error|\bmse\b"
)

_PROJECT_TESTS: Dict[str, bool] = {}


def _checked(text: str) -> bool:
    return bool(RUNTIME.search(text)) and bool(COMPARISON.search(text))


def _project_root(path: str) -> Optional[str]:
    directory = os.path.dirname(os.path.abspath(path)) if path else None
    for _ in range(8):
        if not directory:
            return None
        if any(os.path.exists(os.path.join(directory, marker)) for marker in (".git", "pyproject.toml", "setup.py", "setup.cfg")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    return None


def _tests_check(path: str) -> bool:
    """Whether some test file of the project (``test_*.py``, ``*_test.py``, files under a
    ``tests`` / ``test`` folder) runs a converted model and compares outputs.  Unknown project:
    False."""
    if not path or not os.path.isfile(path):
        return False
    root = _project_root(path)
    if root is None:
        return False
    if root in _PROJECT_TESTS:
        return _PROJECT_TESTS[root]
    found = False
    seen = 0
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "venv", ".venv", "build", "dist")]
        in_tests = any(part in ("tests", "test") for part in directory.split(os.sep))
        for name in files:
            if not name.endswith(".py"):
                continue
            if not (in_tests or name.startswith("test_") or name.endswith("_test.py")):
                continue
            seen += 1
            if seen > 2000:
                break
            try:
                with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as handle:
                    if _checked(handle.read(200_000)):
                        found = True
                        break
            except OSError:
                continue
        if found or seen > 2000:
            break
    _PROJECT_TESTS[root] = found
    return found


class ExportWithoutParityCheck(Rule):
    """A model converted to ONNX / TFLite / Core ML with no check of the converted model's outputs.

    Finds the first conversion call of a file (`torch.onnx.export`, `torch.onnx.dynamo_export`,
    `tf2onnx.convert.from_keras / from_function / from_tflite`,
    `tf.lite.TFLiteConverter.from_keras_model / from_saved_model / from_concrete_functions`,
    `coremltools.convert`) when neither the file nor any test file of the project
    (`test_*.py`, `*_test.py`, files under `tests/`) both runs the converted artefact
    (`onnxruntime.InferenceSession`, `ai_edge_litert` / `tf.lite.Interpreter`, `onnx.checker`,
    a Core ML `MLModel` / `.predict`, `verify=True` of the torch exporter) and compares outputs
    numerically (`assert_allclose`, `allclose`, `assert_close`, `np.abs(a - b).max()`...).

    Why it matters: a third of the converter failures studied by paper (c) are silent wrong
    models (33% of past failures, 5-8% of converted models) that convert "successfully"; only
    running the converted model against the source catches them. Practitioners already "test
    with executions"; the paper's criterion is max |delta| < 1e-7 for the torch exporter,
    NNSmith uses 1e-3, and quantised exports need looser, task-level checks.

    How to fix: after the export, run the artefact and compare with the source model, e.g.
    `sess = onnxruntime.InferenceSession("m.onnx")` then
    `np.testing.assert_allclose(model(x).detach().numpy(), sess.run(None, {"x": x.numpy()})[0], rtol=1e-3, atol=1e-5)`;
    with the torch exporter, `torch.onnx.export(..., verify=True)` runs such a comparison.

    Off by default (the catalogue: info severity, opt-in): the validation very often lives in
    another script, a CI job or another repository that the checker cannot see, so many findings
    are on projects that do check their exports; the precision cannot reach the 9-in-10 bar.
    Enable it for a project whose export scripts are meant to carry their own check.
    """

    code = "DL308"
    name = "export-without-parity-check"
    family = "conversion"
    message = (
        "converted model is never checked against the source model; 1/3 of converter failures are silent wrong "
        "models. Add an output-parity check (onnxruntime / LiteRT interpreter + assert_allclose)"
    )
    default_enabled = False
    evidence = Evidence(
        study="(c) Openja et al., faults in deep-learning model converters (torch.onnx, tf2onnx)",
        category="wrong models produced by a successful conversion (33% of failures)",
        links=(
            "https://arxiv.org/abs/2312.15101",
            "https://docs.pytorch.org/tutorials/beginner/onnx/export_simple_model_to_onnx_tutorial.html",
            "https://github.com/pytorch/pytorch/issues/82330",
        ),
    )
    triggers = ("onnx", "tflite", "TFLiteConverter", "coremltools", "lite")
    frameworks = ("torch", "tensorflow", "tf2onnx", "coremltools", "keras")

    VALID = (
        Valid(dedent("""
            import numpy as np
            import onnxruntime
            import torch
            torch.onnx.export(model, (x,), "m.onnx")
            sess = onnxruntime.InferenceSession("m.onnx")
            np.testing.assert_allclose(model(x).detach().numpy(), sess.run(None, {"x": x.numpy()})[0], rtol=1e-3)
            """), "runs and compares"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx", verify=True)
            """), "the exporter verifies against onnxruntime"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            interp = tf.lite.Interpreter(model_content=tflite)
            interp.allocate_tensors()
            assert np.allclose(out_tflite, model(x).numpy(), atol=1e-4)
            """), "TFLite interpreter and a comparison"),
        Valid(dedent("""
            import torch
            ep = torch.export.export(model, (x,))
            """), "torch.export.export: not a conversion to another runtime"),
        Valid(dedent("""
            import torch
            ts = torch.jit.trace(model, x)
            """), "TorchScript trace: same runtime"),
        Valid(dedent("""
            import numpy as np
            import onnxruntime as ort
            import tf2onnx
            proto, _ = tf2onnx.convert.from_keras(model, output_path="m.onnx")
            out = ort.InferenceSession("m.onnx").run(None, feed)[0]
            print(np.abs(out - ref).max())
            """), "max abs difference printed"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx")
            """), note="the catalogue's example"),
        Invalid(dedent("""
            import tf2onnx
            model_proto, _ = tf2onnx.convert.from_keras(model, opset=15, output_path="m.onnx")
            """), note="tf2onnx"),
        Invalid(dedent("""
            import tensorflow as tf
            converter = tf.lite.TFLiteConverter.from_saved_model("saved")
            open("m.tflite", "wb").write(converter.convert())
            """), note="TFLite"),
        Invalid(dedent("""
            import onnxruntime
            import torch
            torch.onnx.export(model, (x,), "a.onnx")
            torch.onnx.export(model, (x,), "b.onnx")
            sess = onnxruntime.InferenceSession("a.onnx")
            print(sess.run(None, {"x": x.numpy()}))
            """), note="runs the model but compares nothing: one finding per file"),
        Invalid(dedent("""
            import coremltools as ct
            import torch
            mlmodel = ct.convert(torch.jit.trace(model, x), inputs=[ct.TensorType(shape=x.shape)])
            mlmodel.save("m.mlpackage")
            """), note="Core ML"),
    )

    def __init__(self, ctx, sink) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx, sink)
        self._done = False

    def visit_Call(self, node: cst.Call) -> None:
        if self._done:
            return
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.kind not in CONVERSIONS:
            return
        self._done = True
        if ctx.memo("dl308.checked", lambda c: _checked(c.source)):
            return
        if _tests_check(getattr(ctx, "path", "") or ""):
            return
        self.report(node)
