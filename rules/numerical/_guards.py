"""Value shapes and guards shared by the "guards" rules of the numerical family.

DL104 (unguarded-log), DL107 (unguarded-division) and DL108 (sqrt-of-sum-of-squares) all
ask the same questions about an operand: is it a reduction (sum, mean, norm, std, var, max,
count...) and of what; is it a square; is it kept away from zero by construction (an eps, a
clamp, an exp, a softmax); is it a Python number rather than a tensor; and is it checked
before use (an ``if``, an ``assert``, a ``where`` mask, an in-place fix such as
``std[std == 0] = 1`` or ``d.clamp_(min=1)``).  The answers live here so the three rules
agree.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children, dotted_name, names_in
from dllint.rules.numerical._values import (
    CLAMP_FUNCTIONS,
    CLAMP_METHODS,
    EXP_FUNCTIONS,
    SIGMOID_FUNCTIONS,
    SIGMOID_LAYERS,
    SOFTPLUS_FUNCTIONS,
    clamp_bound,
    is_eps_call as _is_eps_call,
    is_python_number,
    is_safe_argument,
    method_name,
    numeric_value,
    positive_constant,
    softmax_kind,
    upper_bound,
    uses_float16,
)


def is_eps_call(ctx: Any, node: Any) -> bool:
    return _is_eps_call(ctx, bare(node))

# ---------------------------------------------------------------------- tables

#: Reduction functions -> kind ("sum", "mean", "prod", "norm", "std", "var", "max", "min", "count").
REDUCTION_KINDS: Dict[str, str] = {}


def _table(kind: str, *names: str) -> None:
    for name in names:
        REDUCTION_KINDS[name] = kind


_table(
    "sum",
    "torch.sum", "torch.nansum", "tensorflow.reduce_sum", "tensorflow.math.reduce_sum",
    "tensorflow.compat.v1.reduce_sum", "tensorflow.compat.v1.math.reduce_sum", "tensorflow.keras.backend.sum",
    "keras.backend.sum", "keras.ops.sum", "tensorflow.keras.ops.sum", "numpy.sum", "numpy.nansum",
    "jax.numpy.sum",
)
_table(
    "mean",
    "torch.mean", "torch.nanmean", "tensorflow.reduce_mean", "tensorflow.math.reduce_mean",
    "tensorflow.compat.v1.reduce_mean", "tensorflow.compat.v1.math.reduce_mean", "tensorflow.keras.backend.mean",
    "keras.backend.mean", "keras.ops.mean", "tensorflow.keras.ops.mean", "numpy.mean", "numpy.nanmean",
    "jax.numpy.mean",
)
_table("prod", "torch.prod", "tensorflow.reduce_prod", "tensorflow.math.reduce_prod", "numpy.prod", "keras.ops.prod")
_table(
    "norm",
    "torch.norm", "torch.linalg.norm", "torch.linalg.vector_norm", "tensorflow.norm", "tensorflow.linalg.norm",
    "tensorflow.compat.v1.norm", "tensorflow.compat.v1.linalg.norm", "keras.ops.norm", "tensorflow.keras.ops.norm",
    "numpy.linalg.norm", "jax.numpy.linalg.norm",
)
_table(
    "std",
    "torch.std", "tensorflow.math.reduce_std", "tensorflow.keras.backend.std", "keras.backend.std", "keras.ops.std",
    "numpy.std", "numpy.nanstd", "jax.numpy.std",
)
_table(
    "var",
    "torch.var", "tensorflow.math.reduce_variance", "tensorflow.keras.backend.var", "keras.backend.var",
    "keras.ops.var", "numpy.var", "numpy.nanvar", "jax.numpy.var",
)
_table(
    "max",
    "torch.max", "torch.amax", "tensorflow.reduce_max", "tensorflow.math.reduce_max",
    "tensorflow.compat.v1.reduce_max", "tensorflow.keras.backend.max", "keras.backend.max", "keras.ops.max",
    "numpy.max", "numpy.amax", "numpy.nanmax", "jax.numpy.max",
)
_table(
    "min",
    "torch.min", "torch.amin", "tensorflow.reduce_min", "tensorflow.math.reduce_min",
    "tensorflow.compat.v1.reduce_min", "tensorflow.keras.backend.min", "keras.backend.min", "keras.ops.min",
    "numpy.min", "numpy.amin", "numpy.nanmin", "jax.numpy.min",
)
_table(
    "count",
    "torch.count_nonzero", "tensorflow.math.count_nonzero", "tensorflow.count_nonzero", "numpy.count_nonzero",
    "keras.ops.count_nonzero",
)

#: Tensor methods that reduce -> kind.
REDUCTION_METHOD_KINDS = {
    "sum": "sum", "nansum": "sum", "mean": "mean", "nanmean": "mean", "prod": "prod", "norm": "norm",
    "std": "std", "var": "var", "max": "max", "amax": "max", "min": "min", "amin": "min",
    "count_nonzero": "count",
}
#: Keywords a reduction method takes (a call with another keyword is not a tensor reduction).
_REDUCTION_KEYWORDS = {"dim", "axis", "keepdim", "keepdims", "p", "ord", "unbiased", "correction", "dtype", "ddof"}

#: Calls that change only the dtype, device or shape of a value (looked through).
CAST_FUNCTIONS = frozenset(
    {"tensorflow.cast", "tensorflow.to_float", "tensorflow.compat.v1.to_float", "tensorflow.keras.backend.cast",
     "keras.backend.cast", "keras.ops.cast", "tensorflow.stop_gradient", "tensorflow.squeeze",
     "tensorflow.expand_dims", "tensorflow.reshape", "torch.squeeze", "torch.unsqueeze", "numpy.float32",
     "numpy.float64", "numpy.asarray", "keras.ops.expand_dims", "keras.ops.reshape"}
)
CAST_METHODS = frozenset(
    {"float", "double", "half", "bfloat16", "to", "type", "type_as", "detach", "clone", "squeeze", "unsqueeze",
     "view", "reshape", "expand_as", "view_as", "contiguous", "astype", "cuda", "cpu"}
)

#: Square spellings: function -> how it is called ("square": f(x); "pow": f(x, 2)).
SQUARE_FUNCTIONS = {
    "torch.square": "square", "tensorflow.square": "square", "tensorflow.math.square": "square",
    "tensorflow.compat.v1.square": "square", "keras.ops.square": "square", "tensorflow.keras.backend.square": "square",
    "keras.backend.square": "square", "jax.numpy.square": "square", "numpy.square": "square",
    "torch.pow": "pow", "tensorflow.pow": "pow", "tensorflow.math.pow": "pow", "keras.ops.power": "pow",
    "numpy.power": "pow",
}
ONES_FUNCTIONS = frozenset({"torch.ones", "torch.ones_like", "tensorflow.ones", "tensorflow.ones_like", "numpy.ones",
                            "numpy.ones_like", "keras.ops.ones", "keras.ops.ones_like"})
EYE_FUNCTIONS = frozenset({"torch.eye", "tensorflow.eye", "numpy.eye", "numpy.identity", "keras.ops.eye"})


# ---------------------------------------------------------------------- small helpers


def bare(node: Any) -> Any:
    """The node without enclosing parentheses (so shapes compare as written)."""
    if isinstance(node, cst.BaseExpression) and getattr(node, "lpar", None) and not isinstance(node, cst.Tuple):
        return node.with_changes(lpar=(), rpar=())
    return node


_PRINTER = cst.Module(body=())


def same_expr(a: Any, b: Any) -> bool:
    """Structural equality of two expressions, ignoring parentheses and spacing."""
    if a is None or b is None:
        return False
    try:
        return "".join(_PRINTER.code_for_node(bare(a)).split()) == "".join(_PRINTER.code_for_node(bare(b)).split())
    except Exception:  # pragma: no cover - code generation never fails on parsed nodes
        return False


def is_module_receiver(ctx: Any, node: Any) -> bool:
    """Whether a method call's receiver is an imported module, ``self`` or ``cls`` (so the call
    is not a tensor method)."""
    if isinstance(node, cst.Name) and node.value in ("self", "cls"):
        return True
    return ctx.qualname(node) is not None


def tensor_method(ctx: Any, node: Any, names: Any) -> Optional[str]:
    """The method name when ``node`` is ``<tensor>.<name>(...)`` with ``name`` in ``names``."""
    name = method_name(node)
    if name is None or name not in names:
        return None
    if ctx.qualname(node.func) is not None or is_module_receiver(ctx, node.func.value):
        return None
    return name


def through_casts(ctx: Any, node: Any) -> Any:
    """Look through dtype / shape changes: ``tf.cast(x, tf.float32)``, ``x.float()``, ``x.to(d)``."""
    for _ in range(4):
        node = bare(node)
        if isinstance(node, cst.Attribute) and node.attr.value in ("T", "mT", "data"):
            node = node.value
            continue
        if not isinstance(node, cst.Call):
            return node
        name = ctx.qualname(node.func)
        if name in CAST_FUNCTIONS and node.args:
            node = node.args[0].value
            continue
        if name is None and method_name(node) in CAST_METHODS and not is_module_receiver(ctx, node.func.value):
            node = node.func.value
            continue
        return node
    return node


def origins(ctx: Any, node: Any, depth: int = 3) -> Iterator[Any]:
    """``node`` and the values it was assigned from, through single reaching assignments and
    casts (``d = mask.sum().float()`` -> ``mask.sum().float()``, ``mask.sum()``)."""
    seen = 0
    while node is not None and seen <= depth:
        node = through_casts(ctx, node)
        yield node
        node = ctx.assigned_value(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
        seen += 1


def all_assigned(ctx: Any, node: Any) -> Optional[List[Any]]:
    """Every value a plain local name was assigned so far (``if c: p = f(x) else: p = g(x)``),
    when each binding is a plain assignment; else None."""
    if not isinstance(node, cst.Name):
        return None
    bindings = ctx.lookup(node.value)
    if not bindings or any(b.kind != "assign" or b.value is None for b in bindings):
        return None
    return [b.value for b in bindings]


def _dim_like(node: Any) -> bool:
    node = bare(node)
    if numeric_value(node) is not None or isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        return True
    if isinstance(node, cst.Name) and node.value in ("None", "True", "False"):
        return True
    if isinstance(node, (cst.Tuple, cst.List)):
        return all(_dim_like(e.value) for e in node.elements)
    name = dotted_name(node)
    if name is not None:
        last = name.rsplit(".", 1)[-1].lower()
        return "dim" in last or "axis" in last or "axes" in last or last in ("d", "ax", "p", "ord")
    if isinstance(node, cst.UnaryOperation):
        return _dim_like(node.expression)
    return False


def reduction(ctx: Any, node: Any) -> Optional[Tuple[str, Any, Any]]:
    """(kind, operand, call) when ``node`` reduces a tensor: ``x.sum(-1)``, ``torch.norm(x)``,
    ``tf.reduce_sum(x, 1)``, ``x.max(1)[0]``, ``x.max(1).values``; else None."""
    node = bare(node)
    # ``x.max(dim)[0]`` / ``x.max(dim).values``: the values of a max/min reduction
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        index = node.slice[0].slice
        if isinstance(index, cst.Index) and numeric_value(index.value) == 0:
            found = reduction(ctx, node.value)
            return found if found and found[0] in ("max", "min") else None
        return None
    if isinstance(node, cst.Attribute) and node.attr.value == "values":
        found = reduction(ctx, node.value)
        return found if found and found[0] in ("max", "min") else None
    if not isinstance(node, cst.Call) or ctx.has_star_args(node):
        return None
    name = ctx.qualname(node.func)
    if name in REDUCTION_KINDS:
        kind = REDUCTION_KINDS[name]
        operand = ctx.argument(node, 0, "input") or ctx.argument(node, 0, "input_tensor") or ctx.argument(
            node, 0, "x") or ctx.argument(node, 0, "a")
        if operand is None:
            return None
        if name in ("torch.max", "torch.min"):
            # ``torch.max(a, b)`` with a tensor ``b`` is the element-wise maximum, not a reduction
            second = ctx.argument(node, 1, "dim")
            other = ctx.keyword(node, "other")
            if other is not None or (second is not None and not _dim_like(second)):
                return None
        return kind, operand, node
    method = tensor_method(ctx, node, REDUCTION_METHOD_KINDS)
    if method is None:
        return None
    positional = [a for a in node.args if a.keyword is None]
    if not all(_dim_like(a.value) for a in positional):
        return None
    if any(a.keyword is not None and a.keyword.value not in _REDUCTION_KEYWORDS for a in node.args):
        return None
    return REDUCTION_METHOD_KINDS[method], node.func.value, node


def square_of(ctx: Any, node: Any) -> Optional[Any]:
    """``e`` when ``node`` squares ``e``: ``e ** 2``, ``e.pow(2)``, ``e.square()``,
    ``torch.square(e)``, ``tf.square(e)``, ``torch.pow(e, 2)``, ``e * e``."""
    node = bare(node)
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Power) and numeric_value(node.right) == 2:
            return node.left
        if isinstance(node.operator, cst.Multiply) and same_expr(node.left, node.right):
            return node.left
        return None
    if not isinstance(node, cst.Call) or ctx.has_star_args(node):
        return None
    name = ctx.qualname(node.func)
    how = SQUARE_FUNCTIONS.get(name or "")
    if how == "square" and len(node.args) >= 1:
        return node.args[0].value
    if how == "pow" and len(node.args) == 2 and numeric_value(node.args[1].value) == 2:
        return node.args[0].value
    method = tensor_method(ctx, node, ("square", "pow"))
    if method == "square" and not node.args:
        return node.func.value
    if method == "pow" and len(node.args) == 1 and numeric_value(node.args[0].value) == 2:
        return node.func.value
    return None


def positive_term(ctx: Any, node: Any, fp16: bool) -> bool:
    """A term that keeps a sum away from zero: a positive literal, an eps name or call, or the
    square of a non-zero literal (``tf.square(1e-3)``)."""
    node = bare(node)
    if positive_constant(ctx, node, fp16) or is_eps_call(ctx, node):
        return True
    name = dotted_name(node)
    if name is not None:
        last = name.rsplit(".", 1)[-1].lower()
        if last.startswith("min_") or last.endswith("_floor"):
            return True  # ``x + self.min_depth``: a configured lower bound
    if isinstance(node, cst.Call) and ctx.qualname(node.func) in ONES_FUNCTIONS | EYE_FUNCTIONS:
        return True  # ``torch.eye(n) + adj``: self-loops keep a degree positive
    inner = square_of(ctx, node)
    if inner is not None:
        value = numeric_value(bare(inner))
        if value is not None and value != 0 and not (fp16 and value * value < 1e-7):
            return True
        if is_eps_call(ctx, inner):
            return True
        return isinstance(inner, (cst.Name, cst.Attribute)) and positive_term(ctx, inner, fp16)
    return False


def add_terms(node: Any) -> List[Any]:
    """The terms of a ``+`` chain (``a + b + c`` -> [a, b, c])."""
    node = bare(node)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        return add_terms(node.left) + add_terms(node.right)
    return [node]


def last_value(ctx: Any, node: Any) -> Optional[Any]:
    """The value of the latest assignment of a local name so far (``p = clamp(p, ...)`` after
    a parameter ``p``); only used to *silence* a rule, never to report."""
    if not isinstance(node, cst.Name):
        return None
    bindings = ctx.lookup(node.value)
    if bindings and bindings[-1].kind == "assign":
        return bindings[-1].value
    return None


def is_safe(ctx: Any, node: Any) -> bool:
    """The catalogue's safe-argument predicate, plus eps calls (``K.epsilon()``), squares of
    non-zero literals and clamps whose bound is one of these, seen through casts, single
    assignments and the latest assignment of a reassigned name."""
    fp16 = uses_float16(ctx)
    values = list(origins(ctx, node))
    latest = last_value(ctx, bare(node))
    if latest is not None:
        values.append(through_casts(ctx, latest))
    for value in values:
        if is_safe_argument(ctx, value):
            return True
        terms = add_terms(value)
        if len(terms) > 1 and any(positive_term(ctx, t, fp16) for t in terms):
            return True
        if isinstance(value, cst.Call):
            bound = clamp_bound(ctx, value)
            if bound is not None and (is_eps_call(ctx, bound) or positive_term(ctx, bound, fp16)):
                return True
            if isinstance(value.func, cst.Name) and value.func.value == "max" and any(
                    is_eps_call(ctx, a.value) for a in value.args):
                return True
    return False


def tiny_eps_hidden(ctx: Any, node: Any) -> bool:
    """In float16 code: whether ``node`` adds an eps that float16 rounds to 0 (below 1e-7)."""
    if not uses_float16(ctx):
        return False
    for term in add_terms(node):
        value = numeric_value(term)
        if value is None and isinstance(term, cst.Name):
            value = numeric_value(ctx.assigned_value(term))
        if value is not None and 0 < value < 1e-7:
            return True
    return False


def without_tiny_eps(ctx: Any, node: Any) -> Any:
    """``x`` for ``x + 1e-10`` in float16 code (the eps rounds to 0 there); else the node."""
    node = bare(node)
    if not uses_float16(ctx):
        return node
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        for keep, drop in ((node.left, node.right), (node.right, node.left)):
            value = numeric_value(drop)
            if value is None and isinstance(drop, cst.Name):
                value = numeric_value(ctx.assigned_value(drop))
            if value is not None and 0 < value < 1e-7:
                return bare(keep)
    return node


def is_sigmoid(ctx: Any, node: Any) -> bool:
    node = bare(node)
    if not isinstance(node, cst.Call):
        return False
    if ctx.qualname(node.func) in SIGMOID_FUNCTIONS:
        return True
    if isinstance(node.func, cst.Call) and ctx.qualname(node.func.func) in SIGMOID_LAYERS:
        return True
    return tensor_method(ctx, node, ("sigmoid",)) is not None and not node.args


def is_exp(ctx: Any, node: Any) -> bool:
    node = bare(node)
    if not isinstance(node, cst.Call):
        return False
    name = ctx.qualname(node.func)
    if name in EXP_FUNCTIONS or name in SOFTPLUS_FUNCTIONS:
        return True
    return tensor_method(ctx, node, ("exp", "softplus")) is not None


def _hand_sigmoid(ctx: Any, node: Any) -> bool:
    """``1 / (1 + exp(-z))``."""
    node = bare(node)
    if not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide)
            and numeric_value(node.left) == 1):
        return False
    terms = add_terms(node.right)
    return len(terms) == 2 and any(numeric_value(t) == 1 for t in terms) and any(is_exp(ctx, t) for t in terms)


def probability_producer(ctx: Any, node: Any, _depth: int = 0) -> bool:
    """A softmax or sigmoid output (``1 / (1 + exp(-z))`` included), directly, through names
    (the latest assignment of a reassigned name too), a one-return helper, or an index into
    one (those belong to DL101 / DL102)."""
    node = bare(node)
    candidates = [node, ctx.resolve(node)]
    latest = last_value(ctx, node)
    if latest is not None:
        candidates.append(latest)
    for value in candidates:
        value = through_casts(ctx, value)
        if softmax_kind(ctx, value) is not None or is_sigmoid(ctx, value) or _hand_sigmoid(ctx, value):
            return True
    if isinstance(node, cst.Subscript) and _depth < 2:
        return probability_producer(ctx, node.value, _depth + 1)
    return False


_RANDOM_LAST = frozenset({"randn", "rand", "randn_like", "rand_like", "normal", "uniform", "standard_normal",
                          "random_normal", "random_uniform", "truncated_normal", "sample", "rsample", "normal_",
                          "uniform_"})


def is_random(ctx: Any, node: Any) -> bool:
    """A random draw (``torch.randn``, ``np.random.normal``, ``tf.random.uniform``,
    ``dist.sample()``): never exactly zero in practice."""
    node = through_casts(ctx, node)
    if not isinstance(node, cst.Call):
        return False
    callee = dotted_name(node.func)
    qual = ctx.qualname(node.func) or ""
    if ".random." in f".{qual}." and qual.split(".")[0] in ("numpy", "tensorflow", "jax", "keras", "torch"):
        return True
    if callee is not None and callee.rsplit(".", 1)[-1] in _RANDOM_LAST and (
            qual.startswith(("torch.", "numpy.", "tensorflow.", "keras.", "jax.")) or not qual):
        return True
    method = method_name(node)
    return method in ("sample", "rsample", "normal_", "uniform_")


def constant_built(ctx: Any, node: Any) -> bool:
    """An array built from Python numbers only (``np.hamming(25)``,
    ``torch.tensor([exp(-(x - c) ** 2) for x in range(n)])``): a fixed table, not data."""
    node = bare(node)
    if not isinstance(node, cst.Call) or not node.args:
        return False
    if ctx.qualname(node.func) is None:
        return False
    for arg in node.args:
        value = bare(arg.value)
        if arg.keyword is not None and arg.keyword.value in ("dtype", "device", "requires_grad"):
            continue
        if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
            if not is_python_number(ctx, value.elt):
                return False
            continue
        if isinstance(value, (cst.List, cst.Tuple)):
            if not all(is_python_number(ctx, e.value) for e in value.elements):
                return False
            continue
        if not is_python_number(ctx, value) and not (isinstance(value, cst.Name) and ctx.assigned_value(value) is None
                                                      and _is_param(ctx, value)):
            return False
    return True


def _is_param(ctx: Any, node: Any) -> bool:
    """A parameter annotated as a Python number (``window_size: int``)."""
    bindings = ctx.lookup(node.value)
    if not bindings or bindings[-1].kind != "param":
        return False
    annotation = bindings[-1].value.annotation
    return annotation is not None and dotted_name(annotation.annotation) in ("int", "float")


_SELECT_METHODS = ("gather", "index_select", "masked_select", "take_along_dim", "take", "flatten", "contiguous")
_SELECT_FUNCTIONS = frozenset({"torch.gather", "torch.index_select", "torch.masked_select", "torch.take_along_dim",
                               "tensorflow.gather", "tensorflow.gather_nd", "numpy.take_along_axis", "numpy.take"})
_VALUES_OF = frozenset({"torch.topk", "torch.sort", "torch.max", "torch.min", "tensorflow.math.top_k",
                        "tensorflow.nn.top_k"})


def selection_source(ctx: Any, node: Any) -> Optional[Any]:
    """The tensor that ``node`` picks entries from (so it keeps their sign): ``x[i]``,
    ``x.gather(-1, idx)``, ``torch.gather(x, ...)``, ``v`` of ``v, i = torch.topk(x, k)``."""
    node = bare(node)
    if isinstance(node, cst.Subscript):
        return node.value
    if isinstance(node, cst.Call):
        if ctx.qualname(node.func) in _SELECT_FUNCTIONS and node.args:
            return node.args[0].value
        if tensor_method(ctx, node, _SELECT_METHODS) is not None:
            return node.func.value
        if tensor_method(ctx, node, ("topk", "sort")) is not None:
            return node.func.value
        return None
    if isinstance(node, cst.Attribute) and node.attr.value == "values":
        inner = bare(node.value)
        if isinstance(inner, cst.Call) and (ctx.qualname(inner.func) in _VALUES_OF or tensor_method(
                ctx, inner, ("topk", "sort", "max", "min")) is not None):
            return inner.args[0].value if ctx.qualname(inner.func) else inner.func.value
        return None
    if isinstance(node, cst.Name):
        # ``v, i = torch.topk(x, k)`` (the latest binding of ``v``); with ``x`` the same name
        # (``w, idx = torch.topk(w, k)``), the value ``w`` had before
        bindings = ctx.lookup(node.value)
        if bindings and bindings[-1].kind == "unpack" and bindings[-1].index == 0:
            source = bare(bindings[-1].value)
            found = None
            if isinstance(source, cst.Call):
                if ctx.qualname(source.func) in _VALUES_OF and source.args:
                    found = source.args[0].value
                elif tensor_method(ctx, source, ("topk", "sort", "max", "min")) is not None:
                    found = source.func.value
            if found is not None and isinstance(bare(found), cst.Name) and bare(found).value == node.value:
                earlier = bindings[-2] if len(bindings) >= 2 else None
                return earlier.value if earlier is not None and earlier.kind == "assign" else None
            return found
    return None


def _rescales(node: Any, name: str) -> bool:
    """``name / d``, ``name * c`` or ``name.T``: the value of ``name`` rescaled or transposed."""
    node = bare(node)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Divide, cst.Multiply)):
        left = bare(node.left)
        return isinstance(left, cst.Name) and left.value == name
    return False


def _self_equality(ctx: Any, node: Any) -> bool:
    """``labels == labels.T`` / ``equal(y, transpose(y))``: a label-equality matrix, whose
    diagonal is always true (so every row sum is at least 1)."""
    node = bare(node)
    pair = None
    if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 and isinstance(
            node.comparisons[0].operator, cst.Equal):
        pair = (node.left, node.comparisons[0].comparator)
    elif isinstance(node, cst.Call) and len(node.args) == 2:
        callee = dotted_name(node.func) or ""
        if callee.rsplit(".", 1)[-1] in ("eq", "equal"):
            pair = (node.args[0].value, node.args[1].value)
    if pair is None:
        return False
    a, b = (bare(x) for x in pair)
    for x, y in ((a, b), (b, a)):
        if isinstance(y, cst.Attribute) and y.attr.value in ("T", "mT") and same_expr(y.value, x):
            return True
        if isinstance(y, cst.Call):
            callee = dotted_name(y.func) or ""
            last = callee.rsplit(".", 1)[-1]
            if last in ("t", "transpose") and isinstance(y.func, cst.Attribute) and not ctx.qualname(y.func) and \
                    same_expr(y.func.value, x):
                return True
            if last == "transpose" and y.args and same_expr(y.args[0].value, x):
                return True
    return False


def positive_by_construction(ctx: Any, node: Any, _depth: int = 0) -> bool:
    """A tensor whose entries are > 0 by how it is built: eps-guarded or clamped values, exp,
    softplus, softmax / sigmoid outputs, ones, Python numbers, random draws, fixed tables, a
    label-equality matrix, or entries picked (indexing, gather, top-k values) from one of these."""
    values = list(origins(ctx, node))
    latest = last_value(ctx, bare(node))
    if latest is not None:
        values += list(origins(ctx, latest))
    every = all_assigned(ctx, values[-1]) if values else None
    if every and len(every) > 1 and all(is_random(ctx, v) for v in every):
        return True
    if every and len(every) > 1 and _depth < 2 and isinstance(values[-1], cst.Name):
        # ``p = torch.exp(s); p = p / p.sum(0)``: rescaling a positive tensor by a sum of its
        # own entries keeps it positive
        first, rest = every[0], every[1:]
        if all(_rescales(v, values[-1].value) for v in rest) and positive_by_construction(ctx, first, _depth + 1):
            return True
    for value in values:
        if _self_equality(ctx, value):
            return True
        source = selection_source(ctx, value)
        if source is not None and _depth < 3 and positive_by_construction(ctx, source, _depth + 1):
            return True
        if is_safe(ctx, value) or is_exp(ctx, value) or probability_producer(ctx, value):
            return True
        if isinstance(value, cst.Call) and ctx.qualname(value.func) in ONES_FUNCTIONS:
            return True
        if is_python_number(ctx, value) or is_random(ctx, value) or constant_built(ctx, value):
            return True
    return False


# ---------------------------------------------------------------------- guards


def guard_names(ctx: Any, node: Any) -> Set[str]:
    """The dotted names in an expression that a check could test: local names and ``self.x``
    chains, not imported modules, not ``self`` alone."""
    out: Set[str] = set()
    for name in names_in(node):
        head = name.split(".", 1)[0]
        if head in ("self", "cls") and "." not in name:
            continue
        if ctx.qualname(cst.Name(head)) is not None:
            continue
        out.add(name)
    return out


_COMPARE_CALLS = ("lt", "le", "gt", "ge", "eq", "ne", "less", "greater", "less_equal", "greater_equal", "equal",
                  "not_equal", "isfinite", "isnan", "isinf")
_MASK_WRAPPERS = ("all", "any", "float", "to", "type", "type_as", "unsqueeze", "squeeze", "view", "reshape",
                  "logical_not", "logical_and", "logical_or")


def is_mask(node: Any) -> bool:
    """A boolean mask built from comparisons: ``x < m``, ``(x > a) & (x < b)``,
    ``((x > a) * (x < b)).all(-1)``, ``torch.lt(x, m)``, ``~(x == 0)`` (not a count of one:
    ``(x > 0).sum()`` is a number)."""
    node = bare(node)
    if isinstance(node, cst.Comparison):
        return any(not isinstance(c.operator, (cst.Is, cst.IsNot, cst.In, cst.NotIn)) for c in node.comparisons)
    if isinstance(node, cst.BinaryOperation) and isinstance(
            node.operator, (cst.BitAnd, cst.BitOr, cst.Multiply, cst.BitXor)):
        return is_mask(node.left) and is_mask(node.right)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.BitInvert, cst.Not)):
        return is_mask(node.expression)
    if isinstance(node, cst.BooleanOperation):
        return is_mask(node.left) or is_mask(node.right)
    if isinstance(node, cst.Call):
        method = method_name(node)
        if method in _MASK_WRAPPERS:
            return is_mask(node.func.value) or any(is_mask(a.value) for a in node.args)
        callee = dotted_name(node.func)
        if callee is not None and callee.rsplit(".", 1)[-1] in _COMPARE_CALLS:
            return True
    return False


def names_in_comparisons(node: Any) -> Set[str]:
    """Dotted names compared inside a mask expression (``x`` in ``(x > a) & torch.lt(y, b)``)."""
    out: Set[str] = set()
    todo = [node]
    while todo:
        current = todo.pop()
        compared = isinstance(current, cst.Comparison)
        if isinstance(current, cst.Call):
            callee = dotted_name(current.func)
            compared = callee is not None and callee.rsplit(".", 1)[-1] in _COMPARE_CALLS
        if compared:
            out |= names_in(current)
            continue
        if isinstance(current, cst.CSTNode):
            todo.extend(children(current))
    return out


def is_where(ctx: Any, node: Any) -> bool:
    """``torch.where(c, a, b)`` / ``tf.where`` / ``np.where`` / ``x.where(c, y)`` with a condition."""
    node = bare(node)
    if not isinstance(node, cst.Call) or len(node.args) < 2:
        return False
    qual = ctx.qualname(node.func) or ""
    return qual.endswith(".where") or tensor_method(ctx, node, ("where", "masked_fill")) is not None


#: functions that run once on fixed values: constructors and weight initialisers
INIT_FUNCTIONS = frozenset({"__init__", "_init_weights", "init_weights", "reset_parameters", "_reset_parameters",
                            "__post_init__"})


def in_initialiser(ctx: Any) -> bool:
    """Inside a constructor or weight initialiser (computed once from configuration)."""
    function = ctx.function()
    return function is not None and function.name.value in INIT_FUNCTIONS


#: base classes of objects that preprocess or measure data: no backward pass runs through them
_NO_GRAD_BASES = ("FeatureExtractor", "FeatureExtractionMixin", "Processor", "ProcessorMixin", "ImageProcessor",
                  "Tokenizer", "Metric", "Callback", "Dataset")
#: file name prefixes of data-processing and evaluation modules
_NO_GRAD_FILES = ("feature_extraction", "processing_", "image_processing", "video_processing", "preprocess",
                  "tokenization", "metrics", "evaluate", "eval_", "convert_")


def in_data_processing(ctx: Any) -> bool:
    """Inside code that no backward pass runs through: a feature extractor, processor,
    tokenizer, metric, callback or dataset class, or a module named like one
    (``feature_extraction_*.py``, ``processing_*.py``, ``metrics.py``, ``convert_*.py``...)."""
    import os

    base = os.path.basename(getattr(ctx, "path", "") or "")
    if base.startswith(_NO_GRAD_FILES):
        return True
    for scope in ctx.scopes:
        if scope.kind == "class":
            for arg in scope.node.bases:
                name = dotted_name(arg.value) or ""
                if name.rsplit(".", 1)[-1].endswith(_NO_GRAD_BASES):
                    return True
    return False


_HYPER_HEADS = ("config", "cfg", "args", "hparams", "opt", "params", "hp", "conf")


def is_hyperparameter(ctx: Any, node: Any, depth: int = 2) -> bool:
    """A configuration value (``config.sigma_data``, ``self.config.x``, ``args.lr``, or a name /
    ``self.x`` assigned once from one): a Python number, not a tensor."""
    for _ in range(depth + 1):
        node = bare(node)
        name = dotted_name(node)
        if name is None:
            return False
        parts = name.split(".")
        if len(parts) >= 2 and any(p in _HYPER_HEADS or p.endswith(("config", "cfg")) for p in parts[:-1]):
            return True
        node = ctx.assigned_value(node)
        if node is None:
            return False
    return False


_NON_DIFFERENTIABLE = ("bucketize", "searchsorted", "argmin", "argmax", "argsort", "histc", "round", "floor",
                       "ceil", "sign", "item", "tolist", "numpy")


def only_used_without_grad(ctx: Any) -> bool:
    """Whether the statement being visited assigns a name whose next use (in the following
    three statements of its block) is inside a non-differentiable call (``bucketize``,
    ``argmin``, ``.item()``...)."""
    statement = block = None
    for ancestor in reversed(ctx.stack):
        if statement is None and isinstance(ancestor, cst.SimpleStatementLine):
            statement = ancestor
        elif statement is not None and isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            block = ancestor
            break
    if statement is None or block is None or len(statement.body) != 1 or not isinstance(statement.body[0], cst.Assign):
        return False
    targets = statement.body[0].targets
    if len(targets) != 1 or not isinstance(targets[0].target, cst.Name):
        return False
    target = targets[0].target.value
    body = list(block.body)
    index = next((i for i, s in enumerate(body) if s is statement), None)
    if index is None:
        return False
    for later in body[index + 1: index + 4]:
        if target not in names_in(later):
            continue
        uses: List[bool] = []
        todo = [later]
        while todo:
            current = todo.pop()
            if isinstance(current, cst.Call):
                callee = dotted_name(current.func) or method_name(current) or ""
                if callee.rsplit(".", 1)[-1] in _NON_DIFFERENTIABLE and target in names_in(current):
                    uses.append(True)
                    continue
            if isinstance(current, cst.Name) and current.value == target:
                uses.append(False)
                continue
            if isinstance(current, cst.CSTNode):
                todo.extend(children(current))
        return bool(uses) and all(uses)
    return False


def _name_node(dotted: str) -> Any:
    parts = dotted.split(".")
    node: Any = cst.Name(parts[0])
    for part in parts[1:]:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


class GuardTracker:
    """Mixin for rules: remembers names that were fixed up in place before a use
    (``std[std == 0] = 1``, ``d.clamp_(min=1)``, ``d.add_(eps)``) in the current function."""

    def _fixed_names(self) -> Set[Tuple[int, str]]:
        found = getattr(self, "_fixed_store", None)
        if found is None:
            found = set()
            self._fixed_store = found
        return found

    def _scope_key(self) -> int:
        function = self.ctx.function()  # type: ignore[attr-defined]
        return id(function) if function is not None else 0

    def _remember(self, target: Any) -> None:
        name = dotted_name(target)
        if name is not None:
            self._fixed_names().add((self._scope_key(), name))

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Subscript):
                self._remember(target.target.value)
        # ``valid = (x > eps) & (x < 1 - eps)``: a validity mask on ``x`` computed up front
        # (the code then selects with ``where`` / ``masked_fill``); ``x`` counts as checked
        if is_mask(node.value):
            for name in names_in_comparisons(node.value):
                self._fixed_names().add((self._scope_key(), name))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        target = node.target
        if isinstance(target, cst.Subscript):
            target = target.value
        self._remember(target)

    def visit_Expr(self, node: cst.Expr) -> None:
        call = node.value
        name = method_name(call)
        if name and name.endswith("_") and not name.startswith("_"):
            self._remember(call.func.value)

    def patched_after(self) -> bool:
        """Whether the statement being visited assigns a name that one of the next three
        statements of its block repairs: ``r[r == float("inf")] = 0``,
        ``r = torch.nan_to_num(r)``, ``r[torch.isnan(r)] = 0``."""
        ctx = self.ctx  # type: ignore[attr-defined]
        statement = block = None
        for ancestor in reversed(ctx.stack):
            if statement is None and isinstance(ancestor, cst.SimpleStatementLine):
                statement = ancestor
            elif statement is not None and isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
                block = ancestor
                break
        if statement is None or block is None:
            return False
        targets: Set[str] = set()
        for small in statement.body:
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    name = dotted_name(target.target)
                    if name is not None:
                        targets.add(name)
            elif isinstance(small, cst.AugAssign):
                name = dotted_name(small.target)
                if name is not None:
                    targets.add(name)
        if not targets:
            return False
        body = list(block.body)
        index = next((i for i, s in enumerate(body) if s is statement), None)
        if index is None:
            return False
        for later in body[index + 1: index + 4]:
            text = _PRINTER.code_for_node(later)
            if not any(word in text for word in ("isinf", "isnan", "isfinite", "nan_to_num", "inf")):
                continue
            if targets & names_in(later):
                return True
        return False

    def fixed_in_place(self, dotted: str) -> bool:
        return (self._scope_key(), dotted) in self._fixed_names()

    def guarded(self, *nodes: Any) -> bool:
        """Whether any name of ``nodes`` (and of what they were assigned from) is checked by an
        enclosing if / while / conditional / and, an earlier assert or early exit, a ``where``
        mask, or fixed in place."""
        ctx = self.ctx  # type: ignore[attr-defined]
        names: Set[str] = set()
        for node in nodes:
            for value in origins(ctx, node, 2):
                if is_where(ctx, value):
                    return True  # the value was selected under a condition
                names |= guard_names(ctx, value)
        # one step further: the names that the mentioned locals were computed from
        for name in list(names):
            if "." not in name:
                value = ctx.assigned_value(cst.Name(name))
                if value is not None:
                    names |= guard_names(ctx, value)
        if not names:
            return False
        for name in names:
            if ctx.is_guarded(_name_node(name)) or self.fixed_in_place(name):
                return True
        for ancestor in ctx.stack:
            if isinstance(ancestor, cst.Call) and ancestor.args:
                qual = ctx.qualname(ancestor.func) or ""
                if qual.endswith(".where") or method_name(ancestor) == "where":
                    test = ancestor.args[0].value
                    if names & guard_names(ctx, test):
                        return True
            if isinstance(ancestor, cst.IfExp) and names & guard_names(ctx, ancestor.test):
                return True
        return False
