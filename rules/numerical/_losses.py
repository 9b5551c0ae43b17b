"""Loss and value-origin helpers shared by the loss rules (DL109 softmax into cross-entropy,
DL110 sigmoid into BCELoss, DL111 nll_loss without log_softmax).

Two questions recur in these rules:

* which loss a call computes, and which argument is its *input* (the prediction): a
  functional loss (``F.cross_entropy(x, y)``), a loss module called inline
  (``nn.CrossEntropyLoss()(x, y)``) or through a name or ``self`` attribute bound once to the
  constructor (``criterion = nn.CrossEntropyLoss(); criterion(x, y)``);
* what produced that input: a softmax, a log_softmax / log, a sigmoid, a bare ``nn.Linear``,
  followed through shape-only methods (``.view``, ``.squeeze``, ``[:, 0]``...), single
  reaching assignments, one-return helpers, and models defined in the same file whose
  ``forward`` has a single return (``model = Net(); criterion(model(x), y)``), including
  ``nn.Sequential`` containers whose last layer is the producer.

``LossModelSummaries`` is a mixin for the rules: it records, for every class of the file, what
its ``forward`` returns (one kind, or one kind per element of a returned tuple literal) while the
``forward`` body is still in scope, so that later calls of an instance can be classified.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import libcst as cst

from dllint.rules.numerical._values import (
    LOG_FUNCTIONS,
    SIGMOID_FUNCTIONS,
    SOFTMAX_FUNCTIONS,
    SOFTMAX_LAYERS,
    is_method_call,
    method_name,
    softmax_kind,
)

# ---------------------------------------------------------------------- loss tables

#: loss modules, by the kind of input they expect
CROSS_ENTROPY_CLASSES = frozenset({"torch.nn.CrossEntropyLoss", "torch.nn.modules.loss.CrossEntropyLoss"})
BCE_CLASSES = frozenset({"torch.nn.BCELoss", "torch.nn.modules.loss.BCELoss"})
NLL_CLASSES = frozenset({"torch.nn.NLLLoss", "torch.nn.modules.loss.NLLLoss", "torch.nn.NLLLoss2d"})

CROSS_ENTROPY_FUNCTIONS = frozenset({"torch.nn.functional.cross_entropy"})
BCE_FUNCTIONS = frozenset({"torch.nn.functional.binary_cross_entropy"})
NLL_FUNCTIONS = frozenset({"torch.nn.functional.nll_loss"})

#: TensorFlow losses that apply softmax to their ``logits`` argument -> the positional index of
#: ``logits`` in the TF 2 signature (labels first).  The TF 1 ``tf.nn`` ops take keywords only;
#: before TF 1.0 they took ``(logits, labels)`` positionally.
TF_SOFTMAX_LOSSES = {
    "tensorflow.nn.softmax_cross_entropy_with_logits": 1,
    "tensorflow.nn.softmax_cross_entropy_with_logits_v2": 1,
    "tensorflow.nn.sparse_softmax_cross_entropy_with_logits": 1,
    "tensorflow.compat.v1.nn.softmax_cross_entropy_with_logits": 1,
    "tensorflow.compat.v1.nn.softmax_cross_entropy_with_logits_v2": 1,
    "tensorflow.compat.v1.nn.sparse_softmax_cross_entropy_with_logits": 1,
    "tensorflow.math.softmax_cross_entropy_with_logits": 1,
    "tensorflow.losses.softmax_cross_entropy": 1,
    "tensorflow.losses.sparse_softmax_cross_entropy": 1,
    "tensorflow.compat.v1.losses.softmax_cross_entropy": 1,
    "tensorflow.compat.v1.losses.sparse_softmax_cross_entropy": 1,
}
#: the ``tf.nn`` ops whose pre-1.0 positional order was ``(logits, labels)``
_TF_NN_OPS = frozenset(name for name in TF_SOFTMAX_LOSSES if ".nn." in name)

# ---------------------------------------------------------------------- producer tables

SIGMOID_MODULES = frozenset({"torch.nn.Sigmoid", "torch.nn.modules.activation.Sigmoid"})
LOG_SOFTMAX_MODULES = frozenset({"torch.nn.LogSoftmax", "torch.nn.modules.activation.LogSoftmax"})
LINEAR_MODULES = frozenset({"torch.nn.Linear", "torch.nn.modules.linear.Linear", "torch.nn.LazyLinear"})
SEQUENTIAL_MODULES = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential"})
#: wrappers whose call runs the wrapped module: ``nn.DataParallel(Net())``
WRAPPER_MODULES = frozenset(
    {"torch.nn.DataParallel", "torch.nn.parallel.DataParallel", "torch.nn.parallel.DistributedDataParallel"}
)
#: functions whose value is already a log-probability (or a log of something)
LOG_ROOTED_FUNCTIONS = frozenset(
    set(LOG_FUNCTIONS)
    | {v for v in SOFTMAX_FUNCTIONS.values() if v}
    | {
        "torch.log_softmax",
        "torch.nn.functional.log_softmax",
        "torch.nn.functional.logsigmoid",
        "torch.log2",
        "torch.log10",
        "torch.log1p",
        "torch.special.log_softmax",
        "torch.special.log1p",
        "torch.special.xlogy",
        "torch.xlogy",
    }
)
_LOG_METHODS = frozenset({"log", "log_softmax", "log2", "log10", "log1p", "log_"})

#: tensor methods that keep each element's value (only its shape, place or dtype changes)
SHAPE_METHODS = frozenset(
    {
        "view", "view_as", "reshape", "reshape_as", "squeeze", "unsqueeze", "flatten", "contiguous",
        "float", "double", "half", "to", "cuda", "cpu", "transpose", "permute", "t", "clone", "type_as",
    }
)
#: module methods that return the module itself: ``Net().to(device)``
_SELF_RETURNING = frozenset({"to", "cuda", "cpu", "double", "float", "half", "train", "eval", "requires_grad_"})

Kind = Optional[Union[str, Tuple[Optional[str], ...]]]


def strip_parens(node: Any) -> Any:
    while isinstance(node, cst.BaseExpression) and node.lpar and not isinstance(node, cst.Tuple):
        node = node.with_changes(lpar=(), rpar=())
    return node


# ---------------------------------------------------------------------- losses


@dataclass
class LossCall:
    """A loss call: its family ("cross_entropy", "bce", "nll", "tf_softmax"), the input (prediction)
    argument, and how it was called ("function", "inline" for ``nn.X()(...)``, "bound")."""

    family: str
    call: cst.Call
    prediction: Any
    how: str
    name: Optional[str] = None


def _module_constructor(ctx: Any, node: Any) -> Any:
    """The constructor call behind a module object: ``nn.BCELoss()``, also through ``.to(device)``
    / ``.cuda()`` and a name or ``self`` attribute bound once."""
    for _ in range(4):
        node = strip_parens(node)
        if isinstance(node, cst.Call):
            if method_name(node) in _SELF_RETURNING and ctx.qualname(node.func) is None:
                node = node.func.value  # type: ignore[union-attr]
                continue
            return node
        value = ctx.assigned_value(node)
        if value is None:
            return None
        node = value
    return None


def loss_call(ctx: Any, call: cst.Call) -> Optional[LossCall]:
    """Classify ``call`` as one of the losses of these rules, or None."""
    name = ctx.qualname(call.func)
    if name is not None:
        for family, table in (("cross_entropy", CROSS_ENTROPY_FUNCTIONS), ("bce", BCE_FUNCTIONS),
                              ("nll", NLL_FUNCTIONS)):
            if name in table:
                return LossCall(family, call, ctx.argument(call, 0, "input"), "function", name)
        if name in TF_SOFTMAX_LOSSES:
            return LossCall("tf_softmax", call, _tf_logits(ctx, call, name), "function", name)
        return None
    func = strip_parens(call.func)
    how = "inline"
    if isinstance(func, cst.Call):
        constructor = func
    elif isinstance(func, (cst.Name, cst.Attribute)):
        constructor = _module_constructor(ctx, func)
        how = "bound"
    else:
        return None
    if not isinstance(constructor, cst.Call):
        return None
    cls = ctx.qualname(constructor.func)
    for family, table in (("cross_entropy", CROSS_ENTROPY_CLASSES), ("bce", BCE_CLASSES), ("nll", NLL_CLASSES)):
        if cls in table:
            return LossCall(family, call, ctx.argument(call, 0, "input"), how, cls)
    return None


def _graph_mode_tf1(ctx: Any) -> bool:
    text = ctx.source
    return any(marker in text for marker in ("placeholder(", "Session(", "initialize_all_variables"))


def _tf_logits(ctx: Any, call: cst.Call, name: str) -> Any:
    keyword = ctx.keyword(call, "logits")
    if keyword is not None:
        return keyword.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if len(positional) < 2 or ctx.has_star_args(call):
        return None
    if name in _TF_NN_OPS and _graph_mode_tf1(ctx):
        # graph-mode TF 1 code calling the op positionally was written for the pre-1.0
        # signature ``(logits, labels)`` (TF 1.x itself accepts keywords only)
        return positional[0].value
    return positional[TF_SOFTMAX_LOSSES[name]].value


# ---------------------------------------------------------------------- producers


def sigmoid_kind(ctx: Any, node: Any) -> Optional[str]:
    """How ``node`` computes a sigmoid: "function", "layer" (``nn.Sigmoid()(x)``), "bound-layer"
    (``self.sigmoid(x)``), "method" (``x.sigmoid()``); None if it does not."""
    if not isinstance(node, cst.Call):
        return None
    name = ctx.qualname(node.func)
    if name in SIGMOID_FUNCTIONS:
        return "function"
    if isinstance(node.func, cst.Call) and ctx.qualname(node.func.func) in SIGMOID_MODULES:
        return "layer"
    if name is None and isinstance(node.func, (cst.Name, cst.Attribute)):
        layer = _module_constructor(ctx, node.func)
        if isinstance(layer, cst.Call) and ctx.qualname(layer.func) in SIGMOID_MODULES:
            return "bound-layer"
    if name is None and is_method_call(node, "sigmoid") and not node.args and ctx.imports("torch"):
        return "method"
    return None


#: layers that apply their activation to their output: qualified name -> (position, keyword) of it
ACTIVATION_LAYERS = {
    "tensorflow.layers.dense": (2, "activation"),
    "tensorflow.compat.v1.layers.dense": (2, "activation"),
    "tensorflow.keras.layers.Dense": (1, "activation"),
    "keras.layers.Dense": (1, "activation"),
    "tf_keras.layers.Dense": (1, "activation"),
    "tensorflow.keras.layers.Activation": (0, "activation"),
    "keras.layers.Activation": (0, "activation"),
    "tf_keras.layers.Activation": (0, "activation"),
    "tensorflow.contrib.layers.fully_connected": (2, "activation_fn"),
    "tensorflow.contrib.slim.fully_connected": (2, "activation_fn"),
    "tflearn.fully_connected": (2, "activation"),
    "tflearn.layers.fully_connected": (2, "activation"),
    "tflearn.layers.core.fully_connected": (2, "activation"),
}


def _activation_kind(ctx: Any, call: cst.Call) -> Optional[str]:
    """``Dense(10, activation="softmax")(x)``, ``tf.layers.dense(x, 10, activation=tf.nn.softmax)``,
    ``tflearn.fully_connected(x, 10, activation='softmax')``: a layer whose output is that
    activation's."""
    for candidate in (call, call.func):
        if not isinstance(candidate, cst.Call):
            continue
        spec = ACTIVATION_LAYERS.get(ctx.qualname(candidate.func) or "")
        if spec is None:
            continue
        value = strip_parens(ctx.argument(candidate, spec[0], spec[1]))
        if isinstance(value, cst.SimpleString):
            text = value.evaluated_value
            return text if text in ("softmax", "sigmoid") else None
        qualified = ctx.qualname(value) if value is not None else None
        if qualified in SOFTMAX_FUNCTIONS:
            return "softmax"
        if qualified in SIGMOID_FUNCTIONS:
            return "sigmoid"
        return None
    return None


