from __future__ import annotations

from typing import Any, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._logs import (
    LOG_SIGMOID_LAYER_OF,
    LOG_SIGMOID_OF,
    framework_of,
    is_sigmoid_output,
    log_call_argument,
    one_minus,
    one_minus_sigmoid,
    strip,
)
from dllint.rules.numerical._values import is_method_call


class LogOfSigmoid(Rule):
    """log() of a sigmoid() result, or of 1 - sigmoid().

    Finds `log(sigmoid(z))` and `log(1 - sigmoid(z))`, directly or through names:
    `torch.log(torch.sigmoid(z))`, `torch.log(1 - torch.sigmoid(z))`, `z.sigmoid().log()`,
    `(1 - p).log()`, `tf.math.log(tf.nn.sigmoid(z))` and TF1's `tf.log(1 - y_)` with
    `y_ = tf.nn.sigmoid(...)`, `keras.ops.log`, `np.log(scipy.special.expit(z))`, and a sigmoid
    spelled as a layer (`nn.Sigmoid()(z)`, `model(x)` with `model = nn.Sequential(..., nn.Sigmoid())`,
    Keras `Dense(1, activation="sigmoid")(h)`) or by hand (`1 / (1 + torch.exp(-z))`).  Views
    of the output count (`p[0]`, `p.detach()`).

    Why it is a bug: in float32, `sigmoid(z)` rounds to exactly 1 from z ≈ 17 on, so
    `log(1 - sigmoid(z))` is `-inf`; it underflows to exactly 0 below z ≈ -88.7 (denormals take
    it to about -104), where `log(sigmoid(z))` is `-inf`.  The loss becomes inf and its gradient
    NaN.  A variant: `log(1e-10 + 1 - p)` adds the eps to 1 first, and `1e-10 + 1` is exactly 1
    in float32, so the eps protects nothing (the GRIST VAE subjects).  The PyTorch docs for
    `BCEWithLogitsLoss` say it is more numerically stable than a sigmoid followed by a log.

    How to fix: `F.logsigmoid(z)` for `log(sigmoid(z))` and `F.logsigmoid(-z)` for
    `log(1 - sigmoid(z))` (`tf.math.log_sigmoid`, `keras.ops.log_sigmoid`,
    `scipy.special.log_expit`); for a binary cross-entropy, pass the logits to
    `F.binary_cross_entropy_with_logits` / `tf.nn.sigmoid_cross_entropy_with_logits`.

    Fix: safe when the sigmoid call is the direct argument (`torch.log(torch.sigmoid(z))`,
    `torch.log(1 - torch.sigmoid(z))`, `z.sigmoid().log()`, `nn.Sigmoid()(z)`) and the log and
    the sigmoid come from the same framework: the rewrite computes the same values.  No fix
    through a name (the probabilities may be used elsewhere) or for the lost-eps form.

    Which rule reports what: DL102 reports the `log` call; a hand-written binary cross-entropy
    around it (`y*log(p) + (1-y)*log(1-p)`) is also reported by DL103, at the reduction or the
    sum (another node, usually the same line), because replacing the whole loss is the better
    fix.

    Stays silent when the argument is guarded (`log(p + eps)`, `log(1 - p + eps)`,
    `log(clamp(p, eps, 1 - eps))`), when any reaching assignment of the name is not a sigmoid,
    or when the name is a parameter.
    """

    code = "DL102"
    name = "log-of-sigmoid"
    family = "numerical"
    message = (
        "log(sigmoid(z)) and log(1 - sigmoid(z)) become -inf once sigmoid saturates (1 - sigmoid(z) from "
        "z ≈ 17 in float32); use logsigmoid(z) (and logsigmoid(-z) for log(1-sigmoid(z)))"
    )
    EPS_LOST = (
        "log(eps + 1 - sigmoid(z)): eps + 1 rounds to exactly 1, so this is log(1 - sigmoid(z)), -inf once "
        "sigmoid saturates (z ≈ 17 in float32); use logsigmoid(-z), or add eps after the subtraction"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="unsafe log: log of a sigmoid output (13 of 63 GRIST subjects)",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html",
            "https://pytorch.org/docs/stable/generated/torch.nn.functional.logsigmoid.html",
            "https://github.com/Jacob-yen/GRIST",
        ),
    )
    triggers = ("log(", "log2(", "log10(")

    VALID = (
        Valid(dedent("""
            import torch.nn.functional as F
            loss = -(x * F.logsigmoid(z) + (1 - x) * F.logsigmoid(-z)).sum()
            """), "already logsigmoid"),
        Valid(dedent("""
            import torch
            p = torch.sigmoid(z)
            loss = -(y * torch.log(p + 1e-6) + (1 - y) * torch.log(1 - p + 1e-6)).mean()
            """), "eps added after the subtraction keeps both arguments away from 0"),
        Valid(dedent("""
            import tensorflow as tf
            p = tf.clip_by_value(tf.nn.sigmoid(z), 1e-6, 1 - 1e-6)
            loss = -tf.reduce_sum(y * tf.log(p) + (1 - y) * tf.log(1 - p))
            """), "clipped before the log (GRIST ID_36 fix)"),
        Valid(dedent("""
            import torch
            def f(prob, y):
                return torch.log(prob) - torch.log(1 - prob)
            """), "a parameter: its origin is unknown"),
        Valid(dedent("""
            import torch
            p = torch.sigmoid(z)
            p = torch.clamp(p, 1e-5, 1 - 1e-5)
            odds = torch.log(p) - torch.log(1 - p)
            """), "the last assignment (straight-line) is a clamp"),
        Valid(dedent("""
            import torch
            p = torch.sigmoid(z)
            if smooth:
                p = p * 0.9 + 0.05
            q = torch.log(p)
            """), "one reaching assignment is not a sigmoid"),
        Valid(dedent("""
            import torch
            p = torch.softmax(z, -1)
            q = torch.log(1 - p)
            """), "1 - softmax is not this rule's shape"),
        Valid(dedent("""
            import numpy as np
            p = 1 / (1 + np.exp(-z))
            q = np.log(p + 1e-12)
            """), "a hand-written sigmoid with an eps"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                recon = -(x * torch.log(torch.sigmoid(z)) + (1 - x) * torch.log(1 - torch.sigmoid(z))).sum()
                """),
            fixed=dedent("""
                import torch
                import torch.nn.functional as F
                recon = -(x * F.logsigmoid(z) + (1 - x) * F.logsigmoid(-z)).sum()
                """),
            count=2,
        ),
        Invalid(
            dedent("""
                import torch
                a = z.sigmoid().log()
                b = (1 - (h @ w + b).sigmoid()).log()
                """),
            fixed=dedent("""
                import torch
                a = torch.nn.functional.logsigmoid(z)
                b = torch.nn.functional.logsigmoid(-(h @ w + b))
                """),
            count=2,
            note="method form; no F import, so the full name through torch",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                h1 = tf.nn.sigmoid(tf.matmul(x, W_h1))
                y_ = tf.nn.sigmoid(tf.matmul(h1, W_out))
                cross_entropy = tf.reduce_sum(
                    - y * tf.log(y_) - (1 - y)
                    * tf.log(1 - y_), 1)
                """),
            count=2,
            note="GRIST ID_9: TF1 spelling through a name; reported, no automatic fix",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                out = tf.math.log(1 - tf.sigmoid(logits))
                """),
            fixed=dedent("""
                import tensorflow as tf
                out = tf.math.log_sigmoid(-logits)
                """),
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                x_reconstr_mean = tf.nn.sigmoid(tf.add(tf.matmul(h, w), b))
                loss = -tf.reduce_sum(x * tf.log(1e-10 + x_reconstr_mean) + (1 - x) * tf.log(1e-10 + 1 - x_reconstr_mean), 1)
                """),
            note="GRIST ID_36: the eps is added to 1 and lost; the first log is guarded",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                linear = nn.Linear(2, 1)
                sigmoid = nn.Sigmoid()
                model = nn.Sequential(linear, sigmoid)
                hypothesis = model(X)
                cost = -(Y * torch.log(hypothesis) + (1 - Y) * torch.log(1 - hypothesis)).mean()
                """),
            count=2,
            note="GRIST ID_37: a Sequential that ends in Sigmoid",
        ),
        Invalid(
            dedent("""
                import torch
                hypothesis = 1 / (1 + torch.exp(-(x_train.matmul(W) + b)))
                hypothesis = torch.sigmoid(x_train.matmul(W) + b)
                single = -(y[0] * torch.log(hypothesis[0])) + (1 - y[0]) * torch.log(1 - hypothesis[0])
                """),
            count=2,
            note="GRIST ID_33: two assignments, both sigmoids; an element of the output",
        ),
        Invalid(
            dedent("""
                import keras
                p = keras.ops.log(keras.ops.sigmoid(x))
                """),
            fixed=dedent("""
                import keras
                p = keras.ops.log_sigmoid(x)
                """),
        ),
        Invalid(
            dedent("""
                import numpy as np
                from scipy.special import expit
                lp = np.log(1.0 - expit(scores))
                """),
            fixed=dedent("""
                import numpy as np
                from scipy.special import expit
                import scipy.special
                lp = scipy.special.log_expit(-scores)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                out = torch.log(nn.Sigmoid()(h))
                """),
            fixed=dedent("""
                import torch
                from torch import nn
                out = nn.LogSigmoid()(h)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                def loss(pred, y):
                    pred = torch.sigmoid(pred)
                    return -(y * pred.log() + (1 - y) * (1 - pred).log()).mean()
                """),
            count=2,
            note="a parameter rebound to its sigmoid in straight-line code",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        found = log_call_argument(self.ctx, node)
        if found is None:
            return
        argument, log_name = found
        fixable = log_name == "method" or (
            len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star
        )
        numpy_like = framework_of(log_name) in ("numpy", "jax")
        ctx = self.ctx
        shape = one_minus_sigmoid(ctx, argument, numpy_like)
        if shape is not None:
            sigmoid, eps_lost = shape
            direct = one_minus(argument, numpy_like)
            fix = None
            if fixable and not eps_lost and direct is not None and direct[0] is sigmoid:
                fix = self._fix(node, log_name, sigmoid, negate=True)
            self.report(node, message=self.EPS_LOST if eps_lost else None, fix=fix)
            return
        if is_sigmoid_output(ctx, argument):
            fix = self._fix(node, log_name, strip(argument), negate=False) if fixable else None
            self.report(node, fix=fix)

    # ------------------------------------------------------------------ fixes

    def _fix(self, log_call: cst.Call, log_name: str, sigmoid: Any, negate: bool) -> Optional[Fix]:
        ctx = self.ctx
        sigmoid = strip(sigmoid)
        if not isinstance(sigmoid, cst.Call):
            return None
        log_framework = "torch" if log_name == "method" else framework_of(log_name)
        new: Optional[Tuple[Any, Tuple[str, ...]]] = None
        name = ctx.qualname(sigmoid.func)
        if name in LOG_SIGMOID_OF:
            target = LOG_SIGMOID_OF[name]
            if target is None or framework_of(name) != log_framework:
                return None
            value = self._single_argument(sigmoid)
            if value is None:
                return None
            callee = self._callee(target)
            new = (cst.Call(func=callee[0], args=[cst.Arg(self._maybe_negate(value, negate))]), callee[1])
        elif name is None and is_method_call(sigmoid, "sigmoid") and not sigmoid.args and log_framework == "torch":
            callee = self._callee("torch.nn.functional.logsigmoid")
            value = sigmoid.func.value
            new = (cst.Call(func=callee[0], args=[cst.Arg(self._maybe_negate(value, negate))]), callee[1])
        elif isinstance(sigmoid.func, cst.Call) and log_framework == "torch":
            layer = sigmoid.func
            target = LOG_SIGMOID_LAYER_OF.get(ctx.qualname(layer.func) or "")
            value = self._single_argument(sigmoid)
            if target is None or value is None or layer.args:
                return None
            callee = self._callee(target)
            new = (
                cst.Call(func=layer.with_changes(func=callee[0]), args=[cst.Arg(self._maybe_negate(value, negate))]),
                callee[1],
            )
        if new is None:
            return None
        replacement = new[0].with_changes(lpar=log_call.lpar, rpar=log_call.rpar)
        return Fix("Use logsigmoid", [(log_call, replacement)], imports=new[1])

    @staticmethod
    def _single_argument(call: cst.Call) -> Optional[Any]:
        if len(call.args) != 1 or call.args[0].star:
            return None
        arg = call.args[0]
        if arg.keyword is not None and arg.keyword.value not in ("input", "x"):
            return None
        return arg.value

    @staticmethod
    def _maybe_negate(value: Any, negate: bool) -> Any:
        if not negate:
            return value
        if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus) and not value.lpar:
            inner = value.expression
            if isinstance(inner, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or inner.lpar:
                return inner
            return inner.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        atom = isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float)) or bool(
            getattr(value, "lpar", None))
        operand = value if atom else value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return cst.UnaryOperation(operator=cst.Minus(), expression=operand)

    def _callee(self, target: str) -> Tuple[Any, Tuple[str, ...]]:
        """A name this file's imports reach for ``target``, else the full dotted name plus an import."""
        text = self.ctx.reference_to(target)
        if text is not None:
            return cst.parse_expression(text), ()
        module = target.rsplit(".", 1)[0]
        return cst.parse_expression(target), (module,)
