from __future__ import annotations

import re
from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._guards import (
    GuardTracker,
    in_initialiser,
    all_assigned,
    bare,
    is_module_receiver,
    is_safe,
    last_value,
    origins,
    positive_by_construction,
    probability_producer,
    reduction,
    tiny_eps_hidden,
    upper_bound,
    without_tiny_eps,
)
from dllint.rules.numerical._values import LOG_FUNCTIONS, is_python_number, numeric_value, positive_constant

#: log, log2 and log10 in every framework spelling.
LOG_ANY_BASE = LOG_FUNCTIONS | frozenset(
    {"torch.log2", "torch.log10", "numpy.log2", "numpy.log10", "keras.ops.log2", "keras.ops.log10",
     "jax.numpy.log2", "jax.numpy.log10", "tensorflow.experimental.numpy.log2", "tensorflow.experimental.numpy.log10"}
)
LOG_METHODS = ("log", "log2", "log10")
#: reductions whose result is a sum, a mean or a count of a possibly-zero tensor
_ZERO_REDUCTIONS = ("sum", "mean", "count")
#: identifier words that name a network: ``model(x)``, ``self.discriminator(x)``, ``netD(x)``, ``add_layer(...)``
_MODEL_WORDS = frozenset({"model", "net", "network", "discriminator", "generator", "critic", "classifier", "encoder",
                          "decoder", "layer", "block", "netd", "netg"})
_MODEL_NAMES = frozenset({"D", "G", "F_net"})


def _below(bound: Any, top: float) -> bool:
    """Whether ``bound`` is a literal below ``top`` or ``top - <positive literal>``."""
    bound = bare(bound)
    value = numeric_value(bound)
    if value is not None:
        return value < top
    if isinstance(bound, cst.BinaryOperation) and isinstance(bound.operator, cst.Subtract):
        head, tail = numeric_value(bound.left), numeric_value(bound.right)
        return head is not None and tail is not None and tail > 0 and head <= top
    return False


def _words(identifier: str) -> set:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", identifier)
    return {w.lower() for w in re.split(r"[_\W]+", spaced) if w}


