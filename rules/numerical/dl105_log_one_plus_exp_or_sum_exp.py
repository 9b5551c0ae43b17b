from __future__ import annotations

from typing import Any, List, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._logs import (
    LOG1P_FUNCTIONS,
    code_of,
    framework_of,
    is_clamp,
    is_exp_call,
    log_call_argument,
    negated,
    origins,
    strip,
)
from dllint.rules.numerical._values import is_method_call, is_python_number, method_name, numeric_value

#: softplus of each framework (the function that equals log(1 + exp(x)) with one argument)
SOFTPLUS_OF = {
    "torch": "torch.nn.functional.softplus",
    "tensorflow": "tensorflow.math.softplus",
    "keras": "keras.ops.softplus",
    "jax": "jax.nn.softplus",
}
#: sum reduction -> logsumexp with the same parameters after the input
LOGSUMEXP_OF = {
    "torch.sum": "torch.logsumexp",
    "tensorflow.reduce_sum": "tensorflow.reduce_logsumexp",
    "tensorflow.math.reduce_sum": "tensorflow.math.reduce_logsumexp",
    "tensorflow.compat.v1.reduce_sum": "tensorflow.compat.v1.reduce_logsumexp",
    "tensorflow.compat.v1.math.reduce_sum": "tensorflow.compat.v1.math.reduce_logsumexp",
    "keras.ops.sum": "keras.ops.logsumexp",
    "numpy.sum": "scipy.special.logsumexp",
    "jax.numpy.sum": "jax.nn.logsumexp",
}
_MEANS = frozenset({"torch.mean", "tensorflow.reduce_mean", "tensorflow.math.reduce_mean",
                    "tensorflow.compat.v1.reduce_mean", "keras.ops.mean", "numpy.mean", "jax.numpy.mean"})
#: an upper bound on the argument of exp: -abs(x), -x**2, -relu(x), ...
_NON_NEGATIVE = ("abs", "square", "relu", "softplus", "exp", "sigmoid", "norm")
#: random tensors (test inputs) of a modest range
_RANDOM_CONSTRUCTORS = frozenset({"rand", "randn", "rand_like", "randn_like", "uniform", "normal", "random_sample",
                                  "standard_normal"})
#: a subtracted value with one of these words is a stabilising maximum (x - x.max())
_MAXIMUM_WORDS = ("max", "logsumexp", "lse")


#: element-wise selections: where(cond, a, b)
_WHERE_FUNCTIONS = frozenset({"torch.where", "tensorflow.where", "tensorflow.compat.v1.where", "tensorflow.where_v2",
                              "numpy.where", "jax.numpy.where", "keras.ops.where"})


