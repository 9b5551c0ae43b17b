from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Set

import libcst as cst

from dllint.context import dotted_name, names_in
from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import QUANTIZE_DYNAMIC, _spellings

PRUNE = "torch.nn.utils.prune."
PRUNE_METHODS = frozenset(
    PRUNE + name
    for name in (
        "l1_unstructured", "random_unstructured", "ln_structured", "random_structured",
        "global_unstructured", "custom_from_mask", "identity",
    )
)
PRUNE_REMOVE = PRUNE + "remove"

#: Exports that bake the module, its hooks or its parameter names into an artefact.
EXPORTS = frozenset({
    "torch.onnx.export", "torch.onnx.dynamo_export", "torch.export.export", "torch.jit.trace",
    "torch.jit.script", "torch.jit.trace_module",
}) | _spellings("prepare", "quantize", "prepare_qat", "quantize_qat") | QUANTIZE_DYNAMIC | frozenset({
    "torch.ao.quantization.quantize_fx.prepare_fx", "torch.quantization.quantize_fx.prepare_fx",
})
SAVE = frozenset({"torch.save"})
#: Functions whose saves are final artefacts rather than resumable checkpoints.
FINAL_FUNCTION = re.compile(r"export|deploy|final|save_model", re.IGNORECASE)
BUILTIN_NAMES = frozenset({"list", "zip", "enumerate", "tuple", "filter", "map", "dict", "set", "sorted", "reversed"})


def _roots(ctx: Any, expr: Any, loop: Any = None, follow: bool = True) -> Set[str]:
    """Names of the objects whose modules an expression denotes (``model`` for ``model.fc``,
    ``[(model.conv1, "weight")]``, ``model.state_dict()``, a loop variable over
    ``model.modules()``); import names and builtins are left out."""
    if follow and isinstance(expr, cst.Name):
        value = ctx.assigned_value(expr)
        if value is not None and not isinstance(value, cst.Name):
            expr = value
    out: Set[str] = set()
    for name in names_in(expr):
        root = name.split(".")[0]
        if root in BUILTIN_NAMES or root == "self":
            if root == "self" and "." in name:
                out.add(".".join(name.split(".")[:2]))
            continue
        bindings = ctx.lookup(root)
        if bindings and bindings[-1].kind == "import":
            continue
        out.add(root)
    if loop is not None and isinstance(loop, cst.For):
        targets = {n.split(".")[0] for n in names_in(loop.target)}
        if out & targets:
            out = (out - targets) | _roots(ctx, loop.iter, None, follow=False)
    return out


