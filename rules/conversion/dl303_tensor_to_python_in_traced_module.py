from __future__ import annotations

from typing import Any, Optional, Set

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._forward import (
    exports_by_class,
    forward_facts,
    legacy_semantics,
    note_export,
    shapes_dynamic,
)


class TensorToPythonInTracedModule(Rule):
    """A tensor value or size converted to a Python number inside an exported module's forward.

    Finds, in the `forward` of a class defined in the file and exported (and in the
    `self.<method>(...)` helpers and module-level functions forward calls with tensors, one level):

    - shape conversions, `int(x.size(k))`, `int(x.shape[k])`, `float(x.numel())`, `len(t)`,
      `[int(s) for s in x.size()]`, `x.data.size()`, when the export lets sizes vary: always for
      `torch.jit.trace`, with `dynamic_axes=` / `dynamic_shapes=` for `torch.onnx.export` and
      `torch.export.export` (a static export fixes every size anyway);
    - value conversions, `t.item()`, `t.tolist()`, `t.numpy()`, `int(t)`, `float(t)`, `bool(t)` of a
      tensor value, under `torch.jit.trace` and the legacy ONNX exporter (`dynamo=False`, or a target
      torch before 2.9), and under a `torch.onnx.export` call that passes `dynamic_axes=` without
      `dynamo=` when the target torch is unknown (the call is written for the legacy exporter, which
      every torch before 2.9 runs for it).

    Why it breaks: the TorchScript tracer records a Python number as a constant ("Converting a
    tensor to a Python integer might cause the trace to be incorrect"), so the exported model keeps
    the example's size or value for every input: measured with torch 2.13, `jit.trace` of
    `torch.zeros(int(x.size(0)))` returns 4 elements for a 7-row input, and the legacy export of a
    `sequence_mask` computing `int(lengths.max())` gives a (2, 5) mask where eager gives (2, 9).
    Under the dynamo exporter and `torch.export`, `int(x.size(k))` and `len(x)` specialise the
    dimension (the program then refuses other sizes: "Guard failed: x.size()[0] == 4"), while
    `.item()` stays a symbolic value and is not reported there.

    How to fix: keep sizes as `x.shape[...]` / `x.size(k)` expressions (`n = x.shape[0]`, not
    `len(x)`) and values as tensors (`max_len = lengths.max()`); the safe fix rewrites `len(t)` to
    `t.shape[0]` for a tensor `t`.

    Limits: conversions under `torch.jit.is_tracing()` / `torch.onnx.is_in_onnx_export()` /
    `self.training` guards and inside print / logging calls are not reported; value conversions
    inside a branch test are DL302's. Only names the code shows to be tensors count.
    """

    code = "DL303"
    name = "tensor-to-python-in-traced-module"
    family = "conversion"
    message = (
        "converting a tensor/shape to a Python value inside a traced/exported forward freezes it as a constant; "
        "keep it as a tensor/shape expression"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(c) Jajal et al., interoperability failures of DL model converters (torch.onnx, tf2onnx)",
        category="Shape problems / tracing issue: Python values frozen into the graph",
        links=(
            "https://github.com/idiap/coqui-ai-TTS/pull/390",
            "https://github.com/yakhyo/face-parsing/issues/7",
            "https://github.com/pytorch/pytorch/issues/39323",
            "https://github.com/pytorch/pytorch/issues/77410",
            "https://github.com/pytorch/pytorch/pull/55151",
        ),
    )
    triggers = ("trace", "export")
    frameworks = ("torch",)

    VALID = (
        Valid(
            dedent("""
                import torch
                def sequence_mask(lengths, max_len=None):
                    if max_len is None:
                        max_len = int(lengths.max())
                    return torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)
                class Reg(torch.nn.Module):
                    def forward(self, lengths):
                        return sequence_mask(lengths).float()
                torch.onnx.export(Reg().eval(), torch.tensor([5, 3]), "r.onnx", input_names=["l"],
                                  dynamic_axes={"l": {0: "b"}})
                """),
            note="the default exporter since torch 2.9 (dynamo) keeps int(t.max()) symbolic (measured, torch 2.13)",
        ),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            class Up(torch.nn.Module):
                def forward(self, x, y):
                    return F.interpolate(y, size=x.shape[-2:])
            torch.jit.trace(Up().eval(), (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 4, 4)))
            """), "sizes kept as shape expressions"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    n = int(x.size(0))
                    return x.view(n, -1)
            torch.onnx.export(Net().eval(), torch.randn(1, 3, 4), "m.onnx", dynamo=False)
            """), "a static export: every size is fixed anyway"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    k = int(x.max().item())
                    return x[:k]
            ep = torch.export.export(Net().eval(), (torch.randn(5),))
            """), ".item() stays symbolic under torch.export"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    if not torch.jit.is_tracing():
                        print("batch", len(x), x.mean().item())
                    return x * 2
            torch.jit.trace(Net().eval(), torch.randn(5, 2))
            """), "guarded by is_tracing, and logging only"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def __init__(self, layers: list):
                    super().__init__()
                    self.layers = layers
                def forward(self, x, steps: int = 3):
                    n = len(self.layers)
                    return x * float(steps) * n
            torch.jit.trace(Net([1]).eval(), torch.randn(5, 2))
            """), "Python values that are not tensors"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    n = int(x.size(0))
                    return x.view(n, -1)
            torch.jit.script(Net())
            """), "scripting keeps int() of a size dynamic"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                class Net(torch.nn.Module):
                    def forward(self, x):
                        b = len(x)
                        return x.reshape(b, -1)
                traced = torch.jit.trace(Net().eval(), torch.randn(4, 3, 2))
                """),
            fixed=dedent("""
                import torch
                class Net(torch.nn.Module):
                    def forward(self, x):
                        b = x.shape[0]
                        return x.reshape(b, -1)
                traced = torch.jit.trace(Net().eval(), torch.randn(4, 3, 2))
                """),
            note="len(t) under jit.trace: safe fix to t.shape[0]",
        ),
        Invalid(dedent("""
            import torch
            import torch.nn.functional as F
            class Head(torch.nn.Module):
                def forward(self, x, feat):
                    h, w = int(x.size(2)), int(x.size(3))
                    return F.interpolate(feat, size=(h, w))
            torch.onnx.export(Head().eval(), (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 4, 4)), "h.onnx",
                              dynamic_shapes={"x": {2: "h", 3: "w"}, "feat": {2: "fh", 3: "fw"}})
            """), count=2, note="the catalogue's Bad example, dynamo exporter with dynamic_shapes"),
        Invalid(dedent("""
            import torch
            def sequence_mask(lengths, max_len=None):
                if max_len is None:
                    max_len = int(lengths.max())
                return torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)
            class Reg(torch.nn.Module):
                def forward(self, lengths):
                    return sequence_mask(lengths).float()
            torch.onnx.export(Reg().eval(), torch.tensor([5, 3]), "r.onnx", input_names=["l"],
                              dynamic_axes={"l": {0: "b"}}, dynamo=False)
            """), note="a module-level helper: int() of a value under the legacy exporter"),
        Invalid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    sizes = [int(s) for s in x.size()[2:]]
                    k = x.sum().tolist()
                    return x.view(sizes[0], -1) * k
            torch.jit.trace(Net().eval(), torch.randn(1, 1, 4, 4))
            """), count=2, note="a size comprehension and a value under jit.trace"),
        Invalid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    scale = float(x.std())
                    return x / scale
            torch.onnx.export(Net().eval(), torch.randn(4), "n.onnx", dynamo=False)
            """), note="a value frozen by the legacy exporter even without dynamic axes"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        note_export(self.ctx, node)

    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        done: Set[int] = set()
        for cls, found in exports_by_class(ctx):
            values = any(legacy_semantics(ctx, e.call) for e in found)
            shapes = any(shapes_dynamic(ctx, e.call) for e in found)
            if not values and not shapes:
                continue
            facts = forward_facts(ctx, cls)
            if facts is None:
                continue
            for fact in facts.facts:
                if fact.guarded or id(fact.node) in done:
                    continue
                if (fact.kind == "value" and values) or (fact.kind == "shape" and shapes):
                    done.add(id(fact.node))
                    self.report(fact.node, fix=self._fix(fact) if fact.kind == "shape" else None)

    def _fix(self, fact: Any) -> Optional[Fix]:
        call = fact.statement
        if fact.detail != "len" or not isinstance(call, cst.Call):
            return None
        arg = call.args[0].value
        if not isinstance(arg, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
            return None
        new = cst.Subscript(
            value=cst.Attribute(value=arg, attr=cst.Name("shape")),
            slice=[cst.SubscriptElement(slice=cst.Index(value=cst.Integer("0")))],
        )
        return Fix("Use t.shape[0], which the tracer keeps dynamic", [(call, new)], FixKind.SAFE)
