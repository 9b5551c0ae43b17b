from __future__ import annotations

import re
from typing import Any, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._losses import LOG_ROOTED_FUNCTIONS, BlockResolver, resolve_name
from dllint.rules.numerical._values import (
    EXP_FUNCTIONS,
    method_name,
    numeric_value,
    positive_constant,
)

#: sum reductions: qualified name -> (keyword of the axis, keywords of keepdim)
_SUM_FUNCTIONS = {
    "torch.sum": ("dim", ("keepdim",)),
    "tensorflow.reduce_sum": ("axis", ("keepdims", "keep_dims")),
    "tensorflow.math.reduce_sum": ("axis", ("keepdims", "keep_dims")),
    "tensorflow.compat.v1.reduce_sum": ("axis", ("keepdims", "keep_dims")),
    "tensorflow.compat.v1.math.reduce_sum": ("axis", ("keepdims", "keep_dims")),
    "tensorflow.keras.backend.sum": ("axis", ("keepdims",)),
    "keras.backend.sum": ("axis", ("keepdims",)),
    "keras.ops.sum": ("axis", ("keepdims",)),
    "numpy.sum": ("axis", ("keepdims",)),
    "jax.numpy.sum": ("axis", ("keepdims",)),
}
#: division functions
_DIVIDE_FUNCTIONS = frozenset(
    {"torch.div", "torch.divide", "torch.true_divide", "tensorflow.divide", "tensorflow.math.divide",
     "tensorflow.truediv", "tensorflow.math.truediv", "tensorflow.compat.v1.div", "numpy.divide",
     "numpy.true_divide", "keras.ops.divide", "keras.ops.true_divide", "jax.numpy.divide"}
)
#: the framework of an exp spelling -> the softmax the fix calls and its axis keyword
_SOFTMAX_FOR = {
    "torch": ("torch.softmax", "dim"),
    "tensorflow": ("tensorflow.nn.softmax", "axis"),
    "keras": ("keras.ops.softmax", "axis"),
}
#: calls and methods that compute a maximum or a log-sum-exp (the stabilising shift)
_MAX_FUNCTIONS = frozenset(
    {"torch.max", "torch.amax", "torch.logsumexp", "tensorflow.reduce_max", "tensorflow.math.reduce_max",
     "tensorflow.compat.v1.reduce_max", "tensorflow.reduce_logsumexp", "tensorflow.math.reduce_logsumexp",
     "numpy.max", "numpy.amax", "numpy.nanmax", "scipy.special.logsumexp", "keras.ops.max", "keras.ops.amax",
     "keras.ops.logsumexp", "tensorflow.keras.backend.max", "keras.backend.max", "jax.numpy.max",
     "jax.numpy.amax", "jax.scipy.special.logsumexp"}
)
_MAX_METHODS = frozenset({"max", "amax", "logsumexp", "max_"})
_MAX_NAME = re.compile(r"max|lse|logsumexp|shift|norm|logz|log_z", re.IGNORECASE)
#: clip calls with an upper bound: qualified name -> (position, keyword) of the upper bound
_UPPER_CLIPS = {
    "torch.clamp": (2, "max"),
    "torch.clip": (2, "max"),
    "torch.clamp_max": (1, "max"),
    "tensorflow.clip_by_value": (2, "clip_value_max"),
    "tensorflow.minimum": (1, "y"),
    "tensorflow.math.minimum": (1, "y"),
    "numpy.clip": (2, "a_max"),
    "numpy.minimum": (1, None),
    "keras.ops.clip": (2, "x_max"),
    "torch.minimum": (1, "other"),
}
_RESHAPES = frozenset({"unsqueeze", "view", "reshape", "expand", "expand_as", "view_as", "reshape_as"})
_EXPAND_FUNCTIONS = frozenset({"torch.unsqueeze", "tensorflow.expand_dims", "numpy.expand_dims",
                               "keras.ops.expand_dims", "jax.numpy.expand_dims"})
