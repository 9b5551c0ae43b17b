from __future__ import annotations

from typing import Optional

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._losses import (
    LossModelSummaries,
    callee,
    loss_call,
    strip_parens,
    value_origin,
)
from dllint.rules.numerical._values import SOFTMAX_FUNCTIONS, SOFTMAX_LAYERS, softmax_kind

_WHAT = {
    "softmax": "softmax probabilities",
    "sigmoid": "sigmoid probabilities",
    "linear": "raw nn.Linear outputs (logits)",
}


class NllLossWithoutLogSoftmax(LossModelSummaries, Rule):
    """nll_loss / NLLLoss given probabilities or logits instead of log-probabilities.

    Finds `F.nll_loss(p, y)`, `nn.NLLLoss()(p, y)` and `criterion(p, y)` (a name or `self`
    attribute bound once to `nn.NLLLoss(...)`) where `p` is a softmax output (the log is
    missing), a sigmoid output, or the raw output of an `nn.Linear` layer.  The input is followed
    through names assigned once, `self` attributes, shape-only methods, one-return helpers, and
    models defined in the same file whose `forward` has a single return (or an `nn.Sequential`
    whose last layer is `nn.Softmax`, `nn.Sigmoid` or `nn.Linear`).

    Why it is a bug: NLLLoss only picks `-input[target]`; it expects log-probabilities.  Given
    softmax probabilities it minimises `-p[target]`, a bounded objective in [-1, 0] whose gradient
    vanishes as soon as the prediction is confidently wrong; given raw logits the loss is
    unbounded below.  Training runs without error and learns the wrong thing.  The PyTorch docs
    of `nn.Softmax`: "This module doesn't work directly with NLLLoss, which expects the Log to be
    computed between the Softmax and itself".

    How to fix: apply `log_softmax` (`F.log_softmax(out, dim=1)`, `nn.LogSoftmax(dim=1)`), or pass
    the logits to `F.cross_entropy`, which does both.

    Fix: safe when the input is a direct `softmax(...)` call: it is renamed to `log_softmax(...)`
    with the same arguments (`F.softmax` -> `F.log_softmax`, `x.softmax(1)` -> `x.log_softmax(1)`,
    `nn.Softmax(dim=1)(x)` -> `nn.LogSoftmax(dim=1)(x)`).  No automatic fix otherwise.

    Stays silent on any log-rooted input (`log_softmax`, `torch.log(p + eps)`, `p.log()`,
    `logsigmoid`), on inputs whose producer is unknown (a parameter, a model from another file,
    a name assigned twice), and on models whose `forward` has several returns.
    """

    code = "DL111"
    name = "nll-loss-without-log-softmax"
    family = "numerical"
    message = "nll_loss expects log-probabilities; apply log_softmax (or use cross_entropy on logits)"
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs",
        category="NLLLoss on probabilities or logits",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.Softmax.html",
            "https://pytorch.org/docs/stable/generated/torch.nn.NLLLoss.html",
            "https://github.com/mjc92/gettothepoint/issues/8",
        ),
    )
    triggers = ("nll_loss", "NLLLoss")

    VALID = (
        Valid(dedent("""
            import torch.nn.functional as F
            loss = F.nll_loss(F.log_softmax(out, dim=1), y)
            """), "log_softmax"),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            p = F.softmax(out, dim=1)
            loss = F.nll_loss(torch.log(p + 1e-8), y)
            """), "a log of the probabilities"),
        Valid(dedent("""
            import torch.nn.functional as F
            from torch import nn
            class Net(nn.Module):
                def forward(self, x):
                    x = self.fc2(x)
                    return F.log_softmax(x, dim=1)
            model = Net()
            loss = F.nll_loss(model(x), y)
            """), "the model ends in log_softmax"),
        Valid(dedent("""
            import torch.nn.functional as F
            def train(model, data, target):
                output = model(data)
                return F.nll_loss(output, target)
            """), "model is a parameter: its output is unknown"),
        Valid(dedent("""
            from torch import nn
            model = nn.Sequential(nn.Linear(8, 3), nn.LogSoftmax(dim=1))
            loss = nn.NLLLoss()(model(x), y)
            """), "an nn.Sequential ending in LogSoftmax"),
        Valid(dedent("""
            import torch.nn.functional as F
            probs = F.softmax(out, dim=1)
            loss = F.nll_loss(probs.log(), y)
            """), "method log"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch.nn.functional as F
                loss = F.nll_loss(F.softmax(out, dim=1), y)
                """),
            fixed=dedent("""
                import torch.nn.functional as F
                loss = F.nll_loss(F.log_softmax(out, dim=1), y)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                criterion = nn.NLLLoss()
                loss = criterion(nn.Softmax(dim=1)(h), y)
                """),
            fixed=dedent("""
                import torch
                from torch import nn
                criterion = nn.NLLLoss()
                loss = criterion(nn.LogSoftmax(dim=1)(h), y)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                loss = F.nll_loss(out.softmax(-1).view(-1, 10), y)
                """),
            note="through a shape method: reported, no fix",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc1 = nn.Linear(784, 128)
                        self.fc2 = nn.Linear(128, 10)
                    def forward(self, x):
                        x = torch.relu(self.fc1(x))
                        x = self.fc2(x)
                        return x
                model = Net().to(device)
                criterion = nn.NLLLoss()
                loss = criterion(model(x), y)
                """),
            note="a model returning raw Linear logits",
        ),
        Invalid(
            dedent("""
                import torch
                loss = torch.nn.functional.nll_loss(torch.softmax(logits, 1), y, reduction="sum")
                """),
            fixed=dedent("""
                import torch
                loss = torch.nn.functional.nll_loss(torch.log_softmax(logits, 1), y, reduction="sum")
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class Model(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.out = nn.Sequential(nn.Linear(16, 4), nn.Softmax(dim=1))
                        self.loss_fn = nn.NLLLoss()
                    def forward(self, x, y):
                        p = self.out(x)
                        return self.loss_fn(p, y)
                """),
            note="an nn.Sequential attribute ending in Softmax",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        loss = loss_call(ctx, node)
        if loss is None or loss.family != "nll" or loss.prediction is None:
            return
        origin = value_origin(ctx, loss.prediction, self.summaries)
        if origin is None or origin.kind not in _WHAT:
            return
        fix = self._fix(loss.prediction) if origin.direct and origin.kind == "softmax" else None
        self.report(node, f"{self.message} (its input here is {_WHAT[origin.kind]})", fix=fix)

    def _fix(self, prediction: cst.BaseExpression) -> Optional[Fix]:
        ctx = self.ctx
        call = strip_parens(prediction)
        kind = softmax_kind(ctx, call)
        if not isinstance(call, cst.Call) or kind is None:
            return None
        func = call.func
        imports: tuple = ()
        if kind == "method" and isinstance(func, cst.Attribute):
            new = prediction.with_changes(func=func.with_changes(attr=cst.Name("log_softmax")))
        elif kind == "function":
            target = SOFTMAX_FUNCTIONS.get(ctx.qualname(func) or "")
            if target is None or not target.startswith("torch"):
                return None
            new_func, imports = callee(ctx, func, target)
            new = prediction.with_changes(func=new_func)
        elif kind == "layer" and isinstance(func, cst.Call):
            target = SOFTMAX_LAYERS.get(ctx.qualname(func.func) or "")
            if target is None:
                return None
            new_cls, imports = callee(ctx, func.func, target)
            new = prediction.with_changes(func=func.with_changes(func=new_cls))
        else:
            return None
        return Fix("Use log_softmax", [(prediction, new)], imports=imports)
