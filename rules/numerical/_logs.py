"""Value-origin helpers shared by the log rules (DL102 log-of-sigmoid, DL103 handwritten-cross-entropy,
DL105 log-one-plus-exp-or-sum-exp, DL115 unclamped-exp-of-log-variance).

The central question these rules ask is "where does this value come from?": is the argument of a
``log`` a sigmoid or softmax output, ``1 - sigmoid(z)``, a clamped value?  The Context answers it
for a name assigned once; here a name assigned several times is followed too, in two ways:

* when the last assignment seen so far is a statement directly in the body of the scope (not
  inside an ``if``, loop, ``with`` or ``try``), that assignment reaches every later use in the
  straight-line code after it, so only it counts (``pred = torch.sigmoid(pred)`` after a parameter
  ``pred``);
* otherwise every assignment seen so far must agree (``p = F.softmax(z, 0)`` then, in a loop,
  ``p = F.softmax(z, 1)``).

A parameter, a loop variable, an augmented assignment or an import among the bindings makes the
origin unknown, and the rules stay silent.
"""

from __future__ import annotations

from typing import Any, FrozenSet, List, Optional, Tuple

import libcst as cst

from dllint.rules.numerical._values import (
    CLAMP_FUNCTIONS,
    CLAMP_METHODS,
    EXP_FUNCTIONS,
    LOG_FUNCTIONS,
    SIGMOID_FUNCTIONS,
    SOFTMAX_LAYERS,
    is_method_call,
    method_name,
    numeric_value,
    softmax_kind,
)

#: sigmoid spellings missing from _values.SIGMOID_FUNCTIONS (to move there)
SIGMOIDS = SIGMOID_FUNCTIONS

#: sigmoid function -> its log-sigmoid counterpart taking the same single argument (None: none).
LOG_SIGMOID_OF = {
    "torch.sigmoid": "torch.nn.functional.logsigmoid",
    "torch.nn.functional.sigmoid": "torch.nn.functional.logsigmoid",
    "torch.special.expit": "torch.nn.functional.logsigmoid",
    "tensorflow.sigmoid": "tensorflow.math.log_sigmoid",
    "tensorflow.nn.sigmoid": "tensorflow.math.log_sigmoid",
    "tensorflow.math.sigmoid": "tensorflow.math.log_sigmoid",
    "tensorflow.compat.v1.sigmoid": "tensorflow.compat.v1.math.log_sigmoid",
    "tensorflow.compat.v1.nn.sigmoid": "tensorflow.compat.v1.math.log_sigmoid",
    "tensorflow.compat.v1.math.sigmoid": "tensorflow.compat.v1.math.log_sigmoid",
    "tensorflow.keras.backend.sigmoid": None,
    "keras.backend.sigmoid": None,
    "tf_keras.activations.sigmoid": None,
    "tensorflow.keras.activations.sigmoid": None,
    "keras.activations.sigmoid": None,
    "keras.ops.sigmoid": "keras.ops.log_sigmoid",
    "tensorflow.keras.ops.sigmoid": "tensorflow.keras.ops.log_sigmoid",
    "scipy.special.expit": "scipy.special.log_expit",
    "jax.nn.sigmoid": "jax.nn.log_sigmoid",
}
#: sigmoid layers called on their input -> the log-sigmoid layer
LOG_SIGMOID_LAYER_OF = {"torch.nn.Sigmoid": "torch.nn.LogSigmoid", "torch.nn.modules.activation.Sigmoid": "torch.nn.LogSigmoid"}

#: log1p spellings (``log1p(exp(x))`` is a softplus too)
LOG1P_FUNCTIONS = frozenset(
    {"torch.log1p", "torch.special.log1p", "tensorflow.math.log1p", "tensorflow.compat.v1.log1p",
     "tensorflow.compat.v1.math.log1p", "numpy.log1p", "jax.numpy.log1p", "keras.ops.log1p"}
)

#: Sequential containers whose output is the output of their last layer
SEQUENTIAL = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential",
                        "tensorflow.keras.Sequential", "tensorflow.keras.models.Sequential",
                        "keras.Sequential", "keras.models.Sequential"})
#: Keras layers taking an ``activation`` argument (positional index of it)
_KERAS_ACTIVATION_LAYERS = {"Dense": 1, "Activation": 0}