def _module_kind(ctx: Any, constructor: Any, summaries: Dict[int, Kind], depth: int = 0) -> Kind:
    """What calling the module built by ``constructor`` returns."""
    if not isinstance(constructor, cst.Call) or depth > 3:
        return None
    cls = ctx.qualname(constructor.func)
    if cls in SOFTMAX_LAYERS:
        return "softmax"
    if cls in SIGMOID_MODULES:
        return "sigmoid"
    if cls in LOG_SOFTMAX_MODULES:
        return "log_softmax"
    if cls in LINEAR_MODULES:
        return "linear"
    if cls in WRAPPER_MODULES:
        inner = ctx.argument(constructor, 0, "module")
        return _module_kind(ctx, _module_constructor(ctx, inner), summaries, depth + 1)
    if cls in SEQUENTIAL_MODULES:
        layers = [a for a in constructor.args if a.keyword is None]
        if not layers or layers[-1].star:
            return None
        return _module_kind(ctx, _module_constructor(ctx, layers[-1].value), summaries, depth + 1)
    if cls is None and isinstance(constructor.func, cst.Name):
        bindings = ctx.lookup(constructor.func.value)
        if bindings and len(bindings) == 1 and isinstance(bindings[0].value, cst.ClassDef):
            return summaries.get(id(bindings[0].value))
    return None


