from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._guards import (
    GuardTracker,
    in_initialiser,
    bare,
    is_safe,
    origins,
    positive_by_construction,
    reduction,
    same_expr,
    tensor_method,
    tiny_eps_hidden,
    without_tiny_eps,
)
from dllint.rules.numerical._values import is_python_number, numeric_value

#: division functions: name -> (numerator keyword, denominator keyword)
DIVISION_FUNCTIONS = {
    "torch.div": ("input", "other"),
    "torch.divide": ("input", "other"),
    "torch.true_divide": ("dividend", "divisor"),
    "tensorflow.math.divide": ("x", "y"),
    "tensorflow.divide": ("x", "y"),
    "tensorflow.math.truediv": ("x", "y"),
    "tensorflow.truediv": ("x", "y"),
    "tensorflow.realdiv": ("x", "y"),
    "tensorflow.math.realdiv": ("x", "y"),
    "tensorflow.div": ("x", "y"),
    "tensorflow.compat.v1.div": ("x", "y"),
    "tensorflow.compat.v1.divide": ("x", "y"),
    "tensorflow.compat.v1.truediv": ("x", "y"),
    "keras.ops.divide": ("x1", "x2"),
    "keras.ops.true_divide": ("x1", "x2"),
    "numpy.divide": ("x1", "x2"),
    "numpy.true_divide": ("x1", "x2"),
    "jax.numpy.divide": ("x1", "x2"),
}
#: reductions that are zero for an all-zero (or constant, or fully masked) input
ZERO_KINDS = ("sum", "norm", "std", "var", "count", "max")
_WHAT = {"sum": "a sum", "norm": "a norm", "std": "a standard deviation", "var": "a variance", "count": "a count",
         "max": "a maximum", "range": "a max - min range"}


