from __future__ import annotations

from typing import Any, Iterator, List, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import export_call, exported_module, find_method
from dllint.rules.conversion._pins import version as pinned_version
from dllint.rules.conversion.dl304_onnx_export_static_shapes import (
    example_inputs,
    int_value,
    literal_shape,
    string_list,
)

#: torch.onnx.export (dynamo) keeps 0/1-sized dynamic dimensions dynamic from this release on
#: (it traces with ``backed_size_oblivious=True``, pytorch#155717; measured fixed in 2.13).
ONNX_FIXED_SINCE = (2, 8)

DIM_CLASSES = frozenset({"torch.export.Dim", "torch.export.dynamic_shapes.Dim"})


class DynamicDimWithSizeOneExample(Rule):
    """A dimension declared dynamic for torch.export while the example input has size 0 or 1 there.

    Finds `torch.export.export(m, args, dynamic_shapes=spec)` (also `export_for_training`), and
    `torch.onnx.export(m, args, ..., dynamic_shapes=spec)` / `dynamic_axes=` with the dynamo
    exporter when the target torch is older than 2.8, where `spec` marks a dimension dynamic
    (`Dim("batch", ...)`, a name assigned from one, `Dim.DYNAMIC`, `Dim.AUTO`; for the ONNX
    exporter also a string name) and the matching example input is a tensor built in the file
    whose literal size in that dimension is 0 or 1 (`torch.randn(1, 3, 224, 224)`). The spec is
    matched to the inputs positionally (tuple / list spec), by the single key of a one-input
    export, or by the parameter names of `forward` when the exported class is in the file; for
    `dynamic_axes` through literal `input_names`.

    Why it breaks: torch.export specialises dimensions whose example size is 0 or 1 (the
    "0/1 specialization" of symbolic shapes). Measured with torch 2.13: `torch.export.export`
    with `Dim("batch")` or `Dim("batch", min=1, max=16)` on a batch-1 example fails with
    "Constraints violated (batch)! ... You marked batch as dynamic but your code specialized it
    to be a constant (1)"; `Dim.DYNAMIC` fails with "export 0/1 specialized due to hint of 1";
    `Dim.AUTO` exports silently with the batch fixed to 1 (the program then fails on batch 3 with
    "Guard failed: x.size()[0] == 1"). `torch.onnx.export` before torch 2.8 refined the shapes
    from the suggested fix and silently wrote a batch-1 model (pytorch/pytorch#157621, torch
    2.7.1; the maintainer's answer: use an example of size >= 2; pytorch#148629). From the ONNX
    exporter's June 2025 change (pytorch#155717) it traces with `backed_size_oblivious=True`
    ("Support the dynamism with 0/1 input dim", torch/onnx/_internal/exporter/_capture_strategies.py)
    and the batch-1 example exports a dynamic batch (measured, torch 2.13), so newer ONNX
    exports are not reported.

    How to fix: build the example with size >= 2 in every dynamic dimension
    (`torch.randn(2, 3, 224, 224)`). No automatic fix (the example may be reused for a
    reference run).

    Limits: example tensors built elsewhere (data loaders, parameters) and specs built by code
    are not followed; torch.export with `Dim.STATIC` is not dynamic.
    """

    code = "DL316"
    name = "dynamic-dim-with-size-one-example"
    family = "conversion"
    message = (
        "dimension declared dynamic but the example input has size {n} there: torch.export specialises 0/1-sized "
        "dimensions (named Dim / Dim.DYNAMIC: export fails with 'Constraints violated'; Dim.AUTO and torch.onnx.export "
        "before 2.8: the size is silently fixed). Use an example of size >= 2 in every dynamic dimension"
    )
    evidence = Evidence(
        study="(c) Openja et al., faults in deep-learning model converters: Shape problems (static batch)",
        category="dynamic dimension specialised by a 0/1-sized example input",
        links=(
            "https://github.com/pytorch/pytorch/issues/157621",
            "https://github.com/pytorch/pytorch/issues/148629",
            "https://github.com/pytorch/pytorch/issues/133653",
            "https://github.com/pytorch/pytorch/pull/155717",
            "https://docs.pytorch.org/docs/stable/export.html",
        ),
    )
    triggers = ("dynamic_shapes", "dynamic_axes")
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            from torch.export import Dim
            x = torch.randn(2, 3, 224, 224)
            ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: Dim("batch")}})
            """), "example batch of 2"),
        Valid(dedent("""
            import torch
            from torch.export import Dim
            x = torch.randn(1, 3, 224, 224)
            ep = torch.export.export(model, (x,), dynamic_shapes={"x": {2: Dim("h"), 3: Dim("w")}})
            """), "the size-1 batch is not declared dynamic"),
        Valid(dedent("""
            import torch
            x = torch.randn(1, 3, 224, 224)
            torch.onnx.export(model, (x,), "m.onnx", dynamic_shapes={"x": {0: "batch"}})
            """), "the ONNX exporter of torch >= 2.8 keeps a 0/1 dimension dynamic"),
        Valid(dedent("""
            import torch
            x = torch.randn(1, 16)
            torch.onnx.export(model, (x,), "m.onnx", dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
            """), "the legacy exporter only renames the axis"),
        Valid(dedent("""
            import torch
            from torch.export import Dim
            ep = torch.export.export(model, (batch,), dynamic_shapes={"x": {0: Dim("batch")}})
            """), "example from data: size unknown"),
        Valid(dedent("""
            import torch
            from torch.export import Dim
            x = torch.randn(1, 8)
            ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: Dim.STATIC}})
            """), "declared static"),
        Valid(dedent("""
            import torch
            from torch.export import Dim
            a = torch.randn(1, 8)
            b = torch.randn(4, 8)
            ep = torch.export.export(model, (a, b), dynamic_shapes={"a": None, "b": {0: Dim("n")}})
            """), "several keys without a class to name them: not matched"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            from torch.export import Dim
            x = torch.randn(1, 3, 224, 224)
            ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: Dim("batch", min=1, max=16)}})
            """), note="named Dim on a batch-1 example: export fails"),
        Invalid(dedent("""
            import torch
            example = (torch.zeros(1, 128, dtype=torch.long), torch.ones(4, 128))
            ep = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim.AUTO}, None))
            """), note="Dim.AUTO, positional spec: silently static"),
        Invalid(dedent("""
            import torch
            import torch.nn as nn
            from torch.export import Dim
            class Net(nn.Module):
                def forward(self, tokens, mask):
                    return tokens * mask
            batch = Dim("batch")
            seq = Dim("seq")
            tokens = torch.randint(0, 100, (4, 1))
            mask = torch.ones(4, 1)
            ep = torch.export.export(Net(), (tokens, mask), dynamic_shapes={"tokens": {0: batch, 1: seq}, "mask": {0: batch, 1: seq}})
            """), count=2, note="sequence length 1 in both inputs, keys matched by forward's parameters"),
        Invalid(dedent("""
            import torch
            from torch.export import Dim, export
            batch = Dim("batch", max=64)
            x = torch.randn(1, 3, 224, 224)
            inputs = (x,)
            ep = export(model.eval(), inputs, dynamic_shapes={"images": {0: batch}})
            """), note="Dim through a name, example through names"),
        Invalid(dedent("""
            import torch
            ep = torch.export.export(model, (torch.randn(1, 10),), dynamic_shapes=[[torch.export.Dim.DYNAMIC, None]])
            """), note="per-dimension list form, Dim.DYNAMIC"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.example is None:
            return
        if export.kind == "export":
            onnx = False
        elif export.kind == "onnx" and export.exporter == "dynamo":
            target = pinned_version(ctx, "torch")
            if target is None or target >= ONNX_FIXED_SINCE:
                return
            onnx = True
        else:
            return
        inputs = example_inputs(ctx, export.example)
        if not inputs:
            return
        for position, axis, dim in self._declared(export, inputs, onnx):
            shape = literal_shape(ctx, inputs[position])
            if shape is None:
                continue
            if axis < 0:
                axis += len(shape)
            if 0 <= axis < len(shape) and shape[axis] in (0, 1):
                self.report(dim, self.message.replace("{n}", str(shape[axis])))

    # ------------------------------------------------------------------ spec -> (input, axis, node)

    def _declared(self, export: Any, inputs: List[Any], onnx: bool) -> Iterator[Tuple[int, int, Any]]:
        ctx = self.ctx
        node = export.node
        spec_kw = ctx.keyword(node, "dynamic_shapes")
        if spec_kw is not None:
            spec = _resolved(ctx, spec_kw.value)
            for position, per_input in self._per_input(export, spec, len(inputs)):
                yield from self._axes(per_input, position, onnx)
            return
        axes_kw = ctx.keyword(node, "dynamic_axes")
        if axes_kw is None or not onnx:
            return
        names_kw = ctx.keyword(node, "input_names")
        names = string_list(names_kw.value, ctx) if names_kw is not None else None
        spec = _resolved(ctx, axes_kw.value)
        if not names or not isinstance(spec, cst.Dict):
            return
        for element in spec.elements:
            if not isinstance(element, cst.DictElement) or not isinstance(element.key, cst.SimpleString):
                continue
            key = element.key.evaluated_value
            if key in names and names.index(key) < len(inputs):
                yield from self._axes(_resolved(ctx, element.value), names.index(key), True)

    def _per_input(self, export: Any, spec: Any, count: int) -> Iterator[Tuple[int, Any]]:
        ctx = self.ctx
        if isinstance(spec, (cst.Tuple, cst.List)):
            elements = spec.elements
            if len(elements) != count or any(isinstance(e, cst.StarredElement) for e in elements):
                return
            for position, element in enumerate(elements):
                yield position, _resolved(ctx, element.value)
            return
        if not isinstance(spec, cst.Dict):
            return
        entries = [e for e in spec.elements if isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString)]
        if len(entries) != len(spec.elements):
            return
        if count == 1 and len(entries) == 1:
            yield 0, _resolved(ctx, entries[0].value)
            return
        params = self._forward_params(export)
        if params is None:
            return
        for entry in entries:
            key = entry.key.evaluated_value
            if key in params and params.index(key) < count:
                yield params.index(key), _resolved(ctx, entry.value)

    def _forward_params(self, export: Any) -> Optional[List[str]]:
        module = exported_module(self.ctx, export)
        if module is None or module.cls is None:
            return None
        forward = find_method(self.ctx, module.cls, "forward")
        if forward is None:
            return None
        params = [p.name.value for p in forward.params.params]
        return params[1:] if params and params[0] == "self" else None

    def _axes(self, per_input: Any, position: int, onnx: bool) -> Iterator[Tuple[int, int, Any]]:
        ctx = self.ctx
        if isinstance(per_input, cst.Dict):
            for element in per_input.elements:
                if not isinstance(element, cst.DictElement):
                    continue
                axis = int_value(ctx, element.key)
                if axis is not None and _dynamic(ctx, element.value, onnx):
                    yield position, axis, element.value
        elif isinstance(per_input, (cst.List, cst.Tuple)):
            for axis, element in enumerate(per_input.elements):
                if isinstance(element, cst.StarredElement):
                    return
                if _dynamic(ctx, element.value, onnx):
                    yield position, axis, element.value


def _resolved(ctx: Any, node: Any) -> Any:
    if isinstance(node, cst.Name):
        value = ctx.assigned_value(node)
        if isinstance(value, (cst.Dict, cst.Tuple, cst.List)):
            return value
    return node


def _dynamic(ctx: Any, node: Any, onnx: bool) -> bool:
    """A Dim(...) call, Dim.DYNAMIC / Dim.AUTO, a name assigned once from a Dim call, or (ONNX
    exporter) a string name."""
    if onnx and isinstance(node, cst.SimpleString):
        return True
    if isinstance(node, cst.Name):
        value = ctx.assigned_value(node)
        if value is None:
            return False
        node = value
    if isinstance(node, cst.Call):
        return ctx.call_name(node) in DIM_CLASSES
    if isinstance(node, cst.Attribute) and node.attr.value in ("DYNAMIC", "AUTO"):
        return ctx.qualname(node.value) in DIM_CLASSES
    return False
