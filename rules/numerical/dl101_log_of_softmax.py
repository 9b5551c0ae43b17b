from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._logs import probability_kinds
from dllint.rules.numerical._values import (
    LOG_FUNCTIONS,
    SOFTMAX_FUNCTIONS,
    SOFTMAX_LAYERS,
    is_method_call,
    softmax_kind,
)


class LogOfSoftmax(Rule):
    """log() of a softmax() result.

    Finds `log` applied to a softmax output, directly or through a name assigned once:
    `torch.log(F.softmax(x, dim=-1))`, `x.softmax(-1).log()`, `torch.log(nn.Softmax(1)(x))`,
    `tf.math.log(tf.nn.softmax(x))` (and TF1's `tf.log`), `keras.ops.log(keras.ops.softmax(x))`,
    `np.log(scipy.special.softmax(x))`, and `p = F.softmax(x); torch.log(p)`.

    Why it is a bug: softmax underflows to exactly 0 for logits far below the maximum, so its
    log is `-inf`, and the loss or its gradient becomes NaN. `log_softmax` computes the same
    value as `x - logsumexp(x)` and never produces `-inf` from underflow. This is the most
    frequent numerical-bug shape in the GRIST benchmark (36 of 63 subjects). The PyTorch docs
    for `nn.Softmax` say to use `LogSoftmax` instead, as it is faster and numerically better.

    How to fix: call `log_softmax` with the same arguments (`F.log_softmax(x, dim=-1)`,
    `tf.nn.log_softmax(x, axis=-1)`, `x.log_softmax(-1)`, `nn.LogSoftmax(1)(x)`). When the loss
    is a cross-entropy, pass the logits to the framework's cross-entropy loss instead.

    Fix: safe when the softmax call is the direct argument of `log` (the rewrite keeps every
    argument and computes the same values); no automatic fix through a name, since the
    probabilities may be used elsewhere.

    Stays silent when the argument is guarded (`log(p + eps)`, `log(clamp(p, min=eps))`) or when
    the name was assigned more than once.
    """

    code = "DL101"
    name = "log-of-softmax"
    family = "numerical"
    message = "log(softmax(x)) can produce -inf/NaN when softmax underflows; use log_softmax(x, dim=...)"
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="unsafe log: log of a softmax output (36 of 63 GRIST subjects)",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.Softmax.html",
            "https://github.com/Jacob-yen/GRIST",
        ),
    )
    triggers = ("log(", "log2(", "log10(")

    VALID = (
        Valid(dedent("""
            import torch.nn.functional as F
            loss = -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()
            """), "already log_softmax"),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            probs = F.softmax(logits, dim=-1)
            loss = -(target * torch.log(probs + 1e-8)).sum(-1)
            """), "an eps keeps the argument away from 0"),
        Valid(dedent("""
            import torch
            probs = torch.softmax(logits, dim=-1)
            logp = torch.log(torch.clamp(probs, min=1e-12))
            """), "clamped before the log"),
        Valid(dedent("""
            import torch
            p = torch.softmax(a, dim=1)
            p = p.mean(0)
            ent = torch.log(p)
            """), "the name has two assignments; the reaching value is not a softmax"),
        Valid(dedent("""
            import torch
            if calibrated:
                p = torch.softmax(logits, dim=-1)
            else:
                p = counts / counts.sum()
            ent = torch.log(p)
            """), "one of the assignments is not a softmax"),
        Valid(dedent("""
            import numpy as np
            import math
            y = np.log(np.exp(x).sum())
            z = math.log(softmax_temperature)
            """), "log of something else"),
        Valid(dedent("""
            def f(softmax, x):
                import torch
                return torch.log(softmax(x))
            """), "a parameter named softmax is not the framework's softmax"),
        Valid(dedent("""
            import numpy as np
            probs = model.softmax(x)
            np.log(probs)
            """), "a .softmax() method on a file that does not use torch"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                loss = -(target * torch.log(F.softmax(logits, dim=-1))).sum(-1).mean()
                """),
            fixed=dedent("""
                import torch
                import torch.nn.functional as F
                loss = -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()
                """),
        ),
        Invalid(
            dedent("""
                import torch
                probs = torch.softmax(logits, dim=-1)
                loss = -(target * torch.log(probs)).sum(-1).mean()
                """),
            note="through a name assigned once: reported, no automatic fix",
        ),
        Invalid(
            dedent("""
                import torch
                lp = logits.softmax(-1).log()
                """),
            fixed=dedent("""
                import torch
                lp = logits.log_softmax(-1)
                """),
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                y = tf.nn.softmax(tf.matmul(x, W) + b)
                cross_entropy = -tf.reduce_sum(y_ * tf.log(y))
                """),
            note="TF1 spelling through a module-level name",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                out = tf.math.log(tf.nn.softmax(logits, axis=-1))
                """),
            fixed=dedent("""
                import tensorflow as tf
                out = tf.nn.log_softmax(logits, axis=-1)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                out = torch.log(nn.Softmax(dim=1)(h))
                """),
            fixed=dedent("""
                import torch
                from torch import nn
                out = nn.LogSoftmax(dim=1)(h)
                """),
        ),
        Invalid(
            dedent("""
                import numpy as np
                from scipy.special import softmax
                lp = np.log(softmax(scores, axis=1))
                """),
            fixed=dedent("""
                import numpy as np
                from scipy.special import softmax
                import scipy.special
                lp = scipy.special.log_softmax(scores, axis=1)
                """),
        ),
        Invalid(
            dedent("""
                import keras
                def head(x):
                    p = keras.ops.softmax(x)
                    return keras.ops.log(p)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(4, 3)
                        self.softmax = nn.Softmax(dim=1)
                    def forward(self, x):
                        return torch.log(self.softmax(self.fc(x)))
                """),
            note="a softmax layer kept as an attribute: reported, no automatic fix",
        ),
        Invalid(
            dedent("""
                import torch.nn.functional as F
                import torch
                def predict(x):
                    return F.softmax(x, dim=-1)
                def loss(x, y):
                    p = predict(x)
                    return -(y * torch.log(p)).sum()
                """),
            note="through a helper that returns a softmax",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                if training:
                    y = tf.nn.softmax(tf.matmul(h, W1))
                else:
                    y = tf.nn.softmax(tf.matmul(h, W2))
                loss = -tf.reduce_sum(y_ * tf.log(y))
                """),
            note="a name assigned twice, both times from a softmax",
        ),
        Invalid(
            dedent("""
                import torch
                def entropy(logits):
                    p = torch.softmax(logits, -1)
                    return -(p * p.log()).sum(-1)
                """),
            note="method form through a name",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = ctx.qualname(node.func)
        if name in LOG_FUNCTIONS:
            argument = ctx.argument(node, 0, "input" if name.startswith("torch") else "x")
            direct_only = len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star
            self._check(node, argument, direct_only)
        elif (
            name is None
            and is_method_call(node, "log")
            and not node.args
            and ctx.imports("torch")
        ):
            assert isinstance(node.func, cst.Attribute)
            self._check(node, node.func.value, True)

    def _check(self, log_call: cst.Call, argument: Any, fixable: bool) -> None:
        if argument is None:
            return
        ctx = self.ctx
        kind = softmax_kind(ctx, argument)
        if kind is not None:
            fix = self._fix(argument, kind) if fixable else None
            self.report(log_call, fix=(Fix("Use log_softmax", [(log_call, fix[0])], imports=fix[1]) if fix else None))
            return
        origin = ctx.resolve(argument)
        if origin is not argument and softmax_kind(ctx, origin) is not None:
            self.report(log_call)
        elif isinstance(argument, cst.Name) and probability_kinds(ctx, argument) == frozenset({"softmax"}):
            # a name assigned more than once, every time from a softmax
            self.report(log_call)

    def _fix(self, softmax_call: cst.Call, kind: str) -> Optional[tuple]:
        ctx = self.ctx
        func = softmax_call.func
        if kind == "method":
            assert isinstance(func, cst.Attribute)
            return softmax_call.with_changes(func=func.with_changes(attr=cst.Name("log_softmax"))), ()
        if kind == "layer":
            assert isinstance(func, cst.Call)
            target = SOFTMAX_LAYERS.get(ctx.qualname(func.func) or "")
            new_layer = self._callee(func.func, target)
            if new_layer is None:
                return None
            return softmax_call.with_changes(func=func.with_changes(func=new_layer[0])), new_layer[1]
        target = SOFTMAX_FUNCTIONS.get(ctx.qualname(func) or "")
        new_func = self._callee(func, target)
        if new_func is None:
            return None
        return softmax_call.with_changes(func=new_func[0]), new_func[1]

    def _callee(self, old: Any, target: Optional[str]) -> Optional[tuple]:
        """An expression naming ``target``: the old attribute with its last part renamed when
        that resolves, else a name this file's imports reach, else a full dotted name plus an
        import of its module."""
        if target is None:
            return None
        ctx = self.ctx
        last = target.rsplit(".", 1)[1]
        if isinstance(old, cst.Attribute):
            candidate = old.with_changes(attr=cst.Name(last))
            base = ctx.qualname(old.value)
            if base is not None and f"{base}.{last}" == target:
                return candidate, ()
        text = ctx.reference_to(target)
        if text is not None:
            return cst.parse_expression(text), ()
        module = target.rsplit(".", 1)[0]
        return cst.parse_expression(target), (module,)
