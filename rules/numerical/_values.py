"""Name tables and value-origin helpers shared by the numerical (DL1xx) rules."""

from __future__ import annotations

import re
from typing import Any, Optional

import libcst as cst

#: Element-wise natural log, every spelling the catalogue lists.
LOG_FUNCTIONS = frozenset(
    {
        "torch.log",
        "torch.special.log",
        "tensorflow.log",
        "tensorflow.math.log",
        "tensorflow.compat.v1.log",
        "tensorflow.compat.v1.math.log",
        "tensorflow.keras.backend.log",
        "keras.backend.log",
        "keras.ops.log",
        "tensorflow.keras.ops.log",
        "numpy.log",
        "jax.numpy.log",
    }
)

#: softmax function -> its log_softmax counterpart with the same parameters (None: no such function).
SOFTMAX_FUNCTIONS = {
    "torch.softmax": "torch.log_softmax",
    "torch.nn.functional.softmax": "torch.nn.functional.log_softmax",
    "torch.special.softmax": "torch.special.log_softmax",
    "tensorflow.nn.softmax": "tensorflow.nn.log_softmax",
    "tensorflow.math.softmax": "tensorflow.math.log_softmax",
    "tensorflow.compat.v1.nn.softmax": "tensorflow.compat.v1.nn.log_softmax",
    "tensorflow.keras.activations.softmax": None,
    "tensorflow.keras.backend.softmax": None,
    "keras.activations.softmax": None,
    "keras.backend.softmax": None,
    "tf_keras.activations.softmax": None,
    "keras.ops.softmax": "keras.ops.log_softmax",
    "keras.ops.nn.softmax": "keras.ops.nn.log_softmax",
    "tensorflow.keras.ops.softmax": "tensorflow.keras.ops.log_softmax",
    "scipy.special.softmax": "scipy.special.log_softmax",
    "jax.nn.softmax": "jax.nn.log_softmax",
}

#: softmax layers called on their input: ``nn.Softmax(dim=1)(x)`` -> LogSoftmax layer (None: none).
SOFTMAX_LAYERS = {
    "torch.nn.Softmax": "torch.nn.LogSoftmax",
    "torch.nn.modules.activation.Softmax": "torch.nn.LogSoftmax",
    "tensorflow.keras.layers.Softmax": None,
    "keras.layers.Softmax": None,
    "tf_keras.layers.Softmax": None,
}


def is_method_call(node: Any, method: str) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == method
    )


def softmax_kind(ctx: Any, node: Any) -> Optional[str]:
    """Say how ``node`` computes a softmax: "function", "layer", "method"; None if it does not."""
    if not isinstance(node, cst.Call):
        return None
    name = ctx.qualname(node.func)
    if name in SOFTMAX_FUNCTIONS:
        return "function"
    if isinstance(node.func, cst.Call) and ctx.qualname(node.func.func) in SOFTMAX_LAYERS:
        return "layer"
    if isinstance(node.func, (cst.Name, cst.Attribute)) and name is None:
        # ``self.softmax(x)`` / ``sm(x)`` with ``self.softmax = nn.Softmax(dim=1)`` set once
        layer = ctx.resolve(node.func)
        if isinstance(layer, cst.Call) and ctx.qualname(layer.func) in SOFTMAX_LAYERS:
            return "bound-layer"
    positional = [a for a in node.args if a.keyword is None]
    if name is None and is_method_call(node, "softmax") and ctx.imports("torch") and len(positional) <= 1:
        # ``x.softmax(dim)``: a tensor method in PyTorch (a bare ``softmax`` module attribute
        # that resolved through an import was handled above)
        if not isinstance(node.func.value, cst.Name) or ctx.qualname(node.func.value) is None:
            return "method"
    return None


# ---------------------------------------------------------------------- producers

SIGMOID_FUNCTIONS = frozenset(
    {
        "torch.sigmoid",
        "torch.nn.functional.sigmoid",
        "torch.special.expit",
        "tensorflow.sigmoid",
        "tensorflow.nn.sigmoid",
        "tensorflow.math.sigmoid",
        "tensorflow.compat.v1.sigmoid",
        "tensorflow.compat.v1.nn.sigmoid",
        "tensorflow.keras.activations.sigmoid",
        "keras.activations.sigmoid",
        "keras.ops.sigmoid",
        "scipy.special.expit",
        "jax.nn.sigmoid",
        "tensorflow.keras.backend.sigmoid",
        "keras.backend.sigmoid",
        "tensorflow.keras.ops.sigmoid",
        "tf_keras.activations.sigmoid",
        "tensorflow.compat.v1.math.sigmoid",
        "tensorflow.compat.v1.keras.backend.sigmoid",
    }
)
SIGMOID_LAYERS = frozenset({"torch.nn.Sigmoid", "torch.nn.modules.activation.Sigmoid"})