def producer_kind(ctx: Any, node: Any, summaries: Dict[int, Kind]) -> Kind:
    """What the expression ``node`` itself computes: "softmax", "log_softmax", "log", "sigmoid",
    "linear" (a bare ``nn.Linear`` layer's output), a tuple of those (a model returning a tuple),
    or None (unknown)."""
    if not isinstance(node, cst.Call):
        return None
    if softmax_kind(ctx, node) is not None:
        return "softmax"
    if sigmoid_kind(ctx, node) is not None:
        return "sigmoid"
    name = ctx.qualname(node.func)
    if name in LOG_ROOTED_FUNCTIONS:
        return "log"
    if name is None and method_name(node) in _LOG_METHODS:
        return "log"
    activation = _activation_kind(ctx, node)
    if activation is not None:
        return activation
    if name is None:
        func = strip_parens(node.func)
        if isinstance(func, cst.Call):
            return _module_kind(ctx, func, summaries)
        if isinstance(func, (cst.Name, cst.Attribute)):
            return _module_kind(ctx, _module_constructor(ctx, func), summaries)
    return None


@dataclass
class Origin:
    """Where a value came from: the producer's kind, its node, and whether the producer is the
    value itself (direct nesting, no name or shape method in between)."""

    kind: str
    node: Any
    direct: bool


