from __future__ import annotations

import re
from typing import Any, List, Optional, Sequence

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import export_call

#: torch factories whose positional integers (or one tuple / list / torch.Size argument) are the shape.
SHAPE_FACTORIES = frozenset(
    "torch." + name for name in ("randn", "rand", "zeros", "ones", "empty", "full", "randint", "Tensor", "FloatTensor")
)

#: Words in a file that say a fixed-shape artefact is the goal (TensorRT engines, TFLite micro...).
STATIC_TARGET_WORDS = re.compile(
    r"tensorrt|trtexec|\btrt\b|tflite|edgetpu|edge_tpu|openvino|coreml|ncnn|rknn|hailo|"
    r"static[ _-]?(shape|batch|input|export|onnx)|fixed[ _-]?(shape|batch|size|input)",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------- shared shape helpers


def int_value(ctx: Any, node: Any) -> Optional[int]:
    """A literal int (``3``, ``-1``) or a name assigned once from one."""
    if isinstance(node, cst.Name):
        value = ctx.assigned_value(node)
        if value is None or isinstance(value, cst.Name):
            return None
        node = value
    if isinstance(node, cst.Integer):
        return int(node.value, 0)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value, 0)
    return None


def literal_shape(ctx: Any, expr: Any) -> Optional[List[Optional[int]]]:
    """The shape of a tensor built in the file with a literal size: ``torch.randn(1, 3, 224, 224)``,
    ``torch.zeros([1, 1, 1, 1])``, ``torch.randint(0, 10, (2, 8))`` (also ``.to(...)`` /
    ``.cuda()`` after it, and through a name assigned once).  Unknown sizes are None; None when
    the expression is not such a call."""
    for _ in range(4):
        if isinstance(expr, cst.Name):
            value = ctx.assigned_value(expr)
            if value is None:
                return None
            expr = value
            continue
        while (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value in ("to", "cuda", "cpu", "float", "half", "double", "long", "int", "contiguous")
        ):
            expr = expr.func.value
        break
    if not isinstance(expr, cst.Call):
        return None
    name = ctx.call_name(expr)
    if name not in SHAPE_FACTORIES or ctx.has_star_args(expr):
        return None
    positional = [a.value for a in expr.args if a.keyword is None]
    size = ctx.keyword(expr, "size")
    if name == "torch.randint":
        # randint(high, size) or randint(low, high, size)
        sized = [a for a in positional if isinstance(a, (cst.Tuple, cst.List))]
        dims = sized[0] if sized else (size.value if size is not None else None)
    elif name == "torch.full":
        dims = positional[0] if positional else (size.value if size is not None else None)
    elif len(positional) == 1 and isinstance(positional[0], (cst.Tuple, cst.List)):
        dims = positional[0]
    elif size is not None:
        dims = size.value
    elif positional and name not in ("torch.Tensor", "torch.FloatTensor"):
        return [int_value(ctx, a) for a in positional]
    elif positional and all(isinstance(a, cst.Integer) for a in positional):
        return [int_value(ctx, a) for a in positional]
    else:
        return None
    if isinstance(dims, cst.Call) and ctx.call_name(dims) == "torch.Size" and dims.args:
        dims = dims.args[0].value
    if not isinstance(dims, (cst.Tuple, cst.List)):
        return None
    out: List[Optional[int]] = []
    for element in dims.elements:
        if isinstance(element, cst.StarredElement):
            return None
        out.append(int_value(ctx, element.value))
    return out


def example_inputs(ctx: Any, example: Any) -> Optional[List[Any]]:
    """The top-level example inputs of an export call, in order: a tuple / list literal (also
    through a name assigned once, with ``*name`` of a tuple literal or ``(t,) * n`` expanded), or
    one tensor expression.  None when the inputs cannot be listed."""
    resolved = example
    if isinstance(resolved, cst.Name):
        value = ctx.assigned_value(resolved)
        if isinstance(value, (cst.Tuple, cst.List, cst.BinaryOperation)):
            resolved = value
    expanded = _sequence(ctx, resolved)
    if expanded is not None:
        return expanded
    if isinstance(resolved, (cst.Dict, cst.Tuple, cst.List)):
        return None
    return [example]


def _sequence(ctx: Any, node: Any, depth: int = 0) -> Optional[List[Any]]:
    if depth > 3:
        return None
    if isinstance(node, cst.Name):
        value = ctx.assigned_value(node)
        return _sequence(ctx, value, depth + 1) if value is not None else None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        inner = _sequence(ctx, node.left, depth + 1)
        times = int_value(ctx, node.right)
        if inner is None or times is None or times < 0 or times > 64:
            return None
        return inner * times
    if not isinstance(node, (cst.Tuple, cst.List)):
        return None
    out: List[Any] = []
    for element in node.elements:
        if isinstance(element, cst.StarredElement):
            inner = _sequence(ctx, element.value, depth + 1)
            if inner is None:
                return None
            out.extend(inner)
        else:
            out.append(element.value)
    return out