EXP_FUNCTIONS = frozenset(
    {"torch.exp", "torch.special.exp", "tensorflow.exp", "tensorflow.math.exp", "tensorflow.compat.v1.exp",
     "numpy.exp", "jax.numpy.exp", "keras.ops.exp", "tensorflow.keras.backend.exp", "keras.backend.exp"}
)
SOFTPLUS_FUNCTIONS = frozenset(
    {"torch.nn.functional.softplus", "tensorflow.nn.softplus", "tensorflow.math.softplus", "keras.ops.softplus",
     "keras.activations.softplus", "tensorflow.keras.activations.softplus", "jax.nn.softplus"}
)
#: clamp-like calls: name -> (positional index, keyword) of the lower bound
CLAMP_FUNCTIONS = {
    "torch.clamp": (1, "min"),
    "torch.clip": (1, "min"),
    "torch.clamp_min": (1, "min"),
    "torch.maximum": (1, "other"),
    "torch.max": (1, "other"),
    "tensorflow.clip_by_value": (1, "clip_value_min"),
    "tensorflow.maximum": (1, "y"),
    "tensorflow.math.maximum": (1, "y"),
    "tensorflow.keras.backend.clip": (1, "min_value"),
    "keras.backend.clip": (1, "min_value"),
    "keras.ops.clip": (1, "x_min"),
    "keras.ops.maximum": (1, "x2"),
    "numpy.clip": (1, "a_min"),
    "numpy.maximum": (1, None),
    "jax.numpy.clip": (1, "min"),
    "jax.numpy.maximum": (1, None),
}
#: clamp-like tensor methods: name -> (positional index, keyword) of the lower bound
CLAMP_METHODS = {"clamp": (0, "min"), "clip": (0, "min"), "clamp_min": (0, "min"), "clamp_": (0, "min"),
                 "clamp_min_": (0, "min")}

#: clamp-like calls: name -> (positional index, keyword) of the upper bound
CLAMP_UPPER_FUNCTIONS = {
    "torch.clamp": (2, "max"), "torch.clip": (2, "max"), "torch.clamp_max": (1, "max"),
    "tensorflow.clip_by_value": (2, "clip_value_max"), "tensorflow.minimum": (1, "y"),
    "tensorflow.math.minimum": (1, "y"), "keras.ops.clip": (2, "x_max"), "numpy.clip": (2, "a_max"),
    "torch.minimum": (1, "other"), "keras.backend.clip": (2, "max_value"),
    "tensorflow.keras.backend.clip": (2, "max_value"),
}
CLAMP_UPPER_METHODS = {"clamp": (1, "max"), "clip": (1, "max"), "clamp_max": (0, "max"), "clamp_": (1, "max")}


def _bound(ctx: Any, node: Any, functions: Any, methods: Any) -> Optional[Any]:
    if not isinstance(node, cst.Call):
        return None
    name = ctx.qualname(node.func)
    if name in functions:
        index, keyword = functions[name]
        return ctx.argument(node, index, keyword)
    method = method_name(node)
    if name is None and method in methods:
        index, keyword = methods[method]
        return ctx.argument(node, index, keyword)
    return None


def clamp_bound(ctx: Any, node: Any) -> Optional[Any]:
    """The lower bound of a clamp / clip / maximum call, else None."""
    return _bound(ctx, node, CLAMP_FUNCTIONS, CLAMP_METHODS)


def upper_bound(ctx: Any, node: Any) -> Optional[Any]:
    """The upper bound of a clamp / clip / minimum call, else None."""
    return _bound(ctx, node, CLAMP_UPPER_FUNCTIONS, CLAMP_UPPER_METHODS)


REDUCTION_METHODS = frozenset({"sum", "mean", "prod"})
REDUCTION_FUNCTIONS = frozenset(
    {"torch.sum", "torch.mean", "tensorflow.reduce_sum", "tensorflow.reduce_mean", "tensorflow.math.reduce_sum",
     "tensorflow.math.reduce_mean", "numpy.sum", "numpy.mean", "keras.ops.sum", "keras.ops.mean",
     "tensorflow.compat.v1.reduce_sum", "tensorflow.compat.v1.reduce_mean", "tensorflow.keras.backend.sum",
     "keras.backend.sum", "tensorflow.keras.backend.mean", "keras.backend.mean"}
)

# Literals and names that read as a small positive constant (eps).
_EPS_NAME = ("eps", "epsilon", "tiny", "smooth", "delta", "min_value", "minimum")


def numeric_value(node: Any) -> Optional[float]:
    """The value of a numeric literal (``1e-8``, ``-3``, ``(0.5)``), else None."""
    sign = 1.0
    while isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        if isinstance(node.operator, cst.Minus):
            sign = -sign
        node = node.expression
    if isinstance(node, (cst.Integer, cst.Float)):
        try:
            return sign * float(node.evaluated_value)
        except (ValueError, OverflowError):
            return None
    return None


def is_eps_name(node: Any) -> bool:
    """A name or attribute that reads as a small positive constant: ``eps``, ``self.epsilon``,
    ``EPS``, ``args.eps``, ``torch.finfo(x.dtype).eps``, ``np.finfo(float).tiny``."""
    name = node.attr.value if isinstance(node, cst.Attribute) else node.value if isinstance(node, cst.Name) else None
    if name is None:
        return False
    lowered = name.lower()
    return any(part in lowered for part in _EPS_NAME)


