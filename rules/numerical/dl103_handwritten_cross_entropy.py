from __future__ import annotations

from typing import Any, List, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._logs import (
    code_of,
    direct_kind,
    factors,
    is_clamp,
    iter_terms,
    log_call_argument,
    negated,
    one_minus,
    origins,
    probability_kinds,
    strip,
)
from dllint.rules.numerical._values import REDUCTION_FUNCTIONS, is_safe_argument, positive_constant

#: reductions whose argument is a per-element loss (``prod`` is not a cross-entropy)
_REDUCTIONS = frozenset(n for n in REDUCTION_FUNCTIONS if n.rsplit(".", 1)[-1] in ("sum", "mean", "reduce_sum", "reduce_mean"))
_REDUCTION_METHODS = frozenset({"sum", "mean"})


def _direct_at_log(ctx: Any, argument: Any) -> bool:
    """Whether the log's argument is itself a softmax / sigmoid call or ``1 - sigmoid(...)``:
    DL101 or DL102 then reports the log with a rewrite that also makes this loss finite."""
    argument = strip(argument)
    shape = one_minus(argument)
    if shape is not None:
        argument = strip(shape[0])
    return isinstance(argument, cst.Call) and direct_kind(ctx, argument) is not None and \
        (shape is None or direct_kind(ctx, argument) == "sigmoid")


def _without_eps(ctx: Any, node: Any) -> Any:
    """``p + eps`` / ``eps + p`` -> ``p``; anything else unchanged (parentheses dropped)."""
    node = strip(node)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        if positive_constant(ctx, node.right):
            return strip(node.left)
        if positive_constant(ctx, node.left) and one_minus(node) is None:
            return strip(node.right)
    return node


