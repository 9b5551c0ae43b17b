from __future__ import annotations

from typing import Optional

import libcst as cst

from dllint.rule import Evidence, FixKind, Fix, Invalid, Rule, Valid, dedent

#: Functional forms whose ``dim`` defaults to None (implicit, deprecated choice).  Position of
#: ``dim`` among the positional arguments.
FUNCTIONS = {
    "torch.nn.functional.softmax": ("softmax", 1),
    "torch.nn.functional.log_softmax": ("log_softmax", 1),
    "torch.nn.functional.softmin": ("softmin", 1),
}

#: Module classes whose ``dim`` defaults to None.  ``dim`` is their first argument.
MODULES = {
    f"torch.nn.{prefix}{name}": name
    for name in ("Softmax", "LogSoftmax", "Softmin")
    for prefix in ("", "modules.", "modules.activation.")
}


def _numpy_value(node: Optional[object]) -> bool:
    """``t.cpu().numpy()``-style arguments: an ndarray, on which the torch function fails loudly."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in ("numpy", "tolist"))


class SoftmaxImplicitDim(Rule):
    """softmax / log_softmax / softmin without `dim`: PyTorch picks a deprecated implicit axis.

    Finds `torch.nn.functional.softmax(x)`, `log_softmax(x)` and `softmin(x)` (any import or
    alias: `F.softmax`, `from torch.nn.functional import softmax`) called without a `dim`
    argument or with `dim=None`, and the modules `nn.Softmax()`, `nn.LogSoftmax()` and
    `nn.Softmin()` (also `torch.nn.modules.activation.Softmax`) built without `dim` or with
    `dim=None`.

    Why it is a bug: the signature is `softmax(input, dim=None, ...)`; with `dim=None` PyTorch
    chooses the axis from the input's rank (`_get_softmax_dim`): dim 0 for 0-, 1- and 3-D
    inputs, else dim 1, and emits the UserWarning "Implicit dimension choice for softmax has
    been deprecated. Change the call to include dim=X as an argument." Measured with torch
    2.13 (CPU): a (2, 3, 4) input is normalised over dim 0, i.e. over the *batch* for a
    (B, T, C) sequence output, and a (2, 3, 4, 5) input over dim 1; the (B, C) case happens to
    get dim 1.  The same code therefore gives right probabilities for 2-D logits and silently
    wrong ones as soon as a time or spatial axis is added.

    How to fix: pass the axis explicitly, usually `dim=-1` (the class axis of (B, C) and
    (B, T, C) logits) or `dim=1` for channel-first (B, C, H, W) maps.  The rule offers
    `dim=-1` as an unsafe suggestion only: for 3-D and 4-D inputs it changes which axis is
    normalised (the implicit 0 or 1 becomes the last), which is the point, but only the author
    knows the intended axis.

    Limits: `torch.softmax(x)` and `x.softmax()` have no default and raise a TypeError, so they
    are not reported; calls that pass `*args` / `**kwargs` are skipped (the dim may be in them);
    `nn.Softmax2d` (always the channel axis) and `F.gumbel_softmax` (dim=-1 default) are fine;
    an argument ending in `.numpy()` is an ndarray, on which the call raises (not silent).
    The rank of the input is not inferred: a finding on 2-D logits is the deprecation (the
    implicit choice happens to be dim 1 there), and becomes a wrong result once the input
    gains an axis.
    """

    code = "DL412"
    name = "softmax-implicit-dim"
    family = "silent"
    message = (
        "softmax without dim uses a deprecated implicit dimension (batch axis for 3-D inputs); "
        "pass dim explicitly"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(d) silent bugs in deep learning frameworks (Keras/TF), 'Wrong calculation' effect",
        category="PyTorch module semantics: implicit softmax dimension",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.functional.softmax.html",
            "https://pytorch.org/docs/stable/generated/torch.nn.Softmax.html",
            "https://github.com/pytorch/pytorch/blob/main/torch/nn/functional.py",
        ),
    )
    triggers = ("softmax", "Softmax", "softmin", "Softmin")
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch.nn.functional as F
            probs = F.softmax(logits, dim=-1)
            """), "explicit dim keyword"),
        Valid(dedent("""
            import torch.nn.functional as F
            logp = F.log_softmax(logits, 1)
            """), "explicit positional dim"),
        Valid(dedent("""
            import torch
            probs = torch.softmax(logits, -1)
            """), "torch.softmax needs dim anyway"),
        Valid(dedent("""
            import torch.nn as nn
            head = nn.Sequential(nn.Linear(64, 10), nn.Softmax(dim=1))
            """), "module with dim"),
        Valid(dedent("""
            import torch.nn as nn
            act = nn.Softmax2d()
            """), "Softmax2d always uses the channel axis"),
        Valid(dedent("""
            import torch.nn.functional as F
            y = F.gumbel_softmax(logits, tau=0.5)
            """), "gumbel_softmax defaults to dim=-1"),
        Valid(dedent("""
            import torch.nn.functional as F
            def act(x, **kw):
                return F.softmax(x, **kw)
            """), "dim may come through **kwargs"),
        Valid(dedent("""
            import numpy as np
            from scipy.special import softmax
            p = softmax(np.array([1.0, 2.0]))
            import torch
            """), "not the torch function"),
        Valid(dedent("""
            import torch
            p = logits.softmax(-1)
            """), "Tensor.softmax with a dim"),
        Valid(dedent("""
            import torch.nn.functional as F
            vals = F.softmax(model(xb).data.cpu().numpy())
            """), "an ndarray: the call raises (loud), nothing silent"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch.nn.functional as F
                probs = F.softmax(logits)
                """),
            fixed=dedent("""
                import torch.nn.functional as F
                probs = F.softmax(logits, dim=-1)
                """),
            unsafe=True,
            note="functional softmax without dim",
        ),
        Invalid(
            dedent("""
                import torch
                logp = torch.nn.functional.log_softmax(out, dim=None)
                """),
            fixed=dedent("""
                import torch
                logp = torch.nn.functional.log_softmax(out, dim=-1)
                """),
            unsafe=True,
            note="explicit dim=None is the implicit choice too",
        ),
        Invalid(
            dedent("""
                import torch.nn as nn
                head = nn.Sequential(nn.Linear(64, 10), nn.Softmax())
                """),
            fixed=dedent("""
                import torch.nn as nn
                head = nn.Sequential(nn.Linear(64, 10), nn.Softmax(dim=-1))
                """),
            unsafe=True,
            note="module without dim",
        ),
        Invalid(
            dedent("""
                from torch import nn
                from torch.nn.functional import softmin
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.out = nn.LogSoftmax()
                    def forward(self, x):
                        return self.out(x), softmin(x)
                """),
            fixed=dedent("""
                from torch import nn
                from torch.nn.functional import softmin
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.out = nn.LogSoftmax(dim=-1)
                    def forward(self, x):
                        return self.out(x), softmin(x, dim=-1)
                """),
            count=2,
            unsafe=True,
            note="LogSoftmax module and an imported softmin",
        ),
        Invalid(
            dedent("""
                import torch
                act = torch.nn.modules.activation.Softmin(None)
                """),
            fixed=dedent("""
                import torch
                act = torch.nn.modules.activation.Softmin(dim=-1)
                """),
            unsafe=True,
            note="positional None in the module spelling",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        if name in FUNCTIONS:
            position = FUNCTIONS[name][1]
        elif name in MODULES:
            position = 0
        else:
            return
        if self.ctx.has_star_args(node):
            return
        if name in FUNCTIONS and _numpy_value(self.ctx.argument(node, 0, "input")):
            return
        dim = self.ctx.argument(node, position, "dim")
        if dim is not None and not (isinstance(dim, cst.Name) and dim.value == "None"):
            return
        self.report(node, fix=self._fix(node, position))

    def _fix(self, node: cst.Call, position: int) -> Optional[Fix]:
        new_arg = cst.Arg(keyword=cst.Name("dim"), value=cst.UnaryOperation(cst.Minus(), cst.Integer("1")),
                          equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                                whitespace_after=cst.SimpleWhitespace("")))
        args = list(node.args)
        positional = [i for i, a in enumerate(args) if a.keyword is None]
        replaced = False
        for i, arg in enumerate(args):
            if (arg.keyword is not None and arg.keyword.value == "dim") or (
                arg.keyword is None and len(positional) > position and i == positional[position]
            ):
                args[i] = new_arg.with_changes(comma=arg.comma)
                replaced = True
        if not replaced:
            if args:
                last = args[-1]
                if last.comma == cst.MaybeSentinel.DEFAULT:
                    args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                else:
                    new_arg = new_arg.with_changes(comma=last.comma)
                    args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            args.append(new_arg)
        return Fix("pass dim=-1 (check that the last axis is the one to normalise)",
                   [(node, node.with_changes(args=args))], FixKind.UNSAFE)
