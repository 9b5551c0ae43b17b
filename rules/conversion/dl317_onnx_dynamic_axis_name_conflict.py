from __future__ import annotations

from typing import Any, Dict, List, Tuple

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import export_call
from dllint.rules.conversion.dl304_onnx_export_static_shapes import (
    example_inputs,
    int_value,
    literal_shape,
    string_list,
)


class OnnxDynamicAxisNameConflict(Rule):
    """dynamic_axes give one symbolic name to dimensions whose example sizes differ.

    Finds `torch.onnx.export(..., input_names=[...], dynamic_axes={...})` (either exporter)
    where the same symbolic name (`"height"`) is given to dimensions of two inputs whose example
    tensors, built in the file with literal sizes, differ in that dimension (`src` is
    `torch.randn(1, 3, 720, 1280)`, a recurrent state `torch.zeros(1, 1, 1, 1)`, both with
    `2: "height"`). Per-input axis dicts may be literals or names assigned once from one; the
    example tuple may expand `*states` of a tuple literal or `(t,) * 4`. Reported at the
    `dynamic_axes` entry of the input whose size disagrees with the first one.

    Why it breaks: in ONNX a named dimension stands for one value in a run: "two network inputs
    with the same named dimension parameter are considered equal" (TensorRT's
    sampleNamedDimensions; TensorRT checks at run time that they have the same value), and the
    ONNX Runtime maintainer's diagnosis of PeterL1n/RobustVideoMatting#238 ("In ONNX a named
    dimension must have a single value when the model is executed. Due to that the input/output
    shapes for the recurrent values are incorrect"). The export's own example already gives the
    name two values, so the declared model signature is wrong: runtimes and tools that trust the
    names (TensorRT profiles, shape-inference based optimisers, fixed-shape conversions that
    substitute one value per name) reject the model or size the other input wrongly. Measured
    (torch 2.13, onnxruntime 1.32 CPU): both exporters write the shared names unchanged, and the
    CPU provider runs such a model without checking them, so the defect surfaces only on the
    stricter runtimes.

    How to fix: give each independent dimension its own name (`r1_channels`, `r1_height`...), and
    use the same name only for dimensions that are always equal (`src` and `fgr`). No automatic
    fix.

    Limits: outputs have no example shape and are not compared; example tensors built elsewhere
    are not followed; `dynamic_shapes` specs are not checked.
    """

    code = "DL317"
    name = "onnx-dynamic-axis-name-conflict"
    family = "conversion"
    message = (
        "dynamic_axes give the same symbolic name to dimensions whose example sizes differ; in ONNX one name is one "
        "value per run, so the exported signature is wrong for strict runtimes (TensorRT). Use a separate name for "
        "each independent dimension"
    )
    evidence = Evidence(
        study="(c) Openja et al., faults in deep-learning model converters: Shape problems",
        category="dynamic_axes reuse one symbolic name for tensors of different sizes",
        links=(
            "https://github.com/PeterL1n/RobustVideoMatting/issues/238",
            "https://github.com/NVIDIA/TensorRT/tree/release/10.0/samples/sampleNamedDimensions",
        ),
    )
    triggers = ("dynamic_axes",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            src = torch.randn(1, 3, 720, 1280)
            r1 = torch.zeros(1, 16, 360, 640)
            torch.onnx.export(model, (src, r1), "m.onnx", input_names=["src", "r1i"], dynamo=False,
                              dynamic_axes={"src": {0: "batch", 2: "height", 3: "width"},
                                            "r1i": {0: "batch", 2: "r1_height", 3: "r1_width"}})
            """), "separate names"),
        Valid(dedent("""
            import torch
            ids = torch.ones(2, 128, dtype=torch.long)
            mask = torch.ones(2, 128, dtype=torch.long)
            axes = {0: "batch", 1: "sequence"}
            torch.onnx.export(model, (ids, mask), "m.onnx", input_names=["input_ids", "attention_mask"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes})
            """), "shared names on equal sizes"),
        Valid(dedent("""
            import torch
            torch.onnx.export(model, (a, b), "m.onnx", input_names=["a", "b"],
                              dynamic_axes={"a": {0: "n"}, "b": {0: "n"}})
            """), "example sizes unknown"),
        Valid(dedent("""
            import torch
            a = torch.randn(2, 4)
            b = torch.randn(3, 4)
            torch.onnx.export(model, (a, b), "m.onnx", input_names=["a", "b"],
                              dynamic_axes={"a": [0], "b": [0]})
            """), "list form: the exporter makes distinct names"),
        Valid(dedent("""
            import torch
            a = torch.randn(2, 4)
            b = torch.randn(3, 4)
            torch.onnx.export(model, (a, b), "m.onnx", input_names=names,
                              dynamic_axes={"a": {0: "n"}, "b": {0: "n"}})
            """), "input names not literal"),
        Valid(dedent("""
            import torch
            x = torch.randn(2, 4)
            torch.onnx.export(model, (x,), "m.onnx", input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
            """), "an output shares the name: no example shape to compare"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            frame = torch.randn(1, 3, 720, 1280)
            states = (torch.zeros([1, 1, 1, 1]),) * 4
            ratio = torch.tensor([0.25])
            image_axes = {0: "batch", 2: "height", 3: "width"}
            state_axes = {0: "batch", 1: "channels", 2: "height", 3: "width"}
            torch.onnx.export(
                net, (frame, *states, ratio), "rvm.onnx",
                input_names=["src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio"],
                output_names=["fgr", "pha", "r1o", "r2o", "r3o", "r4o"],
                dynamic_axes={"src": image_axes, "fgr": image_axes, "r1i": state_axes, "r2i": state_axes},
            )
            """), count=2, note="recurrent states share the frame's height/width names"),
        Invalid(dedent("""
            import torch
            image = torch.randn(2, 3, 224, 224)
            boxes = torch.randn(2, 10, 4)
            torch.onnx.export(model, (image, boxes), "det.onnx", dynamo=False, input_names=["image", "boxes"],
                              dynamic_axes={"image": {0: "batch", 2: "n"}, "boxes": {0: "batch", 1: "n"}})
            """), note="legacy exporter, one name for 224 and 10"),
        Invalid(dedent("""
            import torch
            enc = torch.randn(1, 50, 256)
            dec = torch.randint(0, 100, (1, 7))
            torch.onnx.export(model, (enc, dec), "s2s.onnx", input_names=["enc", "dec"],
                              dynamic_axes={"enc": {0: "batch", 1: "seq"}, "dec": {0: "batch", 1: "seq"}})
            """), note="source and target sequence lengths under one name"),
        Invalid(dedent("""
            import torch
            from torch.onnx import export
            a = torch.randn(4, 8)
            b = torch.randn(4, 16)
            export(model, (a, b), "m.onnx", input_names=["a", "b"], dynamic_axes={"a": {1: "d"}, "b": {1: "d"}})
            """), note="imported export function"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.kind != "onnx" or export.example is None:
            return
        axes_kw = ctx.keyword(node, "dynamic_axes")
        names_kw = ctx.keyword(node, "input_names")
        if axes_kw is None or names_kw is None:
            return
        names = string_list(names_kw.value, ctx)
        spec = axes_kw.value
        if isinstance(spec, cst.Name):
            spec = ctx.assigned_value(spec)
        inputs = example_inputs(ctx, export.example)
        if not names or not isinstance(spec, cst.Dict) or not inputs or len(names) > len(inputs):
            return
        seen: Dict[str, Tuple[str, int]] = {}
        reported: List[Any] = []
        for element in spec.elements:
            if not isinstance(element, cst.DictElement) or not isinstance(element.key, cst.SimpleString):
                continue
            key = element.key.evaluated_value
            if key not in names:
                continue
            shape = literal_shape(ctx, inputs[names.index(key)])
            per_input = element.value
            if isinstance(per_input, cst.Name):
                per_input = ctx.assigned_value(per_input)
            if shape is None or not isinstance(per_input, cst.Dict):
                continue
            for axis_element in per_input.elements:
                if not isinstance(axis_element, cst.DictElement) or not isinstance(axis_element.value, cst.SimpleString):
                    continue
                axis = int_value(ctx, axis_element.key)
                if axis is None:
                    continue
                if axis < 0:
                    axis += len(shape)
                if not 0 <= axis < len(shape) or shape[axis] is None:
                    continue
                symbol = axis_element.value.evaluated_value
                size = shape[axis]
                if symbol not in seen:
                    seen[symbol] = (key, size)
                elif seen[symbol][1] != size and element not in reported:
                    reported.append(element)
                    first, first_size = seen[symbol]
                    self.report(
                        element,
                        f"dynamic_axes give the name {symbol!r} to {first!r} (example size {first_size}) and to "
                        f"{key!r} (example size {size}); in ONNX one name is one value per run, so the exported "
                        "signature is wrong for strict runtimes (TensorRT). Use a separate name for each independent "
                        "dimension",
                    )
