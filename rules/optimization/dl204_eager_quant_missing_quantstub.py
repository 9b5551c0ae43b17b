from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import _spellings, forward_runs_no_submodule

#: Eager-mode entry points that insert observers / fake quantisers module by module and whose
#: converted model expects quantised tensors at every quantised module's input.
EAGER_QUANT = _spellings("prepare", "quantize", "prepare_qat", "quantize_qat")

#: Methods that return the module itself (``Net().eval()``, ``model.to(device)``).
SELF_RETURNING = frozenset({"eval", "train", "to", "cpu", "cuda", "float", "double", "requires_grad_"})

#: Base classes that add no quantisation stubs.
PLAIN_BASES = frozenset({
    "torch.nn.Module", "torch.nn.modules.Module", "torch.nn.modules.module.Module",
    "torch.nn.Sequential", "torch.nn.modules.Sequential", "torch.nn.modules.container.Sequential",
})

#: Where each entry point takes ``inplace`` by position.
INPLACE_POSITION = {"prepare": 1, "prepare_qat": 2, "quantize": 4, "quantize_qat": 3}

STUB_NAMES = frozenset({"QuantStub", "QuantWrapper"})
FLOAT_FUNCTIONAL = frozenset({"FloatFunctional", "QFunctional"})

#: Flows that insert the quant / dequant steps themselves (the class needs no stubs there).
GRAPH_MODE_WORDS = ("prepare_fx", "convert_fx", "quantize_fx", "prepare_pt2e", "convert_pt2e", "prepare_qat_fx")

Result = Optional[Tuple[Any, ...]]


def last_name(node: Any) -> Optional[str]:
    """``QuantStub`` for ``torch.ao.quantization.QuantStub`` / ``QuantStub``."""
    if isinstance(node, cst.Attribute):
        return node.attr.value
    if isinstance(node, cst.Name):
        return node.value
    return None


def _walk(node: Any, skip_defs: bool = False) -> List[Any]:
    """Every node under ``node`` (pre-order); nested functions and classes skipped when asked."""
    out = []
    todo = [node]
    while todo:
        current = todo.pop()
        out.append(current)
        for child in reversed(list(current.children)):
            if skip_defs and isinstance(child, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            todo.append(child)
    return out


class FileIndex:
    """Top-level classes and functions of one file (names defined more than once are dropped)."""

    def __init__(self, module: cst.Module) -> None:
        self.classes: Dict[str, Optional[cst.ClassDef]] = {}
        self.functions: Dict[str, Optional[cst.FunctionDef]] = {}
        self._scan(module.body)
        self._facts: Dict[int, "ClassFacts"] = {}

    def _scan(self, body: Any) -> None:
        for statement in body:
            if isinstance(statement, cst.ClassDef):
                name = statement.name.value
                self.classes[name] = None if name in self.classes else statement
            elif isinstance(statement, cst.FunctionDef):
                name = statement.name.value
                self.functions[name] = None if name in self.functions else statement
            elif isinstance(statement, cst.If):
                self._scan(statement.body.body)
                if statement.orelse is not None and isinstance(statement.orelse, cst.Else):
                    self._scan(statement.orelse.body.body)
            elif isinstance(statement, cst.Try):
                self._scan(statement.body.body)

    def cls(self, name: str) -> Optional[cst.ClassDef]:
        return self.classes.get(name)

    def facts(self, cls: cst.ClassDef) -> "ClassFacts":
        if id(cls) not in self._facts:
            self._facts[id(cls)] = ClassFacts(cls, self)
        return self._facts[id(cls)]


class ClassFacts:
    """What eager quantisation needs to know about a class defined in the file."""

    def __init__(self, cls: cst.ClassDef, index: FileIndex) -> None:
        self.node = cls
        #: ``self.<attr> = X(...)`` in any method: attr -> "quant" / "dequant" / "wrapper" / "ff" / class name
        self.attrs: Dict[str, str] = {}
        #: the calls that made the attributes
        self.attr_calls: Dict[str, Any] = {}
        self.stub_anywhere = False
        self.quantizes_by_hand = False
        self.refers_to_quantizable = False
        self.referenced: List[str] = []
        self.forward: Optional[cst.FunctionDef] = None
        for statement in cls.body.body:
            if isinstance(statement, cst.FunctionDef) and statement.name.value == "forward":
                self.forward = statement
        for node in _walk(cls.body):
            if isinstance(node, cst.Call):
                name = last_name(node.func)
                if name in STUB_NAMES:
                    self.stub_anywhere = True
                if name in ("quantize_per_tensor", "quantize_per_channel"):
                    self.quantizes_by_hand = True
                if "quantization" in (dotted_name(node.func) or "") and "torchvision" in (dotted_name(node.func) or ""):
                    self.refers_to_quantizable = True
            elif isinstance(node, cst.Name) and node.value in index.classes and node.value != cls.name.value:
                if node.value not in self.referenced:
                    self.referenced.append(node.value)
            elif isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
                for target in node.targets:
                    t = target.target
                    if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                        name = last_name(node.value.func)
                        kind = {"QuantStub": "quant", "DeQuantStub": "dequant", "QuantWrapper": "wrapper"}.get(
                            name or "", "ff" if name in FLOAT_FUNCTIONAL else (name or "")
                        )
                        self.attrs.setdefault(t.attr.value, kind)
                        self.attr_calls.setdefault(t.attr.value, node.value)

    def attrs_of(self, kind: str) -> List[str]:
        return [a for a, k in self.attrs.items() if k == kind]


def file_index(ctx: Any) -> FileIndex:
    return ctx.memo("dl2:file-index", lambda c: FileIndex(c.module))


def lacks_stubs(ctx: Any, cls: cst.ClassDef, seen: Optional[Set[int]] = None) -> Optional[bool]:
    """True when neither the class, its bases defined in the file, nor the file classes it uses
    create a QuantStub / QuantWrapper; None when a base class is not known."""
    seen = set() if seen is None else seen
    if id(cls) in seen:
        return True
    seen.add(id(cls))
    index = file_index(ctx)
    facts = index.facts(cls)
    if facts.stub_anywhere or facts.quantizes_by_hand or facts.refers_to_quantizable:
        return False
    for base in cls.bases:
        if base.keyword is not None:
            continue
        value = base.value
        qualified = ctx.qualname(value)
        if qualified in PLAIN_BASES:
            continue
        if isinstance(value, cst.Name) and qualified is None and index.cls(value.value) is not None:
            inner = lacks_stubs(ctx, index.cls(value.value), seen)
            if inner is not True:
                return inner
            continue
        return None
    for name in facts.referenced:
        other = index.cls(name)
        if other is not None and lacks_stubs(ctx, other, seen) is False:
            return False
    return True


def _strip(value: Any) -> Any:
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in SELF_RETURNING
    ):
        value = value.func.value
    return value