class UnguardedLog(GuardTracker, Rule):
    """log() of a difference, a ratio, a sum or count, or a network output, with no guard.

    Finds `torch.log` / `log2` / `log10`, the `.log()` tensor method, `tf.math.log` (and TF1's
    `tf.log`), `keras.ops.log` and `np.log` whose argument is not kept away from zero and is
    one of the shapes that reach zero or go negative in practice:

    * a subtraction: `log(1 - p)`, `log(a - b)`;
    * a division whose numerator can be zero: `log(pos / (pos + neg))`;
    * a sum, mean or count of a tensor that can be all zeros: `log(mask.sum())`,
      `tf.log(tf.reduce_sum(x))`, `np.log(np.count_nonzero(x))`;
    * a name assigned (each time so far) from one of these or from a network call:
      `p = model(x); torch.log(p)`, `prediction = add_layer(...); tf.log(prediction)`,
      `d_real = self.discriminator(x); torch.log(d_real)`.

    Why it is a bug: `log(0)` is `-inf` and `log` of a negative number is NaN; either one
    poisons the loss and every gradient after it. Differences of probabilities reach 0 as soon
    as the model saturates (`1 - p` with `p` rounding to 1), sums and counts are 0 for an
    all-zero or all-masked batch, and a raw network output has no sign guarantee at all. The
    NaN/INF studies list log of a non-positive value as the leading unsafe-operator family,
    and the GRIST subjects are fixed by clipping the argument (`tf.clip_by_value(x, 1e-6, 1)`).

    How to fix: clamp the argument (`x.clamp_min(eps)`, `tf.clip_by_value(x, eps, 1.0)`), add
    an eps that the working dtype can represent (`1e-10` rounds to 0 in float16), or move the
    computation to log space (`log_softmax`, `logsigmoid`, `log1p`, `logsumexp`). There is no
    automatic fix: the eps and where it goes depend on the model.

    Stays silent when the argument is a literal, a Python number (`len(x)`, `x.numel()`,
    `x.size(0)`, `.item()`), kept positive (`+ eps`, `clamp`, `clip_by_value`, `maximum`,
    `exp`, `softplus`, `max(x, eps)`), a softmax or sigmoid output (DL101 / DL102 cover those),
    a ratio with a positive constant numerator (`log(1 / x)`), or when a name in it is checked
    first (`if total > 0:`, `assert`, a conditional expression, a `where` mask, a validity
    mask such as `valid = (x > eps) & (x < 1 - eps)` computed before) or fixed in place
    (`p.clamp_(min=eps)`), and for `1 - p` with `p` clamped below 1. A ratio is reported only
    when it is a proportion (`a / (a + b)`, `x / x.sum()`, `p / (1 - p)`) or its numerator has
    one of the shapes itself: `log(x / c)` with a plain divisor is no worse than `log(x)`.

    Limits: a `log` of a plain parameter or of an unknown value is not reported: the rule
    deliberately restricts itself to the shapes above to stay quiet. Constructors and weight
    initialisers (`__init__`, `_init_weights`, `reset_parameters`) are skipped, as is `np.log`
    in files that also compute with torch, TensorFlow, Keras or JAX: there NumPy builds fixed
    tables (diffusion schedules, filter banks) from configuration, not from data. A network
    call is recognised by its name (`model`, `net`, `D`, `G`, `self.discriminator`,
    `add_layer`, `*_block`...).
    """

    code = "DL104"
    name = "unguarded-log"
    family = "numerical"
    message = ("log() of a value that can be 0 or negative (difference/ratio/sum) yields -inf/NaN; clamp the "
               "argument (x.clamp_min(eps)) or add an eps representable in the working dtype")
    fix = FixKind.NONE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="unsafe log: log of a value that can reach zero or go negative",
        links=(
            "https://github.com/Jacob-yen/GRIST",
            "https://pytorch.org/docs/stable/generated/torch.log.html",
        ),
    )
    triggers = ("log(", "log2(", "log10(")

    VALID = (
        Valid(dedent("""
            import torch
            ratio_loss = -torch.log(pos.clamp_min(1e-6) / (pos + neg).clamp_min(1e-6))
            """), "numerator clamped"),
        Valid(dedent("""
            import torch
            def kl(p, q, eps=1e-8):
                return (p * torch.log((p + eps) / (q + eps))).sum()
            """), "eps added to the numerator"),
        Valid(dedent("""
            import tensorflow as tf
            loss = -tf.reduce_sum(y * tf.log(tf.clip_by_value(1 - p, 1e-6, 1.0)))
            """), "the difference is clipped"),
        Valid(dedent("""
            import numpy as np
            import math
            n = len(tokens)
            idf = np.log(n / (1 + df))
            h = math.log(num_classes - 1)
            c = np.log(x.size(0) - 1)
            """), "Python numbers and math.log"),
        Valid(dedent("""
            import torch
            def free_energy(v, w):
                return torch.log(torch.exp(v @ w).sum(1))
            """), "a sum of exp is positive (DL105 suggests logsumexp)"),
        Valid(dedent("""
            import torch
            p = torch.sigmoid(z)
            loss = torch.log(1 - p)
            q = torch.softmax(z, -1)
            h = torch.log(q)
            """), "sigmoid and softmax outputs belong to DL102 / DL101"),
        Valid(dedent("""
            import torch
            def entropy(counts):
                total = counts.sum()
                if total == 0:
                    return torch.zeros(())
                return torch.log(total)
            """), "the sum is checked before the log"),
        Valid(dedent("""
            import torch
            def logit(p):
                return torch.log(p)
            """), "a parameter of unknown range: not one of the restricted shapes"),
        Valid(dedent("""
            import torch
            ratio = a / b
            ratio.clamp_(min=1e-6)
            out = torch.log(ratio)
            """), "clamped in place before the log"),
        Valid(dedent("""
            import torch
            y = torch.log(1.0 / scale)
            z = torch.log(torch.tensor(2.0))
            """), "positive constant numerator; a literal"),
        Valid(dedent("""
            import torch
            logger.log(x - y)
            self.log("val_loss", a - b)
            """), "logging calls"),
        Valid(dedent("""
            import math
            import torch
            def bucket(relative_position, num_buckets, max_distance):
                max_exact = num_buckets // 2
                is_small = relative_position < max_exact
                large = max_exact + (torch.log(relative_position.float() / max_exact)
                                     / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
                return torch.where(is_small, relative_position, large)
            """), "log(x / c) is no worse than log(x); the value is also masked by a comparison first"),
        Valid(dedent("""
            import torch
            def proposals(anchors, eps=1e-2):
                valid_mask = ((anchors > eps) * (anchors < 1 - eps)).all(-1, keepdim=True)
                anchors = torch.log(anchors / (1 - anchors))
                return torch.where(valid_mask, anchors, torch.inf)
            """), "a validity mask on the value is computed before the log"),
        Valid(dedent("""
            import torch
            def posterior(prior):
                prior = torch.clamp(prior, min=1e-5, max=1 - 1e-5)
                return torch.log(prior) - torch.log(1 - prior)
            """), "1 - p with p clamped below 1"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            class Diffusion:
                def __init__(self, betas):
                    alphas_cumprod = np.cumprod(1.0 - betas)
                    self.log_one_minus = tf.constant(np.log(1.0 - alphas_cumprod))
            """), "NumPy tables next to a framework, computed in a constructor"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            ratio_loss = -torch.log(pos / (pos + neg))
            """), note="the catalogue's example: a ratio"),
        Invalid(dedent("""
            import tensorflow as tf
            def cost(ref_input, model_output):
                return -tf.reduce_mean(ref_input * tf.log(model_output)
                                       + (1 - ref_input) * tf.log(1 - model_output))
            """), note="TF1 log of a difference (GRIST ID_2)"),
        Invalid(dedent("""
            import tensorflow as tf
            prediction = add_layer(x_input, 784, 10, activation_function=tf.nn.relu)
            cross_entropy = tf.reduce_mean(-tf.reduce_sum(y * tf.log(prediction), axis=[1]))
            """), note="a name assigned from a network call (GRIST ID_19)"),
        Invalid(dedent("""
            import numpy as np
            def perplexity(mask, scores):
                n = np.count_nonzero(mask)
                return np.exp(-np.log(n) + scores)
            """), note="NumPy log of a count"),
        Invalid(dedent("""
            import torch
            def d_loss(D, real):
                d_real = D(real)
                return -torch.log(d_real).mean()
            """), note="log of a discriminator output"),
        Invalid(dedent("""
            import keras
            def contrast(a, b):
                return keras.ops.log(keras.ops.sum(a * b, axis=-1))
            """), note="Keras 3 log of a sum"),
        Invalid(dedent("""
            import torch
            def margin(a, b):
                return (a - b).log().mean()
            """), note="tensor method form"),
        Invalid(dedent("""
            import tensorflow as tf
            if untied:
                nn = VI_Untied_Block(X, S1, S2, config)
            else:
                nn = VI_Block(X, S1, S2, config)
            cost = -tf.reduce_mean(tf.gather_nd(tf.log(nn), [idx]))
            """), note="every assignment of the name is a network call (GRIST ID_15)"),
        Invalid(dedent("""
            import torch
            model = model.half()
            loss = torch.log(1 - p + 1e-10)
            """), note="in float16 code, 1e-10 rounds to 0 and guards nothing"),
    )

    # ------------------------------------------------------------------ matching

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = ctx.qualname(node.func)
        argument = None
        if name in LOG_ANY_BASE:
            argument = ctx.argument(node, 0, "input" if name.startswith("torch") else "x")
        elif (
            name is None
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in LOG_METHODS
            and not node.args
            and ctx.imports("torch")
            and not is_module_receiver(ctx, node.func.value)
        ):
            argument = node.func.value
        if argument is None or ctx.has_star_args(node):
            return
        if name is not None and name.startswith("numpy.") and (
                ctx.imports("torch") or ctx.imports("tensorflow") or ctx.imports("keras") or ctx.imports("jax")):
            # NumPy next to a framework computes constants (schedules, tables): checked only in
            # NumPy programs, where the data itself flows through it
            return
        if in_initialiser(ctx):
            return  # computed once from the constructor's arguments: configuration, not data
        why = self._hazard(argument)
        if why is None:
            return
        message = self.message
        if tiny_eps_hidden(ctx, argument):
            message += " (float16 code: an eps below 1e-7 rounds to 0)"
        self.report(node, message=message)

    def _hazard(self, argument: Any) -> Optional[str]:
        ctx = self.ctx
        argument = bare(argument)
        if is_safe(ctx, argument) or is_python_number(ctx, argument):
            return None
        shape = self._shape(without_tiny_eps(ctx, argument))
        if shape is None and isinstance(argument, cst.Name):
            values = all_assigned(ctx, argument)
            if values:
                for value in values:
                    found = self._shape(without_tiny_eps(ctx, bare(value))) or self._network(value)
                    if found is None or is_safe(ctx, value):
                        return None
                shape = "name"
        elif shape is None and isinstance(argument, cst.Attribute):
            for value in list(origins(ctx, argument))[1:2]:
                shape = self._shape(bare(value)) or self._network(value)
        if shape is None:
            return None
        if self.guarded(argument):
            return None
        return shape

    def _shape(self, node: Any) -> Optional[str]:
        """Which restricted shape ``node`` has: "difference", "ratio", "reduction"; else None."""
        ctx = self.ctx
        if is_safe(ctx, node) or is_python_number(ctx, node):
            return None
        if isinstance(node, cst.BinaryOperation):
            left, right = bare(node.left), bare(node.right)
            if is_python_number(ctx, left) and is_python_number(ctx, right):
                return None
            if isinstance(node.operator, cst.Subtract):
                value = numeric_value(right)
                if value is not None and value < 0:
                    return None
                if probability_producer(ctx, right) or probability_producer(ctx, left):
                    return None  # log(1 - sigmoid(z)): DL102
                if self._clamped_below(left, right):
                    return None
                return "difference"
            if isinstance(node.operator, cst.Divide):
                if positive_constant(ctx, left) or positive_by_construction(ctx, left):
                    return None
                if probability_producer(ctx, left):
                    return None
                # a proportion (``pos / (pos + neg)``, ``x / x.sum()``, ``p / (1 - p)``) or a
                # ratio whose numerator has a hazardous shape itself; ``log(x / c)`` with a
                # plain divisor is no worse than ``log(x)``
                divisor = bare(right)
                if isinstance(divisor, cst.BinaryOperation) and isinstance(divisor.operator, (cst.Add, cst.Subtract)):
                    return "ratio"
                if reduction(ctx, divisor) is not None:
                    return "ratio"
                if self._shape(left) is not None:
                    return "ratio"
                return None
            return None
        found = reduction(ctx, node)
        if found is not None and found[0] in _ZERO_REDUCTIONS:
            if positive_by_construction(ctx, found[1]):
                return None
            return "reduction"
        return None

    def _clamped_below(self, left: Any, right: Any) -> bool:
        """``c - x`` where ``x`` is clamped to at most a literal below ``c`` (``1 - clamp(p, max=1 - 1e-5)``)."""
        ctx = self.ctx
        top = numeric_value(left)
        if top is None:
            return False
        for value in list(origins(ctx, right)) + [last_value(ctx, bare(right))]:
            if isinstance(value, cst.Call):
                upper = upper_bound(ctx, value)
                if upper is not None and _below(upper, top):
                    return True
        return False

    def _network(self, node: Any) -> Optional[str]:
        """"network" when ``node`` is a call of a network (``model(x)``, ``self.net(x)``,
        ``D(x)``), not of an import, and not of a helper that returns a safe value."""
        ctx = self.ctx
        node = bare(node)
        if not isinstance(node, cst.Call) or not node.args:
            return None
        func = node.func
        if isinstance(func, cst.Attribute):
            if not (isinstance(func.value, cst.Name) and func.value.value == "self"):
                return None
            identifier = func.attr.value
        elif isinstance(func, cst.Name):
            identifier = func.value
        else:
            return None
        if ctx.qualname(func) is not None:
            return None
        if identifier not in _MODEL_NAMES and not (_words(identifier) & _MODEL_WORDS):
            return None
        returned = ctx.returned_value(node)
        if returned is not None and (is_safe(ctx, returned) or probability_producer(ctx, returned)):
            return None
        if probability_producer(ctx, node):
            return None
        return "network"
