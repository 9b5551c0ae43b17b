from __future__ import annotations

from typing import Any, Optional, Set

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._forward import exports_by_class, forward_facts, note_export


class MaskedInplaceAssignInExportedForward(Rule):
    """In-place masked / indexed writes in the forward of a module exported to ONNX (opt-in, informational).

    Finds, in the `forward` of a class defined in the file and passed to `torch.onnx.export`
    (either exporter) or `torch.onnx.dynamo_export` (and its one-level helpers): `t[mask] = v` /
    `t[idx] += v` where the index is a tensor, and `masked_fill_` / `index_put_` /
    `masked_scatter_` / `index_fill_` / `index_copy_` / `index_add_` / `scatter_*` calls on a tensor.

    Why: in-place index writes become Scatter / Where patterns, which were a frequent source of
    wrong or failing ONNX graphs in older torch releases (pytorch#34054 logical masks, #92540,
    #43283, #32960). In torch 2.13 both exporters reproduce boolean-mask assignment, `index_put`
    with accumulate, `masked_scatter_` and in-place writes to inputs correctly (measured with
    onnxruntime), so for a current or unknown target a finding is informational.

    Default off: the catalogue places this rule at info for torch 2.13 / unknown targets, and on
    real export code nearly every finding is such an info finding (correct with the current
    exporters) that users would dismiss; enable it when targeting an old torch.

    How to fix: `scores = scores.masked_fill(pad_mask, float("-inf"))` (out of place) or
    `torch.where(pad_mask, neg, scores)`. The suggested fix rewrites `t[m] = <number>` to
    `t = t.masked_fill(m, <number>)` when `m` is a comparison (a boolean mask); it is offered as a
    suggestion because other references to `t` no longer see the write.

    Limits: constant integer / slice indices are not reported; only names the code shows to be
    tensors count.
    """

    code = "DL309"
    name = "masked-inplace-assign-in-exported-forward"
    family = "conversion"
    message = (
        "in-place masked/indexed assignment in an exported forward was a frequent source of wrong ONNX graphs in "
        "older torch releases; prefer out-of-place masked_fill/torch.where"
    )
    fix = FixKind.UNSAFE
    default_enabled = False
    evidence = Evidence(
        study="(c) Jajal et al., interoperability failures of DL model converters (torch.onnx, tf2onnx)",
        category="Wrong model / crash: masked and indexed in-place writes",
        links=(
            "https://github.com/pytorch/pytorch/issues/34054",
            "https://github.com/pytorch/pytorch/issues/92540",
            "https://github.com/pytorch/pytorch/issues/43283",
            "https://github.com/pytorch/pytorch/issues/32960",
        ),
    )
    triggers = ("export",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, scores, pad_mask):
                    return scores.masked_fill(pad_mask, float("-inf"))
            torch.onnx.export(Net().eval(), (torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool)), "n.onnx")
            """), "out of place"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    y = x.clone()
                    y[:, 0] = 0
                    return y
            torch.onnx.export(Net().eval(), torch.randn(2, 3), "n.onnx")
            """), "a constant index"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    x[x < 0] = 0
                    return x
            traced = torch.jit.trace(Net().eval(), torch.randn(2, 3))
            """), "not an ONNX export"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    return torch.where(x < 0, torch.zeros_like(x), x)
            torch.onnx.export(Net().eval(), torch.randn(2, 3), "n.onnx")
            """), "torch.where"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x, i: int = 0):
                    out = x.clone()
                    out[i] = 1.0
                    return out
            torch.onnx.export(Net().eval(), torch.randn(2, 3), "n.onnx")
            """), "a Python integer index"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                class Net(torch.nn.Module):
                    def forward(self, scores, lengths):
                        pad_mask = scores == 0
                        scores[pad_mask] = -1e9
                        return scores
                torch.onnx.export(Net().eval(), (torch.randn(2, 3), torch.tensor([3, 2])), "n.onnx")
                """),
            fixed=dedent("""
                import torch
                class Net(torch.nn.Module):
                    def forward(self, scores, lengths):
                        pad_mask = scores == 0
                        scores = scores.masked_fill(pad_mask, -1e9)
                        return scores
                torch.onnx.export(Net().eval(), (torch.randn(2, 3), torch.tensor([3, 2])), "n.onnx")
                """),
            unsafe=True,
            note="the catalogue's Bad example",
        ),
        Invalid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x, mask):
                    x.masked_fill_(mask, 0.0)
                    return x
            torch.onnx.export(Net().eval(), (torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool)), "n.onnx",
                              dynamo=False)
            """), note="masked_fill_ on an input, legacy exporter"),
        Invalid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x, idx):
                    out = torch.zeros(4, 3)
                    out[idx] += x
                    return out
            torch.onnx.export(Net().eval(), (torch.randn(2, 3), torch.tensor([0, 2])), "n.onnx")
            """), note="an index tensor with accumulation"),
        Invalid(dedent("""
            import torch
            class Net(torch.nn.Module):
                def forward(self, x):
                    return self._clip(x)
                def _clip(self, h):
                    h = h.clone()
                    h.index_fill_(1, torch.tensor([0]), 0.0)
                    return h
            torch.onnx.dynamo_export(Net().eval(), torch.randn(2, 3))
            """), note="a helper method, dynamo_export"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        note_export(self.ctx, node)

    def leave_Module(self, node: cst.Module) -> None:
        done: Set[int] = set()
        for cls, found in exports_by_class(self.ctx):
            if not any(e.call.kind in ("onnx", "onnx-dynamo") for e in found):
                continue
            facts = forward_facts(self.ctx, cls)
            if facts is None:
                continue
            for fact in facts.facts:
                if fact.kind == "masked_write" and not fact.guarded and id(fact.node) not in done:
                    done.add(id(fact.node))
                    self.report(fact.node, fix=self._fix(fact))

    def _fix(self, fact: Any) -> Optional[Fix]:
        if fact.extra is None or not isinstance(fact.node, cst.Assign):
            return None
        target, index, value = fact.extra
        if not isinstance(target, cst.Name) or not isinstance(value, (cst.Integer, cst.Float, cst.UnaryOperation)):
            return None
        if isinstance(value, cst.UnaryOperation) and not isinstance(value.expression, (cst.Integer, cst.Float)):
            return None
        if not _boolean(self.ctx, index, fact.function):
            return None
        call = cst.Call(
            func=cst.Attribute(value=target, attr=cst.Name("masked_fill")),
            args=[cst.Arg(index, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), cst.Arg(value)],
        )
        new = fact.node.with_changes(targets=[cst.AssignTarget(target=cst.Name(target.value))], value=call)
        return Fix("Use the out-of-place masked_fill", [(fact.node, new)], FixKind.UNSAFE)


def _boolean(ctx: Any, index: Any, function: Any) -> bool:
    """A comparison, or a name assigned once in the function from a comparison."""
    if isinstance(index, cst.Comparison):
        return True
    if not isinstance(index, cst.Name):
        return False
    values = []
    todo = [function.body]
    while todo:
        node = todo.pop()
        if isinstance(node, cst.Assign):
            for t in node.targets:
                if isinstance(t.target, cst.Name) and t.target.value == index.value:
                    values.append(node.value)
        todo.extend(node.children)
    return len(values) == 1 and isinstance(values[0], cst.Comparison)
