from __future__ import annotations

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import QTENSOR_DEPRECATED_SINCE, QUANTIZED_TENSOR_CREATION, version_at_least


class DeprecatedQuantizedTensorCreation(Rule):
    """torch.quantize_per_tensor / quantize_per_channel: deprecated quantized tensor constructors.

    Finds calls of `torch.quantize_per_tensor(...)` and `torch.quantize_per_channel(...)` (any
    import or alias of torch) when the target torch release (`target-versions`, else the project's
    pins) is 2.13 or newer, or unknown.

    Why: torch 2.13 emits a UserWarning on them: "torch.quantize_per_tensor,
    torch.quantize_per_channel and other quantized tensor creation functions that produce tensors
    with dtype torch.quint8, torch.qint8, and torch.qint32 are deprecated and will be removed in a
    future PyTorch release" (pytorch/pytorch#184982; the text is in the 2.13.0 wheel and absent
    from 2.12.0). They belong to the legacy quantised-tensor stack of the deprecated
    `torch.ao.quantization` entry points (DL214); code built on them breaks on the release that
    removes them.

    How to fix: move the quantised path to torchao (`quantize_(model, <Config>)`, the migration
    DL214 points to) instead of building quint8 / qint8 / qint32 tensors by hand. There is no
    one-to-one replacement, so no fix is offered.

    Limits: projects pinned to an older torch (or declaring one in `target-versions`) are left
    alone; tests of the legacy stack itself are reported too. Informational in spirit, like DL214.
    The tensor method `Tensor.dequantize()` and the `torch.quantize_per_tensor_dynamic` helper
    are not reported.
    """

    code = "DL215"
    name = "deprecated-quantized-tensor-creation"
    family = "optimization"
    message = (
        "torch.quantize_per_tensor/quantize_per_channel create quint8/qint8/qint32 tensors, which are "
        "deprecated and will be removed; migrate the quantised path to torchao"
    )
    evidence = Evidence(
        study="PyTorch deprecation of quantized tensor creation (torch 2.13 wheel, measured)",
        category="deprecated framework API: quint8/qint8/qint32 tensors",
        links=(
            "https://github.com/pytorch/pytorch/issues/184982",
            "https://github.com/pytorch/ao/issues/2259",
        ),
    )
    triggers = ("quantize_per_",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            q = torch.quantize_per_tensor_dynamic(x, torch.quint8, False)
            """), "not one of the two constructors"),
        Valid(dedent("""
            import torch
            y = x.dequantize()
            """), "dequantize"),
        Valid(dedent("""
            def quantize_per_tensor(x, scale, zero_point):
                return (x / scale).round() + zero_point
            q = quantize_per_tensor(x, 0.1, 0)
            """), "a local function of the same name"),
        Valid(dedent("""
            import torch
            from torchao.quantization import quantize_, Int8WeightOnlyConfig
            quantize_(model, Int8WeightOnlyConfig())
            """), "torchao"),
        Valid(dedent("""
            import numpy as np
            q = np.round(x / 0.1).astype(np.int8)
            """), "hand-made integer arrays"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                q = torch.quantize_per_tensor(x, scale=0.1, zero_point=0, dtype=torch.quint8)
                """),
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                import torch as T
                q = T.quantize_per_channel(w, scales, zero_points, axis=0, dtype=T.qint8)
                """),
            note="per-channel, aliased torch",
        ),
        Invalid(
            dedent("""
                from torch import quantize_per_tensor
                qs = [quantize_per_tensor(t, 0.05, 128, torch.quint8) for t in tensors]
                """),
            note="imported name",
        ),
        Invalid(
            dedent("""
                import torch

                class Fake(torch.nn.Module):
                    def forward(self, x):
                        return torch.quantize_per_tensor(x, self.scale, self.zp, torch.qint32).dequantize()
                """),
            note="inside a module",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) not in QUANTIZED_TENSOR_CREATION:
            return
        if not version_at_least(self.ctx.target_version("torch"), QTENSOR_DEPRECATED_SINCE):
            return
        self.report(
            node,
            "torch.quantize_per_tensor/quantize_per_channel create quint8/qint8/qint32 tensors, which are deprecated "
            "(since torch 2.13) and will be removed; migrate the quantised path to torchao",
        )