class HandwrittenCrossEntropy(Rule):
    """A cross-entropy written by hand over softmax or sigmoid outputs.

    Finds a `sum` / `mean` (`tf.reduce_sum`, `tf.reduce_mean`, `torch.sum`, `x.sum()`, `np.mean`,
    `keras.ops.sum`, possibly negated) over a product `t * log(p)` in either operand order, where
    every reaching assignment of `p` is a softmax or sigmoid output (`y = tf.nn.softmax(...)`,
    `hypothesis = F.softmax(z, dim=1)`, `p = torch.sigmoid(...)`, `model(x)` with a `Sequential`
    ending in `Softmax`/`Sigmoid`).  The binary form `t*log(p) + (1-t)*log(1-p)` (also
    `-t*log(p) - (1-t)*log(1-p)`, weighted terms, method `.log()`) is matched whatever `p` is,
    with or without a reduction around it, as long as a log argument is unguarded.  Entropy
    terms `-(p * log(p)).sum()` over a softmax are reported with their own message.

    Why it is a bug: softmax underflows to exactly 0 for logits far below the maximum and sigmoid
    saturates to exactly 1 from z ≈ 17 (float32), so `log(p)` or `log(1-p)` is `-inf`, the loss is
    inf, and `0 * log(0)` is NaN even where the target is 0.  This is the dominant shape in the
    GRIST NaN/INF benchmark (about 49 of 63 subjects).  The framework losses work on logits,
    fuse the log and the (soft)max and stay finite.

    How to fix: compute logits and call `F.cross_entropy(logits, target)` (class indices or
    probabilities), `F.binary_cross_entropy_with_logits(logits, target)`,
    `tf.nn.softmax_cross_entropy_with_logits(labels=..., logits=...)` or
    `tf.nn.sigmoid_cross_entropy_with_logits`.  A smaller fix, `torch.xlogy(t, p)` /
    `tf.math.xlogy`, removes only the `0 * log(0)` NaN.  For an entropy term use
    `torch.special.entr(p).sum(-1)` or `-(p * F.log_softmax(logits, -1)).sum(-1)`.

    No automatic fix: the fused losses differ in reduction (sum or mean), class dimension and
    label format.

    Which rule reports what: DL103 reports the reduction call (or, for a binary form without a
    reduction around it, the `+`/`-` expression); DL101 (softmax) and DL102 (sigmoid) report
    the `log` call inside it.  When every hazardous log is nested directly around the softmax /
    sigmoid call (`-(t * torch.log(F.softmax(x, 1))).sum()`), DL103 stays silent: DL101/DL102
    report that log and their rewrite (`t * F.log_softmax(x, 1)`) makes the loss finite too.
    When the probabilities come through a name (`y = tf.nn.softmax(...)`, then
    `-tf.reduce_sum(y_ * tf.log(y))`), both rules report, on the same line but never at the
    same node: DL101/DL102 say the log can be `-inf`, DL103 that the loss should be the fused one.

    Stays silent when the log argument is guarded (`log(p + eps)`, a clamp, `p` reassigned to a
    clamp), when `p`'s origin is unknown in the multi-class form (a parameter, a model output
    that is not a visible `Sequential`), and on `log_softmax` / `logsigmoid` code.
    """

    code = "DL103"
    name = "handwritten-cross-entropy"
    family = "numerical"
    message = (
        "hand-written cross-entropy on softmax/sigmoid outputs is numerically unstable (log(0), 0*log(0)); "
        "use the fused *_with_logits / cross_entropy loss on logits"
    )
    ENTROPY = (
        "hand-written entropy -(p*log(p)) of a softmax/sigmoid output is NaN where p underflows to 0 "
        "(0*log(0)); use torch.special.entr(p) or p * log_softmax(logits)"
    )
    fix = FixKind.NONE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="unsafe log: hand-written cross-entropy over softmax/sigmoid (about 49 of 63 GRIST subjects)",
        links=(
            "https://github.com/Jacob-yen/GRIST",
            "https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html",
            "https://www.tensorflow.org/api_docs/python/tf/nn/softmax_cross_entropy_with_logits",
        ),
    )
    triggers = ("log(", "log2(", "log10(")

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            logits = tf.matmul(x, W) + b
            cross_entropy = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=logits))
            """), "the fused loss"),
        Valid(dedent("""
            import torch
            probs = torch.softmax(logits, -1)
            loss = -(target * torch.log(probs + 1e-8)).sum(-1).mean()
            """), "an eps inside the log"),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            loss = -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()
            """), "log_softmax"),
        Valid(dedent("""
            import keras
            def loss(y_true, y_pred):
                return -keras.ops.sum(y_true * keras.ops.log(y_pred), axis=-1)
            """), "multi-class form over a parameter: origin unknown"),
        Valid(dedent("""
            import keras
            p = keras.ops.softmax(z)
            p = keras.ops.mean(p, axis=0)
            p = keras.ops.clip(p, 1e-8, 1.0)
            entropy = -keras.ops.sum(p * keras.ops.log(p))
            """), "clipped last (straight-line)"),
        Valid(dedent("""
            import torch
            def nll(y, p):
                p = p.clamp(1e-6, 1 - 1e-6)
                return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
            """), "binary form over a clamped value"),
        Valid(dedent("""
            import torch
            def logbinomial(p, k, n, eps=1e-4):
                one_minus = (1 - p).clamp(min=eps, max=1.0)
                p = p.clamp(min=eps, max=1.0)
                return k * torch.log(p) + (n - k) * torch.log(one_minus)
            """), "both arguments clamped"),
        Valid(dedent("""
            import torch
            s = torch.softmax(a, -1)
            kl = (w * torch.log(scale)).sum()
            """), "log of something that is not a probability"),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            loss = -(target * torch.log(F.softmax(logits, dim=-1))).sum()
            bce = -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z))).mean()
            """), "logs nested directly around the softmax / sigmoid: DL101 / DL102 report and fix them"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import tensorflow as tf
                y_pred = tf.nn.softmax(tf.matmul(x, W) + b)
                cross_entropy = -tf.reduce_sum(y_true * tf.math.log(y_pred))
                """),
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                hypothesis = F.softmax(z, dim=0)
                hypothesis = F.softmax(z, dim=1)
                cost = (y_one_hot * -torch.log(hypothesis)).sum(dim=1).mean()
                """),
            note="GRIST ID_23/46/57: two assignments, both softmax; only the inner sum is reported",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                x_reconstr_mean = tf.nn.sigmoid(tf.add(tf.matmul(h, w), b))
                loss = -tf.reduce_sum(x * tf.log(1e-10 + x_reconstr_mean) + (1 - x) * tf.log(1e-10 + 1 - x_reconstr_mean), 1)
                """),
            note="binary form; the eps added to 1 is lost in float32",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                class Autoencoder:
                    def cost(self, loss_func, model_output, ref_input):
                        return - tf.reduce_mean(ref_input * tf.log(model_output) +
                                                (1 - ref_input) * tf.log(1 - model_output))
                """),
            note="GRIST ID_2: binary form over a parameter",
        ),
        Invalid(
            dedent("""
                import torch
                hypothesis = torch.sigmoid(x_train.matmul(W) + b)
                losses = -(y_train * torch.log(hypothesis)) + (1 - y_train) * torch.log(1 - hypothesis)
                """),
            note="GRIST ID_26: binary form without a reduction (reported at the sum)",
        ),
        Invalid(
            dedent("""
                import torch
                def entropy(logits):
                    p = torch.softmax(logits, -1)
                    return -(p * p.log()).sum(-1)
                """),
            note="entropy term (own message)",
        ),
        Invalid(
            dedent("""
                import numpy as np
                from scipy.special import softmax
                p = softmax(scores, axis=1)
                ce = -np.mean(np.sum(onehot * np.log(p), axis=1))
                """),
        ),
        Invalid(
            dedent("""
                import torch
                prob = source_logits.sigmoid()
                loss_ce = -pos_weights * prob.log() - neg_weights * (1 - prob).log()
                """),
            note="weighted binary form with method logs",
        ),
    )

    # ------------------------------------------------------------------ handlers

    def visit_Call(self, node: cst.Call) -> None:
        body = self._reduction_body(node)
        if body is None:
            return
        kind = self._cross_entropy(body)
        if kind is not None:
            self.report(node, message=self.ENTROPY if kind == "entropy" else None)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, (cst.Add, cst.Subtract)):
            return
        ctx = self.ctx
        level = 1
        top: Any = node
        while isinstance(ctx.parent(level), cst.UnaryOperation):
            top = ctx.parent(level)
            level += 1
        container = ctx.parent(level)
        if isinstance(container, cst.BinaryOperation) and isinstance(container.operator, (cst.Add, cst.Subtract)):
            return  # part of a longer chain: the chain's top is looked at
        if self._reduced_by_parent(top, level):
            return  # the reduction around it reports
        if self._cross_entropy(node, binary_only=True) == "binary":
            self.report(node)

    # ------------------------------------------------------------------ shapes

    def _reduction_body(self, node: cst.Call) -> Optional[Any]:
        ctx = self.ctx
        name = ctx.qualname(node.func)
        if name in _REDUCTIONS:
            keyword = {"torch": "input", "tensorflow": "input_tensor", "numpy": "a"}.get(name.split(".", 1)[0], "x")
            return ctx.argument(node, 0, keyword)
        if name is None and isinstance(node.func, cst.Attribute) and node.func.attr.value in _REDUCTION_METHODS:
            return node.func.value
        return None

    def _reduced_by_parent(self, top: Any, level: int) -> bool:
        ctx = self.ctx
        container = ctx.parent(level)
        if isinstance(container, cst.Arg):
            call = ctx.parent(level + 1)
            return isinstance(call, cst.Call) and self._reduction_body(call) is top
        if isinstance(container, cst.Attribute) and container.value is top:
            call = ctx.parent(level + 1)
            return isinstance(call, cst.Call) and call.func is container and self._reduction_body(call) is top
        return False

    def _product_terms(self, body: Any) -> List[Tuple[List[Any], Any]]:
        """(the other factors, the log argument) for every term that is a product with one log."""
        out = []
        for term, _sign in iter_terms(body):
            parts = factors(self.ctx, term)
            logs = [(i, log_call_argument(self.ctx, strip(f))) for i, f in enumerate(parts)]
            logs = [(i, found[0]) for i, found in logs if found is not None]
            if len(logs) == 1 and len(parts) >= 2:
                index, argument = logs[0]
                out.append(([p for i, p in enumerate(parts) if i != index], argument))
        return out

    def _cross_entropy(self, body: Any, binary_only: bool = False) -> Optional[str]:
        """"binary", "entropy" or "categorical" when ``body`` is a cross-entropy shape, else None."""
        ctx = self.ctx
        terms = self._product_terms(body)
        if not terms:
            return None
        # binary form: t*log(p) and s*log(1 - p) with the same p
        for _, first in terms:
            for _, second in terms:
                shape = one_minus(_without_eps(ctx, second))
                if shape is None or code_of(ctx, shape[0]) != code_of(ctx, _without_eps(ctx, first)):
                    continue
                probability, eps_lost = shape
                if self._bounded(probability):
                    continue
                hazards = [a for a in (first, second) if not is_safe_argument(ctx, a)]
                if eps_lost:
                    hazards.append(second)
                if any(not _direct_at_log(ctx, a) for a in hazards):
                    return "binary"
        if binary_only:
            return None
        for others, argument in terms:
            if is_safe_argument(ctx, argument) or probability_kinds(ctx, argument) is None:
                continue
            if _direct_at_log(ctx, argument):
                continue  # log(softmax(x)) nested directly: DL101 / DL102 report and fix the log
            if any(code_of(ctx, negated(o)[0]) == code_of(ctx, argument) for o in others):
                return "entropy"
            return "categorical"
        return None

    def _bounded(self, probability: Any) -> bool:
        """Whether some reaching value of ``p`` is a clamp or otherwise kept away from 0 and 1."""
        found = origins(self.ctx, probability)
        return bool(found) and any(is_clamp(self.ctx, o) or is_safe_argument(self.ctx, o) for o in found)
