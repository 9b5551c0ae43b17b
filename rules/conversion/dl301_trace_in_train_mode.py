from __future__ import annotations

import re
from typing import Any, Optional, Set

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import (
    ExportCall,
    _mode_at,
    _strip,
    export_call,
    exported_module,
    file_base_classes,
    file_classes,
)
from dllint.rules.optimization._quant import escapes, insert_before, later_uses, root_of, statement_of

#: Source text that marks a layer whose behaviour depends on the train / eval mode.
MODE_TEXT = re.compile(
    r"Dropout|BatchNorm|\bdropout|alpha_dropout|\.training\b|DropPath|drop_path|StochasticDepth|stochastic_depth"
    r"|\bTransformer(?:Encoder|Decoder)?(?:Layer)?\b|\bbatch_norm\b"
)

#: Constructors of model zoos whose models all hold BatchNorm and / or dropout.
ZOO_PREFIXES = ("torchvision.models.", "timm.")

#: Base classes that add no layer of their own.
PLAIN_BASES = frozenset(
    {
        "torch.nn.Module",
        "torch.nn.modules.module.Module",
        "pytorch_lightning.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "object",
    }
)

#: Calls made in a class body that never build a submodule.
_BUILTINS = frozenset({"super", "range", "len", "int", "float", "str", "bool", "list", "dict", "tuple", "set",
                       "print", "isinstance", "getattr", "setattr", "hasattr", "max", "min", "sum", "zip",
                       "enumerate", "round", "abs", "type", "sorted", "reversed", "map", "filter", "format"})


def _code(ctx: Any, node: Any) -> str:
    return ctx.module.code_for_node(node)


def _file_functions(ctx: Any) -> dict:
    def compute(ctx: Any) -> dict:
        return {s.name.value: s for s in ctx.module.body if isinstance(s, cst.FunctionDef)}

    return ctx.memo("dl301.file_functions", compute)


def has_mode_layers(ctx: Any, cls: cst.ClassDef, seen: Optional[Set[int]] = None) -> Optional[bool]:
    """Whether instances of the file class ``cls`` hold a mode-dependent layer: True when its text
    (or a file base class's, a file class or function it calls) names Dropout / BatchNorm /
    ``self.training`` / functional dropout, or it builds a torchvision / timm model; None when it
    builds a submodule of a class defined elsewhere, or derives from one (unknown); False
    otherwise."""
    seen = set() if seen is None else seen
    if id(cls) in seen:
        return False
    seen.add(id(cls))
    unknown = False
    classes = file_classes(ctx)
    functions = _file_functions(ctx)
    for owner in file_base_classes(ctx, cls):
        if MODE_TEXT.search(_code(ctx, owner)):
            return True
        for base in owner.bases:
            name = dotted_name(base.value)
            if name in classes:
                continue
            qualified = ctx.qualname(base.value) or name
            if qualified not in PLAIN_BASES and not (qualified or "").startswith("torch.nn."):
                unknown = True
        for call in _calls(owner):
            name = dotted_name(call.func)
            if name is None:
                continue
            if name in classes:
                found = has_mode_layers(ctx, classes[name], seen)
                if found:
                    return True
                unknown = unknown or found is None
                continue
            if name in functions:
                if MODE_TEXT.search(_code(ctx, functions[name])):
                    return True
                continue
            if "." not in name and (name in _BUILTINS or name.startswith("self")):
                continue
            if name.startswith("self.") or name.split(".")[0] in ("self", "super"):
                continue
            qualified = ctx.qualname(call.func) or ""
            if qualified.startswith(ZOO_PREFIXES):
                return True
            if qualified.startswith(("torch.", "math.", "numpy.", "collections.", "functools.", "typing.")):
                continue
            if _builds_submodule(call, owner):
                unknown = True
    return None if unknown else False


