from __future__ import annotations

from typing import Any, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._guards import (
    GuardTracker,
    add_terms,
    bare,
    in_data_processing,
    in_initialiser,
    is_hyperparameter,
    is_module_receiver,
    is_random,
    is_safe,
    only_used_without_grad,
    origins,
    reduction,
    square_of,
    without_tiny_eps,
)
from dllint.rules.numerical._values import is_python_number, numeric_value

#: sqrt in the frameworks that differentiate (NumPy has no gradient, so np.sqrt is left out)
SQRT_FUNCTIONS = frozenset(
    {"torch.sqrt", "torch.special.sqrt", "tensorflow.sqrt", "tensorflow.math.sqrt", "tensorflow.compat.v1.sqrt",
     "tensorflow.keras.backend.sqrt", "keras.backend.sqrt", "keras.ops.sqrt", "tensorflow.keras.ops.sqrt",
     "jax.numpy.sqrt"}
)
POW_FUNCTIONS = frozenset({"torch.pow", "tensorflow.pow", "tensorflow.math.pow", "keras.ops.power", "jax.numpy.power"})
#: TF / Keras norms whose gradient is NaN at 0 (not a fix there)
TF_NORMS = frozenset({"tensorflow.norm", "tensorflow.linalg.norm", "tensorflow.compat.v1.norm",
                      "tensorflow.compat.v1.linalg.norm", "keras.ops.norm", "tensorflow.keras.ops.norm"})
_SUM_KINDS = ("sum", "mean")
_TF_MESSAGE = ("tf.norm / keras.ops.norm of a value that can be 0 (a difference) has a NaN gradient there; use "
               "tf.sqrt(tf.reduce_sum(tf.square(e), axis) + eps)")


