from __future__ import annotations

from typing import Any, Optional, Set, Tuple

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import (
    CONVERT,
    EXPORT_CAPTURE,
    FUSE_MODULES,
    MODE_NEUTRAL_CALLEES,
    MOVE_TO_EVAL,
    PREPARE,
    PREPARE_FX,
    PREPARE_PT2E,
    PREPARE_QAT,
    QAT_ENTRY_POINTS,
    QUANTIZE,
    escapes,
    event_of,
    insert_before,
    later_uses,
    mode_at,
    flows,
    fuses_batch_norm,
    root_of,
    statement_of,
)

#: Post-training steps that expect an eval-mode model, and the word a message uses for them.
PTQ_STEPS = {
    **{name: "fuse_modules" for name in FUSE_MODULES},
    **{name: "prepare" for name in PREPARE},
    **{name: "prepare_fx" for name in PREPARE_FX},
    **{name: "quantize" for name in QUANTIZE},
    **{name: "convert" for name in CONVERT},
}


class PtqPrepareOrFuseNotInEval(Rule):
    """Post-training quantisation of a model left in train mode, or prepare_qat on an eval-mode model.

    Finds, inside one function (or a script's top level), `torch.ao.quantization.fuse_modules(m, ...)`,
    `prepare(m)`, `prepare_fx(m, ...)`, `quantize(m, ...)` or `convert(m)` (also under the legacy
    `torch.quantization` spelling and any alias) on a model known to be in train mode there: built
    in the function (`Net()`, a class of the file, `torchvision.models.*`, `torch.nn.*`,
    `timm.create_model`, or a `copy.deepcopy` of such a model) with no `eval()` / `train(False)`
    since, or whose last mode call is `m.train()`. Only the first such step on an object is
    reported; a `fuse_modules` call is only reported when it fuses a BatchNorm (a module name with
    `bn` / `norm` / `batch`, or a three-module group such as Conv-BN-ReLU `["0", "1", "2"]`):
    Linear+ReLU fusion does not care about the mode. For torchao's PT2E flow: the module captured with `torch.export.export(m, ...)`
    (or `export_for_training`, `capture_pre_autograd_graph`) and then given to `prepare_pt2e`,
    when `m` is in train mode at the capture. Conversely, `prepare_qat(m)` on a model whose last
    mode call is `m.eval()`.

    Why it breaks at run time: eager fusion folds BatchNorm into the convolution with the running
    statistics and asserts eval mode; torch 2.13 raises `AssertionError: Fusion only for eval!`
    for `fuse_modules` on a train-mode Conv+BN (older releases silently produced a training-mode
    fusion). A model prepared in train mode is calibrated with dropout active and BatchNorm
    updating its statistics on the calibration data, and a converted model left in train mode keeps
    that behaviour at inference. A PT2E capture records the train-mode BatchNorm and dropout in
    the graph, where a later `.eval()` no longer changes them. `prepare_qat` raises
    `AssertionError: prepare_qat only works on models in training mode` on an eval-mode model.

    How to fix: call `model.eval()` before fusing / preparing / capturing for post-training
    quantisation (the safe fix inserts it); for QAT call `model.train()` before `prepare_qat`
    (offered as a suggestion).

    Limits (precision first): a model whose mode cannot be known is left alone: a parameter or an
    attribute with no mode call in the function, a model that went through a helper (`train(m)`,
    `load(m)`) or that came from a loader (`torch.load`, `from_pretrained`), a mode call inside a
    branch or loop that does not also hold the step. A prepared or converted model switched to
    `eval()` before its first use is fine, and so is one that nothing runs after the step and that
    does not leave the scope (not returned, yielded or stored on another object): a shell prepared
    and converted only to receive a quantised checkpoint, or to be printed, never runs in train mode. Functions that run a QAT flow (`prepare_qat`,
    `fuse_modules_qat`, ...) are left to DL202 for `fuse_modules`. FX `prepare_qat_fx` has no mode
    check and is not covered.
    """

    code = "DL201"
    name = "ptq-prepare-or-fuse-not-in-eval"
    family = "optimization"
    message = (
        "eager PTQ fuse/prepare/convert must run in eval mode (call model.eval() first); "
        "prepare_qat/fuse_modules_qat require train mode"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="quantisation API misuse: train / eval mode of the quantisation life cycle",
        links=(
            "https://github.com/pytorch/tutorials/pull/2661",
            "https://github.com/pytorch/pytorch/issues/87679",
            "https://github.com/pytorch/pytorch/issues/34613",
            "https://pytorch.org/docs/stable/quantization.html",
        ),
    )
    triggers = ("fuse_modules", "prepare", "quantize", "convert")
    frameworks = ("torch", "torchao")

    VALID = (
        Valid(dedent("""
            import torch
            model = Net()
            model.eval()
            torch.ao.quantization.fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
            """), "eval() before fusion"),
        Valid(dedent("""
            import torch
            def quantize_model(model):
                torch.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
                return model
            """), "a parameter: the caller sets the mode"),
        Valid(dedent("""
            import torch
            model = Net()
            train(model, loader)
            torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
            """), "went through a helper: mode unknown"),
        Valid(dedent("""
            import torch
            model = Net()
            if args.ptq:
                model.eval()
            model.train()
            torch.ao.quantization.fuse_modules_qat(model, [["conv", "bn"]], inplace=True)
            torch.ao.quantization.prepare_qat(model, inplace=True)
            """), "a QAT flow in train mode"),
        Valid(dedent("""
            import torch
            model = Net()
            if debug:
                model.train()
            model.eval()
            model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            prepared = torch.ao.quantization.prepare(model)
            """), "the last mode call is eval()"),
        Valid(dedent("""
            import copy
            import torch
            model = Net()
            model.eval()
            fused = copy.deepcopy(model)
            fused = torch.quantization.fuse_modules(fused, [["conv1", "bn1"]])
            """), "a deep copy keeps the eval mode"),
        Valid(dedent("""
            import torch
            wrapper = QuantWrapper(fused)
            wrapper.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            torch.ao.quantization.prepare(wrapper, inplace=True)
            """), "QuantWrapper is not a class of this file: mode unknown"),
        Valid(dedent("""
            import torch
            model = Net()
            model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            prepared = torch.ao.quantization.prepare(model)
            prepared.eval()
            for x in loader:
                prepared(x)
            """), "switched to eval before calibration"),
        Valid(dedent("""
            import torch
            model = Net()
            model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            torch.ao.quantization.prepare(model, inplace=True)
            calibrate(model, loader)
            """), "calibrated by a helper, which may switch to eval"),
        Valid(dedent("""
            import torch
            model = Net()
            torch.ao.quantization.prepare_qat(model, inplace=True)
            """), "a fresh model is in train mode: right for QAT"),
        Valid(dedent("""
            import torch
            from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
            model = Net().eval()
            captured = torch.export.export(model, (x,)).module()
            prepared = prepare_pt2e(captured, quantizer)
            """), "PT2E capture of an eval-mode model"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                pass
            model = Net()
            torch.ao.quantization.fuse_modules(model, [["fc1", "relu1"]], inplace=True)
            model.eval()
            torch.ao.quantization.prepare(model, inplace=True)
            """), "Linear+ReLU fusion has no BatchNorm to fold; eval() before prepare"),
        Valid(dedent("""
            import torch
            shell = TinyNet()
            shell.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
            shell = torch.ao.quantization.convert(torch.ao.quantization.prepare(shell))
            shell.load_state_dict(torch.load("tiny_int8_state.pt"))
            print(shell)
            """), "an int8 shell only built to receive a checkpoint and inspected: nothing runs it in train mode"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                model = Net()
                model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
                torch.ao.quantization.fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
                torch.ao.quantization.prepare(model, inplace=True)
                """),
            fixed=dedent("""
                import torch
                model = Net()
                model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
                model.eval()
                torch.ao.quantization.fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
                torch.ao.quantization.prepare(model, inplace=True)
                """),
            note="the catalogue's Bad example; one finding at the first step",
        ),
        Invalid(
            dedent("""
                import torch
                import torchvision

                def main():
                    model = torchvision.models.resnet18(weights="DEFAULT")
                    model.train()
                    # fuse the stem
                    fused = torch.quantization.fuse_modules(model, [["conv1", "bn1", "relu"]])
                    return fused
                """),
            fixed=dedent("""
                import torch
                import torchvision

                def main():
                    model = torchvision.models.resnet18(weights="DEFAULT")
                    model.train()
                    # fuse the stem
                    model.eval()
                    fused = torch.quantization.fuse_modules(model, [["conv1", "bn1", "relu"]])
                    return fused
                """),
            note="legacy spelling, explicit train()",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.ao.quantization.quantize_fx import prepare_fx
                from torch.ao.quantization import get_default_qconfig_mapping
                model = Net()
                prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (x,))
                for batch in loader:
                    prepared(batch)
                """),
            fixed=dedent("""
                import torch
                from torch.ao.quantization.quantize_fx import prepare_fx
                from torch.ao.quantization import get_default_qconfig_mapping
                model = Net()
                model.eval()
                prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (x,))
                for batch in loader:
                    prepared(batch)
                """),
            note="FX: calibrated in train mode",
        ),
        Invalid(
            dedent("""
                import torch
                model = Net()
                model.eval()
                evaluate(model)
                model.train()
                model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
                model.eval()
                torch.ao.quantization.prepare_qat(model, inplace=True)
                """),
            fixed=dedent("""
                import torch
                model = Net()
                model.eval()
                evaluate(model)
                model.train()
                model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
                model.eval()
                model.train()
                torch.ao.quantization.prepare_qat(model, inplace=True)
                """),
            unsafe=True,
            note="prepare_qat on an eval-mode model (suggested fix)",
        ),
        Invalid(
            dedent("""
                import torch
                from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, convert_pt2e
                model = Net()
                exported = torch.export.export(model, (example,)).module()
                prepared = prepare_pt2e(exported, quantizer)
                """),
            fixed=dedent("""
                import torch
                from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, convert_pt2e
                model = Net()
                model.eval()
                exported = torch.export.export(model, (example,)).module()
                prepared = prepare_pt2e(exported, quantizer)
                """),
            note="torchao PT2E: captured in train mode",
        ),
        Invalid(
            dedent("""
                import torch

                def build_int8(loader):
                    net = TinyNet()
                    net.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
                    torch.ao.quantization.prepare(net, inplace=True)
                    return net
                """),
            fixed=dedent("""
                import torch

                def build_int8(loader):
                    net = TinyNet()
                    net.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
                    net.eval()
                    torch.ao.quantization.prepare(net, inplace=True)
                    return net
                """),
            note="prepared in train mode and handed back to a caller that will calibrate it",
        ),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        self._done: Set[Tuple[int, str]] = set()

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        callee = ctx.call_name(node)
        if callee is None:
            return
        if callee in PTQ_STEPS:
            self._ptq(node, callee)
        elif callee in PREPARE_QAT:
            self._qat(node)
        elif callee in PREPARE_PT2E:
            self._pt2e(node)

    # ------------------------------------------------------------------ eager / FX post-training steps

    def _ptq(self, node: cst.Call, callee: str) -> None:
        ctx = self.ctx
        model = ctx.argument(node, 0, "module" if callee in CONVERT else "model")
        name = dotted_name(model) if model is not None else None
        if name is None:
            return
        root = root_of(ctx)
        if (id(root), name) in self._done or _runs_qat(ctx, root):
            return
        event = event_of(ctx, root, name, node)
        if event is None or mode_at(ctx, root, name, event.order, node) != "train":
            return
        step = PTQ_STEPS[callee]
        if step == "fuse_modules" and not fuses_batch_norm(ctx, ctx.argument(node, 1, "modules_to_fuse")):
            return  # no BatchNorm to fold: the later prepare decides
        if step != "fuse_modules" and self._eval_before_use(root, node, name, event.order):
            return
        if step == "quantize" and _run_fn_sets_eval(ctx, node):
            return
        # one finding per object: the names it flows to (prepared = prepare(model)) are covered too
        self._done |= {(id(root), n) for n in flows(ctx, root, name, event.order)}
        self.report(
            node,
            f"{step}() runs on a model in train mode; eager PTQ fuse/prepare/convert must run in eval "
            f"mode (call {name}.eval() first)",
            self._insert(node, f"{name}.eval()", FixKind.SAFE, f"Call {name}.eval() before {step}()"),
        )

    def _eval_before_use(self, root: Any, node: cst.Call, name: str, order: int) -> bool:
        """Whether the prepared / converted model (the object, or the name the result is assigned
        to) is switched to eval mode before anything runs it."""
        names = {name}
        parent = self.ctx.parent()
        if isinstance(parent, cst.Assign) and parent.value is node:
            names |= {dotted_name(t.target) for t in parent.targets if dotted_name(t.target)}
        for _, event in later_uses(self.ctx, root, names, order):
            if event.node is node:
                continue
            if event.kind == "method" and event.name in ("eval", "train"):
                return event.name == "eval" or bool(event.node.args)
            if event.kind == "called" or (event.kind == "method" and event.name == "forward"):
                return False
            if event.kind == "argument" and event.name in RUNS_OR_KEEPS_MODE:
                return False  # traced / exported / pickled in train mode
            if event.kind == "argument" and event.name not in MODE_NEUTRAL_CALLEES:
                return True  # a helper (calibrate(model, loader)) may switch it to eval first
        # Nothing here runs it: the mode only matters when it leaves this scope still in train mode
        # (returned, yielded, stored on another object); a model that is only prepared / converted,
        # inspected or given a checkpoint here is never run in the wrong mode.
        return not escapes(self.ctx, root, names, order)

    # ------------------------------------------------------------------ QAT

    def _qat(self, node: cst.Call) -> None:
        ctx = self.ctx
        model = ctx.argument(node, 0, "model")
        name = dotted_name(model) if model is not None else None
        if name is None:
            return
        root = root_of(ctx)
        event = event_of(ctx, root, name, node)
        if event is None or mode_at(ctx, root, name, event.order, node) != "eval":
            return
        self.report(
            node,
            f"prepare_qat() runs on a model in eval mode and raises 'prepare_qat only works on models in training "
            f"mode'; call {name}.train() first",
            self._insert(node, f"{name}.train()", FixKind.UNSAFE, f"Call {name}.train() before prepare_qat()"),
        )

    # ------------------------------------------------------------------ torchao PT2E

    def _pt2e(self, node: cst.Call) -> None:
        ctx = self.ctx
        captured = ctx.argument(node, 0, "model")
        capture, holders = self._capture_of(captured)
        if capture is None:
            return
        source = ctx.argument(capture, 0, "mod")
        name = dotted_name(source) if source is not None else None
        if name is None:
            return
        root = root_of(ctx)
        if (id(root), name) in self._done:
            return
        # torchao's move_exported_model_to_eval(captured) repairs the capture
        for holder in holders:
            for _, event in later_uses(ctx, root, {holder}, -1):
                if event.kind == "argument" and event.name in MOVE_TO_EVAL:
                    return
        event = event_of(ctx, root, name, capture)
        if event is None or mode_at(ctx, root, name, event.order, capture) != "train":
            return
        self._done.add((id(root), name))
        self.report(
            capture,
            f"the module captured for prepare_pt2e is in train mode (BatchNorm / dropout are recorded in their "
            f"training behaviour); call {name}.eval() before the capture",
            self._insert(capture, f"{name}.eval()", FixKind.SAFE, f"Call {name}.eval() before the capture"),
        )

    def _capture_of(self, value: Any) -> Tuple[Optional[cst.Call], Set[str]]:
        """The torch.export capture call a prepare_pt2e argument comes from (through names and
        ``.module()``), and the names that hold it on the way."""
        ctx = self.ctx
        holders: Set[str] = set()
        for _ in range(4):
            if isinstance(value, cst.Name):
                holders.add(value.value)
                value = ctx.assigned_value(value)
                continue
            if (
                isinstance(value, cst.Call)
                and isinstance(value.func, cst.Attribute)
                and value.func.attr.value == "module"
                and not value.args
            ):
                value = value.func.value
                continue
            break
        if isinstance(value, cst.Call) and ctx.call_name(value) in EXPORT_CAPTURE:
            return value, holders
        return None, holders

    # ------------------------------------------------------------------ fix

    def _insert(self, node: Any, code: str, kind: FixKind, message: str) -> Optional[Fix]:
        statement = statement_of(self.ctx, node)
        if statement is None:
            return None
        return Fix(message, [insert_before(statement, code)], kind)


#: Calls that run the model in its current mode or keep that mode with it.
RUNS_OR_KEEPS_MODE = frozenset({"torch.jit.trace", "torch.jit.script", "torch.save", "torch.onnx.export",
                                "torch.export.export"})


def _runs_qat(ctx: Any, root: Any) -> bool:
    """Whether the function runs a QAT step (there fuse_modules in train mode is DL202's case)."""

    def compute(_ctx: Any) -> bool:
        for items in ctx.object_events(root).values():
            for event in items:
                if event.kind == "argument" and event.name in QAT_ENTRY_POINTS:
                    return True
        return False

    return ctx.memo(f"dl201:qat:{id(root)}", compute)


def _run_fn_sets_eval(ctx: Any, node: cst.Call) -> bool:
    """``quantize(model, run_fn, ...)``: whether run_fn is unknown or may switch the model to eval."""
    run_fn = ctx.argument(node, 1, "run_fn")
    if not isinstance(run_fn, cst.Name):
        return True
    bindings = ctx.lookup(run_fn.value)
    if not bindings or len(bindings) != 1 or not isinstance(bindings[0].value, cst.FunctionDef):
        return True
    return "eval" in cst.Module(body=[bindings[0].value]).code or "train(False)" in cst.Module(
        body=[bindings[0].value]
    ).code