#: tensor methods that keep the values of their receiver (a view, a copy, a cast)
VALUE_PRESERVING_METHODS = frozenset(
    {"detach", "clone", "float", "double", "view", "view_as", "reshape", "reshape_as", "squeeze", "unsqueeze",
     "flatten", "contiguous", "t", "transpose", "permute", "expand", "expand_as", "to", "cpu", "cuda",
     "type_as", "narrow", "select", "index_select", "gather", "masked_select"}
)
VALUE_PRESERVING_FUNCTIONS = frozenset(
    {"tensorflow.reshape", "tensorflow.squeeze", "tensorflow.expand_dims", "tensorflow.transpose",
     "tensorflow.gather", "tensorflow.gather_nd", "tensorflow.boolean_mask", "tensorflow.identity",
     "torch.squeeze", "torch.unsqueeze", "torch.reshape", "torch.flatten", "torch.gather",
     "numpy.squeeze", "numpy.reshape"}
)

#: element-wise products
MULTIPLY_FUNCTIONS = frozenset({"torch.mul", "torch.multiply", "tensorflow.multiply", "tensorflow.math.multiply",
                                "numpy.multiply", "keras.ops.multiply"})


def strip(node: Any) -> Any:
    """The expression without its own parentheses."""
    if isinstance(node, cst.BaseExpression) and not isinstance(node, cst.Tuple) and getattr(node, "lpar", None):
        return node.with_changes(lpar=(), rpar=())
    return node


def negated(node: Any) -> Tuple[Any, bool]:
    """``-x`` -> (x, True); anything else -> (node, False).  Parentheses are looked through."""
    node = strip(node)
    sign = False
    while isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        if isinstance(node.operator, cst.Minus):
            sign = not sign
        node = strip(node.expression)
    return node, sign


def framework_of(name: Optional[str]) -> Optional[str]:
    """The framework a qualified name belongs to (scipy counts as numpy)."""
    if not name:
        return None
    top = name.split(".", 1)[0]
    return {"tensorflow": "tensorflow", "torch": "torch", "keras": "keras", "numpy": "numpy", "scipy": "numpy",
            "jax": "jax"}.get(top)


def code_of(ctx: Any, node: Any) -> str:
    """Source text of an expression with all whitespace removed (for structural comparison)."""
    try:
        text = ctx.module.code_for_node(strip(node))
    except Exception:  # pragma: no cover - libcst refuses some detached nodes
        return repr(id(node))
    return "".join(text.split())


def log_call_argument(ctx: Any, node: Any) -> Optional[Tuple[Any, Optional[str]]]:
    """For a natural-log call, (its argument, the log's qualified name or "method"); else None.
    ``x.log()`` counts in files that import torch."""
    if not isinstance(node, cst.Call):
        return None
    name = ctx.qualname(node.func)
    if name in LOG_FUNCTIONS:
        argument = ctx.argument(node, 0, "input" if name.startswith("torch") else "x")
        return (argument, name) if argument is not None else None
    if name is None and is_method_call(node, "log") and not node.args and ctx.imports("torch"):
        return node.func.value, "method"
    return None


def is_exp_call(ctx: Any, node: Any) -> Optional[Any]:
    """The argument of an ``exp`` call (``torch.exp(x)``, ``tf.exp(x)``, ``np.exp(x)``, ``x.exp()``), else None."""
    node = strip(node)
    if not isinstance(node, cst.Call):
        return None
    name = ctx.qualname(node.func)
    if name in EXP_FUNCTIONS:
        return ctx.argument(node, 0, "input" if name.startswith("torch") else "x")
    if name is None and is_method_call(node, "exp") and not node.args and ctx.imports("torch"):
        return node.func.value
    return None


def is_clamp(ctx: Any, node: Any) -> bool:
    """A clamp / clip / maximum call (function or method), whatever its bounds."""
    node = strip(node)
    if not isinstance(node, cst.Call):
        return False
    name = ctx.qualname(node.func)
    if name in CLAMP_FUNCTIONS:
        return True
    return name is None and method_name(node) in CLAMP_METHODS


# ---------------------------------------------------------------------- reaching values


