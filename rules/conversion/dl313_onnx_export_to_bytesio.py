from __future__ import annotations

from typing import Any

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import DYNAMO_DEFAULT_SINCE, export_call
from dllint.rules.conversion._pins import version as pinned_version

BYTESIO = frozenset({"io.BytesIO", "_io.BytesIO"})


class OnnxExportToBytesio(Rule):
    """torch.onnx.export writing the model into an io.BytesIO object with the dynamo exporter.

    Finds `torch.onnx.export(model, args, f, ...)` whose `f` (third positional or `f=`) is an
    inline `io.BytesIO()` (any import spelling) or a name whose single assignment is one, when
    the dynamo exporter runs (the default since torch 2.9: no `dynamo=False`, target torch >= 2.9
    or unknown).

    Why: torch 2.13 warns "Saving ONNX model to a BytesIO object is deprecated. Please use a file
    path instead." (DeprecationWarning, `torch/onnx/_internal/exporter/_compat.py`, measured); the
    in-memory path is kept only for compatibility, skips the `external_data` / initializer options
    of `ONNXProgram.save`, and may go away. The legacy exporter (`dynamo=False`) writes to a
    BytesIO without this warning, so it is not reported (DL311 covers that exporter).

    How to fix: export to a file path, for example inside `tempfile.TemporaryDirectory()`, and
    read the model back from there (`onnx.load(path)` or `InferenceSession(path)`); or keep the
    returned `ONNXProgram` (`onnx_program.model_proto`) instead of serialising it. No automatic fix.

    Limits: a buffer reaching the call through a parameter or an attribute is not followed.
    """

    code = "DL313"
    name = "onnx-export-to-bytesio"
    family = "conversion"
    message = "exporting ONNX to a BytesIO object is deprecated; export to a file path"
    evidence = Evidence(
        study="torch 2.13 deprecation warning (measured 2026-11-25)",
        category="deprecated export destination",
        links=(
            "https://github.com/pytorch/pytorch/blob/main/torch/onnx/_internal/exporter/_compat.py",
            "https://docs.pytorch.org/docs/stable/onnx_export.html",
        ),
    )
    triggers = ("BytesIO",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx")
            """), "a file path"),
        Valid(dedent("""
            import io
            import torch
            buf = io.BytesIO()
            torch.onnx.export(model, (x,), buf, dynamo=False)
            """), "legacy exporter: no warning"),
        Valid(dedent("""
            import io
            import torch
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            torch.onnx.export(model, (x,), "m.onnx")
            """), "the buffer is used by torch.save"),
        Valid(dedent("""
            import io
            import torch
            def export(model, x, f):
                torch.onnx.export(model, (x,), f)
            """), "a parameter: unknown destination"),
        Valid(dedent("""
            import io
            import torch
            buf = io.BytesIO()
            if args.to_file:
                buf = "m.onnx"
            torch.onnx.export(model, (x,), buf)
            """), "two assignments: not followed"),
        Valid(dedent("""
            import io
            import torch
            program = torch.onnx.export(model, (x,))
            proto = program.model_proto
            """), "no destination: the ONNXProgram is kept"),
    )

    INVALID = (
        Invalid(dedent("""
            import io
            import torch
            buf = io.BytesIO()
            torch.onnx.export(model, (x,), buf)
            """), note="buffer through a name"),
        Invalid(dedent("""
            import torch
            from io import BytesIO
            torch.onnx.export(model, (x,), f=BytesIO(), opset_version=18)
            """), note="inline, as keyword"),
        Invalid(dedent("""
            import io
            import torch
            with io.BytesIO() as f:
                pass
            torch.onnx.export(model, dummy, io.BytesIO(), dynamo=True)
            """), note="explicit dynamo=True"),
        Invalid(dedent("""
            import io
            import torch.onnx
            def to_bytes(model, x):
                stream = io.BytesIO()
                torch.onnx.export(model, x, stream, input_names=["x"])
                return stream.getvalue()
            """), note="inside a helper"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.kind != "onnx" or export.exporter != "dynamo":
            return
        target = pinned_version(ctx, "torch")
        if target is not None and target < DYNAMO_DEFAULT_SINCE:
            return
        f = export.argument(ctx, "f")
        if f is None:
            return
        value: Any = f
        if isinstance(f, cst.Name):
            value = ctx.assigned_value(f)
        if isinstance(value, cst.Call) and ctx.call_name(value) in BYTESIO:
            self.report(f)