class LogOnePlusExpOrSumExp(Rule):
    """log(1 + exp(x)) instead of softplus, log(sum(exp(x))) instead of logsumexp.

    Finds `torch.log(1 + torch.exp(x))`, `torch.log(torch.exp(x) + 1)`, `x.exp().add(1).log()`,
    `torch.log1p(torch.exp(x))`, `tf.math.log(1 + tf.exp(x))`, `np.log(1 + np.exp(x))`, and the
    log of a sum (or mean) of exponentials: `torch.log(torch.sum(torch.exp(x), dim=1))`,
    `x.exp().sum(-1).log()`, `tf.math.log(tf.reduce_sum(tf.exp(x), axis))`, `keras.ops` and NumPy
    spellings.

    Why it is a bug: `exp` overflows to inf for x ≳ 88.7 in float32 (≳ 709.8 in float64; ≳ 11 in
    float16), so the log is inf and the gradient NaN, although the true value is just about x.
    GRIST subjects ID_22/51 (an RBM free energy `wx_b.exp().add(1).log().sum(1)`) produce NaN
    this way.  softplus and logsumexp subtract the maximum first and never overflow.

    How to fix: `F.softplus(x)` (`tf.math.softplus`, `keras.ops.softplus`, `np.logaddexp(0, x)`),
    and `torch.logsumexp(x, dim)` (`tf.reduce_logsumexp`, `keras.ops.logsumexp`,
    `scipy.special.logsumexp`).  For a mean, `logsumexp(x, dim) - log(n)`.

    Fix: safe for the softplus shapes (PyTorch's default beta=1 and threshold=20 agree with
    `log(1 + exp(x))` to float32 precision; `np.logaddexp(0, x)` is exact) and for
    `log(sum(exp(x)))` when the reduction's arguments carry over unchanged: `torch.sum` only with
    an explicit `dim` (pytorch/pytorch#144339) and no `dtype`; TensorFlow and `keras.ops` always
    (same parameters).  The NumPy rewrite needs SciPy, so it is a suggestion unless the file
    already imports SciPy.  No fix for a mean.

    A `torch.where(g > 20, g, torch.log(1 + torch.exp(g)))` guard keeps the value finite but not
    the gradient: the dropped branch is still inf, and its gradient 0 * inf is NaN (measured,
    torch 2.13: grad NaN at g = 100).  It is reported with its own message; the same guard in
    NumPy (no gradient) is left alone.

    Stays silent when the exponent is already bounded above: a stabilised `exp(x - x.max())`
    (a subtracted value mentioning max / logsumexp, directly or through its name),
    `exp(-abs(x))`, `exp(-x**2)`, `exp(-abs(d) * scale)` and similar, a clamp, a numeric literal,
    a Python number (`math.pi`), literal test arrays and random test inputs (`np.random.rand`).
    """

    code = "DL105"
    name = "log-one-plus-exp-or-sum-exp"
    family = "numerical"
    message = "log(1 + exp(x)) overflows for large x; use softplus(x)"
    LOGSUMEXP = "log(sum(exp(x))) overflows; use logsumexp(x, dim)"
    LOGMEANEXP = "log(mean(exp(x))) overflows; use logsumexp(x, dim) - log(n)"
    WHERE = (
        "log(1 + exp(x)) overflows for large x, and where() does not help the gradient: the inf of the "
        "branch it drops still makes the gradient NaN; use softplus(x)"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="exp overflow inside log (GRIST ID_22/51)",
        links=(
            "https://github.com/Jacob-yen/GRIST",
            "https://pytorch.org/docs/stable/generated/torch.nn.functional.softplus.html",
            "https://pytorch.org/docs/stable/generated/torch.logsumexp.html",
            "https://github.com/pytorch/pytorch/issues/144339",
        ),
    )
    triggers = ("exp(", "exp_(")

    VALID = (
        Valid(dedent("""
            import torch.nn.functional as F
            hidden_term = F.softplus(wx_b).sum(1)
            """), "already softplus"),
        Valid(dedent("""
            import torch
            m = x.max(dim=1, keepdim=True).values
            lse = m + torch.log(torch.sum(torch.exp(x - m), dim=1, keepdim=True))
            """), "stabilised by subtracting the maximum"),
        Valid(dedent("""
            import torch
            loss = torch.clamp(x, min=0) + torch.log(1 + torch.exp(-torch.abs(x)))
            """), "the stable softplus formula: the exponent is at most 0"),
        Valid(dedent("""
            import numpy as np
            c = np.log(1 + np.exp(2.0))
            """), "a constant"),
        Valid(dedent("""
            import torch
            y = torch.log(1 + torch.exp(torch.clamp(x, max=50)))
            """), "clamped exponent"),
        Valid(dedent("""
            import torch
            y = torch.log(torch.exp(x).sum(1) + torch.exp(z))
            """), "not one of the two shapes"),
        Valid(dedent("""
            import math
            import numpy as np
            y = np.log(1 + np.exp(math.pi))
            """), "a Python number"),
        Valid(dedent("""
            import tensorflow as tf
            def logaddexp2(delta, log2):
                return tf.math.log1p(tf.math.exp(-tf.abs(delta) * log2)) / log2
            """), "a product of -abs(...) and a scale: at most 0"),
        Valid(dedent("""
            import numpy as np
            x = np.array([[1, 2], [3, 4]], dtype=np.float32)
            y = np.random.rand(5, 5)
            expected = np.log(np.sum(np.exp(x), axis=0))
            other = np.log(np.sum(np.exp(y)))
            """), "test data that cannot overflow"),
        Valid(dedent("""
            import numpy as np
            def log_sigmoid(x):
                return np.where(x < 0, x - np.log1p(np.exp(x)), -np.log1p(np.exp(-x)))
            """), "NumPy where(): the kept branch is finite and there is no gradient"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                hidden_term = wx_b.exp().add(1).log().sum(1)
                """),
            fixed=dedent("""
                import torch
                import torch.nn.functional as F
                hidden_term = F.softplus(wx_b).sum(1)
                """),
            note="GRIST ID_51",
        ),
        Invalid(
            dedent("""
                import torch
                a = torch.log(1 + torch.exp(x))
                b = torch.log1p(torch.exp(-margin * y))
                """),
            fixed=dedent("""
                import torch
                a = torch.nn.functional.softplus(x)
                b = torch.nn.functional.softplus(-margin * y)
                """),
            count=2,
        ),
        Invalid(
            dedent("""
                import torch
                lse = torch.log(torch.sum(torch.exp(scores), dim=-1, keepdim=True))
                """),
            fixed=dedent("""
                import torch
                lse = torch.logsumexp(scores, dim=-1, keepdim=True)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                lse = torch.log(torch.exp(scores).sum())
                """),
            note="no dim: reported, no automatic fix",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                sp = tf.math.log(1.0 + tf.exp(x))
                lse = tf.math.log(tf.reduce_sum(tf.exp(logits), axis=1))
                """),
            fixed=dedent("""
                import tensorflow as tf
                sp = tf.math.softplus(x)
                lse = tf.reduce_logsumexp(logits, axis=1)
                """),
            count=2,
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                lse = tf.log(tf.reduce_sum(tf.exp(logits), 1))
                """),
            fixed=dedent("""
                import tensorflow as tf
                lse = tf.reduce_logsumexp(logits, 1)
                """),
            note="TF1 spelling",
        ),
        Invalid(
            dedent("""
                import numpy as np
                sp = np.log(np.exp(z) + 1)
                """),
            fixed=dedent("""
                import numpy as np
                sp = np.logaddexp(0, z)
                """),
        ),
        Invalid(
            dedent("""
                import numpy as np
                lse = np.log(np.sum(np.exp(z), axis=1))
                """),
            fixed=dedent("""
                import numpy as np
                import scipy.special
                lse = scipy.special.logsumexp(z, axis=1)
                """),
            unsafe=True,
            note="needs SciPy: a suggestion",
        ),
        Invalid(
            dedent("""
                import keras
                lse = keras.ops.log(keras.ops.sum(keras.ops.exp(x), axis=-1))
                """),
            fixed=dedent("""
                import keras
                lse = keras.ops.logsumexp(x, axis=-1)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                mi = torch.log(torch.mean(torch.exp(t_marginal)))
                """),
            note="log of a mean of exp: reported, no fix",
        ),
        Invalid(
            dedent("""
                import torch
                g_softplus = torch.where(g > 20.0, g, torch.log(1.0 + torch.exp(g)))
                """),
            fixed=dedent("""
                import torch
                g_softplus = torch.where(g > 20.0, g, torch.nn.functional.softplus(g))
                """),
            note="torch.where keeps the value finite but the gradient is NaN for g > 88",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = ctx.qualname(node.func)
        if name in LOG1P_FUNCTIONS or (name is None and is_method_call(node, "log1p") and not node.args
                                        and ctx.imports("torch")):
            argument = node.func.value if name is None else ctx.argument(node, 0, "input" if name.startswith("torch") else "x")
            exponent = is_exp_call(ctx, argument)
            if exponent is not None and not self._bounded(exponent):
                log_name = "torch.log1p" if name is None else name
                self._report_softplus(node, self._softplus_fix(node, log_name, strip(argument), exponent))
            return
        found = log_call_argument(ctx, node)
        if found is None:
            return
        argument, log_name = found
        if log_name == "method":
            log_name = "torch.log"
        single = name is None or (len(node.args) == 1 and not node.args[0].star)
        inner = strip(argument)
        exp_call = self._one_plus_exp(inner)
        if exp_call is not None:
            exponent = is_exp_call(ctx, exp_call)
            if exponent is not None and not self._bounded(exponent):
                self._report_softplus(node, self._softplus_fix(node, log_name, exp_call, exponent) if single else None)
            return
        reduction = self._sum_of_exp(inner)
        if reduction is not None:
            reduce_call, exp_call, exponent, is_sum = reduction
            if self._bounded(exponent):
                return
            fix = self._logsumexp_fix(node, log_name, reduce_call, exp_call, exponent) if single and is_sum else None
            self.report(node, message=self.LOGSUMEXP if is_sum else self.LOGMEANEXP, fix=fix)

    def _report_softplus(self, node: cst.Call, fix: Optional[Fix]) -> None:
        selection = self._where_branch()
        if selection is None:
            self.report(node, fix=fix)
        elif framework_of(selection) != "numpy":
            # NumPy has no gradient: the value where() keeps is finite, so only autograd code is hurt
            self.report(node, message=self.WHERE, fix=fix)

    def _where_branch(self) -> Optional[str]:
        """The qualified name of a ``where(cond, a, b)`` whose ``a`` or ``b`` holds the node being
        visited (a few levels up), else None."""
        ctx = self.ctx
        for level in range(1, 8):
            ancestor = ctx.parent(level)
            if ancestor is None or isinstance(ancestor, (cst.BaseStatement, cst.BaseSmallStatement, cst.Lambda)):
                return None
            if isinstance(ancestor, cst.Arg) and isinstance(ctx.parent(level + 1), cst.Call):
                call = ctx.parent(level + 1)
                name = ctx.qualname(call.func)
                if name in _WHERE_FUNCTIONS and call.args and call.args[0] is not ancestor:
                    return name
        return None

    # ------------------------------------------------------------------ shapes

    def _one_plus_exp(self, node: Any) -> Optional[Any]:
        """The exp call in ``1 + exp(x)`` / ``exp(x) + 1`` / ``exp(x).add(1)``."""
        ctx = self.ctx
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            for one, other in ((node.left, node.right), (node.right, node.left)):
                if numeric_value(one) == 1.0 and is_exp_call(ctx, other) is not None:
                    return strip(other)
        if is_method_call(node, "add") and ctx.qualname(node.func) is None and len(node.args) == 1 \
                and node.args[0].keyword is None and numeric_value(node.args[0].value) == 1.0:
            receiver = strip(node.func.value)
            if is_exp_call(ctx, receiver) is not None:
                return receiver
        return None

    def _sum_of_exp(self, node: Any) -> Optional[Tuple[cst.Call, Any, Any, bool]]:
        """(the reduction, the exp call, the exponent, whether it is a sum) for ``sum(exp(x), ...)``
        and ``exp(x).sum(...)`` (means too)."""
        ctx = self.ctx
        if not isinstance(node, cst.Call):
            return None
        name = ctx.qualname(node.func)
        body = None
        if name in LOGSUMEXP_OF or name in _MEANS:
            body = ctx.argument(node, 0, {"torch": "input", "tensorflow": "input_tensor", "numpy": "a"}.get(
                name.split(".", 1)[0], "x"))
        elif name is None and method_name(node) in ("sum", "mean") and isinstance(node.func, cst.Attribute):
            body = node.func.value
        if body is None:
            return None
        exponent = is_exp_call(ctx, body)
        if exponent is None:
            return None
        is_sum = name in LOGSUMEXP_OF or (name is None and method_name(node) == "sum")
        return node, body, exponent, is_sum

    def _bounded(self, exponent: Any) -> bool:
        """Whether the exponent is kept from overflowing: a subtracted maximum, ``-abs(x)``-like,
        a clamp, a literal, a Python number (also through the names it comes from)."""
        ctx = self.ctx
        candidates: List[Any] = [exponent]
        found = origins(ctx, exponent)
        if found:
            candidates.extend(found)
        for candidate in candidates:
            candidate = strip(candidate)
            if numeric_value(candidate) is not None or is_python_number(ctx, candidate) or is_clamp(ctx, candidate):
                return True
            if (ctx.qualname(candidate) or "").startswith("math."):
                return True  # math.pi, math.e
            if isinstance(candidate, cst.BinaryOperation) and isinstance(candidate.operator, cst.Subtract):
                subtracted = [candidate.right] + (origins(ctx, candidate.right) or [])
                if any(word in code_of(ctx, s).lower() for s in subtracted for word in _MAXIMUM_WORDS):
                    return True
            inner, minus = negated(candidate)
            if minus and self._non_negative(inner):
                return True
            if self._negative_product(candidate) or self._small_data(candidate):
                return True
        return False

    def _negative_product(self, node: Any) -> bool:
        """``-abs(d) * scale``: one factor is minus a non-negative value, no other factor is negated."""
        node = strip(node)
        if not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Divide))):
            return False
        parts = [node.left, node.right]
        signs = [negated(p) for p in parts]
        bounded = [minus and self._non_negative(inner) for inner, minus in signs]
        return any(bounded) and sum(1 for _, minus in signs if minus) == 1

    def _small_data(self, node: Any) -> bool:
        """Test data that cannot overflow: a literal array (``np.array([[1, 2], [3, 4]])``, a list of
        small numbers) or a draw from a random generator (``np.random.rand(5, 5)``)."""
        ctx = self.ctx
        node = strip(node)
        if isinstance(node, cst.Call):
            name = ctx.qualname(node.func) or ""
            last = name.rsplit(".", 1)[-1]
            if ".random" in name or name.startswith("random.") or last in _RANDOM_CONSTRUCTORS:
                return True
            if last in ("array", "asarray", "tensor", "constant", "convert_to_tensor") and node.args:
                node = strip(node.args[0].value)
            else:
                return False
        if isinstance(node, (cst.List, cst.Tuple)):
            values = []
            todo = [node]
            while todo:
                current = strip(todo.pop())
                if isinstance(current, (cst.List, cst.Tuple)):
                    todo.extend(e.value for e in current.elements)
                else:
                    values.append(numeric_value(current))
            return bool(values) and all(v is not None and abs(v) < 80 for v in values)
        return False

    def _non_negative(self, node: Any) -> bool:
        ctx = self.ctx
        node = strip(node)
        if isinstance(node, cst.BinaryOperation):
            if isinstance(node.operator, cst.Power) and numeric_value(node.right) == 2.0:
                return True
            if isinstance(node.operator, (cst.Multiply, cst.Divide)):
                left, right = strip(node.left), strip(node.right)
                if code_of(ctx, left) == code_of(ctx, right):
                    return True  # x * x
                return (self._non_negative(left) or (numeric_value(left) or -1) > 0) and (
                    self._non_negative(right) or (numeric_value(right) or -1) > 0)
            return False
        if isinstance(node, cst.Call):
            name = ctx.qualname(node.func) or method_name(node) or ""
            last = name.rsplit(".", 1)[-1]
            if last in ("pow", "power") and numeric_value(ctx.argument(node, 1 if ctx.qualname(node.func) else 0)) == 2.0:
                return True
            return any(last == word or last.startswith(word) for word in _NON_NEGATIVE)
        return False

    # ------------------------------------------------------------------ fixes

    def _callee(self, target: str) -> Tuple[Any, Tuple[str, ...]]:
        text = self.ctx.reference_to(target)
        if text is not None:
            return cst.parse_expression(text), ()
        return cst.parse_expression(target), (target.rsplit(".", 1)[0],)

    def _exp_framework(self, exp_call: Any) -> Optional[str]:
        exp_call = strip(exp_call)
        name = self.ctx.qualname(exp_call.func) if isinstance(exp_call, cst.Call) else None
        return "torch" if name is None else framework_of(name)

    def _softplus_fix(self, log_call: cst.Call, log_name: str, exp_call: Any, exponent: Any) -> Optional[Fix]:
        framework = framework_of(log_name)
        if framework != self._exp_framework(exp_call):
            return None
        exp_call = strip(exp_call)
        if isinstance(exp_call, cst.Call) and (len(exp_call.args) > 1 or any(a.star for a in exp_call.args)):
            return None
        value = strip(exponent) if not isinstance(exponent, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) \
            else exponent
        if framework == "numpy":
            callee = self._callee("numpy.logaddexp")
            new = cst.Call(func=callee[0], args=[cst.Arg(cst.Integer("0")), cst.Arg(value)])
        elif framework in SOFTPLUS_OF:
            callee = self._callee(SOFTPLUS_OF[framework])
            new = cst.Call(func=callee[0], args=[cst.Arg(value)])
        else:
            return None
        return Fix("Use softplus", [(log_call, new.with_changes(lpar=log_call.lpar, rpar=log_call.rpar))],
                   imports=callee[1])

    def _logsumexp_fix(self, log_call: cst.Call, log_name: str, reduce_call: cst.Call, exp_call: Any,
                       exponent: Any) -> Optional[Fix]:
        ctx = self.ctx
        framework = framework_of(log_name)
        if framework != self._exp_framework(exp_call):
            return None
        bare = strip(exp_call)
        if isinstance(bare, cst.Call) and (len(bare.args) > 1 or any(a.star for a in bare.args)):
            return None
        name = ctx.qualname(reduce_call.func)
        if name is None:  # exp(x).sum(...): a torch tensor method
            if framework != "torch":
                return None
            target = "torch.logsumexp"
            rest = list(reduce_call.args)
        else:
            target = LOGSUMEXP_OF.get(name)
            if target is None or framework_of(name) != framework:
                return None
            rest = [a for a in reduce_call.args if a.value is not exp_call]
            if len(rest) != len(reduce_call.args) - 1:
                return None
        if any(a.star for a in rest):
            return None
        keywords = {a.keyword.value for a in rest if a.keyword is not None}
        positional = [a for a in rest if a.keyword is None]
        applicability = FixKind.SAFE
        if framework == "torch":
            # torch.sum(input, dim, keepdim=False, *, dtype=None) -> torch.logsumexp(input, dim, keepdim=False)
            if not (positional or "dim" in keywords) or keywords - {"dim", "keepdim"} or len(positional) > 2:
                return None
        elif framework in ("numpy", "jax"):
            # np.sum(a, axis, dtype, ...) -> logsumexp(a, axis, b, keepdims=...): only axis carries over by position
            if len(positional) > 1 or keywords - {"axis", "keepdims"}:
                return None
            if framework == "numpy" and not any(m == "scipy" or m.startswith("scipy.") for m in ctx.imported_modules):
                applicability = FixKind.UNSAFE
        elif framework == "tensorflow" and isinstance(reduce_call.func, cst.Attribute):
            # keep the module path the file used: tf.reduce_sum -> tf.reduce_logsumexp
            base = ctx.qualname(reduce_call.func.value)
            last = target.rsplit(".", 1)[1]
            if base is not None and f"{base}.{last}" == target:
                func = reduce_call.func.with_changes(attr=cst.Name(last))
                value = exponent
                new = cst.Call(func=func, args=[cst.Arg(value)] + [a for a in rest])
                return Fix("Use logsumexp", [(log_call, self._tidy(new, log_call))])
        callee = self._callee(target)
        new = cst.Call(func=callee[0], args=[cst.Arg(exponent)] + rest)
        return Fix("Use logsumexp", [(log_call, self._tidy(new, log_call))], applicability=applicability,
                   imports=callee[1])

    @staticmethod
    def _tidy(new: cst.Call, old: cst.Call) -> cst.Call:
        """Give the new call the old one's parentheses and a clean comma after the first argument."""
        args = list(new.args)
        fixed = []
        for i, arg in enumerate(args):
            last = i == len(args) - 1
            if last:
                fixed.append(arg.with_changes(comma=cst.MaybeSentinel.DEFAULT))
            else:
                fixed.append(arg.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))))
        return new.with_changes(args=fixed, lpar=old.lpar, rpar=old.rpar)
