from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import exported_module, export_call, find_method
from dllint.rules.conversion.dl304_onnx_export_static_shapes import int_value

#: Lowest opset the dynamo exporter writes; lower requests are translated from it.
DYNAMO_MIN_OPSET = 18
#: Lowest opset at which the legacy exporter expresses resize coordinate modes (ONNX Resize-11).
LEGACY_MIN_OPSET = 11
#: Lowest opset with a legacy symbolic for aten::scaled_dot_product_attention.
SDPA_MIN_OPSET = 14
SDPA = frozenset({
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
})


class OnnxExportLegacyOpset(Rule):
    """ONNX export (or tf2onnx conversion) asked for an opset too old for what it must express.

    Finds `torch.onnx.export(..., opset_version=N)` with `N` a literal (or a name assigned once
    from one): with the dynamo exporter (the default since torch 2.9: no `dynamo=False`, target
    torch >= 2.9 or unknown), `N < 18`; with the legacy exporter (`dynamo=False`, or a target
    torch < 2.9), `N < 11`, and `N < 14` when the exported module's class, defined in the file,
    calls `F.scaled_dot_product_attention` in `forward`. Also `tf2onnx.convert.from_keras /
    from_function(..., opset=N)` with `N < 11`.

    Why it breaks: the dynamo exporter builds opset 18 and down-converts to a lower request with
    the ONNX version converter; when that fails it logs the traceback and silently keeps opset 18
    (measured, torch 2.13 / onnx 1.23: `opset_version=13` on a model with
    `scaled_dot_product_attention` writes an opset-18 file after "No Adapter From Version $15
    for Shape"), so a runtime pinned to opset N rejects the file. The legacy exporter has no
    `Resize` coordinate modes below opset 11: bilinear `align_corners=False` at opset 9/10 gives
    an onnxruntime mismatch with no error and `align_corners=True` raises `SymbolicValueError`
    (measured); and it has no symbolic for `aten::scaled_dot_product_attention` below opset 14
    (`UnsupportedOperatorError: ... opset version 13 is not supported. Support for this
    operator was added in version 14`, measured; microsoft/BitBLAS#115). tf2onnx 1.17 accepts
    `opset=9` silently (its default is 15) and old opsets lack the Resize modes
    (tf2onnx#914, #1385).

    How to fix: omit `opset_version` (default 20) or use >= 18 with the dynamo exporter, and
    check the outputs of the converted model against the source (DL308). No automatic fix: the
    opset must match the target runtime.

    Limits: an opset from the command line or a config is not followed; a runtime that really
    needs an old opset is a reason to keep it (then verify the written file's opset).
    """

    code = "DL305"
    name = "onnx-export-legacy-opset"
    family = "conversion"
    message = (
        "opset_version=N is too old: the legacy exporter gets resize/upsample wrong or fails below 11, and the "
        "dynamo exporter writes opset 18 when it cannot down-convert. Omit opset_version (20) or use >= 18, and "
        "verify outputs"
    )
    evidence = Evidence(
        study="(c) Openja et al., faults in deep-learning model converters (torch.onnx, tf2onnx)",
        category="Node conversion: operator semantics missing in old opsets (Resize coordinate modes)",
        links=(
            "https://github.com/pytorch/pytorch/issues/12647",
            "https://github.com/pytorch/pytorch/issues/79361",
            "https://github.com/pytorch/pytorch/issues/31750",
            "https://github.com/pytorch/pytorch/issues/47997",
            "https://github.com/onnx/tensorflow-onnx/issues/914",
            "https://github.com/microsoft/BitBLAS/pull/115",
        ),
    )
    triggers = ("opset",)
    frameworks = ("torch", "tf2onnx")

    VALID = (
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx", opset_version=18)
            """), "dynamo exporter at its own opset"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx", dynamo=False, opset_version=12)
            """), "legacy exporter at 12: Resize-11 is there, no attention"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx", opset_version=args.opset)
            """), "opset from the command line: not followed"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (x,), "m.onnx")
            """), "default opset (20)"),
        Valid(dedent("""
            import tf2onnx
            model_proto, _ = tf2onnx.convert.from_keras(model, opset=13)
            """), "tf2onnx at 13"),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            class Attn(torch.nn.Module):
                def forward(self, q):
                    return F.scaled_dot_product_attention(q, q, q)
            torch.onnx.export(Attn().eval(), (q,), "a.onnx", dynamo=False, opset_version=14)
            """), "legacy exporter at 14 has the attention symbolic"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            torch.onnx.export(model, x, "m.onnx", opset_version=9)
            """), note="dynamo exporter (default): opset 18 is written instead"),
        Invalid(dedent("""
            import torch
            torch.onnx.export(model, x, "m.onnx", dynamo=False, opset_version=10)
            """), note="legacy exporter below Resize-11"),
        Invalid(dedent("""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F
            class Attn(nn.Module):
                def forward(self, x):
                    return F.scaled_dot_product_attention(x, x, x, is_causal=True)
            OPSET = 13
            torch.onnx.export(Attn().eval(), (x,), "attn.onnx", dynamo=False, opset_version=OPSET)
            """), note="legacy exporter without an opset-13 attention symbolic"),
        Invalid(dedent("""
            import tf2onnx
            model_proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=9)
            """), note="tf2onnx at opset 9"),
        Invalid(dedent("""
            import torch
            torch.onnx.export(model, (hidden,), "block.onnx", input_names=["h"], opset_version=13)
            """), note="dynamo default with opset 13"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None:
            return
        if export.kind == "tf2onnx":
            if export.entry.endswith(("from_keras", "from_function")):
                value = ctx.keyword(node, "opset")
                n = int_value(ctx, value.value) if value is not None else None
                if n is not None and n < LEGACY_MIN_OPSET:
                    self.report(
                        value,
                        f"tf2onnx opset={n} is too old: ONNX Resize coordinate modes arrive in opset 11, and tf2onnx "
                        "converts silently below it. Omit opset (15) or use >= 11, and verify outputs",
                    )
            return
        if export.kind != "onnx" or export.exporter is None:
            return
        value = ctx.keyword(node, "opset_version")
        if value is None:
            return
        n = int_value(ctx, value.value)
        if n is None:
            return
        if export.exporter == "dynamo":
            if n < DYNAMO_MIN_OPSET:
                self.report(
                    value,
                    f"opset_version={n} with the dynamo exporter (the default since torch 2.9): it builds opset 18 and "
                    "silently keeps 18 when the down-conversion fails, so a runtime pinned to the old opset rejects the "
                    "file. Omit opset_version (20) or use >= 18, and verify outputs",
                )
            return
        if n < LEGACY_MIN_OPSET:
            self.report(value, self.message.replace("opset_version=N", f"opset_version={n}", 1))
        elif n < SDPA_MIN_OPSET and self._uses_sdpa(export):
            self.report(
                value,
                f"opset_version={n} with the legacy exporter: aten::scaled_dot_product_attention has no symbolic below "
                "opset 14 (UnsupportedOperatorError). Use opset_version >= 14 (or the dynamo exporter), and verify outputs",
            )

    def _uses_sdpa(self, export: Any) -> bool:
        ctx = self.ctx
        module = exported_module(ctx, export)
        if module is None or module.cls is None:
            return False
        forward = find_method(ctx, module.cls, "forward")
        if forward is None:
            return False
        found = False

        class Finder(cst.CSTVisitor):
            def visit_Call(self, call: cst.Call) -> Optional[bool]:
                nonlocal found
                func = call.func
                if isinstance(func, cst.Attribute) and func.attr.value == "scaled_dot_product_attention":
                    found = True
                elif isinstance(func, cst.Name) and func.value == "scaled_dot_product_attention":
                    found = True
                return None

        forward.visit(Finder())
        return found