def _returns(function: cst.FunctionDef) -> List[Any]:
    return [n.value for n in _walk(function.body, skip_defs=True) if isinstance(n, cst.Return)]


def resolve_model(ctx: Any, value: Any, events: Dict[str, List[Any]], order: float, depth: int = 6,
                  helper: bool = True, function: Any = None) -> Result:
    """What built the model ``value`` refers to: ("class", ClassDef, constructor call),
    ("torchvision", qualified builder), ("wrapped", inner result); None when unknown."""
    if depth <= 0:
        return None
    value = _strip(value)
    index = file_index(ctx)
    if isinstance(value, cst.Name):
        return _resolve_name(ctx, value.value, events, order, depth - 1, helper, function)
    if not isinstance(value, cst.Call):
        return None
    func = value.func
    name = last_name(func)
    if name == "QuantWrapper":
        inner = ctx.argument(value, 0, "module")
        return ("wrapped", resolve_model(ctx, inner, events, order, depth - 1, helper, function) if inner else None)
    qualified = ctx.qualname(func)
    if isinstance(func, cst.Name) and qualified is None:
        cls = index.cls(func.value)
        if cls is not None:
            return ("class", cls, value)
        helper_def = index.functions.get(func.value)
        if helper_def is not None and helper:
            results = [
                resolve_model(ctx, r, ctx.object_events(helper_def), float("inf"), depth - 1, False, helper_def)
                for r in _returns(helper_def) if r is not None
            ]
            if results and all(r is not None for r in results) and len({r[0] for r in results}) == 1:
                return results[-1]
        return None
    if qualified and qualified.startswith("torchvision.models.") and ".quantization" not in qualified:
        return ("torchvision", qualified)
    return None