#: a function that maps a Name to the value of its reaching assignment (None: unknown)
NameResolver = Callable[[cst.Name], Optional[Any]]


def _integer_index(node: cst.Subscript) -> Optional[int]:
    if len(node.slice) != 1:
        return None
    index = node.slice[0].slice
    if isinstance(index, cst.Index) and isinstance(index.value, cst.Integer):
        return int(index.value.value)
    return None


def value_origin(
    ctx: Any,
    node: Any,
    summaries: Dict[int, Kind],
    resolver: Optional[NameResolver] = None,
    depth: int = 8,
    here: bool = True,
) -> Optional[Origin]:
    """Follow ``node`` back to its producer (see ``producer_kind``) through shape-only methods
    and subscripts, single reaching assignments (or ``resolver``), tuple unpacking of a model
    call, and one level of a helper's single return.  None when the trail is lost.  With ``here``
    and no ``resolver``, names are also resolved through the straight-line code before the
    point being visited (``BlockResolver.at``)."""
    if resolver is None and here:
        resolver = BlockResolver.at(ctx)
    direct = True
    names_ok = True
    pick: Optional[int] = None  # the tuple element wanted (unpacking / model(x)[0])
    for _ in range(depth):
        node = strip_parens(node)
        kind = producer_kind(ctx, node, summaries)
        if isinstance(kind, tuple):
            if pick is None or not 0 <= pick < len(kind):
                return None
            kind, pick = kind[pick], None
        if kind is not None:
            if pick is not None:
                return None
            return Origin(kind, node, direct)
        if pick is not None:
            return None
        if isinstance(node, cst.Call) and method_name(node) in SHAPE_METHODS and ctx.qualname(node.func) is None:
            node = node.func.value  # type: ignore[union-attr]
            direct = False
            continue
        if isinstance(node, cst.Subscript):
            inner = strip_parens(node.value)
            index = _integer_index(node)
            if index is not None and isinstance(producer_kind(ctx, inner, summaries), tuple):
                pick = index
            node = inner
            direct = False
            continue
        if not isinstance(node, (cst.Name, cst.Attribute, cst.Call)):
            return None
        value = None
        if isinstance(node, cst.Name) and names_ok:
            if resolver is not None:
                value = resolver(node)
                if value is None and getattr(resolver, "bailed", False):
                    return None
                if value is not None and getattr(resolver, "picked", None) is not None:
                    pick = resolver.picked  # type: ignore[attr-defined]
            if value is None:
                value = ctx.assigned_value(node)
            if value is None:
                bindings = ctx.lookup(node.value)
                if (
                    bindings
                    and len(bindings) == 1
                    and bindings[0].kind == "unpack"
                    and isinstance(bindings[0].value, cst.Call)
                    and bindings[0].index is not None
                ):
                    value, pick = bindings[0].value, bindings[0].index
        elif isinstance(node, cst.Attribute):
            value = ctx.assigned_value(node)  # ``self.x`` set once in the class
        elif isinstance(node, cst.Call) and names_ok:
            value = ctx.returned_value(node)
            if value is not None:
                # names in a helper's return value belong to the helper's scope
                names_ok = False
        if value is None:
            return None
        node = value
        direct = False
    return None