class SqrtOfSumOfSquares(GuardTracker, Rule):
    """sqrt() of a sum of squares or a variance, with no eps inside the sqrt.

    Finds `torch.sqrt(s)`, `s.sqrt()`, `s ** 0.5`, `s.pow(0.5)`, `tf.sqrt(s)` / `tf.math.sqrt`,
    `K.sqrt` and `keras.ops.sqrt` where `s` is a sum or mean of squares (`(x ** 2).sum(-1)`,
    `x.pow(2).sum()`, `(x * x).sum()`, `torch.sum(x ** 2, 1)`, `tf.reduce_sum(tf.square(x), 1)`,
    `(a - b).pow(2).mean()`), a variance (`x.var()`, `tf.math.reduce_variance`), a `+` of
    squares (`tf.square(a) + tf.square(b)`), or a name bound to one. In TensorFlow and Keras it
    also finds `tf.norm(e)`, `tf.linalg.norm(e)` and `keras.ops.norm(e)` of a difference
    `e = a - b`, since those norms have the same NaN gradient at 0.

    Why it is a bug: the derivative of `sqrt(s)` is `1 / (2 sqrt(s))`, infinite at `s = 0`;
    the chain rule multiplies it by the zero gradient of the squares and gives NaN, although
    the forward value (0) is fine. Zero distances are common: a point compared with itself in
    pairwise-distance code, identical images in a perceptual loss, a zero gradient in a
    gradient penalty. pytorch/pytorch#2421 ("Gradient of zero norm is nan") led PyTorch to give
    `norm` a zero subgradient, while `.pow(2).sum().sqrt()` still gives NaN; the same report
    appears in richzhang/PerceptualSimilarity#69 and mpariente/pytorch_stoi#7, and among the
    GRIST `sqrt` subjects.

    How to fix: in PyTorch use `torch.linalg.vector_norm(e, dim=d)` (same value, gradient 0 at
    0), or add an eps inside the sqrt (`torch.sqrt(s + 1e-12)`). In TensorFlow and Keras write
    `tf.sqrt(tf.reduce_sum(tf.square(e), axis) + eps)`; `tf.norm` is not a fix there.

    Fix: unsafe (offered, not applied by default), PyTorch only, for a sum of squares written
    inline: `torch.sqrt((e ** 2).sum(dim=d))` -> `torch.linalg.vector_norm(e, dim=d)` (keepdim
    is carried over; a call with `dtype` is not rewritten). It changes the gradient at 0 from
    NaN to 0 and should be reviewed for dtype promotion.

    Stays silent inside `torch.no_grad()` / `inference_mode()` (no backward, so no NaN), in
    NumPy code, in constructors and weight initialisers, in data-processing code (feature
    extractor, processor, tokenizer, metric, callback and dataset classes, and modules named
    `feature_extraction_*`, `processing_*`, `metrics*`, `convert_*`...), when the result only
    feeds a non-differentiable call (`bucketize`, `argmin`, `.item()`), when the argument is
    guarded (`+ eps`, `clamp(min=eps)`, `maximum(s, K.epsilon())`, `+ tf.square(1e-3)`, `+`
    the square of a configuration value), when the squared value is a random draw, or when it
    is a Python number.

    Limits: whether a gradient reaches the value is not inferred beyond these cases; a sum of
    squares of plain inputs (no parameter upstream) is still reported.

    Off by default. On the transformers 5.24 source 9 of its 11 findings have the documented
    shape but hit the NaN gradient only for an exactly zero vector (CLIP-style embedding norms
    written by hand to stay exportable), and 2 sit on coordinates or audio that no gradient
    reaches (benchmarks/precision.md): too few clear wins for a default rule. Turn it on with
    `--extend-select DL108` in code that backpropagates through distances or gradient
    penalties.
    """

    code = "DL108"
    name = "sqrt-of-sum-of-squares"
    family = "numerical"
    message = ("sqrt of a sum of squares has an infinite gradient at 0 (NaN in backward); use "
               "torch.linalg.vector_norm, or add eps inside sqrt (in TF, tf.norm is not safe)")
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="unsafe sqrt: gradient of sqrt at zero",
        links=(
            "https://github.com/pytorch/pytorch/issues/2421",
            "https://github.com/pytorch/pytorch/pull/2775",
            "https://github.com/richzhang/PerceptualSimilarity/issues/69",
            "https://github.com/mpariente/pytorch_stoi/issues/7",
        ),
    )
    triggers = ("sqrt(", "** 0.5", "**0.5", "** .5", "**.5", "pow(", "norm(")
    default_enabled = False

    VALID = (
        Valid(dedent("""
            import torch
            dist = torch.sqrt(((a - b) ** 2).sum(-1) + 1e-12)
            norm = torch.linalg.vector_norm(a - b, dim=-1)
            """), "eps inside the sqrt; vector_norm"),
        Valid(dedent("""
            import torch
            @torch.no_grad()
            def evaluate(a, b):
                return torch.sqrt(((a - b) ** 2).mean())
            """), "no gradient in no_grad code"),
        Valid(dedent("""
            import numpy as np
            rmse = np.sqrt(np.mean((pred - y) ** 2))
            """), "NumPy has no backward"),
        Valid(dedent("""
            import keras
            from keras import ops
            def euclidean(x, y):
                sum_square = ops.sum(ops.square(x - y), axis=1, keepdims=True)
                return ops.sqrt(ops.maximum(sum_square, keras.backend.epsilon()))
            """), "clamped to K.epsilon()"),
        Valid(dedent("""
            import tensorflow as tf
            def charbonnier(y_true, y_pred):
                return tf.reduce_mean(tf.sqrt(tf.square(y_true - y_pred) + tf.square(1e-3)))
            """), "a squared constant keeps it positive"),
        Valid(dedent("""
            import torch
            def layer_norm(x, eps=1e-5):
                var = x.var(-1, keepdim=True)
                return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + eps)
            """), "eps added to the variance"),
        Valid(dedent("""
            import torch
            std = torch.sqrt(torch.exp(logvar))
            scale = (d_model ** 0.5)
            """), "not a sum of squares; a Python number"),
        Valid(dedent("""
            import tensorflow as tf
            n = tf.norm(w, axis=-1)
            """), "TF norm of a weight, not of a difference"),
        Valid(dedent("""
            import torch
            class SpeechFeatureExtractor(SequenceFeatureExtractor):
                def _fbank(self, stft):
                    magnitudes = torch.sqrt(stft.pow(2).sum(-1))
                    return magnitudes
            """), "feature extractors, processors and metrics have no backward pass"),
        Valid(dedent("""
            import torch
            def pts_to_distogram(pts, boundaries):
                dists = torch.sqrt(torch.sum((pts.unsqueeze(-2) - pts.unsqueeze(-3)) ** 2, dim=-1))
                return torch.bucketize(dists, boundaries)
            """), "only used by a non-differentiable call"),
        Valid(dedent("""
            import torch
            def random_rotations(n):
                q = torch.randn(n, 4)
                return q / torch.sqrt((q * q).sum(dim=1, keepdim=True))
            def precondition(self, noise_level, x):
                sigma_data = self.config.sigma_data
                return x / torch.sqrt(noise_level * noise_level + sigma_data * sigma_data)
            """), "random draws are never 0; a configured constant term keeps the sum positive"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                dist = torch.sqrt(((a - b) ** 2).sum(-1))
                """),
            fixed=dedent("""
                import torch
                dist = torch.linalg.vector_norm(a - b, dim=-1)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import torch
                def pull_away(embeddings):
                    norm = torch.sqrt(torch.sum(embeddings ** 2, -1, keepdim=True))
                    return embeddings / norm
                """),
            fixed=dedent("""
                import torch
                def pull_away(embeddings):
                    norm = torch.linalg.vector_norm(embeddings, dim=-1, keepdim=True)
                    return embeddings / norm
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def gradient_penalty(grads):
                    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
                    return tf.reduce_mean((norm - 1.0) ** 2)
                """),
            note="TF gradient penalty",
        ),
        Invalid(
            dedent("""
                import torch
                def rms(x, y):
                    return (x - y).pow(2).mean().sqrt()
                """),
            note="a mean of squares: reported, no vector_norm rewrite",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def color_constancy(d_rg, d_rb, d_gb):
                    return tf.sqrt(tf.square(d_rg) + tf.square(d_rb) + tf.square(d_gb))
                """),
            note="a sum of squares written with +",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def contrastive(a, b):
                    d = tf.norm(a - b, axis=-1)
                    return tf.reduce_mean(tf.square(d))
                """),
            note="TF norm of a difference",
        ),
        Invalid(
            dedent("""
                import keras
                def distance(u, v):
                    s = keras.ops.sum(keras.ops.square(u - v), axis=-1)
                    return keras.ops.sqrt(s)
                """),
            note="Keras 3 through a name",
        ),
        Invalid(
            dedent("""
                import torch
                def pdist(x):
                    d2 = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(-1)
                    return d2 ** 0.5
                """),
            note="power form through a name: the diagonal is exactly 0",
        ),
        Invalid(
            dedent("""
                import torch
                def dist(a, b):
                    a, b = a.half(), b.half()
                    return torch.sqrt(((a - b) ** 2).sum(-1) + 1e-10)
                """),
            note="float16 code: 1e-10 rounds to 0 inside the sqrt",
        ),
        Invalid(
            dedent("""
                import torch
                def l2(e):
                    return (e * e).sum(dim=1).sqrt()
                """),
            fixed=dedent("""
                import torch
                def l2(e):
                    return torch.linalg.vector_norm(e, dim=1)
                """),
            unsafe=True,
        ),
    )

    # ------------------------------------------------------------------ matching

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = ctx.qualname(node.func)
        if ctx.has_star_args(node):
            return
        if name in SQRT_FUNCTIONS:
            argument = ctx.argument(node, 0, "input" if name.startswith("torch") else "x")
            self._check(node, argument, name.startswith("torch"))
        elif name in POW_FUNCTIONS and len(node.args) == 2 and numeric_value(node.args[1].value) == 0.5:
            self._check(node, node.args[0].value, False)
        elif name in TF_NORMS:
            self._check_tf_norm(node)
        elif name is None and isinstance(node.func, cst.Attribute) and not is_module_receiver(ctx, node.func.value):
            method = node.func.attr.value
            if ctx.imports("torch") and method == "sqrt" and not node.args:
                self._check(node, node.func.value, True)
            elif ctx.imports("torch") and method == "pow" and len(node.args) == 1 and \
                    numeric_value(node.args[0].value) == 0.5:
                self._check(node, node.func.value, False)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Power) and numeric_value(node.right) == 0.5:
            ctx = self.ctx
            if ctx.imports("torch") or ctx.imports("tensorflow") or ctx.imports("keras") or ctx.imports("jax"):
                self._check(node, node.left, False)

    def _silent_here(self) -> bool:
        ctx = self.ctx
        return ctx.in_no_grad() or in_initialiser(ctx) or in_data_processing(ctx) or only_used_without_grad(ctx)

    def _check(self, node: Any, argument: Any, torch_fixable: bool) -> None:
        ctx = self.ctx
        if argument is None or self._silent_here():
            return
        original = bare(argument)
        if is_safe(ctx, original) or is_python_number(ctx, original):
            return
        argument = without_tiny_eps(ctx, original)
        direct = self._sum_of_squares(argument)
        found = direct
        if found is None:
            for value in list(origins(ctx, argument))[1:]:
                if is_safe(ctx, value) or is_python_number(ctx, value):
                    return
                found = self._sum_of_squares(value)
                if found is not None:
                    break
        if found is None or self.guarded(argument):
            return
        fix = self._fix(node, direct) if torch_fixable and direct is not None and argument is original else None
        message = self.message
        if argument is not original:
            message += " (float16 code: an eps below 1e-7 rounds to 0)"
        self.report(node, message=message, fix=fix)

    def _sum_of_squares(self, node: Any) -> Optional[Tuple[str, Any, Any]]:
        """("reduction", squared expression, reduction call) for a sum / mean of squares,
        ("variance", operand, call) for a variance, ("terms", None, None) for ``a**2 + b**2``."""
        ctx = self.ctx
        node = bare(node)
        found = reduction(ctx, node)
        if found is not None:
            kind, operand, call = found
            qual = (ctx.qualname(call.func) or "") if isinstance(call, cst.Call) else ""
            if qual.startswith("numpy."):
                return None
            if kind == "var":
                return ("variance", operand, call)
            if kind in _SUM_KINDS:
                operand = bare(operand)
                if is_safe(ctx, operand):
                    return None
                squared = square_of(ctx, operand)
                if squared is not None and self._never_zero(squared):
                    return None
                if squared is None:
                    for value in list(origins(ctx, operand))[1:2]:
                        if square_of(ctx, value) is not None and not is_safe(ctx, value):
                            return ("reduction", None, call)
                    return None
                if isinstance(operand, cst.Call) and (ctx.qualname(operand.func) or "").startswith("numpy."):
                    return None
                return ("reduction", squared, call)
            return None
        terms = add_terms(node)
        if len(terms) > 1 and all(square_of(ctx, t) is not None or self._sum_of_squares(t) is not None
                                  for t in terms):
            if any(square_of(ctx, t) is not None and self._never_zero(square_of(ctx, t)) for t in terms):
                return None  # ``noise ** 2 + sigma_data ** 2``: a configured constant keeps it positive
            return ("terms", None, None)
        return None

    def _never_zero(self, base: Any) -> bool:
        """A squared value that is a configuration constant or a random draw."""
        ctx = self.ctx
        base = bare(base)
        if is_hyperparameter(ctx, base):
            return True
        return any(is_random(ctx, value) for value in origins(ctx, base))

    def _check_tf_norm(self, node: cst.Call) -> None:
        ctx = self.ctx
        if self._silent_here():
            return
        argument = ctx.argument(node, 0, "tensor" if not (ctx.qualname(node.func) or "").startswith("keras") else "x")
        if argument is None:
            return
        for value in origins(ctx, argument, 1):
            value = bare(value)
            if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Subtract):
                if is_python_number(ctx, value.left) and is_python_number(ctx, value.right):
                    return
                if self.guarded(argument):
                    return
                self.report(node, message=_TF_MESSAGE)
                return

    # ------------------------------------------------------------------ fix

    def _fix(self, node: Any, found: Tuple[str, Any, Any]) -> Optional[Fix]:
        """``torch.sqrt((e**2).sum(dim=d, keepdim=k))`` -> ``torch.linalg.vector_norm(e, dim=d, keepdim=k)``."""
        ctx = self.ctx
        kind, squared, call = found
        if kind != "reduction" or squared is None or not isinstance(call, cst.Call):
            return None
        qual = ctx.qualname(call.func)
        if qual is not None and qual != "torch.sum":
            return None
        if qual is None and (not isinstance(call.func, cst.Attribute) or call.func.attr.value != "sum"):
            return None
        positional = [a for a in call.args if a.keyword is None]
        if qual == "torch.sum":
            positional = positional[1:]
        dim = ctx.keyword(call, "dim")
        keepdim = ctx.keyword(call, "keepdim")
        dim_value = dim.value if dim is not None else (positional[0].value if positional else None)
        keep_value = keepdim.value if keepdim is not None else (positional[1].value if len(positional) > 1 else None)
        if len(positional) > 2 or any(a.keyword is not None and a.keyword.value not in ("dim", "keepdim", "input")
                                      for a in call.args):
            return None
        target = ctx.reference_to("torch.linalg.vector_norm")
        imports: tuple = ()
        if target is None:
            target, imports = "torch.linalg.vector_norm", ("torch",)
        no_space = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                   whitespace_after=cst.SimpleWhitespace(""))
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        args = [cst.Arg(bare(squared))]
        if dim_value is not None:
            args.append(cst.Arg(dim_value, keyword=cst.Name("dim"), equal=no_space))
        if keep_value is not None:
            args.append(cst.Arg(keep_value, keyword=cst.Name("keepdim"), equal=no_space))
        args = [a.with_changes(comma=comma) for a in args[:-1]] + [args[-1]]
        new = cst.Call(func=cst.parse_expression(target), args=args,
                       lpar=getattr(node, "lpar", ()), rpar=getattr(node, "rpar", ()))
        return Fix("Use torch.linalg.vector_norm (gradient 0 instead of NaN at 0)", [(node, new)], FixKind.UNSAFE,
                   imports)
