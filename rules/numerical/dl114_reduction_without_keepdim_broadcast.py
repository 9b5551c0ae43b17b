from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, FrozenSet, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._values import numeric_value


@dataclass(frozen=True)
class _Spec:
    """Where a reduction takes its axes and its keep-dims flag."""

    dim_pos: int  # positional index of the axis argument
    dim_keywords: Tuple[str, ...]
    keep_pos: Optional[int]  # positional index of the keep-dims flag (None: keyword only / varies)
    keep_keywords: Tuple[str, ...]
    fix_keyword: str  # keyword the fix adds
    returns_pair: bool = False  # torch.max(x, dim) and friends return (values, indices)
    tensor_keywords: Tuple[str, ...] = ("input",)


def _table() -> dict:
    table = {}
    torch_keep = ("keepdim", "keepdims")
    torch_dims = ("dim", "axis")
    for name in ("sum", "mean", "nansum", "nanmean", "prod", "amax", "amin", "logsumexp"):
        table[f"torch.{name}"] = _Spec(1, torch_dims, 2, torch_keep, "keepdim")
    for name in ("std", "var"):
        table[f"torch.{name}"] = _Spec(1, torch_dims, None, torch_keep, "keepdim")
    for name in ("max", "min", "median", "nanmedian"):
        table[f"torch.{name}"] = _Spec(1, torch_dims, 2, torch_keep, "keepdim", returns_pair=True)
    for name in ("torch.norm", "torch.linalg.norm", "torch.linalg.vector_norm"):
        table[name] = _Spec(2, ("dim",), 3, ("keepdim",), "keepdim", tensor_keywords=("input", "A", "x"))
    numpy_like = ("numpy", "jax.numpy")
    for module in numpy_like:
        for name in ("sum", "mean", "prod", "nansum", "nanmean", "max", "min", "amax", "amin", "nanmax", "nanmin",
                     "std", "var", "nanstd", "nanvar"):
            table[f"{module}.{name}"] = _Spec(1, ("axis",), None, ("keepdims",), "keepdims", tensor_keywords=("a",))
        table[f"{module}.linalg.norm"] = _Spec(2, ("axis",), 3, ("keepdims",), "keepdims", tensor_keywords=("x",))
    table["scipy.special.logsumexp"] = _Spec(1, ("axis",), None, ("keepdims",), "keepdims", tensor_keywords=("a",))
    tf_keep = ("keepdims", "keep_dims")
    tf_dims = ("axis", "reduction_indices")
    for prefix in ("tensorflow.", "tensorflow.math.", "tensorflow.compat.v1.", "tensorflow.compat.v1.math."):
        for name in ("sum", "mean", "max", "min", "prod", "logsumexp", "std", "variance", "euclidean_norm"):
            table[f"{prefix}reduce_{name}"] = _Spec(1, tf_dims, 2, tf_keep, "keepdims",
                                                    tensor_keywords=("input_tensor",))
    for name in ("tensorflow.norm", "tensorflow.linalg.norm", "tensorflow.compat.v1.norm"):
        table[name] = _Spec(2, ("axis",), 3, tf_keep, "keepdims", tensor_keywords=("tensor",))
    for prefix in ("keras.ops.", "tensorflow.keras.ops.", "keras.backend.", "tensorflow.keras.backend.",
                   "tf_keras.backend."):
        for name in ("sum", "mean", "max", "min", "prod", "std", "var", "logsumexp"):
            table[f"{prefix}{name}"] = _Spec(1, ("axis",), 2, ("keepdims",), "keepdims", tensor_keywords=("x",))
    table["keras.ops.norm"] = _Spec(2, ("axis",), 3, ("keepdims",), "keepdims", tensor_keywords=("x",))
    return table


#: Reductions by qualified name (an extension of ``_values.REDUCTION_FUNCTIONS`` with the axis
#: and keep-dims argument positions each one needs).
REDUCTIONS = _table()

#: Tensor / ndarray reduction methods: positional axis first, keyword ``dim`` (torch) or
#: ``axis`` (both).  A second positional argument differs between torch and NumPy, so calls
#: with one are skipped.
_METHOD_DIMS = ("dim", "axis")
_METHOD_KEEP = ("keepdim", "keepdims")
REDUCTION_METHODS = frozenset(
    {"sum", "mean", "prod", "nansum", "nanmean", "amax", "amin", "logsumexp", "std", "var", "max", "min"}
)
#: Methods whose torch result is a (values, indices) pair when a dim is given.
_PAIR_METHODS = frozenset({"max", "min", "median", "nanmedian"})