# ---------------------------------------------------------------------- forward summaries


_STATEMENT_FIELDS = ("body", "orelse", "handlers", "finalbody")


def _binds(node: Any, name: str) -> bool:
    """Whether the statement ``node`` (re)binds ``name`` anywhere (nested functions and classes
    count by their own name only).  Walks statements, not expressions: an assignment
    expression (``:=``) buried in an expression is not seen."""
    todo = [node]
    while todo:
        current = todo.pop()
        targets: List[Any] = []
        if isinstance(current, cst.SimpleStatementLine):
            todo.extend(current.body)
            continue
        if isinstance(current, cst.Assign):
            targets = [t.target for t in current.targets]
            if isinstance(current.value, cst.NamedExpr):
                targets.append(current.value.target)
        elif isinstance(current, (cst.AnnAssign, cst.AugAssign)):
            targets = [current.target]
        elif isinstance(current, cst.Expr) and isinstance(current.value, cst.NamedExpr):
            targets = [current.value.target]
        elif isinstance(current, cst.Del):
            targets = [current.target]
        elif isinstance(current, (cst.Import, cst.ImportFrom)):
            if _import_binds(current, name):
                return True
            continue
        elif isinstance(current, (cst.Global, cst.Nonlocal)):
            if any(n.name.value == name for n in current.names):
                return True
            continue
        elif isinstance(current, (cst.FunctionDef, cst.ClassDef)):
            if current.name.value == name:
                return True
            continue
        elif isinstance(current, cst.BaseCompoundStatement):
            if isinstance(current, cst.For):
                targets = [current.target]
            elif isinstance(current, cst.With):
                targets = [item.asname.name for item in current.items if item.asname is not None]
            elif isinstance(current, (cst.If, cst.While)) and isinstance(current.test, cst.NamedExpr):
                targets = [current.test.target]
            for field in _STATEMENT_FIELDS:
                part = getattr(current, field, None)
                if part is None:
                    continue
                if isinstance(part, (list, tuple)):
                    todo.extend(part)
                else:
                    todo.append(part)
        elif isinstance(current, (cst.IndentedBlock, cst.Else, cst.Finally)):
            todo.extend(current.body if isinstance(current, cst.IndentedBlock) else [current.body])
        elif isinstance(current, cst.ExceptHandler):
            if current.name is not None:
                targets = [current.name.name]
            todo.append(current.body)
        elif isinstance(current, cst.SimpleStatementSuite):
            todo.extend(current.body)
        for target in targets:
            if name in _target_names(target):
                return True
    return False


def _import_binds(node: Any, name: str) -> bool:
    names = node.names
    if isinstance(names, cst.ImportStar):
        return True
    for alias in names:
        local = alias.asname.name if alias.asname is not None else alias.name
        while isinstance(local, cst.Attribute):
            local = local.value
        if isinstance(local, cst.Name) and local.value == name:
            return True
    return False


