from __future__ import annotations

from typing import Set

import libcst as cst

from dllint.rule import Evidence, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._forward import exports_by_class, forward_facts, note_export


class DataDependentControlFlowInTracedModule(Rule):
    """An `if` / `while` / ternary / `for` in an exported module's forward that depends on tensor values.

    Finds, in the `forward` of a class defined in the file and passed to `torch.jit.trace`,
    `torch.onnx.export` (either exporter) or `torch.export.export` (and in the `self.<method>(...)`
    helpers and module-level functions that forward calls with tensors, one level), a branch whose
    test reads tensor VALUES: `if x.abs().max() > 1`, `while (x > 0).any()`, `y if t.sum() else z`,
    `if t.item() > 0`, `if bool(t)`, `if torch.equal(a, b)`, and `for` loops whose count depends on
    values (`range(int(x.max()))`, iteration over `torch.nonzero(x)` / `x.unique()`).

    Why it breaks: "Tracing only correctly records functions and modules which are not data
    dependent (e.g., do not have conditionals on data in tensors)" (torch.jit.trace docs).
    `torch.jit.trace` and the legacy ONNX exporter (`dynamo=False`) record the branch the example
    input took and run it for every input, with only a TracerWarning (measured with torch 2.13:
    traced 8.0 where eager gives 2.0); the dynamo exporter (the default from torch 2.9) and
    `torch.export.export` refuse the branch at export time (`GuardOnDataDependentSymNode`).

    How to fix: write it branch-free (`scale = torch.clamp(x.abs().max(), min=1.0)`), with
    `torch.where(...)`, or with `torch.cond(pred, true_fn, false_fn, (x,))`.

    Limits: tests on shapes, ranks (`x.dim()`, `x.shape[0] > 1`), `None` checks, constructor
    configuration (`self.use_bias`) and `self.training` are not data-dependent and stay silent, as
    does everything under `self.training`, `torch.jit.is_tracing()` or
    `torch.onnx.is_in_onnx_export()` guards. Only classes defined in the exporting file are read;
    submodules' own forwards are not followed. `torch.jit.script` compiles control flow and is not
    reported.
    """

    code = "DL302"
    name = "data-dependent-control-flow-in-traced-module"
    family = "conversion"
    message = (
        "data-dependent control flow in a traced/exported forward: torch.jit.trace and the legacy ONNX exporter "
        "specialise it to the example input (the same branch for every input), the dynamo exporter and "
        "torch.export refuse it; use branch-free code, torch.where or torch.cond"
    )
    fix = FixKind.NONE
    evidence = Evidence(
        study="(c) Jajal et al., interoperability failures of DL model converters (torch.onnx, tf2onnx)",
        category="Algorithmic error: tracing issue (wrong model that converts successfully)",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.jit.trace.html",
            "https://pytorch.org/docs/stable/cond.html",
            "https://discuss.pytorch.org/t/110290",
        ),
    )
    triggers = ("trace", "export")
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    scale = torch.clamp(x.abs().max(), min=1.0)
                    return x / scale
            torch.jit.trace(Net().eval(), torch.randn(2, 3))
            """), "the branch-free rewrite"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x, mask=None):
                    if mask is not None:
                        x = x * mask
                    if x.dim() == 3:
                        x = x.flatten(1)
                    if x.shape[0] > 1:
                        x = x[:1]
                    return x
            torch.onnx.export(Net().eval(), torch.randn(2, 3), "m.onnx")
            """), "None, rank and shape tests"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def __init__(self, normalize=True):
                    super().__init__()
                    self.normalize = normalize
                def forward(self, x):
                    if self.normalize and self.training:
                        x = x / x.abs().max()
                    return x
            torch.jit.trace(Net().eval(), torch.randn(2, 3))
            """), "configuration and a self.training guard"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    if not torch.jit.is_tracing():
                        if x.sum() > 0:
                            x = -x
                    return x
            torch.jit.trace(Net().eval(), torch.randn(2, 3))
            """), "only when not tracing"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    if x.sum() > 0:
                        x = -x
                    return x
            model = Net()
            torch.jit.script(model)
            """), "scripting keeps control flow"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    if x.sum() > 0:
                        x = -x
                    return x
            y = Net()(torch.randn(2))
            """), "never exported"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x, steps: int = 2):
                    for _ in range(steps):
                        x = x * 2
                    return x
            torch.export.export(Net().eval(), (torch.randn(2),))
            """), "a loop over a Python argument"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = torch.nn.Linear(3, 3)
                def forward(self, x):
                    if x.abs().max() > 1:
                        x = x / x.abs().max()
                    return self.net(x)
            model = Net().eval()
            traced = torch.jit.trace(model, torch.randn(2, 3))
            """), note="the catalogue's Bad example under jit.trace"),
        Invalid(dedent("""
            import torch
            class Gate(torch.nn.Module):
                def forward(self, x):
                    y = x * 2
                    return y if (y == 0).all() else y + 1
            torch.onnx.export(Gate().eval(), torch.randn(4), "gate.onnx", dynamo=False)
            """), note="ternary, legacy exporter"),
        Invalid(dedent("""
            import torch
            class Loop(torch.nn.Module):
                def forward(self, x):
                    while x.norm() > 1:
                        x = x / 2
                    for i in range(int(x.max())):
                        x = x + i
                    return x
            torch.onnx.export(Loop().eval(), (torch.randn(4),), "loop.onnx")
            """), count=2, note="while and a value-dependent for, dynamo exporter (an export-time error)"),
        Invalid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    return self._pick(x)
                def _pick(self, h):
                    if h.mean().item() > 0:
                        return h
                    return -h
            ep = torch.export.export(Net().eval(), (torch.randn(4),))
            """), note="a self helper called from forward, torch.export"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        note_export(self.ctx, node)

    def leave_Module(self, node: cst.Module) -> None:
        done: Set[int] = set()
        for cls, _exports in exports_by_class(self.ctx):
            facts = forward_facts(self.ctx, cls)
            if facts is None:
                continue
            for fact in facts.facts:
                if fact.kind == "branch" and not fact.guarded and id(fact.node) not in done:
                    done.add(id(fact.node))
                    self.report(fact.node)