class PruneReparamNotRemoved(Rule):
    """A pruned model exported, traced, scripted, quantised or saved as a final artefact before
    `prune.remove`.

    Finds `torch.nn.utils.prune.l1_unstructured / random_unstructured / ln_structured /
    random_structured / global_unstructured / custom_from_mask / identity` applied to modules of
    a model `m` (`m.fc`, `(m.conv1, "weight")` lists, a loop over `m.modules()`), or a helper of
    the file that prunes its parameter called with `m`, followed in the same function (or at
    module level) by `torch.onnx.export(m, ...)`, `torch.export.export(m, ...)`,
    `torch.jit.trace/script(m)`, eager or dynamic quantisation of `m`, or `torch.save(m)` /
    `torch.save(m.state_dict(), ...)` inside a function whose name says the artefact is final
    (`export`, `deploy`, `final`, `save_model`). Reported at the export or save call.

    Why it is a bug: pruning re-parametrises `weight` as `weight_orig * weight_mask` through a
    forward pre-hook. Until `prune.remove(module, name)` the state_dict holds `weight_orig` and
    `weight_mask` instead of `weight` (measured with torch 2.13: loading it into an unpruned
    model fails with missing key `weight` and unexpected keys `weight_orig`, `weight_mask`), the
    module carries the pruning hook into pickles and traced graphs, and exports are neither
    sparse nor named `weight` (ONNX folds the product into one dense initializer).

    How to fix: call `prune.remove(module, "weight")` for every pruned (module, name) before
    saving or exporting, which keeps the zeros and drops the re-parametrisation.

    Stays silent when `prune.remove` appears anywhere in the file for that model (or on a
    parameter or loop variable that may be it), for saves in other functions (checkpoints
    taken during training keep the masks on purpose so pruning can resume), and for models
    only pruned inside functions of other files.
    """

    code = "DL208"
    name = "prune-reparam-not-removed"
    family = "optimization"
    message = (
        "pruning re-parametrisation (weight_orig/weight_mask + hook) is still attached when saving/exporting; "
        "call prune.remove(module, name) first"
    )
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="pruning API misuse: pruning re-parametrisation left in place when exporting",
        links=(
            "https://github.com/ahendriksen/msd_pytorch/pull/3",
            "https://pytorch.org/docs/stable/generated/torch.nn.utils.prune.remove.html",
            "https://pytorch.org/tutorials/intermediate/pruning_tutorial.html",
        ),
    )
    triggers = ("prune",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            import torch.nn.utils.prune as prune
            prune.l1_unstructured(model.fc, "weight", amount=0.5)
            prune.remove(model.fc, "weight")
            torch.onnx.export(model, x, "m.onnx")
            """), "prune.remove before the export"),
        Valid(dedent("""
            import torch
            from torch.nn.utils import prune
            def train(model):
                prune.l1_unstructured(model.fc, "weight", amount=0.5)
                torch.save(model.state_dict(), "checkpoint.pt")
            """), "a training checkpoint keeps the masks on purpose"),
        Valid(dedent("""
            import torch
            import torch.nn.utils.prune as prune
            def export(model, x):
                for module in model.modules():
                    if isinstance(module, torch.nn.Linear):
                        prune.l1_unstructured(module, "weight", amount=0.3)
                for module in model.modules():
                    if isinstance(module, torch.nn.Linear):
                        prune.remove(module, "weight")
                torch.onnx.export(model, x, "m.onnx")
            """), "removed through a loop variable"),
        Valid(dedent("""
            import torch
            import torch.nn.utils.prune as prune
            prune.l1_unstructured(other.fc, "weight", amount=0.5)
            torch.jit.trace(model, x)
            """), "a different model was pruned"),
        Valid(dedent("""
            import torch
            import torch.nn.utils.prune as prune
            torch.onnx.export(model, x, "m.onnx")
            prune.l1_unstructured(model.fc, "weight", amount=0.5)
            """), "pruned after the export"),
        Valid(dedent("""
            import torch
            import torch.nn.utils.prune as prune

            def make_permanent(model):
                for m in model.modules():
                    if prune.is_pruned(m):
                        prune.remove(m, "weight")

            def export_model(model, x):
                prune.l1_unstructured(model.fc, "weight", amount=0.5)
                make_permanent(model)
                torch.onnx.export(model, x, "m.onnx")
            """), "a helper removes the pruning"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn.utils.prune as prune
                prune.l1_unstructured(model.fc, "weight", amount=0.5)
                torch.onnx.export(model, x, "pruned.onnx")
                """),
            note="ONNX export after pruning",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.nn.utils import prune
                def save_model(model, path):
                    params = [(model.conv1, "weight"), (model.fc, "weight")]
                    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.2)
                    torch.save(model.state_dict(), path)
                """),
            note="global pruning, saved in a save_model function",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                import torch.nn.utils.prune as prune
                def deploy(model, example):
                    for name, module in model.named_modules():
                        if isinstance(module, nn.Conv2d):
                            prune.ln_structured(module, "weight", amount=0.3, n=2, dim=0)
                    traced = torch.jit.trace(model, example)
                    return traced
                """),
            note="pruned in a loop over the model's modules, then traced",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn.utils.prune as prune

                def prune_model(net):
                    prune.random_unstructured(net.fc, name="weight", amount=0.4)

                prune_model(model)
                qmodel = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
                """),
            note="pruned by a helper of the file, then quantised",
        ),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        self._removed: Optional[Set[str]] = None

    def _removed_roots(self) -> Set[str]:
        """Objects some prune.remove call of the file may act on ("*" when it cannot be told)."""
        if self._removed is None:
            ctx = self.ctx
            removed: Set[str] = set()
            if "remove" in ctx.source:
                todo = [ctx.module]
                while todo:
                    current = todo.pop()
                    todo.extend(current.children)
                    if not isinstance(current, cst.Call):
                        continue
                    func = current.func
                    name = dotted_name(func) or ""
                    qualified = ctx.qualname(func) or ""
                    if qualified == PRUNE_REMOVE or name.endswith("prune.remove") or (
                        "prune" in name.lower() and name.split(".")[-1] == "remove"
                    ) or re.search(r"remove_?prun", name, re.IGNORECASE):
                        removed.add("*")
            self._removed = removed
        return self._removed

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        qualified = ctx.call_name(node)
        if qualified in EXPORTS:
            target = ctx.argument(node, 0, "model") or ctx.argument(node, 0, "mod") or ctx.argument(node, 0, "obj")
        elif qualified in SAVE:
            function = ctx.function()
            if function is None or not FINAL_FUNCTION.search(function.name.value):
                return
            target = ctx.argument(node, 0, "obj")
        else:
            return
        if target is None:
            return
        roots = _roots(ctx, target, follow=False)
        if not roots or self._removed_roots():
            return
        events = ctx.object_events()
        order = None
        for name_events in events.values():
            for event in name_events:
                if event.node is node:
                    order = event.order
        if order is None:
            return
        if self._pruned_before(events, roots, order):
            self.report(node)

    def _pruned_before(self, events: Dict[str, List[Any]], roots: Set[str], order: int) -> bool:
        ctx = self.ctx
        seen: Set[int] = set()
        for name_events in events.values():
            for event in name_events:
                if event.order >= order or id(event.node) in seen or not isinstance(event.node, cst.Call):
                    continue
                seen.add(id(event.node))
                call = event.node
                callee = ctx.qualname(call.func)
                if callee in PRUNE_METHODS:
                    first = ctx.argument(call, 0, "module") or ctx.argument(call, 0, "parameters")
                    if first is not None and _roots(ctx, first, event.loop) & roots:
                        return True
                elif isinstance(call.func, cst.Name) and callee is None:
                    if self._helper_prunes(call, roots):
                        return True
        return False

    def _helper_prunes(self, call: cst.Call, roots: Set[str]) -> bool:
        """``prune_model(model)``: a function of the file that prunes the parameter it receives."""
        from dllint.rules.optimization.dl204_eager_quant_missing_quantstub import file_index

        helper = file_index(self.ctx).functions.get(call.func.value)
        if helper is None:
            return False
        params = [p.name.value for p in helper.params.params]
        passed = set()
        for i, arg in enumerate(call.args):
            if arg.star:
                return False
            name = arg.keyword.value if arg.keyword is not None else (params[i] if i < len(params) else None)
            if name is not None and isinstance(arg.value, cst.Name) and arg.value.value in roots:
                passed.add(name)
        if not passed:
            return False
        for name_events in self.ctx.object_events(helper).values():
            for event in name_events:
                if not isinstance(event.node, cst.Call) or self.ctx.qualname(event.node.func) not in PRUNE_METHODS:
                    continue
                first = self.ctx.argument(event.node, 0, "module") or self.ctx.argument(event.node, 0, "parameters")
                if first is not None and _roots(self.ctx, first, event.loop, follow=False) & passed:
                    return True
        return False