def positive_constant(ctx: Any, node: Any, fp16: bool = False) -> bool:
    """A positive literal, an eps-like name, or a name bound once to a positive literal.  Under
    float16 a literal below 1e-7 rounds to 0 and does not count."""
    value = numeric_value(node)
    if value is None and isinstance(node, cst.Name):
        value = numeric_value(ctx.assigned_value(node))
    if value is not None:
        return value > 0 and not (fp16 and value < 1e-7)
    return is_eps_name(node) or is_eps_call(ctx, node)


def method_name(node: Any) -> Optional[str]:
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return node.func.attr.value
    return None


_FP16_TEXT = re.compile(r"(?<![bB])float16|\.half\(\)|torch\.half\b")
_AUTOCAST_CALL = re.compile(r"(cuda\.amp\.)?autocast\(([^()]*)\)")
#: Calls that return a small positive constant: ``keras.backend.epsilon()``, ``K.epsilon()``.
EPS_CALLS = frozenset({"tensorflow.keras.backend.epsilon", "keras.backend.epsilon", "keras.config.epsilon",
                       "tf_keras.backend.epsilon"})


def _float16(ctx: Any) -> bool:
    text = ctx.source or ""
    return bool(_FP16_TEXT.search(text)) or any(
        "dtype" not in m.group(2) and (m.group(1) is not None or "cuda" in m.group(2))
        for m in _AUTOCAST_CALL.finditer(text))


def uses_float16(ctx: Any) -> bool:
    """Whether the file computes in float16: ``.half()``, ``torch.float16`` / ``tf.float16``
    (not ``bfloat16``, whose range is float32's), or CUDA autocast with no ``dtype`` (float16
    by default).  Computed once per file."""
    return ctx.memo("numerical.float16", _float16)


def is_eps_call(ctx: Any, node: Any) -> bool:
    """``keras.backend.epsilon()`` and friends: a call that returns a small positive constant."""
    return isinstance(node, cst.Call) and not node.args and ctx.qualname(node.func) in EPS_CALLS


def is_safe_argument(ctx: Any, node: Any, depth: int = 3) -> bool:
    """The catalogue's safe-argument predicate: the value is provably kept away from zero.

    (i) a positive literal; (ii) ``x + c`` / ``c + x`` with ``c`` a positive literal or an eps
    name; (iii) a clamp / clip / maximum with a positive lower bound; (iv) exp, softplus,
    ``abs(x) + c``, sigmoid/softmax are left to their own rules; (v) a name whose single
    reaching assignment is one of these.  In float16 code an eps below 1e-7 is no guard."""
    fp16 = uses_float16(ctx)
    for _ in range(depth + 1):
        while isinstance(node, cst.BaseExpression) and node.lpar and not isinstance(node, cst.Tuple):
            node = node.with_changes(lpar=(), rpar=())
        value = numeric_value(node)
        if value is not None:
            return value > 0
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            if positive_constant(ctx, node.right, fp16) or positive_constant(ctx, node.left, fp16):
                return True
            return False
        if isinstance(node, cst.Call):
            name = ctx.qualname(node.func)
            if name in EXP_FUNCTIONS or name in SOFTPLUS_FUNCTIONS:
                return True
            if name is None and method_name(node) in ("exp", "softplus"):
                return True
            if name in ("max", "builtins.max") or (isinstance(node.func, cst.Name) and node.func.value == "max"):
                return any(positive_constant(ctx, a.value, fp16) for a in node.args)
            bound = clamp_bound(ctx, node)
            return bound is not None and positive_constant(ctx, bound, fp16)
        resolved = ctx.assigned_value(node)
        if resolved is None:
            return False
        node = resolved
    return False


def is_python_number(ctx: Any, node: Any, depth: int = 2) -> bool:
    """A value that is a Python number rather than a tensor: numeric literals, ``len(...)``,
    ``int()`` / ``float()``, ``x.size(i)``, ``x.shape[i]``, ``x.numel()``, ``x.dim()``,
    ``x.ndim``, ``.item()``, ``math.*`` and names bound once to one of these."""
    for _ in range(depth + 1):
        if numeric_value(node) is not None:
            return True
        if isinstance(node, cst.Call):
            if isinstance(node.func, cst.Name) and node.func.value in ("len", "int", "float", "round", "abs", "sum", "max", "min"):
                return node.func.value in ("len", "int", "float", "round") or all(
                    is_python_number(ctx, a.value, 0) for a in node.args)
            if method_name(node) in ("size", "numel", "dim", "item", "nelement", "count"):
                return method_name(node) != "size" or bool(node.args)
            name = ctx.qualname(node.func)
            return bool(name and name.startswith("math."))
        if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute) and node.value.attr.value == "shape":
            return True
        if isinstance(node, cst.Attribute) and node.attr.value in ("ndim", "batch_size"):
            return True
        if isinstance(node, cst.BinaryOperation):
            return is_python_number(ctx, node.left, 1) and is_python_number(ctx, node.right, 1)
        resolved = ctx.assigned_value(node)
        if resolved is None:
            return False
        node = resolved
    return False