#: Calls whose result keeps the rank of their first argument.
_RANK_KEEPING = frozenset(
    {"exp", "abs", "sigmoid", "tanh", "relu", "square", "sqrt", "log", "float", "double", "half", "cuda", "cpu",
     "to", "detach", "clone", "contiguous", "clamp", "clip", "pow", "softmax", "log_softmax", "exp_", "abs_"}
)
_CREATORS = frozenset(
    {"torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty", "numpy.random.randn",
     "numpy.random.rand"}
)
_CREATORS_FROM_SHAPE = frozenset(
    {"numpy.zeros", "numpy.ones", "numpy.empty", "numpy.random.random", "tensorflow.zeros", "tensorflow.ones",
     "tensorflow.random.normal", "tensorflow.random.uniform", "torch.full", "numpy.full", "jax.numpy.zeros",
     "jax.numpy.ones"}
)
_BROADCASTING_FUNCTIONS = frozenset(
    {"torch.div", "torch.true_divide", "torch.sub", "torch.subtract", "torch.mul", "torch.add",
     "numpy.divide", "numpy.true_divide", "numpy.subtract", "numpy.multiply", "numpy.add",
     "tensorflow.divide", "tensorflow.math.divide", "tensorflow.truediv", "tensorflow.math.truediv",
     "tensorflow.subtract", "tensorflow.math.subtract", "tensorflow.multiply", "tensorflow.math.multiply",
     "tensorflow.add", "tensorflow.math.add", "keras.ops.divide", "keras.ops.subtract", "keras.ops.multiply",
     "keras.ops.add"}
)
_OPERATORS = (cst.Divide, cst.Subtract, cst.Add, cst.Multiply)
_AUG_OPERATORS = (cst.DivideAssign, cst.SubtractAssign, cst.AddAssign, cst.MultiplyAssign)


@dataclass
class _Reduction:
    call: cst.Call  # the reduction call (the fix adds the keep-dims flag here)
    tensor: Any  # the reduced tensor
    dims: FrozenSet[int]
    dim_text: str
    keep_arg: Optional[cst.Arg]  # an explicit ``keepdim=False`` / positional False to flip
    fix_keyword: Optional[str]  # None: no fix (ambiguous library)