_UPPER_CLIP_METHODS = {"clamp": (1, "max"), "clip": (1, "max"), "clamp_max": (0, "max")}


def _strip(node: Any) -> Any:
    while isinstance(node, cst.BaseExpression) and node.lpar and not isinstance(node, cst.Tuple):
        node = node.with_changes(lpar=(), rpar=())
    return node


def _code(node: Any) -> str:
    return re.sub(r"\s+", "", cst.Module([]).code_for_node(_strip(node)))


class HandwrittenSoftmax(Rule):
    """A softmax written by hand as exp(x) / sum(exp(x)) without subtracting the maximum.

    Finds `torch.exp(x) / torch.exp(x).sum(dim, keepdim=True)` (also `torch.sum(torch.exp(x), dim)`,
    `x.exp() / x.exp().sum(...)`), `tf.exp(x) / tf.reduce_sum(tf.exp(x), axis, keepdims=True)`,
    `np.exp(x) / np.sum(np.exp(x))`, the `keras.ops` spellings, `torch.div` / `tf.math.divide`
    forms, the named form `e = torch.exp(x); e / e.sum(1, keepdim=True)` and the masked form
    `exp(x) * m / (exp(x) * m).sum(-1, keepdim=True)`: the numerator and the summed term are the
    same exp (structurally equal arguments, or the same name).  An eps added to the denominator
    does not help (inf / inf stays NaN) and is still reported, as is a sum reshaped for
    broadcasting (`e.sum(1).unsqueeze(1)`, `e.sum(1)[:, None]`, `tf.expand_dims(...)`).  A
    version where only one of the two exps is clipped (`exp(clip(x, -87, 87)) / sum(exp(x))`)
    is reported as well: the unclipped one still overflows.

    Why it is a bug: `exp` overflows to inf for arguments above about 88.7 in float32 (709 in
    float64), and inf / inf is NaN; when every argument is below about -104, every exp is 0 and
    0 / 0 is NaN.  The library softmax subtracts the maximum first and never does either.
    TensorFuzz's `unsafe_softmax` (GRIST subjects ID_11 and ID_16) is this shape.

    How to fix: call the library softmax (`torch.softmax(x, dim=d)`, `tf.nn.softmax(x, axis=a)`,
    `scipy.special.softmax(x, axis=a)`), or subtract `x.max(dim, keepdim=True)` inside the exp.

    Fix: safe when numerator and denominator are the same `exp(x)` expression, the reduction
    axis is an integer literal, `keepdim=True` (`keepdims=True`) is given, and nothing is added
    to the sum: the division becomes `torch.softmax(x, dim=d)` / `tf.nn.softmax(x, axis=a)` /
    `keras.ops.softmax(x, axis=a)`, which is equal wherever the original is finite.  No
    automatic fix for NumPy (no softmax in NumPy itself), for the named form (the exp may be
    used elsewhere) or without an explicit axis.

    Stays silent when the exp argument subtracts a maximum or a log-sum-exp
    (`exp(x - x.max(1, keepdim=True)[0])`, `np.exp(x - np.max(x))`, `exp(x - x_max)`, also
    through a name assigned once), when both exps are clipped from above
    (`exp(clip(x, -87, 87))`), and when numerator and sum use different arguments.
    """

    code = "DL106"
    name = "handwritten-softmax"
    family = "numerical"
    message = "hand-written softmax overflows for large logits; use softmax(x, dim) (or subtract x.max(dim, keepdim=True) first)"
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="overflow of exp in a hand-written softmax (GRIST ID_11, ID_16)",
        links=(
            "https://github.com/Jacob-yen/GRIST",
            "https://github.com/brain-research/tensorfuzz",
        ),
    )
    triggers = ("exp(", "exp_(")

    VALID = (
        Valid(dedent("""
            import torch
            z = logits - logits.max(dim=1, keepdim=True)[0]
            p = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
            """), "max subtracted first (through a name)"),
        Valid(dedent("""
            import numpy as np
            def softmax(x):
                e_x = np.exp(x - np.max(x))
                return e_x / e_x.sum(axis=0)
            """), "NumPy, the classic stable form"),
        Valid(dedent("""
            import tensorflow as tf
            def safe_softmax(logits):
                return tf.exp(tf.clip_by_value(logits, -87, 87)) / tf.reduce_sum(
                    tf.exp(tf.clip_by_value(logits, -87, 87)), axis=1, keepdims=True)
            """), "both exps clipped from above"),
        Valid(dedent("""
            import torch
            w = torch.exp(a) / torch.exp(b).sum(dim=1, keepdim=True)
            """), "different arguments: not a softmax"),
        Valid(dedent("""
            import torch
            p = torch.exp(x) / (1 + torch.exp(x))
            """), "a sigmoid, not a sum"),
        Valid(dedent("""
            import math
            p = math.exp(a) / sum(math.exp(v) for v in values)
            """), "Python scalars: math.exp raises OverflowError instead of returning inf"),
        Valid(dedent("""
            import numpy as np
            def sample(preds, temperature=1.0):
                preds = np.asarray(preds).astype("float64")
                preds = np.log(preds) / temperature
                exp_preds = np.exp(preds)
                preds = exp_preds / np.sum(exp_preds)
                return np.random.multinomial(1, preds, 1)
            """), "exp of a log-probability over a temperature cannot overflow (names assigned several times, straight-line code)"),
        Valid(dedent("""
            import numpy as np
            z = np.exp((x - np.max(x, axis=1, keepdims=True)) / T)
            p = z / z.sum(axis=1, keepdims=True)
            """), "max subtracted, then scaled by a temperature"),
        Valid(dedent("""
            import torch
            lse = torch.logsumexp(x, dim=-1, keepdim=True)
            p = torch.exp(x - lse) / torch.exp(x - lse).sum(-1, keepdim=True)
            """), "log-sum-exp subtracted"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                p = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
                """),
            fixed=dedent("""
                import torch
                p = torch.softmax(z, dim=1)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                attn = torch.exp(scores / t) / torch.sum(torch.exp(scores / t), dim=-1, keepdim=True)
                """),
            fixed=dedent("""
                import torch
                attn = torch.softmax(scores / t, dim=-1)
                """),
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def unsafe_softmax(logits):
                    return tf.exp(logits) / tf.reduce_sum(tf.exp(logits), axis=1, keepdims=True)
                """),
            fixed=dedent("""
                import tensorflow as tf
                def unsafe_softmax(logits):
                    return tf.nn.softmax(logits, axis=1)
                """),
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def unsafe_softmax(logits):
                    return tf.exp(tf.clip_by_value(logits, -87, 87)) / tf.reduce_sum(
                        tf.exp(logits), axis=1, keepdims=True
                    )
                """),
            note="only the numerator is clipped: the sum still overflows (no fix)",
        ),
        Invalid(
            dedent("""
                import numpy as np
                probs = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
                """),
            note="NumPy: reported, no fix",
        ),
        Invalid(
            dedent("""
                import torch
                def attention(q, k):
                    e = torch.exp(q @ k.transpose(-2, -1))
                    return e / (e.sum(-1, keepdim=True) + 1e-9)
                """),
            note="named exp, an eps in the denominator does not help against inf / inf",
        ),
        Invalid(
            dedent("""
                import torch
                def masked_softmax(scores, mask):
                    return torch.exp(scores) * mask / (torch.exp(scores) * mask).sum(-1, keepdim=True)
                """),
            note="a masked softmax: reported, no fix",
        ),
        Invalid(
            dedent("""
                import torch
                e = torch.exp(logits)
                p = e / e.sum(1).unsqueeze(1)
                """),
            note="the sum reshaped for broadcasting",
        ),
        Invalid(
            dedent("""
                import torch
                p = x.exp() / x.exp().sum(1)
                """),
            note="method spelling without keepdim: reported, no fix",
        ),
        Invalid(
            dedent("""
                import keras
                p = keras.ops.exp(x) / keras.ops.sum(keras.ops.exp(x), axis=-1, keepdims=True)
                """),
            fixed=dedent("""
                import keras
                p = keras.ops.softmax(x, axis=-1)
                """),
        ),
    )

    # ------------------------------------------------------------------ matching

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Divide):
            self._check(node, node.left, node.right)

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.qualname(node.func) in _DIVIDE_FUNCTIONS:
            positional = [a for a in node.args if a.keyword is None and not a.star]
            if len(positional) == 2 and len(node.args) == 2:
                self._check(node, positional[0].value, positional[1].value)

    def _exp(self, node: Any) -> Optional[Tuple[Any, str]]:
        """(argument, framework) of an exp call, else None."""
        node = _strip(node)
        if not isinstance(node, cst.Call):
            return None
        name = self.ctx.qualname(node.func)
        if name in EXP_FUNCTIONS:
            arg = self.ctx.argument(node, 0, "input" if name.startswith("torch") else "x")
            if arg is None or len(node.args) != 1:
                return None
            return arg, name.split(".")[0]
        if name is None and method_name(node) == "exp" and not node.args and self.ctx.imports("torch"):
            return node.func.value, "torch-method"  # type: ignore[union-attr]
        return None

    def _exp_or_product(self, node: Any) -> Optional[Tuple[Any, str, bool]]:
        """(exp argument, framework, is a product) of ``exp(x)`` or ``exp(x) * w`` / ``w * exp(x)``
        (a masked or weighted softmax numerator)."""
        node = _strip(node)
        found = self._exp(node)
        if found is not None:
            return found[0], found[1], False
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
            for side in (node.left, node.right):
                found = self._exp(side)
                if found is not None:
                    return found[0], found[1], True
        return None

    def _numerator(self, node: Any, resolver: Optional[BlockResolver]) -> Optional[Tuple[Any, str, Optional[str], Optional[str]]]:
        """(exp argument, framework, name the numerator is bound to, code of a product numerator)."""
        node = _strip(node)
        found = self._exp_or_product(node)
        if found is not None:
            return found[0], found[1], None, _code(node) if found[2] else None
        if isinstance(node, cst.Name):
            value = resolve_name(self.ctx, node, resolver)
            found = self._exp_or_product(value)
            if found is not None:
                return found[0], found[1], node.value, _code(value) if found[2] else None
        return None

    def _sum(self, node: Any) -> Optional[Tuple[Any, Any, Any, bool]]:
        """(summed term, axis, keepdim value, not fixable: an eps added or a reshape) of a sum
        reduction denominator."""
        node = _strip(node)
        eps = False
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            if positive_constant(self.ctx, node.right):
                node, eps = _strip(node.left), True
            elif positive_constant(self.ctx, node.left):
                node, eps = _strip(node.right), True
        ctx = self.ctx
        for _ in range(3):
            # ``s.unsqueeze(1)``, ``s[:, None]``, ``tf.expand_dims(s, 1)``: the sum reshaped for
            # broadcasting (reported, never fixed)
            if isinstance(node, cst.Subscript):
                node, eps = _strip(node.value), True
            elif isinstance(node, cst.Call) and ctx.qualname(node.func) is None and method_name(node) in _RESHAPES:
                node, eps = _strip(node.func.value), True  # type: ignore[union-attr]
            elif isinstance(node, cst.Call) and ctx.qualname(node.func) in _EXPAND_FUNCTIONS and node.args:
                node, eps = _strip(node.args[0].value), True
            else:
                break
        if isinstance(node, cst.Name):
            value = resolve_name(ctx, node, BlockResolver.at(ctx))
            if value is not None:
                node = _strip(value)
        if not isinstance(node, cst.Call):
            return None
        name = ctx.qualname(node.func)
        if name in _SUM_FUNCTIONS:
            axis_kw, keep_kws = _SUM_FUNCTIONS[name]
            term = ctx.argument(node, 0, "input" if name.startswith("torch") else None)
            axis = ctx.argument(node, 1, axis_kw)
            if axis is None and ctx.keyword(node, "reduction_indices") is not None:
                axis = ctx.keyword(node, "reduction_indices").value  # type: ignore[union-attr]
            keep = ctx.argument(node, 2, keep_kws[0])
            for kw in keep_kws[1:]:
                if keep is None and ctx.keyword(node, kw) is not None:
                    keep = ctx.keyword(node, kw).value  # type: ignore[union-attr]
            return term, axis, keep, eps
        if name is None and method_name(node) == "sum":
            term = node.func.value  # type: ignore[union-attr]
            axis = ctx.argument(node, 0, "dim")
            if axis is None and ctx.keyword(node, "axis") is not None:
                axis = ctx.keyword(node, "axis").value  # type: ignore[union-attr]
            keep = ctx.argument(node, 1, "keepdim")
            if keep is None and ctx.keyword(node, "keepdims") is not None:
                keep = ctx.keyword(node, "keepdims").value  # type: ignore[union-attr]
            return term, axis, keep, eps
        return None

    def _stabilised(self, argument: Any, resolver: Optional[BlockResolver], depth: int = 3) -> bool:
        """Whether an exp argument subtracts a max / log-sum-exp, is clipped from above, or is a
        log (``exp(log(p) / T)`` is a power of a probability: it cannot overflow)."""
        ctx = self.ctx
        for _ in range(depth + 1):
            argument = _strip(argument)
            if isinstance(argument, cst.BinaryOperation) and isinstance(argument.operator, cst.Subtract):
                return self._is_max(argument.right, resolver.fork() if resolver else None)
            if isinstance(argument, cst.BinaryOperation) and isinstance(argument.operator, (cst.Divide, cst.Multiply)):
                # a shifted or log value scaled by a temperature
                fork = resolver.fork() if resolver else None
                if self._stabilised(argument.left, fork, depth - 1):
                    return True
                fork = resolver.fork() if resolver else None
                return isinstance(argument.operator, cst.Multiply) and self._stabilised(argument.right, fork, depth - 1)
            if isinstance(argument, cst.Call):
                if self._is_log(argument):
                    return True
                name = ctx.qualname(argument.func)
                bound = None
                if name in _UPPER_CLIPS:
                    position, keyword = _UPPER_CLIPS[name]
                    bound = ctx.argument(argument, position, keyword)
                elif name is None and method_name(argument) in _UPPER_CLIP_METHODS:
                    position, keyword = _UPPER_CLIP_METHODS[method_name(argument)]  # type: ignore[index]
                    bound = ctx.argument(argument, position, keyword)
                if bound is not None:
                    return not (isinstance(bound, cst.Name) and bound.value == "None")
                return False
            value = resolve_name(ctx, argument, resolver)
            if value is None:
                return False
            argument = value
        return False

    def _is_log(self, node: Any) -> bool:
        node = _strip(node)
        if not isinstance(node, cst.Call):
            return False
        name = self.ctx.qualname(node.func)
        return name in LOG_ROOTED_FUNCTIONS or (name is None and method_name(node) in ("log", "log_softmax"))

    def _is_max(self, node: Any, resolver: Optional[BlockResolver], depth: int = 2) -> bool:
        ctx = self.ctx
        for _ in range(depth + 1):
            node = _strip(node)
            while isinstance(node, cst.Subscript) or (isinstance(node, cst.Attribute) and node.attr.value == "values"):
                node = _strip(node.value)
            if isinstance(node, cst.Call):
                name = ctx.qualname(node.func)
                if name in _MAX_FUNCTIONS or (name is None and method_name(node) in _MAX_METHODS):
                    return True
                if name is None and method_name(node) in ("detach", "unsqueeze", "view", "reshape", "expand_as"):
                    node = node.func.value  # type: ignore[union-attr]
                    continue
                if name in ("tensorflow.stop_gradient", "jax.lax.stop_gradient") and node.args:
                    node = node.args[0].value
                    continue
                return False
            if isinstance(node, (cst.Name, cst.Attribute)):
                text = node.value if isinstance(node, cst.Name) else node.attr.value
                if _MAX_NAME.search(text):
                    return True
                value = resolve_name(ctx, node, resolver)
                if value is None:
                    return False
                node = value
                continue
            return False
        return False

    def _check(self, division: Any, numerator: Any, denominator: Any) -> None:
        resolver = BlockResolver.at(self.ctx)
        top = self._numerator(numerator, resolver)
        if top is None:
            return
        argument, framework, bound_name, product = top
        bottom = self._sum(denominator)
        if bottom is None:
            return
        term, axis, keep, eps = bottom
        if term is None:
            return
        term = _strip(term)
        if bound_name is not None or product is not None:
            # ``e / e.sum()``, ``e / exp(x).sum()`` with ``e = exp(x)``, and the masked
            # ``exp(x) * m / (exp(x) * m).sum()``: reported, never fixed
            if isinstance(term, cst.Name) and term.value == bound_name:
                same = True
            elif product is not None:
                same = _code(term) == product
            else:
                found = self._exp(term)
                same = found is not None and _code(found[0]) == _code(argument)
            if same and not self._stabilised(argument, resolver):
                self.report(division)
            return
        found = self._exp(term)
        if found is None:
            return
        inner = found[0]
        if _code(inner) == _code(argument):
            if self._stabilised(argument, resolver):
                return
            self.report(division, fix=self._fix(division, argument, framework, found[1], axis, keep, eps))
            return
        # the same argument up to a clip on one side: the unclipped exp still overflows
        if self._unclipped(argument) == _code(inner) or self._unclipped(inner) == _code(argument):
            if self._stabilised(argument, resolver and resolver.fork()) and self._stabilised(inner, resolver and resolver.fork()):
                return
            self.report(division)

    def _unclipped(self, node: Any) -> Optional[str]:
        node = _strip(node)
        if isinstance(node, cst.Call):
            name = self.ctx.qualname(node.func)
            if name in _UPPER_CLIPS:
                inner = self.ctx.argument(node, 0, None)
                return _code(inner) if inner is not None else None
            if name is None and method_name(node) in _UPPER_CLIP_METHODS:
                return _code(node.func.value)  # type: ignore[union-attr]
        return None

    def _fix(self, division: Any, argument: Any, framework: str, other: str, axis: Any, keep: Any,
             eps: bool) -> Optional[Fix]:
        framework = "torch" if framework == "torch-method" else framework
        other = "torch" if other == "torch-method" else other
        if eps or axis is None or keep is None or framework != other or framework not in _SOFTMAX_FOR:
            return None
        if not (isinstance(keep, cst.Name) and keep.value == "True"):
            return None
        value = numeric_value(axis)
        if value is None or value != int(value) or not isinstance(_strip(axis), (cst.Integer, cst.UnaryOperation)):
            return None
        target, axis_kw = _SOFTMAX_FOR[framework]
        ctx = self.ctx
        text = ctx.reference_to(target)
        imports: tuple = ()
        if text is None:
            text = target
            imports = (target.rsplit(".", 1)[0],)
        call = cst.Call(
            func=cst.parse_expression(text),
            args=[
                cst.Arg(value=argument, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                cst.Arg(value=_strip(axis), keyword=cst.Name(axis_kw),
                        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                              whitespace_after=cst.SimpleWhitespace(""))),
            ],
        )
        new = call.with_changes(lpar=division.lpar, rpar=division.rpar) if division.lpar else call
        return Fix("Use the library softmax", [(division, new)], imports=imports)