class UnguardedDivision(GuardTracker, Rule):
    """Division by a sum, norm, standard deviation, variance, count, maximum or max - min range
    with no guard.

    Finds `a / b`, `a /= b`, `torch.div(a, b)`, `tf.math.divide(a, b)`, TF1's `tf.div(a, b)`,
    `keras.ops.divide` and `np.divide` where the denominator (directly, or through a name
    assigned once, seen through casts such as `.float()` and `tf.cast`) is a reduction that is
    exactly zero for some inputs: `x.sum()`, `mask.sum()` (a count), `x.norm()`,
    `torch.linalg.norm`, `x.std()`, `x.var()`, `tf.reduce_sum`, `tf.norm`,
    `tf.math.reduce_std`, `tf.reduce_max`, `np.count_nonzero`, or `x.max() - x.min()`.

    Why it is a bug: a sum of an all-zero row, the count of an all-padding batch, the norm of a
    zero vector, the standard deviation of a constant feature and the range of a constant image
    are all exactly 0, and `a / 0` is inf (or NaN for `0 / 0`). The NaN then spreads through
    the loss and every gradient. Division by zero is one of the NaN/INF families of the
    numerical-bug studies and of the GRIST subjects (the `tf.div(s_in, max_scale)` rescaling
    of ID_28); pytorch_geometric#2559 adds an eps for exactly this normalisation.

    How to fix: add an eps (`x.std(0) + 1e-6`), clamp the denominator
    (`mask.sum().clamp_min(1)`, `w.sum(-1, keepdim=True).clamp_min(eps)`), use the library's
    safe helper (`F.normalize(v, dim=-1)`, `tf.math.divide_no_nan(a, b)`,
    `tf.math.l2_normalize`), or check the denominator first.

    Fix: none by default. For exactly `v / v.norm(dim=d, keepdim=True)` (also with `p=2`) an
    unsafe fix rewrites it to `torch.nn.functional.normalize(v, dim=d)`, which divides by
    `max(norm, 1e-12)`: the same value everywhere except at a zero vector, where it gives 0
    instead of NaN.

    Stays silent when the denominator is a Python number (`len(x)`, `x.numel()`, `x.size(0)`,
    `batch_size`, `.item()`), is kept positive (`+ eps`, `clamp`, `maximum`, `max(d, 1)`), is a
    sum of positive values (`exp(x).sum()`, softmax or sigmoid outputs, `(x + eps).sum()`), is
    a conditional expression, or is checked first (`if d == 0:`, `if d > 0:`, `assert`,
    `where(d > 0, ...)`, a validity mask on it, `std[std == 0] = 1`, `d.clamp_(min=1)`), or
    when the infinities are repaired in the next statements (`r[r == float("inf")] = 0`,
    `torch.nan_to_num(r)`). Sums of entries that are positive by construction are not reported
    either: top-k values or `gather`ed entries of a softmax / sigmoid output, a label-equality
    matrix (`y == y.T`, true on its diagonal), a degree with self-loops (`eye(n) + adj`), values
    plus a configured lower bound (`+ self.min_depth`), random draws (`torch.randn`), and fixed
    tables built from Python numbers (`np.hamming(25)`).

    Limits: means and other statistics are left out to keep the rule precise;
    `tf.math.divide_no_nan` is the fix, not a finding; `torch.div(..., rounding_mode=...)` is
    integer-style division (a zero divisor raises); constructors and weight initialisers are
    skipped. A check that only compares the denominator with None is no guard.

    Off by default. On the transformers 5.24 source a strict reading judged about 70% of its
    findings worth fixing (benchmarks/precision.md): the remaining ones divide by values that
    are positive for reasons no local rule can see (a count of patches whose infinite result is
    later discarded, the norm of a sum of two unit vectors 45 degrees apart, a mask built from
    ones, the columns of a softmax passed in as a parameter). Turn it on with
    `--extend-select DL107` (or `extend-select = ["DL107"]`) where divisions by data-dependent
    counts and norms matter.
    """

    code = "DL107"
    name = "unguarded-division"
    family = "numerical"
    message = ("division by a reduction that can be zero (sum/norm/std/count) yields inf/NaN; add eps, clamp the "
               "denominator, or use normalize/divide_no_nan")
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="unsafe division: division by a value that can reach zero",
        links=(
            "https://github.com/Jacob-yen/GRIST",
            "https://github.com/pyg-team/pytorch_geometric/issues/2559",
        ),
    )
    triggers = ("sum(", "norm(", "std(", "var(", "count", "max(", "min(", "reduce_", "amax(", "amin(", "div")
    default_enabled = False

    VALID = (
        Valid(dedent("""
            import torch
            x = (x - x.mean(0)) / (x.std(0) + 1e-6)
            """), "eps added to the standard deviation"),
        Valid(dedent("""
            import torch
            loss = (l * mask).sum() / mask.sum().clamp_min(1)
            attn = w / w.sum(-1, keepdim=True).clamp(min=1e-9)
            """), "clamped denominators"),
        Valid(dedent("""
            import tensorflow as tf
            ratio = tf.math.divide_no_nan(s_in, tf.reduce_max(s_in))
            """), "divide_no_nan"),
        Valid(dedent("""
            import torch
            p = torch.exp(z) / torch.exp(z).sum(-1, keepdim=True)
            mean = total / len(batch)
            avg = loss / x.numel()
            acc = correct / labels.size(0)
            q = probs / probs.sum().item()
            """), "positive sums (DL106 handles the hand-written softmax) and Python numbers"),
        Valid(dedent("""
            import torch
            def pool(h, mask):
                n = mask.sum()
                if n == 0:
                    return h.new_zeros(h.shape[-1])
                return (h * mask[:, None]).sum(0) / n
            """), "the denominator is checked first"),
        Valid(dedent("""
            import numpy as np
            std = x.std(0)
            std[std == 0] = 1.0
            x = (x - x.mean(0)) / std
            """), "zero entries replaced before the division"),
        Valid(dedent("""
            import torch
            y = x / x.mean()
            z = x / scale
            w = a / b
            """), "a mean, a plain name, an unknown value: not the restricted denominators"),
        Valid(dedent("""
            import torch
            s = x.sum()
            r = x / s if s > 0 else x
            """), "conditional expression"),
        Valid(dedent("""
            import torch
            weights = counts / max(counts.sum(), 1)
            """), "max with a positive constant"),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            def route(router_logits, k):
                probs = F.softmax(router_logits, dim=-1)
                top_value, top_index = torch.topk(probs, k, dim=-1)
                top_value /= top_value.sum(dim=-1, keepdim=True)
                scores = torch.sigmoid(router_logits)
                picked = scores.gather(-1, top_index)
                return top_value, picked / picked.sum(dim=-1, keepdim=True)
            """), "top-k values and gathered entries of softmax / sigmoid outputs are positive"),
        Valid(dedent("""
            import torch
            def features(x):
                scale = torch.sum(x, dim=1)
                scale = 1 / scale
                scale[scale == float("inf")] = 0
                return scale
            """), "the infinities are repaired right after the division"),
        Valid(dedent("""
            import torch
            def normalize_adjacency(adj, n):
                adj = torch.eye(n) + adj
                degree = torch.sum(adj, dim=1)
                return torch.sqrt(1 / degree)
            """), "self-loops keep every degree at least 1"),
        Valid(dedent("""
            import keras
            from keras import ops
            def supervised_contrastive(y_true):
                y_true = ops.cast(ops.equal(y_true, ops.transpose(y_true)), "float32")
                y_true /= ops.sum(y_true, 1, keepdims=True)
                return y_true
            """), "a label-equality matrix has a true diagonal"),
        Valid(dedent("""
            import math
            import torch
            class Attention(torch.nn.Module):
                def _reset_parameters(self):
                    thetas = torch.arange(8).float() * (2.0 * math.pi / 8)
                    grid = torch.stack([thetas.cos(), thetas.sin()], -1)
                    self.grid = grid / grid.abs().max(-1, keepdim=True)[0]
            """), "weight initialisers work on fixed values"),
        Valid(dedent("""
            import numpy as np
            import torch
            w = np.hamming(25)
            smooth = np.convolve(w / w.sum(), signal, mode="valid")
            proj = torch.randn(64, 16)
            proj = proj / proj.norm(dim=1, keepdim=True)
            largest, steps = torch.max(divisors), torch.div(n, torch.max(divisors), rounding_mode="floor")
            """), "a table built from numbers, random projections, integer division"),
        Valid(dedent("""
            import torch
            def depth_probs(self, logits):
                probs = self.activation(logits) + self.min_depth
                return probs / probs.sum(dim=1, keepdim=True)
            """), "a configured lower bound is added"),
        Valid(dedent("""
            def paste(mask_k, original_mask):
                mask_k_area = mask_k.sum()
                original_area = original_mask.sum()
                mask_exists = mask_k_area > 0 and original_area > 0
                if mask_exists:
                    return mask_k_area / original_area
            """), "a test on the denominator assigned to a flag first"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                x = (x - x.mean(0)) / x.std(0)
                """),
            note="a constant feature has std 0",
        ),
        Invalid(
            dedent("""
                import torch
                def pool(hidden, mask):
                    mask = mask.unsqueeze(-1).float()
                    return (hidden * mask).sum(1) / mask.sum(1)
                """),
            note="a count: all-padding rows give 0/0",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def sc_matmul(x, w, s_in):
                    max_scale = tf.reduce_max(s_in)
                    rescale_ratio = tf.div(s_in, max_scale)
                    return tf.matmul(tf.multiply(x, rescale_ratio), w)
                """),
            note="TF1 tf.div by a maximum (GRIST ID_28)",
        ),
        Invalid(
            dedent("""
                import numpy as np
                def scale(img):
                    return (img - img.min()) / (img.max() - img.min())
                """),
            note="NumPy: a max - min range is 0 for a constant image",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def normalize(v):
                    return v / tf.norm(v, axis=-1, keepdims=True)
                """),
            note="TF norm of a zero vector",
        ),
        Invalid(
            dedent("""
                import torch
                def embed(self, x):
                    v = self.proj(x)
                    return v / v.norm(dim=-1, keepdim=True)
                """),
            fixed=dedent("""
                import torch
                def embed(self, x):
                    v = self.proj(x)
                    return torch.nn.functional.normalize(v, dim=-1)
                """),
            unsafe=True,
            note="the catalogue's normalize rewrite (unsafe: 0 instead of NaN at a zero vector)",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                image_embeds = image_embeds / image_embeds.norm(p=2, dim=-1, keepdim=True)
                """),
            fixed=dedent("""
                import torch
                import torch.nn.functional as F
                image_embeds = F.normalize(image_embeds, dim=-1)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import torch
                def attention(w):
                    w /= w.sum(-1, keepdim=True)
                    return w
                """),
            note="in-place division",
        ),
        Invalid(
            dedent("""
                import torch
                def pool(h, mask):
                    h = h.half()
                    return (h * mask).sum(1) / (mask.sum(1) + 1e-10)
                """),
            note="float16 code: 1e-10 rounds to 0 and guards nothing",
        ),
        Invalid(
            dedent("""
                import keras
                def scores(x):
                    total = keras.ops.sum(x, axis=-1, keepdims=True)
                    return keras.ops.divide(x, total)
                """),
            note="Keras 3 through a name",
        ),
    )

    # ------------------------------------------------------------------ matching

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Divide):
            self._check(node, node.left, node.right)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, cst.DivideAssign):
            self._check(node, node.target, node.value)
        super().visit_AugAssign(node)

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = ctx.qualname(node.func)
        if name in DIVISION_FUNCTIONS and not ctx.has_star_args(node):
            first, second = DIVISION_FUNCTIONS[name]
            if ctx.keyword(node, "rounding_mode") is not None:
                return  # integer-style division: a zero divisor raises instead of giving inf
            numerator = ctx.argument(node, 0, first)
            denominator = ctx.argument(node, 1, second)
            if numerator is not None and denominator is not None:
                self._check(node, numerator, denominator)

    def _check(self, node: Any, numerator: Any, denominator: Any) -> None:
        if in_initialiser(self.ctx):
            return  # constructors and weight initialisers divide fixed tables, not data
        kind = self._zero_denominator(without_tiny_eps(self.ctx, denominator))
        if kind is None or self.guarded(denominator) or self.patched_after():
            return
        message = self.message
        if tiny_eps_hidden(self.ctx, bare(denominator)):
            message += " (float16 code: an eps below 1e-7 rounds to 0)"
        self.report(node, message=message, fix=self._fix(node, numerator, denominator))

    def _zero_denominator(self, denominator: Any) -> Optional[str]:
        """The kind of reduction ``denominator`` is when it can be exactly zero, else None."""
        ctx = self.ctx
        denominator = bare(denominator)
        if isinstance(denominator, cst.IfExp) or is_python_number(ctx, denominator) or is_safe(ctx, denominator):
            return None
        for value in origins(ctx, denominator):
            if isinstance(value, cst.IfExp) or is_python_number(ctx, value) or is_safe(ctx, value):
                return None
            found = reduction(ctx, value)
            if found is not None:
                kind, operand, _ = found
                if kind not in ZERO_KINDS or positive_by_construction(ctx, operand):
                    return None
                return kind
            if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Subtract):
                high, low = reduction(ctx, value.left), reduction(ctx, value.right)
                if high and low and high[0] == "max" and low[0] == "min":
                    return "range"
                return None
        return None

    # ------------------------------------------------------------------ fix

    def _fix(self, node: Any, numerator: Any, denominator: Any) -> Optional[Fix]:
        """``v / v.norm(dim=d, keepdim=True)`` (optionally ``p=2``) -> ``F.normalize(v, dim=d)``."""
        ctx = self.ctx
        if not isinstance(node, cst.BinaryOperation) or not ctx.imports("torch"):
            return None
        call = bare(denominator)
        if not isinstance(call, cst.Call) or tensor_method(ctx, call, ("norm",)) is None:
            return None
        if not same_expr(call.func.value, numerator):
            return None
        dim = keepdim = None
        for i, arg in enumerate(call.args):
            if arg.star:
                return None
            key = arg.keyword.value if arg.keyword is not None else ("p" if i == 0 else None)
            if key == "p" and numeric_value(arg.value) == 2:
                continue
            if key == "dim":
                dim = arg.value
            elif key == "keepdim":
                keepdim = arg.value
            else:
                return None
        if dim is None or not (isinstance(keepdim, cst.Name) and keepdim.value == "True"):
            return None
        target = ctx.reference_to("torch.nn.functional.normalize")
        imports: tuple = ()
        if target is None:
            target, imports = "torch.nn.functional.normalize", ("torch.nn.functional",)
        new = cst.Call(
            func=cst.parse_expression(target),
            args=[
                cst.Arg(bare(numerator), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                cst.Arg(dim, keyword=cst.Name("dim"), equal=cst.AssignEqual(
                    whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))),
            ],
            lpar=node.lpar,
            rpar=node.rpar,
        )
        return Fix("Use F.normalize (divides by max(norm, eps))", [(node, new)], FixKind.UNSAFE, imports)