class ReductionWithoutKeepdimBroadcast(Rule):
    """A reduction over a non-leading axis, without keepdim, combined with the tensor it reduced.

    Finds `x / x.sum(dim=1)`, `x - x.mean(1)`, `x / x.norm(dim=1)`, `x - x.max(dim=1).values`
    (`[0]` too), `x / torch.sum(x, 1)`, `x - np.mean(x, axis=1)`, `x / tf.reduce_sum(x, axis=1)`,
    `x / keras.ops.sum(x, axis=1)`, the function forms (`torch.div(x, x.sum(1))`), in-place
    forms (`x /= x.sum(1)`) and a reduction kept in a name assigned once (`s = x.sum(1); x / s`),
    where the reduced operand is the same expression as the other operand, the reduced axes are
    not a leading block (`dim=0`, `axis=(0, 1)` are fine) and keepdim/keepdims is absent or
    False. A negative axis (`dim=-1`) is reported only when the tensor is known to have at least
    two dimensions (made by `torch.randn(n, c)`, `.view(n, c)`, `.reshape(...)`, `np.zeros((n, c))`,
    or an element-wise function of one).

    Why it is a bug: the reduction drops the axis, and broadcasting aligns shapes from the right,
    so the reduced values line up with the wrong axis: for `x` of shape (N, C), `x.sum(1)` has
    shape (N,) and `x / x.sum(1)` divides column j by the sum of row j. When N == C (square
    batches, similarity matrices) the result is silently wrong; otherwise it crashes. The
    numerical-bug study (b) describes a missing `keep_dims=True` whose broadcast makes a wrong
    loss typecheck.

    How to fix: keep the reduced axis, `x / x.sum(dim=1, keepdim=True)` (`keepdims=True` in
    NumPy, TensorFlow and Keras), or index it back in (`x.sum(1)[:, None]`, `.unsqueeze(1)`).

    Fix: unsafe (suggested): adds `keepdim=True` (`keepdims=True`) to the reduction, or turns an
    explicit `keepdim=False` into True. It changes the result's shape on purpose; review it.
    Through a name there is no fix (the reduced value may be used elsewhere with its reduced
    shape), nor for tensor methods in files that import pandas.

    Stays silent for reductions over axis 0 (or a leading block of axes), a negative axis on a
    tensor of unknown rank (a rank-1 `x / x.sum(-1)` is correct), an explicit `.unsqueeze(k)`,
    `[:, None]` or `.view(...)` after the reduction, a different other operand (`x.T / x.sum(1)`),
    axes it cannot read as integer literals, and method calls with a second positional argument
    (its meaning differs between PyTorch and NumPy).
    """

    code = "DL114"
    name = "reduction-without-keepdim-broadcast"
    family = "numerical"
    message = (
        "reduction over dim=k without keepdim is then broadcast against the original tensor; the axes may misalign. "
        "Use keepdim=True"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs (secondary citation)",
        category="missing keep_dims=True: a reduction's shape broadcasts against the wrong axis",
        links=(
            "https://pytorch.org/docs/stable/notes/broadcasting.html",
            "https://numpy.org/doc/stable/user/basics.broadcasting.html",
        ),
    )
    triggers = ("sum(", "mean(", "max(", "min(", "norm(", "std(", "var(", "prod(", "logsumexp(", "reduce_", "amax(", "amin(")

    VALID = (
        Valid(dedent("""
            import torch
            probs = e / e.sum(dim=1, keepdim=True)
            """), "keepdim keeps the axis"),
        Valid(dedent("""
            import torch
            centered = x - x.mean(dim=0)
            """), "dim=0: the reduced shape is a suffix of the original and broadcasts right"),
        Valid(dedent("""
            import torch
            def normalise(v):
                return v / v.sum(-1)
            """), "dim=-1 on a tensor of unknown rank (rank 1 is correct)"),
        Valid(dedent("""
            import torch
            probs = e / e.sum(1).unsqueeze(1)
            probs2 = e / e.sum(1)[:, None]
            """), "the axis is put back after the reduction"),
        Valid(dedent("""
            import torch
            s = e.sum(1)
            s = s.view(-1, 1)
            probs = e / s
            """), "the name is reshaped before the division"),
        Valid(dedent("""
            import numpy as np
            z = (x - x.mean(axis=0)) / x.std(axis=0)
            w = x / np.linalg.norm(x, axis=1, keepdims=True)
            """), "NumPy: axis 0, and keepdims"),
        Valid(dedent("""
            import torch
            ratio = x.T / x.sum(1)
            y = x / w.sum(1)
            """), "the other operand is not the reduced tensor"),
        Valid(dedent("""
            import tensorflow as tf
            p = tf.exp(x) / tf.reduce_sum(tf.exp(x), axis=1, keepdims=True)
            q = x / tf.reduce_sum(x)
            """), "TensorFlow with keepdims, and a full reduction"),
        Valid(dedent("""
            import torch
            y = x / x.max()
            z = x - x.sum((0, 1))
            """), "full reductions and a leading block of axes"),
        Valid(dedent("""
            import pandas as pd
            share = df / df.sum(axis=1)
            """), "a pandas frame: tensor methods are not assumed"),
        Valid(dedent("""
            import numpy as np
            import scipy.sparse as sp
            adj = sp.csr_matrix(edges)
            walk = adj / adj.sum(1)
            """), "SciPy sparse / np.matrix sums keep the axis"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                e = torch.exp(logits)
                probs = e / e.sum(dim=1)
                """),
            fixed=dedent("""
                import torch
                e = torch.exp(logits)
                probs = e / e.sum(dim=1, keepdim=True)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import torch
                x = torch.randn(8, 8)
                centered = x - x.mean(-1)
                """),
            fixed=dedent("""
                import torch
                x = torch.randn(8, 8)
                centered = x - x.mean(-1, keepdim=True)
                """),
            unsafe=True,
            note="dim=-1 with a known rank of 2",
        ),
        Invalid(
            dedent("""
                import torch
                shifted = logits - torch.max(logits, dim=1)[0]
                """),
            fixed=dedent("""
                import torch
                shifted = logits - torch.max(logits, dim=1, keepdim=True)[0]
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import numpy as np
                unit = feats / np.linalg.norm(feats, axis=1)
                """),
            fixed=dedent("""
                import numpy as np
                unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                probs = e / tf.reduce_sum(e, axis=1)
                """),
            fixed=dedent("""
                import tensorflow as tf
                probs = e / tf.reduce_sum(e, axis=1, keepdims=True)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                p = tf.exp(x) / tf.reduce_sum(tf.exp(x), reduction_indices=1, keep_dims=False)
                """),
            fixed=dedent("""
                import tensorflow as tf
                p = tf.exp(x) / tf.reduce_sum(tf.exp(x), reduction_indices=1, keep_dims=True)
                """),
            unsafe=True,
            note="TF1 spellings; the explicit False is flipped",
        ),
        Invalid(
            dedent("""
                import keras
                attn = scores - keras.ops.max(scores, axis=2)
                """),
            fixed=dedent("""
                import keras
                attn = scores - keras.ops.max(scores, axis=2, keepdims=True)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                import numpy as np
                rows = counts / counts.sum(axis=1)
                """),
            fixed=dedent("""
                import numpy as np
                rows = counts / counts.sum(axis=1, keepdims=True)
                """),
            unsafe=True,
            note="an ndarray method",
        ),
        Invalid(
            dedent("""
                import torch
                def normalise(x):
                    norms = x.norm(dim=1)
                    return x / norms
                """),
            note="through a name assigned once: reported, no fix",
        ),
        Invalid(
            dedent("""
                import torch
                h = torch.randn(4, 16, 32)
                h -= h.mean(dim=(1, 2))
                out = torch.div(h, h.std(2))
                """),
            fixed=dedent("""
                import torch
                h = torch.randn(4, 16, 32)
                h -= h.mean(dim=(1, 2), keepdim=True)
                out = torch.div(h, h.std(2, keepdim=True))
                """),
            count=2,
            unsafe=True,
            note="in-place and function forms",
        ),
    )

    # -- entry points ------------------------------------------------------------------

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, _OPERATORS):
            self._check(node, node.left, node.right)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, _AUG_OPERATORS):
            self._check(node, node.target, node.value)

    def visit_Call(self, node: cst.Call) -> None:
        if len(node.args) == 2 and all(a.keyword is None and not a.star for a in node.args):
            if self.ctx.qualname(node.func) in _BROADCASTING_FUNCTIONS:
                self._check(node, node.args[0].value, node.args[1].value)

    def _check(self, node: Any, left: Any, right: Any) -> None:
        for operand, other in ((right, left), (left, right)):
            direct = True
            found = self._reduction(operand)
            if found is None and isinstance(operand, cst.Name):
                value = self.ctx.assigned_value(operand)
                found = self._reduction(value) if value is not None else None
                direct = False
            if found is None or _text(found.tensor) != _text(other):
                continue
            if not self._misaligned(found):
                continue
            fix = None
            if direct and found.fix_keyword is not None:
                fix = Fix("Keep the reduced axis", [(found.call, _keep(found))], FixKind.UNSAFE)
            message = self.message.replace("dim=k", f"dim={found.dim_text}", 1)
            if found.fix_keyword == "keepdims":
                message = message.replace("Use keepdim=True", "Use keepdims=True").replace(
                    "over dim=", "over axis=", 1
                )
            self.report(node, message=message, fix=fix)
            return

    # -- recognising reductions -------------------------------------------------------

    def _reduction(self, node: Any) -> Optional[_Reduction]:
        """A reduction with literal axes and no true keep-dims flag, looking through ``.values``
        and ``[0]`` of the torch pair-returning ones."""
        ctx = self.ctx
        wrapped = False
        if isinstance(node, cst.Attribute) and node.attr.value == "values" and ctx.imports("torch"):
            node, wrapped = node.value, True
        elif (
            isinstance(node, cst.Subscript)
            and len(node.slice) == 1
            and isinstance(node.slice[0].slice, cst.Index)
            and numeric_value(node.slice[0].slice.value) == 0
            and ctx.imports("torch")
        ):
            node, wrapped = node.value, True
        if not isinstance(node, cst.Call) or any(a.star for a in node.args):
            return None
        name = ctx.qualname(node.func)
        if name is not None:
            spec = REDUCTIONS.get(name)
            if spec is None or spec.returns_pair != wrapped:
                return None
            tensor = ctx.argument(node, 0, None)
            for keyword in spec.tensor_keywords:
                arg = ctx.keyword(node, keyword)
                if tensor is None and arg is not None:
                    tensor = arg.value
            return self._read(node, tensor, spec, spec.fix_keyword)
        if not isinstance(node.func, cst.Attribute):
            return None
        method = node.func.attr.value
        if method not in REDUCTION_METHODS and method != "norm":
            return None
        pair = method in _PAIR_METHODS
        torch_file = ctx.imports("torch")
        if pair and torch_file and not wrapped:
            # torch's x.max(dim) is a (values, indices) pair: not used as a tensor here
            if not self._numpy_axis(node):
                return None
        elif wrapped and not pair:
            return None
        keywords = {a.keyword.value for a in node.args if a.keyword is not None}
        if "dim" not in keywords and _other_array_types(ctx):
            return None
        if method == "norm":
            if not torch_file:
                return None
            spec = _Spec(1, ("dim",), 2, ("keepdim",), "keepdim")
            fix_keyword: Optional[str] = "keepdim"
        else:
            positional = [a for a in node.args if a.keyword is None]
            if len(positional) > 1:
                return None
            spec = _Spec(0, _METHOD_DIMS, None, _METHOD_KEEP, "keepdims")
            other_libraries = any(ctx.imports(f) for f in ("numpy", "jax", "tensorflow", "keras"))
            fix_keyword = "keepdim" if torch_file and ("dim" in keywords or not other_libraries) else "keepdims"
        return self._read(node, node.func.value, spec, fix_keyword)

    def _numpy_axis(self, call: cst.Call) -> bool:
        """``x.max(axis=1)`` in a file that uses NumPy: an ndarray reduction, not a torch pair."""
        return self.ctx.imports("numpy") and self.ctx.keyword(call, "axis") is not None

    def _read(self, call: cst.Call, tensor: Any, spec: _Spec, fix_keyword: Optional[str]) -> Optional[_Reduction]:
        ctx = self.ctx
        if tensor is None:
            return None
        dim = ctx.argument(call, spec.dim_pos, None)
        for keyword in spec.dim_keywords:
            arg = ctx.keyword(call, keyword)
            if arg is not None:
                dim = arg.value
        if dim is None:
            return None
        dims = _literal_dims(ctx, dim)
        if dims is None:
            return None
        keep_arg = None
        for keyword in spec.keep_keywords:
            arg = ctx.keyword(call, keyword)
            if arg is not None:
                keep_arg = arg
        positional = [a for a in call.args if a.keyword is None]
        if keep_arg is None and spec.keep_pos is not None and len(positional) > spec.keep_pos:
            keep_arg = positional[spec.keep_pos]
        if keep_arg is None and spec.keep_pos is None and len(positional) > spec.dim_pos + 1:
            return None  # further positional arguments of uncertain meaning
        if keep_arg is not None and not (isinstance(keep_arg.value, cst.Name) and keep_arg.value.value == "False"):
            return None
        return _Reduction(call, tensor, dims, _text(dim), keep_arg, fix_keyword)

    # -- deciding ---------------------------------------------------------------------------

    def _misaligned(self, found: _Reduction) -> bool:
        dims = found.dims
        if all(d >= 0 for d in dims):
            return dims != frozenset(range(len(dims)))
        if all(d < 0 for d in dims):
            rank = self._min_rank(found.tensor)
            return rank is not None and min(dims) > -rank
        return False

    def _min_rank(self, node: Any, depth: int = 4) -> Optional[int]:
        """A lower bound on the number of dimensions of ``node``, from how it was made."""
        ctx = self.ctx
        for _ in range(depth):
            resolved = ctx.assigned_value(node)
            if resolved is not None:
                node = resolved
                continue
            if isinstance(node, cst.BinaryOperation):
                ranks = [r for r in (self._min_rank(node.left, 1), self._min_rank(node.right, 1)) if r is not None]
                return max(ranks) if ranks else None
            if not isinstance(node, cst.Call):
                return None
            name = ctx.qualname(node.func)
            if name in _CREATORS:
                sizes = [a for a in node.args if a.keyword is None]
                if len(sizes) == 1 and isinstance(sizes[0].value, (cst.Tuple, cst.List)):
                    return len(sizes[0].value.elements)
                return len(sizes) or None
            if name in _CREATORS_FROM_SHAPE:
                shape = ctx.argument(node, 0, "shape")
                if isinstance(shape, (cst.Tuple, cst.List)):
                    return len(shape.elements)
                return None
            if name in ("torch.reshape", "numpy.reshape", "tensorflow.reshape"):
                shape = ctx.argument(node, 1, "shape")
                return len(shape.elements) if isinstance(shape, (cst.Tuple, cst.List)) else None
            if name == "torch.mm":
                return 2
            if name == "torch.bmm":
                return 3
            func = node.func
            method = func.attr.value if isinstance(func, cst.Attribute) else None
            if method in ("view", "reshape") and name is None:
                args = [a for a in node.args if a.keyword is None]
                if len(args) == 1 and isinstance(args[0].value, (cst.Tuple, cst.List)):
                    return len(args[0].value.elements)
                return len(args) if len(args) >= 2 else None
            short = (name or "").rsplit(".", 1)[-1] if name else method
            if short in _RANK_KEEPING:
                if name is None and isinstance(func, cst.Attribute):
                    node = func.value
                else:
                    first = ctx.argument(node, 0, "input")
                    if first is None:
                        return None
                    node = first
                continue
            return None
        return None


def _other_array_types(ctx: Any) -> bool:
    """The file uses array types whose ``.sum(axis=1)`` keeps the axis or aligns by label:
    pandas frames, SciPy sparse matrices, ``np.matrix``."""
    modules = ctx.imported_modules
    if any(m == "pandas" or m.startswith("pandas.") or m.startswith("scipy.sparse") for m in modules):
        return True
    return _MATRIX_TYPES.search(ctx.source) is not None


_MATRIX_TYPES = re.compile(
    r"\b(?:np|numpy)\.(?:mat|matrix|asmatrix)\(|from\s+scipy\s+import\s[^\n]*\bsparse\b"
    r"|\.(?:csr|csc|coo|lil|dok|bsr|dia)_(?:matrix|array)\("
)


def _literal_dims(ctx: Any, node: Any) -> Optional[FrozenSet[int]]:
    if isinstance(node, (cst.Tuple, cst.List)):
        values = [numeric_value(e.value) for e in node.elements]
        if not values or any(v is None or v != int(v) for v in values):
            return None
        return frozenset(int(v) for v in values)  # type: ignore[arg-type]
    value = numeric_value(node)
    if value is None and isinstance(node, cst.Name):
        value = numeric_value(ctx.assigned_value(node))
    if value is None or value != int(value):
        return None
    return frozenset({int(value)})


_SPACE = re.compile(r"\s+")
_EMPTY = cst.Module(body=[])


def _text(node: Any) -> str:
    while isinstance(node, cst.BaseExpression) and getattr(node, "lpar", None):
        node = node.with_changes(lpar=(), rpar=())
    return _SPACE.sub("", _EMPTY.code_for_node(node))


def _keep(found: _Reduction) -> cst.Call:
    """The reduction call with its keep-dims flag set: an explicit False flipped, else
    ``keepdim=True`` / ``keepdims=True`` appended (a trailing comma and the whitespace before
    the closing parenthesis stay where they were)."""
    call = found.call
    true = cst.Name("True")
    if found.keep_arg is not None:
        return call.with_changes(
            args=[a.with_changes(value=true) if a is found.keep_arg else a for a in call.args]
        )
    args = list(call.args)
    last = args[-1]
    new = cst.Arg(
        value=true,
        keyword=cst.Name(found.fix_keyword or "keepdim"),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
        comma=last.comma,
        whitespace_after_arg=last.whitespace_after_arg,
    )
    args[-1] = last.with_changes(
        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
        whitespace_after_arg=cst.SimpleWhitespace(""),
    )
    args.append(new)
    return call.with_changes(args=args)
