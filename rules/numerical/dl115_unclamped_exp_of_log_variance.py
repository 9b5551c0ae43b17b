from __future__ import annotations

import re
from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._logs import all_assigned_values, code_of, is_clamp, is_exp_call, negated, origins, strip
from dllint.rules.numerical._values import is_method_call, is_python_number, numeric_value

#: names of a log-variance / log-standard-deviation (the last identifier of a name or attribute)
_LOG_VARIANCE = re.compile(r"log_?(var|variance|sigma|std)", re.IGNORECASE)
#: words in a value's origin that show it is bounded already
_BOUNDING = ("clamp", "clip", "tanh", "sigmoid", "softplus", "minimum", "maximum")
#: constructors of a learned or constant tensor (not a network output)
_CONSTANT_CONSTRUCTORS = ("Parameter", "Variable", "zeros", "ones", "full", "tensor", "constant", "empty",
                          "add_weight", "randn", "rand", "log", "get_variable", "fill")


class UnclampedExpOfLogVariance(Rule):
    """exp() of a log-variance network output with no clamp.

    Finds `torch.exp(logvar)`, `torch.exp(0.5 * logvar)`, `logvar.exp()`, `logvar.mul(0.5).exp_()`,
    `tf.exp(0.5 * z_log_var)`, `tf.sqrt(tf.exp(z_log_sigma_sq))` where the exponent is a name or
    attribute called like a log-variance or log-standard-deviation (`logvar`, `log_var`,
    `z_log_var`, `log_sigma`, `z_log_sigma_sq`, `log_std`, `__logvar__`), and neither it nor
    anything it comes from is clamped.

    Why it is a bug: a log-variance predicted by a network is unbounded; early in training or on
    an unusual input it can exceed 88.7 (float32) and `exp` returns inf, so the sample or the
    KL term becomes inf/NaN.  GRIST subject ID_4 (a PyTorch Geometric VGAE `__logvar__`, fixed
    by clamping to a maximum) and the GRIST TensorFlow VAE subjects (fixed with
    `tf.clip_by_value(z_log_sigma_sq, -100, 87)`) fail this way.

    How to fix: clamp the exponent (`torch.exp(0.5 * logvar.clamp(-30, 20))`,
    `tf.clip_by_value(z_log_var, -30, 20)`) or predict the scale with a positive link
    (`F.softplus(raw) + 1e-6`).

    Speculative and off by default: it relies on the name; many VAEs train fine without the
    clamp, so most findings are a robustness warning, not a crash already seen.  Enable it with
    `--select DL115`.

    Stays silent when the exponent or one of its reaching assignments is a clamp/clip, passes
    through tanh/sigmoid/softplus, is a learned or constant tensor (`nn.Parameter(...)`,
    `torch.zeros(...)`, `tf.Variable`), a Python number or an upper-case constant, or when the
    enclosing function clamps the name anywhere (`logvar.clamp_(...)`, `logvar = logvar.clamp(...)`).
    """

    code = "DL115"
    name = "unclamped-exp-of-log-variance"
    family = "numerical"
    message = "exp() of an unbounded log-variance can overflow to inf; clamp the argument"
    fix = FixKind.NONE
    default_enabled = False
    evidence = Evidence(
        study="GRIST benchmark (speculative rule)",
        category="exp overflow of a predicted log-variance (GRIST ID_4 and VAE subjects)",
        links=("https://github.com/Jacob-yen/GRIST",),
    )
    triggers = ("exp(", "exp_(")

    VALID = (
        Valid(dedent("""
            import torch
            def reparameterize(mu, logvar):
                std = torch.exp(0.5 * logvar.clamp(-30, 20))
                return mu + std * torch.randn_like(std)
            """), "clamped inside the exp"),
        Valid(dedent("""
            import tensorflow as tf
            z_log_sigma_sq = tf.add(tf.matmul(h, w), b)
            z_log_sigma_sq = tf.clip_by_value(z_log_sigma_sq, -87, 87)
            z = z_mean + tf.sqrt(tf.exp(z_log_sigma_sq)) * eps
            """), "clipped by a reassignment (GRIST ID_35 fix)"),
        Valid(dedent("""
            import torch
            from torch import nn
            class Policy(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.log_std = nn.Parameter(torch.zeros(1, n))
                def forward(self, mean):
                    return mean, self.log_std.exp()
            """), "a learned parameter, not a network output"),
        Valid(dedent("""
            import torch
            def head(self, h):
                log_std = torch.tanh(self.fc(h))
                log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
                return log_std.exp()
            """), "bounded by tanh"),
        Valid(dedent("""
            import torch
            def sample(mu, logvar):
                logvar.clamp_(max=20)
                return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            """), "clamped in place earlier in the function"),
        Valid(dedent("""
            import numpy as np
            LOG_STD_MAX = 2
            s = np.exp(LOG_STD_MAX)
            """), "a constant"),
        Valid(dedent("""
            import torch
            y = torch.exp(logits)
            """), "not a log-variance"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                def reparameterize(mu, logvar):
                    std = torch.exp(0.5 * logvar)
                    return mu + std * torch.randn_like(std)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                class VGAE:
                    def reparametrize(self, mu, logvar):
                        if self.training:
                            return mu + torch.randn_like(logvar) * torch.exp(logvar)
                        return mu
                """),
            note="GRIST ID_4",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                z_log_sigma_sq = tf.add(tf.matmul(h, w), b)
                z = z_mean + tf.sqrt(tf.exp(z_log_sigma_sq)) * eps
                """),
        ),
        Invalid(
            dedent("""
                import torch
                def kl(mu, logvar):
                    std = logvar.mul(0.5).exp_()
                    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
                """),
            count=2,
        ),
        Invalid(
            dedent("""
                import keras
                from keras import ops
                def sample(z_mean, z_log_var, epsilon):
                    return z_mean + ops.exp(0.5 * z_log_var) * epsilon
                """),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        argument = is_exp_call(ctx, node)
        if argument is None and is_method_call(node, "exp_") and not node.args and ctx.qualname(node.func) is None \
                and ctx.imports("torch"):
            argument = node.func.value
        if argument is None:
            return
        variable = self._log_variance(argument)
        if variable is None or self._bounded(variable):
            return
        self.report(node)

    def _log_variance(self, node: Any) -> Optional[Any]:
        """The log-variance name in ``v``, ``0.5 * v``, ``v / 2``, ``-v``, ``v.mul(0.5)``."""
        ctx = self.ctx
        for _ in range(3):
            node, _minus = negated(node)
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Divide)):
                if self._scalar(node.right):
                    node = node.left
                    continue
                if isinstance(node.operator, cst.Multiply) and self._scalar(node.left):
                    node = node.right
                    continue
                return None
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and ctx.qualname(node.func) is None \
                    and node.func.attr.value in ("mul", "div", "multiply", "divide") and len(node.args) == 1 \
                    and self._scalar(node.args[0].value):
                node = node.func.value
                continue
            break
        node = strip(node)
        if isinstance(node, cst.Subscript):
            node = strip(node.value)
        if isinstance(node, cst.Name):
            identifier = node.value
        elif isinstance(node, cst.Attribute):
            identifier = node.attr.value
        else:
            return None
        if identifier.isupper() or not _LOG_VARIANCE.search(identifier):
            return None
        if ctx.qualname(node) is not None:
            return None
        return node

    def _scalar(self, node: Any) -> bool:
        return numeric_value(node) is not None or is_python_number(self.ctx, node)

    def _bounded(self, variable: Any) -> bool:
        ctx = self.ctx
        found = (origins(ctx, variable) or []) + all_assigned_values(ctx, variable)
        for origin in found:
            origin = strip(origin)
            if is_clamp(ctx, origin) or numeric_value(origin) is not None or is_python_number(ctx, origin):
                return True
            text = code_of(ctx, origin)
            if any(word in text for word in _BOUNDING):
                return True
            if isinstance(origin, cst.Call):
                callee = ctx.qualname(origin.func) or (origin.func.attr.value if isinstance(origin.func, cst.Attribute)
                                                       else getattr(origin.func, "value", ""))
                last = str(callee).rsplit(".", 1)[-1]
                if any(last == word or last.startswith(word + "_") for word in _CONSTANT_CONSTRUCTORS):
                    return True
        # a clamp of the name anywhere in the enclosing function (in place, or a later-read rebinding)
        scope = ctx.function() or ctx.module
        try:
            source = ctx.module.code_for_node(scope)
        except Exception:  # pragma: no cover
            return False
        name = re.escape(code_of(ctx, variable))
        pattern = rf"{name}\s*\.\s*(clamp|clip|clamp_|clip_)\s*\(|(clamp|clip|clip_by_value|minimum)\s*\(\s*{name}\b"
        return re.search(pattern, source) is not None
