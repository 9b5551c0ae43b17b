from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import (
    FUSE_MODULES,
    FUSE_MODULES_QAT,
    PREPARE,
    PREPARE_QAT,
    QUANTIZE,
    QUANTIZE_QAT,
    event_of,
    flows,
    fuses_batch_norm,
    later_uses,
    root_of,
)

QAT_PREPARE = PREPARE_QAT | QUANTIZE_QAT
PTQ_PREPARE = PREPARE | QUANTIZE


class FuseModulesVariantMismatch(Rule):
    """fuse_modules on a model headed for prepare_qat, or fuse_modules_qat on one headed for prepare.

    Finds `torch.ao.quantization.fuse_modules(m, ...)` (also the legacy `torch.quantization`
    spelling, under any alias) when `m`, or a name that later receives it (`fused = fuse_modules(m)`,
    `wrapped = Wrapper(m)`), is passed to `prepare_qat` / `quantize_qat` later in the same function
    or script; and `fuse_modules_qat(m, ...)` when `m` (or such a name) is passed to `prepare` /
    `quantize` and never to a QAT entry point.

    Why it breaks at run time: `fuse_modules` is the post-training variant: it folds BatchNorm into
    the convolution with the running statistics and, in torch 2.13, raises `AssertionError: Fusion
    only for eval!` on the train-mode model a QAT flow uses (before torch 1.11 the same call
    silently built QAT modules in train mode; code written then breaks now). `fuse_modules_qat`
    keeps BatchNorm as a trainable part of a `ConvBn2d`, which a post-training flow then carries
    into `prepare` / `convert` instead of the folded convolution.

    How to fix: use `fuse_modules_qat` for QAT and `fuse_modules` for post-training quantisation:
    the same signature, so the fix renames the call (legacy `torch.quantization` has no
    `fuse_modules_qat`: the fix writes the `torch.ao.quantization` spelling through an import the
    file already has, and offers nothing when there is none).

    Only fusions that involve BatchNorm are reported (a module name with `bn` / `norm` / `batch`,
    or a three-module group such as `["0", "1", "2"]`, i.e. Conv-BN-ReLU): Linear+ReLU and
    Conv+ReLU fuse the same way in both variants.

    Limits: the fused object has to reach the other entry point by name inside one function;
    fusion done in a helper (`model.fuse_model()`) or a model fused once and used for both flows
    in different functions is not followed.
    """

    code = "DL202"
    name = "fuse-modules-variant-mismatch"
    family = "optimization"
    message = "use fuse_modules_qat for QAT flows (and fuse_modules for PTQ)"
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="quantisation API misuse: the PTQ / QAT variant of module fusion",
        links=(
            "https://github.com/pytorch/pytorch/issues/87679",
            "https://github.com/pytorch/tutorials/pull/2661",
            "https://pytorch.org/docs/stable/generated/torch.ao.quantization.fuse_modules.fuse_modules.html",
        ),
    )
    triggers = ("fuse_modules",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            model.train()
            torch.ao.quantization.fuse_modules_qat(model, [["conv", "bn"]], inplace=True)
            torch.ao.quantization.prepare_qat(model, inplace=True)
            """), "the catalogue's Good example"),
        Valid(dedent("""
            import torch
            model.eval()
            torch.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
            torch.quantization.prepare(model, inplace=True)
            """), "PTQ with the PTQ variant"),
        Valid(dedent("""
            import torch
            fused = torch.ao.quantization.fuse_modules(model.eval(), [["conv", "bn"]])
            qat_model = build_qat(other)
            torch.ao.quantization.prepare_qat(qat_model, inplace=True)
            """), "a different object reaches prepare_qat"),
        Valid(dedent("""
            import torch
            def fuse(model):
                torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)

            def qat(model):
                torch.ao.quantization.prepare_qat(model, inplace=True)
            """), "different functions: not followed"),
        Valid(dedent("""
            import torch
            torch.ao.quantization.fuse_modules_qat(model, [["conv", "bn"]], inplace=True)
            torch.ao.quantization.prepare(model, inplace=True)
            torch.ao.quantization.prepare_qat(model, inplace=True)
            """), "the QAT-fused model also reaches prepare_qat: a QAT flow"),
        Valid(dedent("""
            import torch
            torch.ao.quantization.prepare_qat(model, inplace=True)
            torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
            """), "fusion after prepare_qat is not this pattern"),
        Valid(dedent("""
            import torch
            model = Net()
            model = torch.quantization.fuse_modules(model, [["fc1", "relu1"], ["fc2", "relu2"]])
            model = torch.quantization.prepare_qat(model)
            """), "Linear+ReLU fuses the same way in both variants"),
        Valid(dedent("""
            import torch
            torch.ao.quantization.fuse_modules(model, build_fusion_list(model), inplace=True)
            torch.ao.quantization.prepare_qat(model, inplace=True)
            """), "module list built by code: unknown"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                model.train()
                torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
                torch.ao.quantization.prepare_qat(model, inplace=True)
                """),
            fixed=dedent("""
                import torch
                model.train()
                torch.ao.quantization.fuse_modules_qat(model, [["conv", "bn"]], inplace=True)
                torch.ao.quantization.prepare_qat(model, inplace=True)
                """),
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                import copy
                import torch

                def main(model):
                    fused_model = copy.deepcopy(model)
                    fused_model.train()
                    fused_model = torch.quantization.fuse_modules(fused_model, [["conv1", "bn1", "relu"]], inplace=True)
                    quantized_model = QuantizedResNet18(model_fp32=fused_model)
                    quantized_model.qconfig = torch.quantization.get_default_qconfig("fbgemm")
                    torch.quantization.prepare_qat(quantized_model, inplace=True)
                """),
            fixed=dedent("""
                import copy
                import torch

                def main(model):
                    fused_model = copy.deepcopy(model)
                    fused_model.train()
                    fused_model = torch.ao.quantization.fuse_modules_qat(fused_model, [["conv1", "bn1", "relu"]], inplace=True)
                    quantized_model = QuantizedResNet18(model_fp32=fused_model)
                    quantized_model.qconfig = torch.quantization.get_default_qconfig("fbgemm")
                    torch.quantization.prepare_qat(quantized_model, inplace=True)
                """),
            note="legacy spelling, through a wrapper; the fix writes the torch.ao spelling",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.ao.quantization import fuse_modules, quantize_qat
                fuse_modules(net, [["0", "1", "2"]], inplace=True)
                qnet = quantize_qat(net, train_loop, [loader])
                """),
            fixed=dedent("""
                import torch
                from torch.ao.quantization import fuse_modules, quantize_qat
                torch.ao.quantization.fuse_modules_qat(net, [["0", "1", "2"]], inplace=True)
                qnet = quantize_qat(net, train_loop, [loader])
                """),
            note="imported name; quantize_qat",
        ),
        Invalid(
            dedent("""
                import torch.ao.quantization as tq
                model.eval()
                fused = tq.fuse_modules_qat(model, [["conv", "bn", "relu"]])
                fused.qconfig = tq.get_default_qconfig("x86")
                prepared = tq.prepare(fused)
                """),
            fixed=dedent("""
                import torch.ao.quantization as tq
                model.eval()
                fused = tq.fuse_modules(model, [["conv", "bn", "relu"]])
                fused.qconfig = tq.get_default_qconfig("x86")
                prepared = tq.prepare(fused)
                """),
            note="the QAT variant in a post-training flow",
        ),
        Invalid(
            dedent("""
                from torch.quantization import fuse_modules, prepare_qat
                fuse_modules(model, [["conv", "bn"]], inplace=True)
                prepare_qat(model, inplace=True)
                """),
            note="no import reaches torch.ao.quantization: reported without a fix",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        callee = ctx.call_name(node)
        if callee in FUSE_MODULES:
            wanted, other, right = QAT_PREPARE, PTQ_PREPARE, "fuse_modules_qat"
        elif callee in FUSE_MODULES_QAT:
            wanted, other, right = PTQ_PREPARE, QAT_PREPARE, "fuse_modules"
        else:
            return
        model = ctx.argument(node, 0, "model")
        name = dotted_name(model) if model is not None else None
        if name is None or not fuses_batch_norm(ctx, ctx.argument(node, 1, "modules_to_fuse")):
            return
        root = root_of(ctx)
        event = event_of(ctx, root, name, node)
        if event is None:
            return
        names = flows(ctx, root, name, event.order)
        reached = set()
        for _, later in later_uses(ctx, root, names, event.order):
            if later.kind == "argument" and later.node is not node:
                if later.name in wanted:
                    reached.add("wanted")
                elif later.name in other:
                    reached.add("other")
        if reached != {"wanted"}:
            return
        flow = "QAT (prepare_qat)" if right == "fuse_modules_qat" else "post-training (prepare)"
        self.report(
            node,
            f"this model goes on to a {flow} flow: use {right} there; use fuse_modules_qat for QAT flows "
            "(and fuse_modules for PTQ)",
            self._rename(node, right),
        )

    def _rename(self, node: cst.Call, right: str) -> Optional[Fix]:
        ctx = self.ctx
        func = node.func
        replacement: Any = None
        if isinstance(func, cst.Attribute) and ctx.qualname(func.value) in (
            "torch.ao.quantization",
            "torch.ao.quantization.fuse_modules",
        ):
            replacement = func.with_changes(attr=cst.Name(right))
        else:
            text = ctx.reference_to(f"torch.ao.quantization.{right}")
            if text is None:
                return None
            replacement = cst.parse_expression(text)
        return Fix(f"Call {right}", [(func, replacement)], FixKind.SAFE)
