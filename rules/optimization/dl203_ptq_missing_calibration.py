from __future__ import annotations

import re
from typing import Any, List, Optional, Set

import libcst as cst

from dllint.context import children, dotted_name, names_in
from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import (
    CONVERT,
    CONVERT_FX,
    CONVERT_PT2E,
    PREPARE,
    PREPARE_FX,
    PREPARE_PT2E,
    escapes,
    flows,
    forward_runs_no_submodule,
    is_test_module,
    root_of,
)
from dllint.rules.optimization.dl204_eager_quant_missing_quantstub import resolve_model

#: The convert step of each static post-training flow -> the prepare steps it pairs with.
PAIRS = {
    **{name: PREPARE for name in CONVERT},
    **{name: PREPARE_FX for name in CONVERT_FX},
    **{name: PREPARE_PT2E for name in CONVERT_PT2E},
}
ALL_PREPARE = PREPARE | PREPARE_FX | PREPARE_PT2E

#: Methods of the prepared model that cannot feed its observers.
INERT_METHODS = frozenset({"eval", "train", "to", "cpu", "cuda", "float", "half", "double", "named_modules",
                           "modules", "children", "named_children", "parameters", "named_parameters",
                           "state_dict", "print_readable", "graph"})

#: Calls receiving the prepared model that cannot run it.
INERT_CALLEES = frozenset({"print", "len", "str", "repr", "isinstance", "type", "id", "logging.info",
                           "logger.info", "log.info", "copy.deepcopy"})

#: Callees that only measure or show a converted model (size comparisons), never run it.
MEASURING = re.compile(r"(^|_)(size|param|params|parameters|summary|print|pprint|nbytes|bytes|footprint)($|_)"
                       r"|^(print|len|str|repr|type|isinstance|id)$", re.IGNORECASE)

#: Methods of a converted model that only inspect it.
INSPECTING = frozenset({"parameters", "named_parameters", "state_dict", "modules", "named_modules", "children",
                        "named_children", "buffers", "named_buffers", "extra_repr"})

#: Words in a qconfig that mark a flow needing no calibration (dynamic / weight-only quantisation).
NO_CALIBRATION_MARKERS = ("dynamic", "weight_only", "float16", "fp16", "placeholder", "memoryless",
                          "PlaceholderObserver", "NoopObserver")