def _calls(node: Any) -> list:
    found: list = []

    class Finder(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            found.append(call)

    node.visit(Finder())
    return found


def _builds_submodule(call: cst.Call, cls: cst.ClassDef) -> bool:
    """Whether ``call`` (of an unknown callee) is the value of ``self.<attr> = ...`` or an element
    of a container assigned to one: it may be a submodule."""
    holder = [False]

    class Finder(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            if any(isinstance(t.target, cst.Attribute) and dotted_name(t.target.value) == "self" for t in node.targets):
                if _contains(node.value, call):
                    holder[0] = True

    cls.visit(Finder())
    return holder[0]


def _contains(tree: Any, node: Any) -> bool:
    found = [False]

    class Finder(cst.CSTVisitor):
        def on_visit(self, current: cst.CSTNode) -> bool:
            if current is node:
                found[0] = True
            return not found[0]

    tree.visit(Finder())
    return found[0]


def origin_has_mode_layers(ctx: Any, origin: Any) -> Optional[bool]:
    """For a module made by a call to a library constructor: torchvision / timm models hold
    BatchNorm / dropout (True); ``torch.nn.<Layer>(...)`` (a ``Sequential`` with its arguments)
    holds one only when its text names one; None when unknown."""
    if not isinstance(origin, cst.Call):
        return None
    name = ctx.call_name(origin) or ""
    if name.startswith(ZOO_PREFIXES):
        return True
    if name.startswith("torch.nn."):
        if MODE_TEXT.search(_code(ctx, origin)):
            return True
        classes = file_classes(ctx)
        for call in _calls(origin):
            inner = dotted_name(call.func)
            if inner in classes:
                found = has_mode_layers(ctx, classes[inner])
                if found is not False:
                    return found
            elif call is not origin and not (ctx.call_name(call) or "").startswith("torch."):
                return None
        return False
    return None


TRAINING_MODES = ("TrainingMode.TRAINING", "TrainingMode.PRESERVE")


def _mode_of(ctx: Any, export: ExportCall, module: Any) -> Any:
    """The mode at the export: a mode call chained on the exported expression itself
    (``trace(m.eval(), x)``) first, else the last mode call on the name before the export (which
    also reads ``m = Net().eval()``), else what the shared helper found. (The shared helper lets the
    chain of the name's assignment win over a later ``m.train()``.)"""
    _, direct = _strip(export.model)
    if direct is not None:
        return direct
    at = _mode_at(ctx, export.node, module.name, module.origin) if module.name else None
    return at if at is not None else module.mode


class TraceInTrainMode(Rule):
    """A model traced or exported while it is in training mode.

    Finds `torch.jit.trace(m, ...)`, `torch.jit.trace_module(m, ...)`, `torch.export.export(m, ...)`
    and `torch.onnx.export(m, ...)` run by the torch.export-based exporter (the default from torch
    2.9: no `dynamo=False`, target torch 2.9 or newer or unknown), where `m` is known to be in train
    mode at the call: built in the same function (a class of the file, `torchvision.models.*`,
    `timm.create_model`, `torch.nn.*`) with no `m.eval()` / `m.train(False)` since, or whose last
    mode call is `m.train()`; also `torch.onnx.export(m, ..., training=TrainingMode.TRAINING /
    PRESERVE)` under the legacy exporter when `m` is in train mode. Only models that hold a
    mode-dependent layer are reported: for a class of the file, its text (with its file base
    classes and the file classes it builds) must name Dropout / BatchNorm / `self.training` /
    functional dropout, or it must build a submodule of a class defined elsewhere (unknown: warned);
    torchvision and timm models always hold such layers; a `torch.nn.Sequential` only when its
    arguments name one.

    Why it breaks at run time: the trace records the mode the module is in. The torch.jit docs:
    "operations that have different behaviors in training and eval modes will always behave as if
    it is in the mode it was in during tracing, no matter which mode the ScriptModule is in".
    Measured (torch 2.13, a Linear-BatchNorm1d-Dropout module): traced in train mode, two calls on
    the same input differ (live dropout) and `.eval()` on the traced module does not change that;
    traced after `eval()` it is deterministic and equals eager eval output. `torch.export.export`
    in train mode records `aten.dropout.default` and batch-statistics batch norm. The dynamo ONNX
    exporter (the default since torch 2.9) exports the mode the model is in and only warns
    ("Exporting a model while it is in training mode..."): the ONNX graph gets a live Dropout and
    batch-statistics BatchNorm, and onnxruntime's outputs match neither PyTorch eval mode nor
    themselves. The legacy exporter's default `training=TrainingMode.EVAL` no longer protects.

    How to fix: call `model.eval()` before the trace / export (the fix inserts it before the
    statement when the model is a plain name; it is offered as safe when nothing uses the model
    after the export and the model does not leave the function, else as a suggestion, since the
    model stays in eval mode afterwards). `torch.jit.trace` itself is deprecated (DL310).

    Limits (precision first): a model whose mode is unknown is left alone: a parameter or an
    attribute with no mode call in the function, a model that went through a helper of unknown
    effect, a loader's result (`torch.load`, `from_pretrained`: eval). A file class with no
    mode-dependent layer, a `torch.nn` layer without one, `torch.jit.script` (scripting keeps
    `self.training` switchable) and `torch.export.export_for_training` (meant for training graphs)
    are not reported. Under the legacy exporter without `training=`, the export is in eval mode and
    nothing is reported. A training-time trace on purpose can be silenced with a noqa comment.
    """

    code = "DL301"
    name = "trace-in-train-mode"
    family = "conversion"
    message = (
        "model is traced in training mode; dropout/batch-norm training behaviour is frozen into the graph. "
        "Call model.eval() before tracing"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(c) converter failures: BN / dropout training state in converted models",
        category="tracing semantics: train-mode behaviour frozen into the traced / exported graph",
        links=(
            "https://discuss.pytorch.org/t/110290",
            "https://github.com/pytorch/pytorch/issues/52867",
            "https://github.com/pytorch/pytorch/issues/35644",
            "https://github.com/pytorch/pytorch/issues/80947",
            "https://docs.pytorch.org/docs/stable/jit.html",
        ),
    )
    triggers = ("trace", "export")
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            model.eval()
            ts = torch.jit.trace(model, torch.randn(1, 3, 224, 224))
            """), "eval() before tracing"),
        Valid(dedent("""
            import torch
            import torchvision
            model = torchvision.models.mobilenet_v2(weights="DEFAULT")
            torch.onnx.export(model, (x,), "m.onnx", dynamo=False)
            """), "legacy exporter: exports in eval mode by default"),
        Valid(dedent("""
            import torch
            def export(model, x):
                torch.onnx.export(model, (x,), "m.onnx")
            """), "a parameter: the caller sets the mode"),
        Valid(dedent("""
            import torch
            class Mlp(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = torch.nn.Linear(4, 8)
                    self.fc2 = torch.nn.Linear(8, 2)
                def forward(self, x):
                    return self.fc2(torch.relu(self.fc1(x)))
            model = Mlp()
            ep = torch.export.export(model, (torch.randn(2, 4),))
            """), "no mode-dependent layer in the class"),
        Valid(dedent("""
            import torch
            model = Net()
            model.load_state_dict(torch.load("ckpt.pt"))
            prepare_for_export(model)
            ts = torch.jit.trace(model, example)
            """), "a helper of unknown effect ran on the model"),
        Valid(dedent("""
            import torch
            from transformers import AutoModel
            model = AutoModel.from_pretrained("bert-base-uncased")
            torch.onnx.export(model, (ids,), "bert.onnx")
            """), "from_pretrained returns an eval-mode model"),
        Valid(dedent("""
            import torch
            import torchvision
            model = torchvision.models.resnet18()
            scripted = torch.jit.script(model)
            """), "scripting keeps the mode switchable"),
        Valid(dedent("""
            import torch
            model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
            ts = torch.jit.trace(model, torch.randn(1, 4))
            """), "Sequential of mode-independent layers"),
        Valid(dedent("""
            import torch
            import torchvision
            model = torchvision.models.resnet18()
            model.train()
            ep = torch.export.export_for_training(model, (x,))
            """), "export_for_training is meant for training graphs"),
        Valid(dedent("""
            import torch
            import torchvision
            net = torchvision.models.alexnet()
            torch.onnx.export(net, x, "a.onnx", dynamo=flag)
            """), "exporter unknown"),
        Valid(dedent("""
            import torch
            model = Net()
            model.load_state_dict(sd)
            ts = torch.jit.trace(model, example)
            """), "Net is not defined in this file: its mode is not known"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(8, 8)
                        self.bn = nn.BatchNorm1d(8)
                        self.drop = nn.Dropout(0.5)

                    def forward(self, x):
                        return self.drop(self.bn(self.fc(x)))

                model = Net()
                model.load_state_dict(sd)
                ts = torch.jit.trace(model, example)
                """),
            fixed=dedent("""
                import torch
                import torch.nn as nn

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(8, 8)
                        self.bn = nn.BatchNorm1d(8)
                        self.drop = nn.Dropout(0.5)

                    def forward(self, x):
                        return self.drop(self.bn(self.fc(x)))

                model = Net()
                model.load_state_dict(sd)
                model.eval()
                ts = torch.jit.trace(model, example)
                """),
            note="the catalogue's Bad example with the class in the file",
        ),
        Invalid(
            dedent("""
                import torch
                import torchvision

                net = torchvision.models.mobilenet_v2(pretrained=True).cpu()
                torch.onnx.export(net, inputs, "mobilenet_v2.onnx", verbose=False)
                """),
            fixed=dedent("""
                import torch
                import torchvision

                net = torchvision.models.mobilenet_v2(pretrained=True).cpu()
                net.eval()
                torch.onnx.export(net, inputs, "mobilenet_v2.onnx", verbose=False)
                """),
            note="pytorch#35644: default (dynamo) ONNX exporter in train mode",
        ),
        Invalid(
            dedent("""
                import torch
                import timm

                def export(path):
                    model = timm.create_model("resnet50", pretrained=True)
                    ep = torch.export.export(model, (torch.randn(1, 3, 224, 224),))
                    torch.export.save(ep, path)
                """),
            fixed=dedent("""
                import torch
                import timm

                def export(path):
                    model = timm.create_model("resnet50", pretrained=True)
                    model.eval()
                    ep = torch.export.export(model, (torch.randn(1, 3, 224, 224),))
                    torch.export.save(ep, path)
                """),
            note="torch.export.export of a fresh timm model",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.onnx import TrainingMode
                from torchvision.models import resnet18

                model = resnet18()
                model.eval()
                evaluate(model)
                model.train()
                torch.onnx.export(model, x, "r.onnx", dynamo=False, training=TrainingMode.PRESERVE)
                """),
            fixed=dedent("""
                import torch
                from torch.onnx import TrainingMode
                from torchvision.models import resnet18

                model = resnet18()
                model.eval()
                evaluate(model)
                model.train()
                model.eval()
                torch.onnx.export(model, x, "r.onnx", dynamo=False, training=TrainingMode.PRESERVE)
                """),
            note="legacy exporter with training=PRESERVE after train()",
        ),
        Invalid(
            dedent("""
                import torch
                import torchvision

                def main():
                    model = torchvision.models.resnet18()
                    traced = torch.jit.trace_module(model, {"forward": x})
                    for batch in loader:
                        model(batch)
                """),
            fixed=dedent("""
                import torch
                import torchvision

                def main():
                    model = torchvision.models.resnet18()
                    model.eval()
                    traced = torch.jit.trace_module(model, {"forward": x})
                    for batch in loader:
                        model(batch)
                """),
            unsafe=True,
            note="used after the trace: the fix is a suggestion",
        ),
        Invalid(
            dedent("""
                import torch

                class Head(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = torch.nn.Linear(4, 2)

                    def forward(self, x):
                        return torch.nn.functional.dropout(self.fc(x), 0.1, self.training)

                head = Head()
                torch.onnx.export(head, (x,), "head.onnx", dynamo=True)
                """),
            fixed=dedent("""
                import torch

                class Head(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = torch.nn.Linear(4, 2)

                    def forward(self, x):
                        return torch.nn.functional.dropout(self.fc(x), 0.1, self.training)

                head = Head()
                head.eval()
                torch.onnx.export(head, (x,), "head.onnx", dynamo=True)
                """),
            note="functional dropout, explicit dynamo=True",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or not self._records_mode(export):
            return
        module = exported_module(ctx, export)
        if module is None or _mode_of(ctx, export, module) != "train":
            return
        if module.cls is not None:
            if has_mode_layers(ctx, module.cls) is False:
                return
        elif origin_has_mode_layers(ctx, module.origin) is False:
            return
        name = module.name or "model"
        tracing = export.kind == "trace"
        verb, gerund = ("traced", "tracing") if tracing else ("exported", "exporting")
        message = (
            f"{name} is {verb} in training mode; dropout/batch-norm training behaviour is frozen into the graph. "
            f"Call {name}.eval() before {gerund}"
        )
        self.report(node, message, self._fix(node, export, module.name))

    def _records_mode(self, export: ExportCall) -> bool:
        """Whether the export records the module's current mode (or the train mode)."""
        if export.kind == "trace":
            return True
        if export.kind == "export":
            return export.entry == "torch.export.export"
        if export.kind != "onnx":
            return False
        exporter = "legacy" if export.entry == "torch.onnx.utils.export" else export.exporter
        if exporter == "dynamo":
            return True
        if exporter == "legacy":
            return self._training_mode(export) is not None
        return False

    def _training_mode(self, export: ExportCall) -> Optional[str]:
        found = self.ctx.keyword(export.node, "training")
        if found is None:
            return None
        value = found.value
        qualified = self.ctx.qualname(value) or dotted_name(value) or ""
        for mode in TRAINING_MODES:
            if qualified.endswith(mode):
                return mode.rsplit(".", 1)[1]
        return None

    def _fix(self, node: cst.Call, export: ExportCall, name: Optional[str]) -> Optional[Fix]:
        if name is None or "." in name:
            return None
        if export.kind == "onnx" and self._training_mode(export) == "TRAINING":
            return None  # the legacy exporter switches to train mode itself
        ctx = self.ctx
        statement = statement_of(ctx, node)
        if statement is None:
            return None
        root = root_of(ctx)
        kind = FixKind.SAFE if self._unused_after(root, name, node) else FixKind.UNSAFE
        return Fix(f"Call {name}.eval() before the export", [insert_before(statement, f"{name}.eval()")], kind)

    def _unused_after(self, root: Any, name: str, node: cst.Call) -> bool:
        """Whether nothing uses ``name`` after the export (so eval() there changes nothing else):
        no later event on it, the export is not in a loop, and it does not leave the function."""
        ctx = self.ctx
        order = None
        for event in ctx.object_events(root).get(name, ()):
            if event.node is node:
                order = event.order
                if event.loop is not None:
                    return False
        if order is None:
            return False
        for _, event in later_uses(ctx, root, {name}, order):
            if event.kind == "method" and event.name in ("eval", "state_dict", "parameters", "named_parameters"):
                continue
            return False
        return not escapes(ctx, root, {name}, order)