def _is_param(function: Any, name: str) -> bool:
    if not isinstance(function, cst.FunctionDef):
        return False
    params = function.params
    every = list(params.posonly_params) + list(params.params) + list(params.kwonly_params)
    every += [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
    return any(p.name.value == name for p in every)


def _resolve_name(ctx: Any, name: str, events: Dict[str, List[Any]], order: float, depth: int,
                  helper: bool, function: Any) -> Result:
    assigns = [e for e in events.get(name, []) if e.kind == "assign" and e.order < order]
    if not assigns:
        if function is not None and not _is_param(function, name):
            module_events = ctx.object_events(ctx.module)
            if module_events is not events:
                return _resolve_name(ctx, name, module_events, float("inf"), depth, helper, None)
        return None
    results = []
    for event in assigns:
        if not isinstance(event.node, (cst.Assign, cst.AnnAssign)) or event.value is None:
            return None
        results.append(resolve_model(ctx, event.value, events, event.order, depth, helper, function))
    if any(r is None for r in results) or len({r[0] for r in results}) != 1:
        return None
    return results[-1]


def model_escapes_to_wrapper(events: Dict[str, List[Any]], name: str) -> bool:
    """``QuantWrapper(model)`` / ``nn.Sequential(QuantStub(), model, ...)`` / ``model.quant = ...``."""
    for event in events.get(name, []):
        if event.kind == "argument" and (event.name or "").split(".")[-1] in ("QuantWrapper", "Sequential"):
            return True
        if event.kind == "setattr" and isinstance(event.value, cst.Call) and last_name(event.value.func) in STUB_NAMES:
            return True
    return False


def call_order(events: Dict[str, List[Any]], name: str, call: Any) -> float:
    for event in events.get(name, []):
        if event.node is call:
            return event.order
    return float("inf")


class EagerQuantMissingQuantStub(Rule):
    """A model without QuantStub / QuantWrapper handed to eager-mode static quantisation.

    Finds `torch.ao.quantization.prepare(model)`, `quantize(model, ...)`, `prepare_qat(model)`
    and `quantize_qat(model, ...)` (also the legacy `torch.quantization.*` spelling, under any
    import or alias) whose model is built, in the same function or at module level, from a
    class defined in the file (`model = Net()`, `Net().eval()`, `model.to(device)`, or through
    one helper that returns it: `model = load_model()`) or from a torchvision float builder
    (`torchvision.models.resnet18()`, not `torchvision.models.quantization.*`), when neither the
    class, its bases in the file nor the file classes it uses create a `QuantStub` or a
    `QuantWrapper`. Reported at the model argument. Also finds a class with
    `self.quant = QuantStub()` whose stub is never called anywhere in the file (reported at the
    `QuantStub()` call).

    Why it is a bug: eager `convert` swaps every module that has a qconfig for its quantised
    version, and a quantised module only accepts quantised tensors. Without a `QuantStub` the
    float input reaches the first quantised convolution and the call fails: measured with torch
    2.13, `NotImplementedError: Could not run 'quantized::conv2d.new' with arguments from the
    'CPU' backend` (pytorch/pytorch#34583, #29989, #133087; huggingface/optimum#24).

    How to fix: wrap the model, `prepared = prepare(QuantWrapper(model))` (it puts a QuantStub
    before and a DeQuantStub after the model), or add `self.quant = QuantStub()` /
    `self.dequant = DeQuantStub()` in `__init__` and call them at the start and end of
    `forward`, or use FX / PT2E graph mode, which inserts the conversions. The suggested fix
    wraps the model argument in `QuantWrapper(...)` where the prepared model is the call's
    result (not with `inplace=True`); the wrapped model's state_dict keys gain a `module.`
    prefix, so review it.

    Stays silent for models whose class is not known (a parameter, a third-party or hub model,
    a class whose base is not `nn.Module` / `nn.Sequential` or a class of the file), for
    torchvision quantizable models, for models passed to `QuantWrapper` or `nn.Sequential`
    anywhere in the function, in files that never assign a qconfig (`prepare` is then a no-op) and
    in files that quantise inputs by hand (`torch.quantize_per_tensor`), and for a class whose
    `forward` runs no submodule (it only reads attributes built from tensor factories or literals):
    eager convert swaps submodules, so nothing quantised ever runs there.
    """

    code = "DL204"
    name = "eager-quant-missing-quantstub"
    family = "optimization"
    message = (
        "eager-mode static quantisation needs QuantStub/DeQuantStub at float↔quantised boundaries "
        "(or QuantWrapper / FX mode)"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="quantisation API misuse: eager static quantisation of a model without quant/dequant stubs",
        links=(
            "https://github.com/pytorch/pytorch/issues/34583",
            "https://github.com/pytorch/pytorch/issues/29989",
            "https://github.com/pytorch/pytorch/issues/133087",
            "https://github.com/huggingface/optimum/issues/24",
            "https://github.com/pytorch/pytorch/issues/34613",
        ),
    )
    triggers = ("prepare", "quantize", "QuantStub")
    frameworks = ("torch", "torchvision")

    VALID = (
        Valid(dedent("""
            import torch
            import torch.nn as nn
            from torch.ao.quantization import QuantStub, DeQuantStub, get_default_qconfig, prepare, convert

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.conv = nn.Conv2d(3, 8, 3)
                    self.dequant = DeQuantStub()

                def forward(self, x):
                    return self.dequant(self.conv(self.quant(x)))

            model = Net().eval()
            model.qconfig = get_default_qconfig("x86")
            prepared = prepare(model)
            """), "the class has stubs and calls them"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            import torch.ao.quantization as tq

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)

                def forward(self, x):
                    return self.conv(x)

            model = tq.QuantWrapper(Net()).eval()
            model.qconfig = tq.get_default_qconfig("x86")
            prepared = tq.prepare(model)
            """), "wrapped in QuantWrapper"),
        Valid(dedent("""
            import torch
            import torch.ao.quantization as tq

            def quantise(model, loader):
                model.qconfig = tq.get_default_qconfig("x86")
                prepared = tq.prepare(model)
                return prepared
            """), "a parameter: the class is unknown"),
        Valid(dedent("""
            import torch
            import torchvision
            model = torchvision.models.quantization.resnet18(quantize=False).eval()
            model.fuse_model()
            model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            torch.ao.quantization.prepare(model, inplace=True)
            """), "torchvision's quantizable models carry their stubs"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            from torch.ao.quantization.quantize_fx import prepare_fx

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)

                def forward(self, x):
                    return self.conv(x)

            prepared = prepare_fx(Net().eval(), qconfig_mapping, example_inputs)
            """), "FX graph mode inserts the conversions"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            import timm
            model = timm.create_model("resnet18").eval()
            model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            torch.ao.quantization.prepare(model, inplace=True)
            """), "a third-party model: its class is not known here"),
        Valid(dedent("""
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)

                def forward(self, x):
                    return self.conv(x)

            model = Net().eval()
            model.qconfig = torch.quantization.default_qconfig
            torch.quantization.prepare(model, inplace=True)
            torch.quantization.convert(model, inplace=True)
            x = torch.quantize_per_tensor(torch.randn(1, 3, 8, 8), 0.1, 0, torch.quint8)
            y = model(x)
            """), "the inputs are quantised by hand"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            from torch.ao.quantization import QuantStub, DeQuantStub

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.dequant = DeQuantStub()
                    self.body = nn.Conv2d(3, 8, 3)

                def forward(self, x):
                    return self.dequant(self._impl(x))

                def _impl(self, x):
                    return self.body(self.quant(x))
            """), "the stub is called from another method"),
        Valid(dedent("""
            import torch
            import torch.nn as nn

            class Ising(nn.Module):
                def __init__(self, coupling, steps):
                    super().__init__()
                    self.coupling = torch.tensor(coupling)
                    self.steps = steps

                def forward(self, spins):
                    return torch.tanh(spins @ self.coupling)

            solver = Ising(weights, 50).eval()
            solver.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            torch.ao.quantization.prepare(solver, inplace=True)
            torch.ao.quantization.convert(solver, inplace=True)
            """), "forward runs no submodule (tensor maths on a buffer-like attribute): nothing is converted"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.conv = nn.Conv2d(3, 8, 3)

                    def forward(self, x):
                        return self.conv(x)

                model = Net().eval()
                model.qconfig = torch.quantization.get_default_qconfig("fbgemm")
                torch.quantization.prepare(model, inplace=True)
                torch.quantization.convert(model, inplace=True)
                """),
            note="legacy spelling, inplace: no fix",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                import torch.ao.quantization as tq

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.conv = nn.Conv2d(3, 8, 3)

                    def forward(self, x):
                        return self.conv(x)

                def main():
                    model = Net()
                    model.eval()
                    model.qconfig = tq.get_default_qconfig("x86")
                    prepared = tq.prepare(model)
                    return tq.convert(prepared)
                """),
            fixed=dedent("""
                import torch
                import torch.nn as nn
                import torch.ao.quantization as tq

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.conv = nn.Conv2d(3, 8, 3)

                    def forward(self, x):
                        return self.conv(x)

                def main():
                    model = Net()
                    model.eval()
                    model.qconfig = tq.get_default_qconfig("x86")
                    prepared = tq.prepare(tq.QuantWrapper(model))
                    return tq.convert(prepared)
                """),
            unsafe=True,
            note="torch.ao spelling in a function; suggested QuantWrapper",
        ),
        Invalid(
            dedent("""
                import torch
                import torchvision

                def load_model():
                    net = torchvision.models.shufflenet_v2_x1_0(num_classes=5)
                    net.load_state_dict(torch.load("w.pth"))
                    return net

                model = load_model().to("cpu")
                model.eval()
                model.qconfig = torch.quantization.default_qconfig
                torch.quantization.prepare(model, inplace=True)
                """),
            note="a torchvision float model through a helper",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                from torch.ao.quantization import quantize, get_default_qconfig

                class Block(nn.Sequential):
                    def __init__(self):
                        super().__init__(nn.Conv2d(3, 8, 3), nn.ReLU())

                class Net(Block):
                    pass

                net = Net().eval()
                net.qconfig = get_default_qconfig("x86")
                qnet = quantize(net, calibrate, [data])
                """),
            fixed=dedent("""
                import torch
                from torch import nn
                from torch.ao.quantization import quantize, get_default_qconfig

                class Block(nn.Sequential):
                    def __init__(self):
                        super().__init__(nn.Conv2d(3, 8, 3), nn.ReLU())

                class Net(Block):
                    pass

                net = Net().eval()
                net.qconfig = get_default_qconfig("x86")
                qnet = quantize(torch.ao.quantization.QuantWrapper(net), calibrate, [data])
                """),
            unsafe=True,
            note="quantize(), through a base class of the file",
        ),
        Invalid(
            dedent("""
                import torch.nn as nn
                from torch.ao.quantization import QuantStub, DeQuantStub

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.quant = QuantStub()
                        self.conv = nn.Conv2d(3, 8, 3)
                        self.dequant = DeQuantStub()

                    def forward(self, x):
                        return self.dequant(self.conv(x))
                """),
            note="the QuantStub is created but never called",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        qualified = ctx.call_name(node)
        if qualified not in EAGER_QUANT or ctx.has_star_args(node):
            return
        source = ctx.source
        if not re.search(r"qconfig\s*=", source) or "quantize_per_tensor" in source or "quantize_per_channel" in source:
            return
        model = ctx.argument(node, 0, "model")
        if model is None:
            return
        events = ctx.object_events()
        function = ctx.function()
        if isinstance(model, cst.Name):
            if model_escapes_to_wrapper(events, model.value):
                return
            order = call_order(events, model.value, node)
        else:
            order = float("inf")
        result = resolve_model(ctx, model, events, order, function=function)
        if result is None:
            return
        if result[0] == "class":
            if lacks_stubs(ctx, result[1]) is not True or forward_runs_no_submodule(result[1]):
                return  # stubs present, or a forward that runs no submodule: nothing quantised runs
        elif result[0] != "torchvision":
            return
        self.report(model, fix=self._fix(node, model, qualified))

    def _fix(self, call: cst.Call, model: Any, qualified: str) -> Optional[Fix]:
        ctx = self.ctx
        position = INPLACE_POSITION[qualified.rsplit(".", 1)[1]]
        inplace = ctx.argument(call, position, "inplace")
        if inplace is not None and not (isinstance(inplace, cst.Name) and inplace.value == "False"):
            return None
        if isinstance(ctx.parent(), cst.Expr):
            return None  # the result is dropped: the call only makes sense in place
        package = qualified.rsplit(".", 2)[0] if ".quantize." in qualified else qualified.rsplit(".", 1)[0]
        reference = ctx.reference_to(f"{package}.QuantWrapper") or ctx.reference_to(
            "torch.ao.quantization.QuantWrapper"
        )
        if reference is None:
            return None
        wrapped = cst.Call(func=cst.parse_expression(reference), args=[cst.Arg(value=model)])
        return Fix(f"Wrap the model: {reference}(...)", [(model, wrapped)], FixKind.UNSAFE)

    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        source = ctx.source
        if "QuantStub" not in source:
            return
        index = file_index(ctx)
        for cls in index.classes.values():
            if cls is None:
                continue
            facts = index.facts(cls)
            if facts.forward is None:
                continue
            for attr in facts.attrs_of("quant"):
                if not _attribute_used(source, attr):
                    self.report(
                        facts.attr_calls[attr],
                        f"self.{attr} = QuantStub() is never called: inputs reach the quantised layers as "
                        f"float tensors after convert (NotImplementedError); call x = self.{attr}(x) at the "
                        "start of forward",
                    )


def _attribute_used(source: str, attr: str) -> bool:
    """Whether ``.<attr>`` appears anywhere other than as an assignment target (generous)."""
    if f"'{attr}'" in source or f'"{attr}"' in source:
        return True
    for match in re.finditer(rf"\.{re.escape(attr)}\b", source):
        if not re.match(r"\s*=(?!=)", source[match.end():]):
            return True
    return False