class PtqMissingCalibration(Rule):
    """convert() right after prepare(): no calibration data ran through the observers.

    Finds `torch.ao.quantization.convert(m)` on a model prepared with `prepare(m)` in the same
    function or script (in place, `inplace=True`, or through the name the prepared model is
    assigned to, or nested: `convert(prepare(m))`), when nothing between the two steps can have
    run the prepared model: no call of it (`m(x)`, `m.forward(x)`), no call that receives it
    (`calibrate(m, loader)`, `Evaluator(m)`, `evaluate(model=m)`), no assignment that stores it
    (`trainer.model = m`), no loop, and no nested function or lambda that mentions it. The same
    for FX (`prepare_fx` -> `convert_fx`, also the legacy `torch.quantization.quantize_fx`
    spelling) and torchao's PT2E flow (`prepare_pt2e` -> `convert_pt2e`).

    Why it is a bug: the observers `prepare` inserts have seen no data, so `convert` computes the
    quantisation parameters from empty statistics. Measured in torch 2.13: it only warns ("must
    run observer before calling calculate_qparams. Returning default scale and zero point"), uses
    scale 1.0 and zero point 0, and the converted model runs and returns wrong numbers (a tiny
    conv net: max error 1.58 against 0.036 after a few calibration batches).

    How to fix: run representative batches through the prepared model between the two steps,
    `with torch.inference_mode(): for x, _ in calib_loader: prepared(x)`.

    Not reported: QAT flows (`prepare_qat`, calibrated by training), dynamic and weight-only
    quantisation set up through prepare/convert (a qconfig mentioning `dynamic`, `weight_only`,
    `float16`, placeholder observers), `quantize(model, run_fn, ...)` (it runs `run_fn` itself),
    a prepared model that reaches convert through a helper function (not followed), eager flows in
    a file that never mentions a qconfig (prepare then inserts no observer and convert changes
    nothing), a model class of the file whose forward runs no submodule, a converted model that
    is afterwards only measured or shown (`count_params(q)`, `print_size_of_model(q)`, `print(q)`:
    never run, returned, stored or saved), and test files (tests/ paths, test_*.py, modules with
    TestCase classes or test_* functions), which build uncalibrated int8 models on purpose.
    """

    code = "DL203"
    name = "ptq-missing-calibration"
    family = "optimization"
    message = (
        "no calibration data is run through the prepared model before convert(); observers are empty "
        "and quantisation parameters will be wrong"
    )
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="quantisation API misuse: static post-training quantisation without calibration (silent)",
        links=(
            "https://github.com/pytorch/pytorch/issues/29989",
            "https://github.com/pytorch/pytorch/issues/133087",
            "https://pytorch.org/tutorials/advanced/static_quantization_tutorial.html",
        ),
    )
    triggers = ("convert",)
    frameworks = ("torch", "torchao")

    VALID = (
        Valid(dedent("""
            import torch
            model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            prepared = torch.ao.quantization.prepare(model)
            with torch.inference_mode():
                for x, _ in calib_loader:
                    prepared(x)
            qmodel = torch.ao.quantization.convert(prepared)
            """), "the catalogue's Good example"),
        Valid(dedent("""
            import torch
            torch.quantization.prepare(model, inplace=True)
            calibrate(model, loader)
            torch.quantization.convert(model, inplace=True)
            """), "calibrated in a helper"),
        Valid(dedent("""
            import torch
            model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
            torch.ao.quantization.prepare_qat(model, inplace=True)
            torch.ao.quantization.convert(model.eval(), inplace=True)
            """), "QAT: calibrated by training"),
        Valid(dedent("""
            import torch
            model.qconfig = torch.ao.quantization.default_dynamic_qconfig
            torch.ao.quantization.prepare(model, inplace=True)
            torch.ao.quantization.convert(model, inplace=True)
            """), "dynamic quantisation needs no calibration"),
        Valid(dedent("""
            import torch
            from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
            prepared = prepare_fx(model, qconfig_mapping, example_inputs)
            prepared(*example_inputs)
            quantized = convert_fx(prepared)
            """), "FX, one calibration call"),
        Valid(dedent("""
            import torch
            prepared = torch.ao.quantization.prepare(model)
            trainer.model = prepared
            trainer.run_calibration()
            qmodel = torch.ao.quantization.convert(prepared)
            """), "stored where another object can run it"),
        Valid(dedent("""
            import torch
            prepared = torch.ao.quantization.prepare(model)
            qmodel = torch.ao.quantization.convert(other)
            """), "convert of another object"),
        Valid(dedent("""
            import torch
            qmodel = torch.ao.quantization.quantize(model, calibrate, [loader])
            """), "quantize() runs the calibration function itself"),
        Valid(dedent("""
            import torch
            from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
            prepared = prepare_fx(model.eval(), {"": qconfig})
            quantized = convert_fx(prepared)
            quantized.load_state_dict(torch.load("int8.pth"))
            """), "a quantised checkpoint supplies the scales"),
        Valid(dedent("""
            import torch
            from torch.ao.quantization import quantize_fx

            def int8_size(model, qconfig_mapping, example):
                staged = quantize_fx.prepare_fx(model.eval(), qconfig_mapping, example)
                small = quantize_fx.convert_fx(staged)
                print("parameters:", count_params(small), "bytes:", size_on_disk(small))
            """), "converted only to compare sizes; never run, returned or saved"),
        Valid(dedent("""
            import torch
            import unittest

            class TestInt8Lowering(unittest.TestCase):
                def test_lowered_graph_keeps_qconv(self):
                    net = QuantWrapper(torch.nn.Conv2d(2, 2, 1))
                    net.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
                    torch.ao.quantization.prepare(net, inplace=True)
                    torch.ao.quantization.convert(net, inplace=True)
                    self.assertIn("quantized", str(torch.jit.trace(net, x).graph))
            """), "a test module: operator / lowering tests build uncalibrated int8 models on purpose"),
        Valid(dedent("""
            import torch

            def to_int8(net):
                staged = torch.ao.quantization.prepare(net)
                return torch.ao.quantization.convert(staged)
            """), "eager flow in a file that never sets a qconfig: prepare observes nothing, the model stays float"),
        Valid(dedent("""
            import torch
            import torch.nn as nn

            class Oscillator(nn.Module):
                def __init__(self, k):
                    super().__init__()
                    self.k = torch.tensor(k)

                def forward(self, t):
                    return torch.cos(self.k * t)

            osc = Oscillator(0.3).eval()
            osc.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            torch.ao.quantization.prepare(osc, inplace=True)
            torch.ao.quantization.convert(osc, inplace=True)
            print(osc(t))
            """), "forward runs no submodule: nothing has observers, nothing is converted"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                from torch.ao.quantization import get_default_qconfig, prepare, convert
                model.qconfig = get_default_qconfig("x86")
                prepared = prepare(model)
                qmodel = convert(prepared)
                """),
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                import torch
                myModel.eval()
                myModel.qconfig = torch.quantization.default_qconfig
                torch.quantization.prepare(myModel, inplace=True)
                torch.quantization.convert(myModel, inplace=True)
                """),
            note="legacy spelling, in place (pytorch/pytorch#29989)",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx

                def quantize(model, example_inputs):
                    model.eval()
                    prepared = prepare_fx(model, {"": torch.ao.quantization.default_qconfig}, example_inputs)
                    prepared.eval()
                    return convert_fx(prepared)
                """),
            note="FX",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.ao.quantization as tq
                model.qconfig = tq.get_default_qconfig("x86")
                qmodel = tq.convert(tq.prepare(model.eval()))
                """),
            note="nested",
        ),
        Invalid(
            dedent("""
                import torch
                from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, convert_pt2e
                m = torch.export.export(model.eval(), (x,)).module()
                m = prepare_pt2e(m, quantizer)
                m = convert_pt2e(m)
                """),
            note="torchao PT2E",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        callee = ctx.call_name(node)
        pairs = PAIRS.get(callee or "")
        if pairs is None:
            return
        # Test files build uncalibrated quantised models on purpose (operator, export and
        # serialisation tests compare the converted model with itself, not with the float one).
        if ctx.memo("dl203:test-module", is_test_module):
            return
        arg = ctx.argument(node, 0, "module" if callee in CONVERT else "model")
        if arg is None:
            return
        if isinstance(arg, cst.Call) and ctx.call_name(arg) in pairs:
            if not self._no_calibration_flow(arg) and not (ctx.call_name(arg) in PREPARE and "qconfig" not in ctx.source):
                self.report(node)
            return
        name = dotted_name(arg)
        if name is None:
            return
        root = root_of(ctx)
        events = ctx.object_events(root)
        convert_event = next((e for e in events.get(name, ()) if e.node is node and e.kind == "argument"), None)
        if convert_event is None:
            return
        prepare_event = self._last_prepare(events.get(name, ()), convert_event.order, pairs)
        if prepare_event is None:
            return
        prepare_call = prepare_event.node if isinstance(prepare_event.node, cst.Call) else _call_in(
            prepare_event.value, pairs, ctx
        )
        if prepare_call is None or self._no_calibration_flow(prepare_call):
            return
        if self._calibrated(root, events, name, prepare_event, convert_event):
            return
        if self._loads_quantized_weights(root, name, convert_event):
            return
        if self._nothing_to_observe(prepare_call, name, events, prepare_event.order):
            return
        if self._only_measured(root, node, name, convert_event):
            return
        self.report(node)

    def _nothing_to_observe(self, prepare_call: cst.Call, name: str, events: Any, order: int) -> bool:
        """Eager flows only: no qconfig anywhere in the file (prepare inserts no observer, convert
        quantises nothing: the model stays float and right), or a model class of this file whose
        forward runs no submodule (nothing converted ever runs)."""
        ctx = self.ctx
        if ctx.call_name(prepare_call) not in PREPARE:
            return False
        if "qconfig" not in ctx.source:
            return True
        model = ctx.argument(prepare_call, 0, "model")
        if model is None:
            return False
        result = resolve_model(ctx, model, events, order, function=ctx.function())
        return result is not None and result[0] == "class" and forward_runs_no_submodule(result[1])

    def _only_measured(self, root: Any, node: cst.Call, name: str, convert_event: Any) -> bool:
        """The converted model is only measured or shown afterwards (``size_of(q)``,
        ``count_parameters(q)``, ``print(q)``): nothing runs it, it is not returned, stored or
        saved, so its scales never produce a number. At least one such use is required."""
        ctx = self.ctx
        names = {name}
        parent = ctx.parent()
        if isinstance(parent, cst.Assign) and parent.value is node:
            names |= {dotted_name(t.target) for t in parent.targets if dotted_name(t.target)}
        for item in list(names):
            names |= flows(ctx, root, item, convert_event.order)
        uses = 0
        for key in names:
            for event in ctx.object_events(root).get(key, ()):
                if event.order <= convert_event.order or event.node is node:
                    continue
                if event.kind == "method" and event.name in INSPECTING | INERT_METHODS - {"to", "cpu", "cuda"}:
                    uses += 1
                    continue
                if event.kind == "argument" and MEASURING.search((event.name or "").rsplit(".", 1)[-1]):
                    uses += 1
                    continue
                if event.kind == "assign":
                    continue
                return False
        return uses > 0 and not escapes(ctx, root, names, convert_event.order)

    def _loads_quantized_weights(self, root: Any, name: str, convert_event: Any) -> bool:
        """Whether the converted model then gets a quantised checkpoint (``load_state_dict``, or a
        helper whose name says it loads): its scales and zero points come from there, and
        prepare -> convert only built the module structure."""
        ctx = self.ctx
        names = {name}
        for key, items in ctx.object_events(root).items():
            for event in items:
                if event.kind == "assign" and event.node is not None and event.order > convert_event.order:
                    value = event.value
                    if value is convert_event.node or (value is not None and name in names_in(value)):
                        names.add(key)
        for key in names:
            for event in ctx.object_events(root).get(key, ()):
                if event.order <= convert_event.order and event.node is not convert_event.node:
                    continue
                if event.kind == "method" and event.name in ("load_state_dict", "load"):
                    return True
                if event.kind == "argument" and "load" in (event.name or "").rsplit(".", 1)[-1].lower():
                    return True
        return False

    def _last_prepare(self, items: Any, before: int, pairs: Any) -> Optional[Any]:
        """The event that made ``name`` the prepared model: ``prepare(name, inplace=True)`` or
        ``name = prepare(...)``, the last fact about it before convert; None when it was
        rebound otherwise or prepared without inplace and without assignment."""
        ctx = self.ctx
        for event in sorted((e for e in items if e.order < before), key=lambda e: e.order, reverse=True):
            if event.kind == "assign":
                return event if _call_in(event.value, pairs, ctx) is not None else None
            if event.kind == "argument" and event.name in pairs:
                inplace = ctx.keyword(event.node, "inplace")
                if inplace is not None and isinstance(inplace.value, cst.Name) and inplace.value.value == "True":
                    return event
                if event.name in PREPARE and _positional_inplace(event.node):
                    return event
                continue  # prepare(m) without inplace: the assignment that follows decides
        return None

    def _calibrated(self, root: Any, events: Any, name: str, prepare_event: Any, convert_event: Any) -> bool:
        """Whether anything between prepare and convert may have run the prepared model."""
        low, high = prepare_event.order, convert_event.order
        for key, items in events.items():
            related = key == name or key.startswith(name + ".") or name.startswith(key + ".")
            for event in items:
                if not low < event.order < high:
                    continue
                if event.loop is not None and event.loop is not convert_event.loop and event.loop is not prepare_event.loop:
                    return True  # a loop between the two steps
                if not related:
                    if event.kind in ("assign", "setattr") and event.value is not None and name in names_in(event.value):
                        return True  # stored: trainer.model = prepared
                    continue
                if event.kind == "called":
                    return True
                if event.kind == "method" and event.name not in INERT_METHODS:
                    return True
                if event.kind == "argument" and event.name not in INERT_CALLEES and event.node is not prepare_event.node:
                    return True
        return _mentioned_in_nested(self.ctx, root, name.split(".")[0])

    def _no_calibration_flow(self, prepare_call: cst.Call) -> bool:
        """Dynamic / weight-only flows, recognised from the qconfig the function sets or passes."""
        ctx = self.ctx
        texts: List[str] = []
        for arg in prepare_call.args[1:]:
            value = arg.value
            resolved = ctx.assigned_value(value) if isinstance(value, cst.Name) else None
            texts.append(_code(resolved if resolved is not None else value))
        for items in ctx.object_events(root_of(ctx)).values():
            for event in items:
                if event.kind == "setattr" and event.name == "qconfig" and event.value is not None:
                    value = event.value
                    resolved = ctx.assigned_value(value) if isinstance(value, cst.Name) else None
                    texts.append(_code(resolved if resolved is not None else value))
                    texts.append(_code(value))
        text = " ".join(texts)
        return any(marker in text for marker in NO_CALIBRATION_MARKERS)


def _call_in(value: Any, pairs: Any, ctx: Any) -> Optional[cst.Call]:
    """The prepare call an assigned value is (``prepare(m)``, ``prepare(m).to(device)``)."""
    while isinstance(value, cst.Call):
        if ctx.call_name(value) in pairs:
            return value
        if isinstance(value.func, cst.Attribute) and value.func.attr.value in ("to", "cpu", "eval"):
            value = value.func.value
            continue
        return None
    return None


def _positional_inplace(call: cst.Call) -> bool:
    """``prepare(model, True)``: eager prepare's second positional parameter is ``inplace``."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return len(positional) > 1 and isinstance(positional[1].value, cst.Name) and positional[1].value.value == "True"


def _mentioned_in_nested(ctx: Any, root: Any, name: str) -> bool:
    """Whether a lambda or nested function inside ``root`` mentions ``name`` (it may run it)."""

    def compute(_ctx: Any) -> Set[str]:
        found: Set[str] = set()
        body = root.body if isinstance(root, (cst.FunctionDef, cst.Module)) else root
        todo = list(body) if isinstance(body, (list, tuple)) else [body]
        nested = []
        while todo:
            current = todo.pop()
            if isinstance(current, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
                nested.append(current)
                continue
            if isinstance(current, cst.CSTNode):
                todo.extend(children(current))
        for item in nested:
            mentioned = {n.split(".")[0] for n in names_in(item)}
            if isinstance(item, (cst.FunctionDef, cst.Lambda)):
                params = item.params
                mentioned -= {
                    p.name.value
                    for p in list(params.posonly_params) + list(params.params) + list(params.kwonly_params)
                }
            found |= mentioned
        return found

    return name in ctx.memo(f"dl203:nested:{id(root)}", compute)


def _code(node: Any) -> str:
    try:
        return cst.Module(body=[]).code_for_node(node)
    except Exception:
        return ""