def _binding_scope(ctx: Any, name: str) -> Any:
    """The scope ``ctx.lookup(name)`` found its bindings in (same visibility rules)."""
    innermost = True
    for scope in reversed(ctx.scopes):
        if scope.kind == "class" and not innermost:
            continue
        innermost = False
        if scope.bindings.get(name):
            return scope
    return None


def _top_level_value(scope: Any, value: Any) -> bool:
    """Whether ``value`` is the value of an assignment statement directly in the scope's body."""
    node = scope.node
    if isinstance(node, cst.Module):
        body = node.body
    elif isinstance(node, cst.FunctionDef) and isinstance(node.body, cst.IndentedBlock):
        body = node.body.body
    else:
        return False
    for statement in body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is value:
                    return True
    return False


def reaching_values(ctx: Any, name: cst.Name) -> Optional[List[Any]]:
    """The expressions that may have given ``name`` its value at this point (see the module
    docstring), or None when one of them is unknown (a parameter, a loop target, an import...)."""
    if ctx.qualname(name) is not None:
        return None  # an imported module or function, not a computed value
    scope = _binding_scope(ctx, name.value)
    if scope is None:
        return None
    bindings = scope.bindings[name.value]

    def value_of(binding: Any) -> Optional[Any]:
        return binding.expression()

    last = value_of(bindings[-1])
    if last is not None and bindings[-1].kind == "assign" and _top_level_value(scope, last):
        return [last]
    values = [value_of(b) for b in bindings]
    if any(v is None for v in values):
        return None
    return values


def all_assigned_values(ctx: Any, name: Any) -> List[Any]:
    """Every value assigned so far to a local name (in any branch, reaching or not)."""
    if not isinstance(name, cst.Name):
        return []
    scope = _binding_scope(ctx, name.value)
    if scope is None:
        return []
    return [b.value for b in scope.bindings[name.value] if b.kind == "assign" and b.value is not None]


def origins(ctx: Any, node: Any, depth: int = 4, seen: FrozenSet[str] = frozenset()) -> Optional[List[Any]]:
    """The expressions a value comes from, following names (every reaching assignment), ``self.x``
    attributes set once, views and copies (``p[0]``, ``p.detach()``, ``tf.reshape(p, s)``).  A
    name being resolved that refers to itself (``p = p[mask]``) adds nothing.  Returns None when
    a name's origin is unknown; leaves that are not names are returned as they are."""
    node = strip(node)
    if depth < 0:
        return None
    base = _view_base(ctx, node)
    if base is not None:
        return origins(ctx, base, depth - 1, seen)
    if isinstance(node, cst.Name):
        if node.value in seen:
            return []
        values = reaching_values(ctx, node)
        if values is None:
            return None
        out: List[Any] = []
        for value in values:
            found = origins(ctx, value, depth - 1, seen | {node.value})
            if found is None:
                return None
            out.extend(found)
        return out
    if isinstance(node, cst.Attribute) and ctx.qualname(node) is None:
        value = ctx.assigned_value(node)
        if value is None:
            return [node]  # an attribute of something else (``out.values``, ``args.beta``): a leaf
        return origins(ctx, value, depth - 1, seen)
    return [node]


def _view_base(ctx: Any, node: Any) -> Optional[Any]:
    """For a view or copy of a tensor (``p[i]``, ``p.detach()``, ``tf.squeeze(p)``), the tensor."""
    if isinstance(node, cst.Subscript):
        return node.value
    if isinstance(node, cst.Call):
        if isinstance(node.func, cst.Attribute) and ctx.qualname(node.func) is None and \
                node.func.attr.value in VALUE_PRESERVING_METHODS and not (
                    node.func.attr.value == "to" and any(a.keyword is None and _is_dtype(ctx, a.value) for a in node.args)):
            return node.func.value
        name = ctx.qualname(node.func)
        if name in VALUE_PRESERVING_FUNCTIONS:
            return ctx.argument(node, 0, "tensor" if name.startswith("tensorflow") else "input")
    return None


def _is_dtype(ctx: Any, node: Any) -> bool:
    name = ctx.qualname(node) or ""
    return name.endswith("float16") or name.endswith("half") or name.endswith("bfloat16")


# ---------------------------------------------------------------------- probability producers