def _target_names(target: Any) -> List[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        out: List[str] = []
        for element in target.elements:
            out.extend(_target_names(element.value))
        return out
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    return []


class BlockResolver:
    """Resolves names through straight-line code: the value of the closest ``name = value``
    statement before the current point in the current block, then in the enclosing blocks
    before the compound statement that holds it, when no statement in between rebinds the name
    in another way (a branch, a loop, augmented assignment, unpacking).  Leaving a loop body
    whose statements rebind the name gives up (the value may come round the back edge).

    Each successful lookup moves the current point to the assignment found, so that the names
    in its value are resolved as they were there."""

    def __init__(self, frames: Sequence[Tuple[Sequence[Any], int, Any]]) -> None:
        #: (statements of a block, index of the current statement, the compound statement that
        #: owns the block), innermost first
        self.frames = list(frames)
        #: the last lookup found a rebinding it cannot follow: the name's value is unknown here
        self.bailed = False
        #: the last lookup found ``a, b = call(...)``: the index of the name in the target
        self.picked: Optional[int] = None

    @classmethod
    def at(cls, ctx: Any) -> Optional["BlockResolver"]:
        """A resolver for the point the engine is visiting now (inside a function: up to the
        function's body; else up to the module's body); None inside a lambda or class body."""
        stack = ctx.stack
        frames: List[Tuple[Sequence[Any], int, Any]] = []
        for i in range(len(stack) - 1, -1, -1):
            node = stack[i]
            if isinstance(node, (cst.Lambda, cst.ClassDef)):
                return None
            if isinstance(node, cst.FunctionDef):
                break
            if isinstance(node, (cst.IndentedBlock, cst.Module)) and i + 1 < len(stack):
                statements = node.body
                current = stack[i + 1]
                index = next((k for k, st in enumerate(statements) if st is current), None)
                if index is None:
                    return None
                owner = stack[i - 1] if i >= 1 and not isinstance(node, cst.Module) else None
                frames.append((statements, index, owner))
        return cls(frames) if frames else None

    def fork(self) -> "BlockResolver":
        return BlockResolver(self.frames)

    def __call__(self, name: cst.Name) -> Optional[Any]:
        self.bailed = False
        self.picked = None
        while self.frames:
            statements, index, owner = self.frames[0]
            for j in range(index - 1, -1, -1):
                statement = statements[j]
                if not _binds(statement, name.value):
                    continue
                found = self._assignment(statement, name.value)
                if found is None:
                    self.bailed = True
                    return None
                self.frames[0] = (statements, j, owner)
                return found
            if isinstance(owner, (cst.For, cst.While)) and _binds(owner, name.value):
                self.bailed = True
                return None
            self.frames.pop(0)
        return None

    def _assignment(self, statement: Any, name: str) -> Optional[Any]:
        """The value ``statement`` gives ``name`` when it is a plain assignment (or an unpacking
        of a tuple literal or of a call, with ``picked`` set), else None."""
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            return None
        small = statement.body[0]
        if not isinstance(small, cst.Assign) or len(small.targets) != 1:
            return None
        target = small.targets[0].target
        if isinstance(target, cst.Name):
            return small.value if target.value == name else None
        if isinstance(target, (cst.Tuple, cst.List)):
            elements = target.elements
            if any(not isinstance(e.value, cst.Name) for e in elements):
                return None
            positions = [i for i, e in enumerate(elements) if e.value.value == name]  # type: ignore[union-attr]
            if len(positions) != 1:
                return None
            value = strip_parens(small.value)
            if isinstance(value, (cst.Tuple, cst.List)):
                if len(value.elements) != len(elements) or any(isinstance(e, cst.StarredElement) for e in value.elements):
                    return None
                return value.elements[positions[0]].value
            if isinstance(value, cst.Call):
                self.picked = positions[0]
                return value
        return None


def resolve_name(ctx: Any, node: Any, resolver: Optional[BlockResolver]) -> Optional[Any]:
    """The value of a Name through ``resolver`` (straight-line code), else its single reaching
    assignment; ``self.x`` attributes through the class's single assignment."""
    if isinstance(node, cst.Name) and resolver is not None:
        value = resolver(node)
        if value is not None:
            return value if resolver.picked is None else None
        if resolver.bailed:
            return None
    if isinstance(node, (cst.Name, cst.Attribute)):
        return ctx.assigned_value(node)
    return None


class LossModelSummaries:
    """Mixin for rules: records what each class's ``forward`` returns, while its body is in scope.

    ``self.summaries`` maps id(ClassDef) -> a kind ("softmax", "sigmoid", "log_softmax", "log",
    "linear"), a tuple of kinds (``return a, b``), or None."""

    @property
    def summaries(self) -> Dict[int, Kind]:
        # one table per file, shared by the rules that use this mixin
        ctx = self.ctx  # type: ignore[attr-defined]
        table = _SUMMARIES.get(ctx)
        if table is None:
            table = _SUMMARIES[ctx] = {}
        return table

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        ctx = self.ctx  # type: ignore[attr-defined]
        if node.name.value != "forward" or len(ctx.scopes) < 2:
            return
        scope, owner = ctx.scopes[-1], ctx.scopes[-2]
        if scope.node is not node or owner.kind != "class":
            return
        summaries = self.summaries
        if id(owner.node) in summaries:
            return
        summaries[id(owner.node)] = None
        returns = scope.returns  # the values of this function's own return statements
        if len(returns) != 1 or returns[0] is None:
            return
        returned = returns[0]
        body = list(node.body.body) if isinstance(node.body, cst.IndentedBlock) else []
        index = None
        if body and isinstance(body[-1], cst.SimpleStatementLine):
            last = body[-1].body
            if last and isinstance(last[-1], cst.Return) and last[-1].value is returned:
                index = len(body) - 1
        value = strip_parens(returned)
        elements = list(value.elements) if isinstance(value, cst.Tuple) else None
        kinds: List[Optional[str]] = []
        for element in (elements if elements is not None else [None]):
            expr = element.value if element is not None else value
            if isinstance(element, cst.StarredElement):
                return
            resolver = BlockResolver([(body, index, None)]) if index is not None else None
            origin = value_origin(ctx, expr, summaries, resolver, here=False)
            kinds.append(origin.kind if origin is not None else None)
        summaries[id(owner.node)] = kinds[0] if elements is None else tuple(kinds)


#: per file (its Context): id(ClassDef) -> what the class's forward returns
_SUMMARIES: "weakref.WeakKeyDictionary[Any, Dict[int, Kind]]" = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------- fixes


def callee(ctx: Any, old: Any, target: str) -> Tuple[Any, Tuple[str, ...]]:
    """An expression naming ``target``: the old attribute with its last part renamed when that
    resolves to ``target``, else a name this file's imports reach, else the full dotted name plus
    an import of its module."""
    last = target.rsplit(".", 1)[1]
    if isinstance(old, cst.Attribute):
        base = ctx.qualname(old.value)
        if base is not None and f"{base}.{last}" == target:
            return old.with_changes(attr=cst.Name(last)), ()
    text = ctx.reference_to(target)
    if text is not None:
        return cst.parse_expression(text), ()
    module = target.rsplit(".", 1)[0]
    return cst.parse_expression(target), (module,)


def single_input(ctx: Any, call: cst.Call, keywords: Sequence[str]) -> Optional[Any]:
    """The input of a one-input call (``sigmoid(x)``): the only positional argument or the only
    keyword among ``keywords``; None when other arguments are present."""
    if len(call.args) != 1 or call.args[0].star:
        return None
    arg = call.args[0]
    if arg.keyword is None or arg.keyword.value in keywords:
        return arg.value
    return None


def producer_input(ctx: Any, node: cst.Call, kind: str) -> Optional[Any]:
    """The tensor a softmax / sigmoid call was applied to (for dropping the wrapper), or None."""
    func = node.func
    if kind == "method":
        return func.value if isinstance(func, cst.Attribute) else None  # type: ignore[union-attr]
    if kind in ("layer", "bound-layer"):
        return single_input(ctx, node, ("input",))
    # a function: the input plus optional axis / dtype arguments
    name = ctx.qualname(func) or ""
    keyword = "input" if name.startswith("torch") else "logits" if name.startswith("tensorflow") else "x"
    if ctx.has_star_args(node):
        return None
    return ctx.argument(node, 0, keyword)