def string_list(node: Any, ctx: Any = None) -> Optional[List[str]]:
    """The strings of a list / tuple literal of plain string literals (through a name assigned once)."""
    if isinstance(node, cst.Name) and ctx is not None:
        node = ctx.assigned_value(node)
    if not isinstance(node, (cst.List, cst.Tuple)):
        return None
    out = []
    for element in node.elements:
        if isinstance(element, cst.StarredElement) or not isinstance(element.value, cst.SimpleString):
            return None
        out.append(element.value.evaluated_value)
    return out


def add_keyword(call: cst.Call, name: str, value: Any) -> cst.Call:
    """``call`` with ``name=value`` appended to its arguments, keeping the call's layout."""
    args = list(call.args)
    new_arg = cst.Arg(
        value=value,
        keyword=cst.Name(name),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    if args:
        last = args[-1]
        if isinstance(last.comma, cst.Comma):
            if len(args) > 1 and isinstance(args[-2].comma, cst.Comma):
                previous = args[-2].comma
            else:
                previous = cst.Comma(whitespace_after=call.whitespace_before_args)
            new_arg = new_arg.with_changes(comma=last.comma)
            args[-1] = last.with_changes(comma=previous)
        else:
            args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    args.append(new_arg)
    return call.with_changes(args=args)


def has_keyword(ctx: Any, call: cst.Call, *names: str) -> bool:
    return any(ctx.keyword(call, name) is not None for name in names) or any(a.star == "**" for a in call.args)


# ---------------------------------------------------------------------- the rule


class OnnxExportStaticShapes(Rule):
    """ONNX export whose dummy input has a literal batch dimension and no dynamic dimension declared.

    Finds `torch.onnx.export(model, args, f, ...)` (either exporter) with neither
    `dynamic_shapes=` nor `dynamic_axes=` (nor `**kwargs`), whose first example input is a tensor
    built in the file with a literal size (`torch.randn(1, 3, 224, 224)`, `torch.zeros((4, 16))`,
    directly or through a name assigned once), in a file with no word that announces a
    fixed-shape target (TensorRT / trtexec, TFLite, Edge TPU, OpenVINO, Core ML, NCNN, RKNN, Hailo,
    "static shape", "fixed batch"...).

    Why it breaks at run time: "By default the exported model will have the shapes of all input
    and output tensors set to exactly match those given in args" (torch.onnx.export docstring,
    torch 2.13). onnxruntime then rejects any other batch size; measured with torch 2.13 and
    onnxruntime 1.32: a Linear exported with a (4, 16) dummy fails on a (2, 16) input with
    "Got invalid dimensions for input: x ... Got: 2 Expected: 4". With the dynamo exporter (the
    default since torch 2.9) declare `dynamic_shapes={"x": {0: "batch"}}` (or a tuple with one
    dict per input), which gives an ONNX dimension named `batch`; `dynamic_axes` is deprecated
    there. With `dynamo=False`, `dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}`.

    How to fix: declare the batch (and sequence) dimensions dynamic. The suggested fix adds
    `dynamic_shapes=({0: "batch"}, ...)` (one dict per top-level input, positional, so no
    parameter name is needed) under the dynamo exporter when every input's shape is known, and
    `dynamic_axes` for dim 0 of every name of literal `input_names` / `output_names` under
    `dynamo=False`. It must be reviewed: a deployment that really feeds one batch size is fine.

    Off by default (the catalogue ranks it info, opt-in): on real export scripts most static
    exports are deliberate or harmless (single-image demos, fixed-size accelerator targets whose
    words this rule cannot always see), so the finding is a reminder, not a defect. Limits: only
    literal first dimensions are seen; inputs built elsewhere, `**kwargs` and exports whose
    example is a dict are left alone.
    """

    code = "DL304"
    name = "onnx-export-static-shapes"
    family = "conversion"
    message = (
        "ONNX export without dynamic_shapes (dynamic_axes with dynamo=False) fixes every dimension to the dummy "
        "input's shape; declare the batch (and sequence) dimensions dynamic if the deployed model sees other sizes"
    )
    fix = FixKind.UNSAFE
    default_enabled = False
    evidence = Evidence(
        study="(c) Openja et al., faults in deep-learning model converters (torch.onnx, tf2onnx)",
        category="Shape problems: static batch in the exported graph",
        links=(
            "https://github.com/pytorch/pytorch/issues/82330",
            "https://github.com/onnx/tensorflow-onnx/issues/1763",
            "https://docs.pytorch.org/docs/stable/onnx_export.html",
        ),
    )
    triggers = ("onnx",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            x = torch.randn(1, 3, 224, 224)
            torch.onnx.export(model, (x,), "m.onnx", dynamic_shapes={"x": {0: "batch"}})
            """), "dynamic batch declared (dynamo)"),
        Valid(dedent("""
            import torch
            x = torch.randn(1, 3, 224, 224)
            torch.onnx.export(model, x, "m.onnx", dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}} if args.dynamic else None)
            """), "dynamic_axes chosen by a flag"),
        Valid(dedent("""
            import torch
            # build a TensorRT engine with a fixed profile from this file
            x = torch.randn(1, 3, 640, 640)
            torch.onnx.export(model, x, "m.onnx")
            """), "a fixed-shape target is named"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, batch, "m.onnx")
            """), "the example comes from data: its shape is unknown"),
        Valid(dedent("""
            import torch
            x = torch.randn(1, 3, 224, 224)
            torch.onnx.export(model, (x,), "m.onnx", **export_kwargs)
            """), "**kwargs may carry dynamic shapes"),
        Valid(dedent("""
            import torch
            x = torch.randn(1, 3, 224, 224)
            ep = torch.export.export(model, (x,))
            """), "torch.export.export, not an ONNX export"),
        Valid(dedent("""
            import torch
            x = torch.randn(1, 3, 224, 224)
            torch.onnx.export(model, (x,), "m.onnx", dynamic_shapes=({0: torch.export.Dim("batch")},))
            """), "tuple form of dynamic_shapes"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                x = torch.randn(1, 3, 224, 224)
                torch.onnx.export(model, (x,), "m.onnx")
                """),
            fixed=dedent("""
                import torch
                x = torch.randn(1, 3, 224, 224)
                torch.onnx.export(model, (x,), "m.onnx", dynamic_shapes=({0: "batch"},))
                """),
            unsafe=True,
            note="dynamo exporter (default): positional dynamic_shapes added",
        ),
        Invalid(
            dedent("""
                import torch
                torch.onnx.export(model, torch.randn(1, 3, 224, 224), "m.onnx", dynamo=False,
                                  input_names=["x"], output_names=["y"])
                """),
            fixed=dedent("""
                import torch
                torch.onnx.export(model, torch.randn(1, 3, 224, 224), "m.onnx", dynamo=False,
                                  input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
                """),
            unsafe=True,
            note="legacy exporter: dynamic_axes for the named inputs and outputs",
        ),
        Invalid(
            dedent("""
                import torch
                dummy = torch.zeros((8, 16)).cuda()
                torch.onnx.export(net.eval(), dummy, path, dynamo=True, opset_version=20)
                """),
            fixed=dedent("""
                import torch
                dummy = torch.zeros((8, 16)).cuda()
                torch.onnx.export(net.eval(), dummy, path, dynamo=True, opset_version=20, dynamic_shapes=({0: "batch"},))
                """),
            unsafe=True,
            note="tuple size, .cuda() after the factory",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.onnx import export
                tokens = torch.randint(0, 1000, (1, 128))
                mask = torch.ones(1, 128)
                export(model, (tokens, mask), "m.onnx", dynamo=False)
                """),
            note="two inputs, legacy exporter without input_names: reported without a fix",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.kind != "onnx" or export.exporter is None:
            return
        if has_keyword(ctx, node, "dynamic_shapes", "dynamic_axes") or ctx.has_star_args(node):
            return
        inputs = example_inputs(ctx, export.example) if export.example is not None else None
        if not inputs:
            return
        first = literal_shape(ctx, inputs[0])
        if not first or first[0] is None:
            return
        if ctx.memo("dl304.static_words", lambda c: bool(STATIC_TARGET_WORDS.search(c.source))):
            return
        self.report(node, fix=self._fix(export, inputs))

    def _fix(self, export: Any, inputs: Sequence[Any]) -> Optional[Fix]:
        ctx = self.ctx
        node = export.node
        if export.exporter == "dynamo":
            if not all(literal_shape(ctx, i) for i in inputs):
                return None
            text = "(" + ", ".join('{0: "batch"}' for _ in inputs) + ("," if len(inputs) == 1 else "") + ")"
            new = add_keyword(node, "dynamic_shapes", cst.parse_expression(text))
            return Fix("Declare dim 0 of every input dynamic (dynamic_shapes)", [(node, new)], FixKind.UNSAFE)
        names_in = string_list(ctx.keyword(node, "input_names").value, ctx) if ctx.keyword(node, "input_names") else None
        out_kw = ctx.keyword(node, "output_names")
        names_out = string_list(out_kw.value, ctx) if out_kw is not None else []
        if not names_in or names_out is None or len(names_in) != len(inputs):
            return None
        entries = ", ".join(f'"{n}": {{0: "batch"}}' for n in names_in + names_out)
        new = add_keyword(node, "dynamic_axes", cst.parse_expression("{" + entries + "}"))
        return Fix("Declare dim 0 of every named input and output dynamic (dynamic_axes)", [(node, new)], FixKind.UNSAFE)
