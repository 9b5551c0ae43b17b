"""What the DL3xx rules know about an export: the entry point, its arguments, the exported object.

- ``export_call(ctx, call)``: the ExportCall when ``call`` converts a model (torch.onnx.export,
  torch.onnx.dynamo_export, torch.export.export, torch.jit.trace / trace_module / script,
  tf2onnx.convert.from_keras / from_function, tf.lite.TFLiteConverter.from_keras_model /
  from_saved_model / from_concrete_functions, coremltools.convert), with its kind, which torch ONNX
  exporter runs (the ``dynamo=`` argument and the target torch version), and its arguments.
- ``exported_module(ctx, call)``: the object exported, followed back through names, ``self.<attr>``,
  ``.to()/.eval()`` chains and one helper's return to the call that made it, the class it is an
  instance of when that class is defined in the file, and its train / eval mode at the export call
  (from ``Context.object_events``).
- ``file_classes(ctx)`` / ``method(cls, name)``: the classes defined in the file (top level, and
  inside top-level ``if`` / ``try``), to look at an exported class's ``forward``.

Unknown answers are None: rules stay silent on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import libcst as cst

from dllint.context import dotted_name
from dllint.rules.conversion._pins import version as pinned_version

#: qualified name -> kind of export
ENTRY_POINTS: Dict[str, str] = {
    "torch.onnx.export": "onnx",
    "torch.onnx.utils.export": "onnx",
    "torch.onnx.dynamo_export": "onnx-dynamo",
    "torch.export.export": "export",
    "torch.export.export_for_training": "export",
    "torch.jit.trace": "trace",
    "torch.jit.trace_module": "trace",
    "torch.jit.script": "script",
    "tf2onnx.convert.from_keras": "tf2onnx",
    "tf2onnx.convert.from_function": "tf2onnx",
    "tf2onnx.convert.from_tflite": "tf2onnx",
    "coremltools.convert": "coreml",
}

_TFLITE_CONSTRUCTORS = ("from_keras_model", "from_saved_model", "from_concrete_functions")
_TFLITE_CLASSES = (
    "tensorflow.lite.TFLiteConverter",
    "tensorflow.compat.v2.lite.TFLiteConverter",
    "tensorflow.compat.v1.lite.TFLiteConverter",
)

#: The release from which ``torch.onnx.export`` runs the torch.export-based exporter by default.
DYNAMO_DEFAULT_SINCE = (2, 9)

#: Methods that return the module they are called on.
SELF_RETURNING = frozenset({"to", "eval", "train", "cuda", "cpu", "half", "float", "double", "bfloat16", "requires_grad_"})

#: Loaders that return a module in eval mode.
EVAL_LOADERS = ("from_pretrained",)


@dataclass(frozen=True)
class ExportCall:
    node: cst.Call
    kind: str  # "onnx", "onnx-dynamo", "export", "trace", "script", "tf2onnx", "tflite", "coreml"
    entry: str  # the qualified name (or "TFLiteConverter.<constructor>")
    #: for kind "onnx": "dynamo" or "legacy"; None otherwise
    exporter: Optional[str]
    model: Any  # the expression passed as the model (None when absent)
    example: Any  # the example inputs expression, when the entry point takes one

    def argument(self, ctx: Any, name: str) -> Any:
        """The value expression of keyword ``name`` (or its position for torch.onnx.export)."""
        positions = {"onnx": {"f": 2}}.get(self.kind, {})
        arg = ctx.argument(self.node, positions[name], name) if name in positions else None
        if arg is None:
            found = ctx.keyword(self.node, name)
            arg = found.value if found is not None else None
        return arg


def export_call(ctx: Any, call: Any) -> Optional[ExportCall]:
    if not isinstance(call, cst.Call):
        return None
    name = ctx.call_name(call)
    kind = ENTRY_POINTS.get(name or "")
    if kind is None:
        func = call.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in _TFLITE_CONSTRUCTORS
            and ctx.qualname(func.value) in _TFLITE_CLASSES
        ):
            kind, name = "tflite", "TFLiteConverter." + func.attr.value
        else:
            return None
    model = ctx.argument(call, 0, {"tf2onnx": "model", "tflite": "model"}.get(kind, "model"))
    if kind == "trace" and name == "torch.jit.trace_module":
        model = ctx.argument(call, 0, "mod")
    elif kind == "trace":
        model = ctx.argument(call, 0, "func")
    elif kind == "script":
        model = ctx.argument(call, 0, "obj")
    elif kind == "tf2onnx" and name and name.endswith("from_function"):
        model = ctx.argument(call, 0, "function")
    elif kind == "tflite" and name.endswith("from_saved_model"):
        model = None
    example = None
    if kind == "onnx":
        example = ctx.argument(call, 1, "args")
    elif kind == "onnx-dynamo":
        example = ctx.argument(call, 1)
    elif kind == "export":
        example = ctx.argument(call, 1, "args")
    elif kind == "trace":
        example = ctx.argument(call, 1, "example_inputs" if name == "torch.jit.trace" else "inputs")
    exporter = None
    if kind == "onnx":
        # torch.onnx.utils.export is the TorchScript-based exporter whatever the release
        exporter = "legacy" if name == "torch.onnx.utils.export" else onnx_exporter(ctx, call)
    return ExportCall(call, kind, name or "", exporter, model, example)


def onnx_exporter(ctx: Any, call: cst.Call) -> Optional[str]:
    """"dynamo" or "legacy" for a ``torch.onnx.export`` call: its ``dynamo=`` literal, else the
    default of the target torch release (dynamo from 2.9; unknown target = newest); None when
    ``dynamo=`` is not a literal."""
    arg = ctx.keyword(call, "dynamo")
    if arg is not None:
        value = arg.value
        if isinstance(value, cst.Name) and value.value in ("True", "False"):
            return "dynamo" if value.value == "True" else "legacy"
        return None
    if ctx.has_star_args(call):
        return None
    target = pinned_version(ctx, "torch")
    if target is not None and target < DYNAMO_DEFAULT_SINCE:
        return "legacy"
    return "dynamo"


# ---------------------------------------------------------------------- classes of the file


def file_classes(ctx: Any) -> Dict[str, cst.ClassDef]:
    """Classes defined once at the top level of the file (or in a top-level if / try)."""

    def compute(ctx: Any) -> Dict[str, cst.ClassDef]:
        found: Dict[str, Optional[cst.ClassDef]] = {}

        def scan(body: Any) -> None:
            for statement in body:
                if isinstance(statement, cst.ClassDef):
                    name = statement.name.value
                    found[name] = None if name in found else statement
                elif isinstance(statement, cst.If):
                    scan(statement.body.body)
                    if isinstance(statement.orelse, cst.Else):
                        scan(statement.orelse.body.body)
                elif isinstance(statement, cst.Try):
                    scan(statement.body.body)

        scan(ctx.module.body)
        return {name: cls for name, cls in found.items() if cls is not None}

    return ctx.memo("dl3.file_classes", compute)


def method(cls: cst.ClassDef, name: str) -> Optional[cst.FunctionDef]:
    """The method ``name`` defined in the body of ``cls`` (the last definition), if any."""
    found = None
    for statement in cls.body.body:
        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
            found = statement
    return found


def file_base_classes(ctx: Any, cls: cst.ClassDef) -> List[cst.ClassDef]:
    """``cls`` and its bases defined in the file, nearest first (a method missing from ``cls`` is
    looked up along this list)."""
    out = [cls]
    classes = file_classes(ctx)
    todo = [cls]
    while todo:
        current = todo.pop(0)
        for base in current.bases:
            name = dotted_name(base.value)
            other = classes.get(name or "")
            if other is not None and all(other is not seen for seen in out):
                out.append(other)
                todo.append(other)
    return out


def find_method(ctx: Any, cls: cst.ClassDef, name: str) -> Optional[cst.FunctionDef]:
    for owner in file_base_classes(ctx, cls):
        found = method(owner, name)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------- the exported object


@dataclass(frozen=True)
class ExportedModule:
    expr: Any  # the expression at the export call
    name: Optional[str]  # its dotted name ("model", "self.net"), when it is one
    origin: Any  # the call that made it (constructor, loader), or None when unknown
    cls: Optional[cst.ClassDef]  # its class, when defined in this file
    mode: Optional[str]  # "eval", "train" or None (unknown) at the export call


def _strip(node: Any) -> Tuple[Any, Optional[str]]:
    """Remove self-returning method calls; the last mode they set ("eval"/"train") if any."""
    mode = None
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in SELF_RETURNING:
        attr = node.func.attr.value
        if mode is None and attr in ("eval", "train"):
            mode = "eval" if attr == "eval" or _false_argument(node) else "train"
        node = node.func.value
    return node, mode


def _false_argument(call: cst.Call) -> bool:
    return bool(call.args) and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value == "False"


def origin_of(ctx: Any, expr: Any) -> Tuple[Any, Optional[str]]:
    """The call that made the object ``expr`` holds (through names assigned once, ``self.<attr>``
    assigned once, self-returning chains and one helper's return), and the mode a chain set."""
    mode = None
    helper_used = False
    for _ in range(8):
        expr, chain_mode = _strip(expr)
        mode = mode or chain_mode
        if isinstance(expr, (cst.Name, cst.Attribute)):
            if helper_used and isinstance(expr, cst.Name):
                return None, mode
            value = ctx.assigned_value(expr)
            if value is None and isinstance(expr, cst.Name):
                value = _single_non_rebinding(ctx, expr)
            if value is None:
                return None, mode
            expr = value
            continue
        if isinstance(expr, cst.Call):
            value = ctx.returned_value(expr) if not helper_used else None
            if value is not None:
                helper_used = True
                expr = value
                continue
            return expr, mode
        return None, mode
    return None, mode


def _single_non_rebinding(ctx: Any, name: cst.Name) -> Any:
    """The one assignment of ``name`` that is not ``name = name.to(...) / .eval()`` etc."""
    bindings = ctx.lookup(name.value)
    if not bindings:
        return None
    found = None
    for binding in bindings:
        value = binding.expression()
        if value is None:
            return None
        stripped, _ = _strip(value)
        if isinstance(stripped, cst.Name) and stripped.value == name.value:
            continue
        if found is not None:
            return None
        found = value
    return found


def class_of(ctx: Any, origin: Any) -> Optional[cst.ClassDef]:
    """The file class ``origin`` (a call) instantiates: ``Net(...)``, ``Net.from_config(...)``."""
    if not isinstance(origin, cst.Call):
        return None
    func = origin.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("from_pretrained", "from_config", "load_from_checkpoint"):
        func = func.value
    name = dotted_name(func)
    if name is None or "." in name:
        return None
    bindings = ctx.lookup(name)
    if bindings and bindings[-1].kind == "import":
        return None
    return file_classes(ctx).get(name)


def exported_module(ctx: Any, export: ExportCall) -> Optional[ExportedModule]:
    """The object an export call exports, and what is known of it."""
    expr = export.model
    if expr is None:
        return None
    if isinstance(expr, cst.Name) and expr.value == "self" and ctx.function() is not None and ctx.enclosing_class() is not None:
        # a module exporting itself from one of its methods
        return ExportedModule(expr, "self", None, ctx.enclosing_class(), None)
    origin, chain_mode = origin_of(ctx, expr)
    stripped, direct = _strip(expr)
    name = dotted_name(stripped)
    # a mode set on the exported expression itself wins; then the last mode call before the export
    # (which sees the assignment's own chain); then the chain of the assignment that made it
    mode = direct or _mode_at(ctx, export.node, name, origin) or chain_mode
    return ExportedModule(expr, name, origin, class_of(ctx, origin), mode)


def _mode_at(ctx: Any, call: cst.Call, name: Optional[str], origin: Any) -> Optional[str]:
    """The mode of the object ``name`` at ``call``: the last eval()/train() call on it before the
    call in this function; else "train" when it was made in this function by a constructor (a new
    module is in train mode), "eval" when loaded by from_pretrained; else None."""
    if name is None:
        return None
    events = ctx.object_events()
    export_order = None
    for found in events.values():
        for event in found:
            if event.node is call:
                export_order = event.order
                break
        if export_order is not None:
            break
    mode = None
    made_here = False
    for event in events.get(name, []):
        if export_order is not None and event.order >= export_order:
            break
        if event.kind == "method" and event.name in ("eval", "train"):
            mode = "eval" if event.name == "eval" or _false_argument(event.node) else "train"
        elif event.kind == "method" and event.name in ("load_state_dict",):
            continue
        elif event.kind == "assign":
            value, chain = _strip(event.value) if event.value is not None else (None, None)
            mode = chain
            made_here = isinstance(value, cst.Call)
        elif event.kind == "argument" and not _harmless_callee(event.name):
            # handed to a helper of unknown effect: it may switch the mode
            mode = None
            made_here = False
    if mode is not None:
        return mode
    if made_here and isinstance(origin, cst.Call):
        func = origin.func
        if isinstance(func, cst.Attribute) and func.attr.value in EVAL_LOADERS:
            return "eval"
        return "train" if class_of(ctx, origin) is not None or _is_module_constructor(ctx, origin) else None
    return None


_HARMLESS = frozenset({"print", "len", "str", "repr", "type", "isinstance", "id", "hasattr", "getattr", "sum"})


def _harmless_callee(name: Optional[str]) -> bool:
    """Callees that cannot switch a module's mode: builtins that only look, torch functions
    (counting parameters, saving), logging."""
    if name is None:
        return False
    return name in _HARMLESS or name.startswith(("torch.", "logging.", "logger.", "log.", "copy.deepcopy"))


def _is_module_constructor(ctx: Any, call: cst.Call) -> bool:
    """``torchvision.models.resnet18(...)``, ``torch.nn.Sequential(...)``, ``timm.create_model(...)``."""
    name = ctx.call_name(call) or ""
    return name.startswith(("torchvision.models.", "torch.nn.")) or name == "timm.create_model"


__all__ = [
    "DYNAMO_DEFAULT_SINCE",
    "ENTRY_POINTS",
    "ExportCall",
    "ExportedModule",
    "class_of",
    "export_call",
    "exported_module",
    "file_base_classes",
    "file_classes",
    "find_method",
    "method",
    "onnx_exporter",
    "origin_of",
]