def _activation_kind(ctx: Any, value: Any) -> Optional[str]:
    """``"sigmoid"`` / ``"softmax"`` for an activation spelled as a string or a function object."""
    if isinstance(value, cst.SimpleString):
        text = value.evaluated_value
        if text in ("sigmoid", "softmax"):
            return text
        return None
    name = ctx.qualname(value)
    if name in SIGMOIDS:
        return "sigmoid"
    if name is not None and (name.endswith(".softmax") and "log" not in name):
        return "softmax"
    return None


def layer_kind(ctx: Any, layer: Any, depth: int = 2) -> Optional[str]:
    """What a layer object outputs: ``nn.Sigmoid()`` / ``nn.Softmax(1)`` / Keras ``Activation("sigmoid")``
    / ``Dense(n, activation="softmax")`` / a ``Sequential`` whose last layer is one of these; a
    name bound once to such a layer counts."""
    layer = strip(layer)
    for _ in range(depth + 1):
        if isinstance(layer, (cst.Name, cst.Attribute)) and ctx.qualname(layer) is None:
            value = ctx.assigned_value(layer)
            if value is None:
                return None
            layer = strip(value)
            continue
        break
    if not isinstance(layer, cst.Call):
        return None
    name = ctx.qualname(layer.func)
    if name is None:
        return None
    if name in LOG_SIGMOID_LAYER_OF:
        return "sigmoid"
    if name in SOFTMAX_LAYERS:
        return "softmax"
    if name in SEQUENTIAL:
        layers = [a.value for a in layer.args if a.keyword is None and not a.star]
        if len(layers) == 1 and isinstance(strip(layers[0]), cst.List):
            elements = strip(layers[0]).elements
            layers = [e.value for e in elements if not isinstance(e, cst.StarredElement)]
            if len(layers) != len(elements):
                return None
        if not layers or any(a.star for a in layer.args):
            return None
        return layer_kind(ctx, layers[-1], depth)
    short = name.rsplit(".", 1)[-1]
    if short in _KERAS_ACTIVATION_LAYERS and framework_of(name) in ("tensorflow", "keras"):
        activation = ctx.argument(layer, _KERAS_ACTIVATION_LAYERS[short], "activation")
        return _activation_kind(ctx, activation) if activation is not None else None
    return None


def _is_handwritten_sigmoid(ctx: Any, node: Any) -> bool:
    """``1 / (1 + exp(-x))`` (either operand order inside the sum)."""
    if not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide)):
        return False
    if numeric_value(node.left) != 1.0:
        return False
    total = strip(node.right)
    if not (isinstance(total, cst.BinaryOperation) and isinstance(total.operator, cst.Add)):
        return False
    for one, other in ((total.left, total.right), (total.right, total.left)):
        if numeric_value(one) == 1.0 and is_exp_call(ctx, other) is not None:
            return True
    return False


def direct_kind(ctx: Any, node: Any) -> Optional[str]:
    """``"sigmoid"`` or ``"softmax"`` when the expression itself computes one, else None."""
    node = strip(node)
    if not isinstance(node, (cst.Call, cst.BinaryOperation)):
        return None
    if isinstance(node, cst.BinaryOperation):
        return "sigmoid" if _is_handwritten_sigmoid(ctx, node) else None
    if softmax_kind(ctx, node) is not None:
        return "softmax"
    name = ctx.qualname(node.func)
    if name in SIGMOIDS:
        return "sigmoid"
    if name is None and is_method_call(node, "sigmoid") and not node.args and ctx.imports("torch"):
        if not isinstance(node.func.value, cst.Name) or ctx.qualname(node.func.value) is None:
            return "sigmoid"
    if isinstance(node.func, cst.Call) or (name is None and isinstance(node.func, (cst.Name, cst.Attribute))):
        # a layer applied to its input: nn.Sigmoid()(x), Dense(1, activation="sigmoid")(x),
        # model(x) with model = nn.Sequential(..., nn.Sigmoid())
        if len([a for a in node.args if a.keyword is None]) >= 1:
            return layer_kind(ctx, node.func)
    return None


