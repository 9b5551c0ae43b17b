from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import DYNAMO_DEFAULT_SINCE, export_call, onnx_exporter
from dllint.rules.conversion._pins import version as pinned_version


class LegacyOnnxExporter(Rule):
    """torch.onnx.export(..., dynamo=False): the deprecated TorchScript-based ONNX exporter.

    Finds `torch.onnx.export(...)` calls (any import or alias) with a literal `dynamo=False`, when
    the target torch release (`target-versions`, else the project's pins; unknown = newest) is 2.9
    or newer.

    Why: from torch 2.9 `torch.onnx.export` runs the torch.export-based exporter by default, and
    `dynamo=False` selects the legacy TorchScript-based one, which warns on every call. Measured in
    torch 2.13: "You are using the legacy TorchScript-based ONNX export. Starting in PyTorch 2.9,
    the new torch.export-based ONNX exporter has become the default. ..." (a DeprecationWarning,
    hidden unless raised from `__main__`; a first version of it came with pytorch#152478). The
    legacy exporter is built on TorchScript, itself deprecated (DL310); it is the exporter under
    which data-dependent control flow and Python values are silently frozen into the graph (DL302,
    DL303) and old opsets mis-export resize (DL305); it receives no fixes.

    How to fix: drop `dynamo=False` and declare dynamic dimensions with `dynamic_shapes`
    (`torch.onnx.export(model, (x,), "m.onnx", dynamic_shapes={"x": {0: "batch"}})`), then check
    the outputs against PyTorch (DL308). No autofix: the new exporter refuses data-dependent
    control flow (DL302) and takes `dynamic_shapes` rather than `dynamic_axes` (DL304).

    Limits: a `dynamo=` value that is not a literal is left alone, and so is a `dynamo=False`
    export inside an `except` handler whose `try` ran a dynamo export first (a deliberate fallback
    for models the new exporter cannot handle yet). `torch.onnx.utils.export` (a backward-compatible
    alias of the legacy exporter that does not carry this warning) is not reported. Projects pinned
    below torch 2.9 get nothing.
    """

    code = "DL311"
    name = "legacy-onnx-exporter"
    family = "conversion"
    message = (
        "dynamo=False selects the deprecated TorchScript-based ONNX exporter; the torch.export-based exporter is "
        "the default since torch 2.9 (use dynamic_shapes instead of dynamic_axes)"
    )
    evidence = Evidence(
        study="PyTorch's own deprecation warning (torch 2.13 wheel, measured)",
        category="deprecated framework API: legacy TorchScript-based ONNX exporter",
        links=(
            "https://docs.pytorch.org/docs/stable/onnx_export.html",
            "https://github.com/pytorch/pytorch/pull/152478",
            "https://github.com/pytorch/pytorch/pull/166692",
        ),
    )
    triggers = ("dynamo",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx", dynamic_shapes={"x": {0: "batch"}})
            """), "the default exporter"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx", dynamo=True)
            """), "dynamo=True"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx", dynamo=args.dynamo)
            """), "not a literal"),
        Valid(dedent("""
            import torch
            try:
                torch.onnx.export(model, (x,), "m.onnx", dynamo=True)
            except Exception:
                torch.onnx.export(model, (x,), "m.onnx", dynamo=False)
            """), "a deliberate fallback after a dynamo export"),
        Valid(dedent("""
            import torch
            torch._dynamo.config.suppress_errors = True
            torch.export.export(model, (x,))
            """), "not an ONNX export"),
        Valid(dedent("""
            import onnx_tool
            onnx_tool.export(model, x, "m.onnx", dynamo=False)
            """), "some other export function"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                torch.onnx.export(model, (x,), "m.onnx", dynamo=False, dynamic_axes={"x": {0: "batch"}})
                """),
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                from torch.onnx import export as onnx_export

                def save(model, x, path):
                    onnx_export(model, x, path, opset_version=17, dynamo=False)
                """),
            note="aliased import",
        ),
        Invalid(
            dedent("""
                import torch
                try:
                    torch.onnx.export(model, (x,), "m.onnx", dynamo=False)
                except Exception:
                    print("export failed")
                """),
            note="no dynamo attempt before it",
        ),
        Invalid(
            dedent("""
                import torch as T
                with open("m.onnx", "wb") as f:
                    T.onnx.export(net, dummy, f, input_names=["x"], dynamo=False)
                """),
            note="torch alias, file object",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.kind != "onnx" or export.entry != "torch.onnx.export":
            return
        keyword = ctx.keyword(node, "dynamo")
        if keyword is None or not (isinstance(keyword.value, cst.Name) and keyword.value.value == "False"):
            return
        target = pinned_version(ctx, "torch")
        if target is not None and tuple(target[:2]) < DYNAMO_DEFAULT_SINCE:
            return
        if self._fallback(node):
            return
        self.report(node)

    def _fallback(self, node: cst.Call) -> bool:
        """Whether ``node`` sits in an ``except`` handler of a ``try`` whose body runs a dynamo
        ONNX export (or torch.export) first."""
        ctx = self.ctx
        stack = ctx.stack
        for index in range(len(stack) - 1, 0, -1):
            handler = stack[index]
            if isinstance(handler, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return False
            if not isinstance(handler, cst.ExceptHandler):
                continue
            holder: Optional[Any] = stack[index - 1]
            if isinstance(holder, (cst.Try, cst.TryStar)) and _runs_dynamo_export(ctx, holder.body):
                return True
        return False


def _runs_dynamo_export(ctx: Any, body: Any) -> bool:
    found = [False]

    class Finder(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            export = export_call(ctx, call)
            if export is None:
                return
            if export.kind == "export" or (export.kind == "onnx" and onnx_exporter(ctx, call) == "dynamo"):
                found[0] = True

    body.visit(Finder())
    return found[0]