def probability_kinds(ctx: Any, node: Any) -> Optional[FrozenSet[str]]:
    """The set of producers ({"sigmoid"}, {"softmax"} or both) when every origin of ``node`` is a
    sigmoid or softmax output (or a helper defined earlier in the file that returns one
    directly); None when any origin is something else or unknown."""
    found = origins(ctx, node)
    if not found:
        return None
    kinds = set()
    for origin in found:
        kind = direct_kind(ctx, origin)
        if kind is None:
            returned = ctx.returned_value(origin) if isinstance(origin, cst.Call) else None
            # only a returned call counts: a returned name belongs to the helper's own scope
            kind = direct_kind(ctx, returned) if returned is not None else None
        if kind is None:
            return None
        kinds.add(kind)
    return frozenset(kinds)


def is_sigmoid_output(ctx: Any, node: Any) -> bool:
    return probability_kinds(ctx, node) == frozenset({"sigmoid"})


# ---------------------------------------------------------------------- 1 - p


#: below this, ``c + 1`` rounds to exactly 1 (half an ulp of 1): float32, float64
ABSORBED_BELOW = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}


def one_minus(node: Any, numpy_like: bool = False) -> Optional[Tuple[Any, bool]]:
    """For ``1 - p`` (also ``1.0 - p``), (p, False); for ``c + 1 - p`` / ``1 + c - p`` with a
    positive ``c`` that the addition to 1 loses in float32 (float64 for NumPy), (p, True):
    ``1e-10 + 1 - p`` is ``(1e-10 + 1) - p``, which is ``1 - p`` once rounded.  Else None."""
    node = strip(node)
    if not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Subtract)):
        return None
    left = strip(node.left)
    if numeric_value(left) == 1.0:
        return node.right, False
    if isinstance(left, cst.BinaryOperation) and isinstance(left.operator, cst.Add):
        values = (numeric_value(left.left), numeric_value(left.right))
        if 1.0 in values:
            other = values[1] if values[0] == 1.0 else values[0]
            limit = ABSORBED_BELOW["float64" if numpy_like else "float32"]
            if other is not None and 0 < other < limit:
                return node.right, True
    return None


def one_minus_sigmoid(ctx: Any, argument: Any, numpy_like: bool = False) -> Optional[Tuple[Any, bool]]:
    """For a ``log`` argument that is ``1 - p`` with ``p`` a sigmoid output, directly or through
    a name (``q = 1 - torch.sigmoid(z)``): (p, eps_lost) as :func:`one_minus` gives it."""
    candidates = [argument]
    found = origins(ctx, argument)
    if found and len(found) == 1 and found[0] is not strip(argument):
        candidates.append(found[0])
    for candidate in candidates:
        shape = one_minus(candidate, numpy_like)
        if shape is not None and is_sigmoid_output(ctx, shape[0]):
            return shape
    return None


#: longest ``+``/``-`` chain or product looked into (longer ones are generated code, not a loss)
_MAX_TERMS = 64


def iter_terms(node: Any) -> List[Tuple[Any, bool]]:
    """The terms of a ``+``/``-`` chain with their sign: ``-a*b - c`` -> (a*b, True), (c, True)."""
    out: List[Tuple[Any, bool]] = []
    todo = [(node, False)]
    while todo and len(out) + len(todo) <= _MAX_TERMS:
        current, outer = todo.pop()
        current, sign = negated(current)
        sign = sign != outer
        if isinstance(current, cst.BinaryOperation) and isinstance(current.operator, (cst.Add, cst.Subtract)):
            right_sign = sign != isinstance(current.operator, cst.Subtract)
            todo.append((current.right, right_sign))
            todo.append((current.left, sign))
        else:
            out.append((current, sign))
    return out


def factors(ctx: Any, node: Any) -> List[Any]:
    """The factors of a product (``a * b * c``, ``-a * b``, ``torch.mul(a, b)``), signs dropped."""
    out: List[Any] = []
    todo = [node]
    while todo and len(out) + len(todo) <= _MAX_TERMS:
        current, _ = negated(todo.pop())
        if isinstance(current, cst.BinaryOperation) and isinstance(current.operator, cst.Multiply):
            todo.extend((current.right, current.left))
            continue
        if isinstance(current, cst.Call) and ctx.qualname(current.func) in MULTIPLY_FUNCTIONS:
            first, second = ctx.argument(current, 0), ctx.argument(current, 1)
            if first is not None and second is not None:
                todo.extend((second, first))
                continue
        out.append(current)
    return out
