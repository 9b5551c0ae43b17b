"""Name tables shared by the quantisation (DL2xx) rules.

PyTorch names are given in their ``torch.ao.quantization`` spelling plus the legacy
``torch.quantization`` aliases, which are the same objects (checked in torch 2.13:
``torch.quantization.quantize_dynamic is torch.ao.quantization.quantize_dynamic``).

Also: the entry points of the eager, FX and PT2E flows (DL201-DL203, DL207), the releases that
deprecate or remove them (DL214, DL215), and life-cycle helpers over ``ctx.object_events``: the
train / eval mode of a model at a call, the names it flows to, where a statement can be inserted.
"""

from __future__ import annotations

import re
from typing import Any, Dict, FrozenSet, List, Optional, Set, Tuple


def _spellings(*names: str) -> FrozenSet[str]:
    """Every public spelling of functions defined in ``torch.ao.quantization.quantize``."""
    out = set()
    for name in names:
        for package in ("torch.ao.quantization", "torch.quantization"):
            out.add(f"{package}.{name}")
            out.add(f"{package}.quantize.{name}")
    return frozenset(out)


#: ``quantize_dynamic(model, qconfig_spec=None, dtype=torch.qint8, mapping=None, inplace=False)``
QUANTIZE_DYNAMIC = _spellings("quantize_dynamic")


def _torch_nn(*classes: str, module: str) -> Dict[str, str]:
    out = {}
    for cls in classes:
        out[f"torch.nn.{cls}"] = cls
        out[f"torch.nn.modules.{cls}"] = cls
        out[f"torch.nn.modules.{module}.{cls}"] = cls
    return out


#: Module classes that ``quantize_dynamic`` leaves in float whatever the qconfig says: the default
#: dynamic mapping of torch 2.13 holds only Linear (and LinearReLU), the RNN family (LSTM, GRU,
#: RNNCell, LSTMCell, GRUCell) and Embedding / EmbeddingBag; dynamic convolutions were taken out
#: of it (pytorch/pytorch PR #71110).  Qualified name -> the name a message shows.
DYNAMIC_UNSUPPORTED: Dict[str, str] = {
    **_torch_nn("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", module="conv"),
    **_torch_nn("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", module="batchnorm"),
    # GPT-2's projection layer (a Linear with transposed weights), not an nn.Linear subclass
    "transformers.pytorch_utils.Conv1D": "transformers Conv1D",
    "transformers.Conv1D": "transformers Conv1D",
    "transformers.modeling_utils.Conv1D": "transformers Conv1D",  # its place before transformers 4.20
}


# ---------------------------------------------------------------------- entry points (DL201-DL203, DL207, DL214)
#
# Checked in the torch 2.13 CPU wheel: every function below is importable under both package
# spellings, except ``fuse_modules_qat``, which the legacy ``torch.quantization`` package does not
# re-export (only ``torch.ao.quantization.fuse_modules_qat`` exists).

PREPARE = _spellings("prepare")
CONVERT = _spellings("convert")
QUANTIZE = _spellings("quantize")
PREPARE_QAT = _spellings("prepare_qat")
QUANTIZE_QAT = _spellings("quantize_qat")


def _fx(*names: str) -> FrozenSet[str]:
    """Spellings of the FX graph mode functions of ``torch.ao.quantization.quantize_fx``."""
    return frozenset(
        f"{package}.quantize_fx.{name}" for name in names for package in ("torch.ao.quantization", "torch.quantization")
    )


PREPARE_FX = _fx("prepare_fx")
PREPARE_QAT_FX = _fx("prepare_qat_fx")
CONVERT_FX = _fx("convert_fx")

FUSE_MODULES = frozenset(
    f"{package}{suffix}"
    for package in ("torch.ao.quantization", "torch.quantization")
    for suffix in (".fuse_modules", ".fuse_modules.fuse_modules")
)
FUSE_MODULES_QAT = frozenset(
    {"torch.ao.quantization.fuse_modules_qat", "torch.ao.quantization.fuse_modules.fuse_modules_qat"}
)


def _pt2e(*names: str) -> FrozenSet[str]:
    """The PT2E functions: torchao's (where they live now) and torch's removed module."""
    out = set()
    for name in names:
        out.add(f"torchao.quantization.pt2e.quantize_pt2e.{name}")
        out.add(f"torchao.quantization.pt2e.{name}")
        out.add(f"torch.ao.quantization.quantize_pt2e.{name}")
    return frozenset(out)


PREPARE_PT2E = _pt2e("prepare_pt2e")
PREPARE_QAT_PT2E = _pt2e("prepare_qat_pt2e")
CONVERT_PT2E = _pt2e("convert_pt2e")

#: Graph captures whose result feeds ``prepare_pt2e`` (the module's train / eval mode is baked in).
EXPORT_CAPTURE = frozenset(
    {
        "torch.export.export",
        "torch.export.export_for_training",
        "torch._export.capture_pre_autograd_graph",
    }
)
#: torchao's helper that switches a captured graph to eval behaviour after the fact.
MOVE_TO_EVAL = frozenset(
    {
        "torchao.quantization.pt2e.move_exported_model_to_eval",
        "torchao.quantization.pt2e.utils.move_exported_model_to_eval",
        "torchao.quantization.pt2e.export_utils.move_exported_model_to_eval",
        "torch.ao.quantization.move_exported_model_to_eval",
        "torch.ao.quantization.pt2e.export_utils.move_exported_model_to_eval",
    }
)

QAT_ENTRY_POINTS = PREPARE_QAT | QUANTIZE_QAT | PREPARE_QAT_FX | FUSE_MODULES_QAT | PREPARE_QAT_PT2E

#: Functions taking a qconfig backend string (``"x86"``, ``"fbgemm"``, ``"qnnpack"``, ``"onednn"``).
QCONFIG_GETTERS = frozenset(
    f"{package}{module}.{name}"
    for package in ("torch.ao.quantization", "torch.quantization")
    for module, names in (
        ("", ("get_default_qconfig", "get_default_qat_qconfig", "get_default_qconfig_mapping",
              "get_default_qat_qconfig_mapping", "get_default_qconfig_dict", "get_default_qat_qconfig_dict")),
        (".qconfig", ("get_default_qconfig", "get_default_qat_qconfig", "get_default_qconfig_dict",
                      "get_default_qat_qconfig_dict")),
        (".qconfig_mapping", ("get_default_qconfig_mapping", "get_default_qat_qconfig_mapping")),
    )
    for name in names
)

# ---------------------------------------------------------------------- deprecations (DL214, DL215)

#: The first torch release whose ``torch.ao.quantization`` entry points carry
#: ``@typing_extensions.deprecated`` (checked in the wheels: absent in 2.7.0, present in 2.8.0 to 2.13.0).
DEPRECATED_SINCE = (2, 8)
#: The first release without ``torch.ao.quantization.quantize_pt2e`` / ``.quantizer`` / ``.pt2e``
#: (present in the 2.10.0 wheel, absent from 2.11.0 on).
PT2E_REMOVED_IN = (2, 11)
#: The first release whose quantized tensor constructors warn (absent in 2.12.0, present in 2.13.0).
QTENSOR_DEPRECATED_SINCE = (2, 13)

#: Deprecated entry point (any spelling) -> ("eager" | "fx", the function's name).
DEPRECATED_ENTRY_POINTS: Dict[str, tuple] = {
    **{q: ("eager", q.rsplit(".", 1)[1]) for q in
       _spellings("prepare", "convert", "quantize", "quantize_dynamic", "prepare_qat", "quantize_qat")},
    **{q: ("fx", q.rsplit(".", 1)[1]) for q in PREPARE_FX | PREPARE_QAT_FX | CONVERT_FX},
}

#: Modules of ``torch.ao.quantization`` that moved to torchao (old prefix -> new prefix).
REMOVED_PT2E_MODULES: Dict[str, str] = {
    "torch.ao.quantization.quantize_pt2e": "torchao.quantization.pt2e.quantize_pt2e",
    "torch.ao.quantization.quantizer": "torchao.quantization.pt2e.quantizer",
    "torch.ao.quantization.pt2e": "torchao.quantization.pt2e",
}

QUANTIZED_TENSOR_CREATION = frozenset({"torch.quantize_per_tensor", "torch.quantize_per_channel"})


def version_at_least(version: Any, release: tuple) -> bool:
    """A target version (None = the newest release) is ``release`` or newer."""
    return version is None or tuple(version) >= release


# ---------------------------------------------------------------------- life-cycle helpers (DL201-DL203)
#
# Questions about one model object inside one function (or a module's top-level code), answered
# from ``ctx.object_events``: the train / eval mode it is in at a call, where it flows afterwards.

import libcst as cst  # noqa: E402

from dllint.context import dotted_name, names_in  # noqa: E402

#: Calls receiving a model that cannot change its train / eval mode.
MODE_NEUTRAL_CALLEES = frozenset(
    {"print", "len", "str", "repr", "isinstance", "type", "id", "hasattr", "getattr", "vars", "dir", "list",
     "copy.deepcopy", "copy.copy", "torch.save", "torch.jit.script", "torch.jit.trace", "summary",
     "torch.ao.quantization.propagate_qconfig_", "torch.quantization.propagate_qconfig_"}
) | FUSE_MODULES | FUSE_MODULES_QAT | PREPARE | CONVERT | PREPARE_FX | CONVERT_FX | QUANTIZE_DYNAMIC

#: Methods returning the module itself (``model.to(device).eval()``).
SELF_RETURNING = frozenset({"to", "cpu", "cuda", "float", "half", "double", "bfloat16", "requires_grad_",
                            "share_memory", "type"})

#: Nodes whose body may not run (or run more than once) where they stand.
_BRANCHES = tuple(
    t for t in (
        getattr(cst, name, None)
        for name in ("If", "Else", "For", "While", "Try", "TryStar", "ExceptHandler", "ExceptStarHandler",
                     "IfExp", "BooleanOperation", "CompFor", "Match", "MatchCase")
    ) if t is not None
)

#: Fresh models built by these callables start in train mode (torch.nn.Module's default).
_FRESH_PREFIXES = ("torchvision.models.", "torch.nn.", "timm.create_model")


def parents(ctx: Any) -> Dict[int, Any]:
    """id(node) -> parent node, for the whole file (computed once)."""

    def compute(_ctx: Any) -> Dict[int, Any]:
        from dllint.context import children

        out: Dict[int, Any] = {}
        todo = [ctx.module]
        while todo:
            node = todo.pop()
            for child in children(node):
                out[id(child)] = node
                todo.append(child)
        return out

    return ctx.memo("dl2:parents", compute)


def ancestors(ctx: Any, node: Any, root: Any) -> List[Any]:
    """The ancestors of ``node`` up to (not including) ``root``, innermost first."""
    table = parents(ctx)
    out = []
    current = table.get(id(node))
    while current is not None and current is not root:
        out.append(current)
        current = table.get(id(current))
    return out


def unconditional(ctx: Any, node: Any, before: Any, root: Any) -> bool:
    """Whether ``node`` runs whenever ``before`` runs: every branch or loop around ``node``
    (inside ``root``) also encloses ``before``."""
    around_before = {id(a) for a in ancestors(ctx, before, root)}
    return all(id(a) in around_before for a in ancestors(ctx, node, root) if isinstance(a, _BRANCHES))


def root_of(ctx: Any) -> Any:
    return ctx.function() or ctx.module


def event_of(ctx: Any, root: Any, name: str, call: Any) -> Optional[Any]:
    """The "argument" event of ``name`` at ``call``."""
    for event in ctx.object_events(root).get(name, ()):
        if event.node is call and event.kind == "argument":
            return event
    return None


def _mode_call(call: Any) -> Optional[str]:
    """``m.eval()`` -> "eval"; ``m.train()`` / ``m.train(True)`` -> "train"; ``m.train(False)`` -> "eval"."""
    func = call.func
    if func.attr.value == "eval":
        return "eval" if not call.args else None
    args = [a for a in call.args if not a.star]
    if not call.args:
        return "train"
    if len(args) == 1 and isinstance(args[0].value, cst.Name) and args[0].value.value in ("True", "False"):
        return "train" if args[0].value.value == "True" else "eval"
    return None


def _chained_mode_call(ctx: Any, call: Any) -> Optional[Any]:
    """The ``.eval()`` / ``.train()`` call chained on a self-returning call (``m.to(d).eval()``)."""
    table = parents(ctx)
    current = call
    while True:
        attribute = table.get(id(current))
        outer = table.get(id(attribute)) if attribute is not None else None
        if not (isinstance(attribute, cst.Attribute) and attribute.value is current
                and isinstance(outer, cst.Call) and outer.func is attribute):
            return None
        if attribute.attr.value in ("eval", "train"):
            return outer
        if attribute.attr.value not in SELF_RETURNING:
            return None
        current = outer


def _prefixes(name: str) -> List[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def mode_at(ctx: Any, root: Any, name: str, order: int, at: Any, depth: int = 0) -> Optional[str]:
    """The train / eval mode of the object ``name`` just before event ``order`` (at node ``at``):
    "train", "eval", or None when unknown.  The last mode-setting fact wins: ``m.eval()``,
    ``m.train(...)`` (on the object or a parent module), an assignment (``Net()`` builds a model in
    train mode; ``x.eval()``, ``copy.deepcopy(y)`` take their mode from the expression); a fact
    inside a branch or loop that does not also hold ``at`` makes the answer unknown, and so does
    passing the object to a function that might switch it."""
    if depth > 4:
        return None
    events = ctx.object_events(root)
    candidates = []
    for prefix in _prefixes(name):
        for event in events.get(prefix, ()):
            if event.order < order:
                candidates.append((event.order, prefix, event))
    candidates.sort(key=lambda item: item[0], reverse=True)
    for _, key, event in candidates:
        if event.kind == "method":
            if event.name in ("eval", "train"):
                mode = _mode_call(event.node)
                if mode is None or not unconditional(ctx, event.node, at, root):
                    return None
                return mode
            if event.name == "apply":
                return None
            if event.name in SELF_RETURNING:
                chained = _chained_mode_call(ctx, event.node)  # model.to(device).eval()
                if chained is not None:
                    mode = _mode_call(chained)
                    if mode is None or not unconditional(ctx, chained, at, root):
                        return None
                    return mode
            continue
        if event.kind == "argument":
            if event.name in MODE_NEUTRAL_CALLEES or (event.name or "").startswith("torch.ao.quantization."):
                continue
            return None
        if event.kind == "assign":
            if not unconditional(ctx, event.node, at, root):
                return None
            return value_mode(ctx, root, event.value, event.order, event.node, depth + 1)
        # "called" (a forward pass) and "setattr" (m.qconfig = ...) leave the mode alone
    return None


def value_mode(ctx: Any, root: Any, value: Any, order: int, at: Any, depth: int = 0) -> Optional[str]:
    """The mode of the module an expression evaluates to (see mode_at)."""
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        method = value.func.attr.value
        if method in ("eval", "train"):
            return _mode_call(value)
        if method not in SELF_RETURNING:
            break
        value = value.func.value
    if isinstance(value, cst.Call):
        callee = ctx.qualname(value.func)
        if callee in ("copy.deepcopy", "copy.copy") or callee in FUSE_MODULES or callee in PREPARE:
            source = ctx.argument(value, 0, "model")
            source_name = dotted_name(source) if source is not None else None
            return mode_at(ctx, root, source_name, order, at, depth) if source_name else None
        if is_fresh_module(ctx, value):
            return "train"
        return None
    source_name = dotted_name(value)
    if source_name is not None:
        return mode_at(ctx, root, source_name, order, at, depth)
    return None


def is_fresh_module(ctx: Any, call: Any) -> bool:
    """A constructor call that returns a new module in train mode: a class (a class of this file, or
    a CamelCase name), ``torch.nn.*``, ``torchvision.models.*`` builders (not ``quantize=True``) or
    ``timm.create_model``, whose arguments are plain values (a wrapper built around an existing
    model, ``QuantWrapper(model)``, takes its children's mode: unknown)."""
    func = call.func
    callee = ctx.qualname(func) or ""
    if callee.startswith(_FRESH_PREFIXES):
        if callee.startswith(("torch.nn.functional", "torch.nn.utils", "torch.nn.init", "torch.nn.parallel")):
            return False
        if not callee.startswith("torch.nn."):
            quantize = ctx.keyword(call, "quantize")
            return quantize is None or (isinstance(quantize.value, cst.Name) and quantize.value.value == "False")
    else:
        last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        local_class = False
        if isinstance(func, cst.Name):
            bindings = ctx.lookup(func.value)
            local_class = bool(bindings) and len(bindings) == 1 and isinstance(bindings[0].value, cst.ClassDef)
        camel = last[:1].isupper() and any(c.islower() for c in last) and "Wrapper" not in last
        if not (local_class or camel) or callee.startswith(("torch.", "transformers.", "tensorflow.", "keras.")):
            return False
    return all(_plain_argument(ctx, arg.value) for arg in call.args if not arg.star) and not any(
        arg.star for arg in call.args
    )


def _plain_argument(ctx: Any, value: Any, depth: int = 0) -> bool:
    """A constructor argument that cannot be a model: a literal, a configuration attribute
    (``args.num_classes``), a name bound to such a value, or a fresh module itself."""
    if isinstance(value, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString, cst.FormattedString,
                          cst.Imaginary)):
        return True
    if isinstance(value, cst.UnaryOperation):
        return _plain_argument(ctx, value.expression, depth)
    if isinstance(value, (cst.Tuple, cst.List)):
        return all(_plain_argument(ctx, e.value, depth) for e in value.elements)
    if isinstance(value, cst.Name):
        if value.value in ("True", "False", "None"):
            return True
        if depth < 2:
            assigned = ctx.assigned_value(value)
            return assigned is not None and _plain_argument(ctx, assigned, depth + 1)
        return False
    if isinstance(value, cst.Attribute):
        base = dotted_name(value.value) or ""
        return base.split(".")[0] in ("args", "opt", "opts", "cfg", "config", "conf", "hparams", "params",
                                      "settings", "FLAGS", "flags") or base.isupper()
    if isinstance(value, cst.BinaryOperation):
        return _plain_argument(ctx, value.left, depth) and _plain_argument(ctx, value.right, depth)
    if isinstance(value, cst.Call):
        return is_fresh_module(ctx, value)
    return False


def flows(ctx: Any, root: Any, name: str, order: int) -> Set[str]:
    """``name`` and the names that receive it (or an expression holding it) after event ``order``:
    ``q = prepare(m)``, ``w = Wrapper(m)``, ``n = m``."""
    events = ctx.object_events(root)
    tracked = {name}
    assigns = sorted(
        (event.order, key, event)
        for key, items in events.items()
        for event in items
        if event.kind == "assign" and event.order > order and event.value is not None
    )
    for _, key, event in assigns:
        mentioned = names_in(event.value)
        if tracked & mentioned:
            tracked.add(key)
    return tracked


def later_uses(ctx: Any, root: Any, names: Set[str], order: int) -> List[Tuple[str, Any]]:
    """(name, event) of every event on ``names`` after ``order``, in order."""
    events = ctx.object_events(root)
    found = [(event.order, name, event) for name in names for event in events.get(name, ()) if event.order > order]
    found.sort(key=lambda item: item[0])
    return [(name, event) for _, name, event in found]


def statement_of(ctx: Any, node: Any) -> Optional[Any]:
    """The SimpleStatementLine holding ``node`` when a statement can be inserted before it: it sits
    in an indented block or the module body, and nothing between it and ``node`` (a lambda, a
    comprehension, a conditional expression, ``and`` / ``or``) would make ``node`` run apart from it."""
    table = parents(ctx)
    current = node
    while True:
        parent = table.get(id(current))
        if parent is None:
            return None
        if isinstance(parent, (cst.Lambda, cst.CompFor, cst.IfExp, cst.BooleanOperation, cst.FunctionDef,
                               cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)):
            return None
        if isinstance(parent, cst.SimpleStatementLine):
            holder = table.get(id(parent))
            return parent if isinstance(holder, (cst.IndentedBlock, cst.Module)) else None
        current = parent


def insert_before(statement: Any, code: str) -> Tuple[Any, Any]:
    """A replacement pair putting the statement ``code`` before ``statement`` (comments stay on top)."""
    new = cst.parse_statement(code).with_changes(leading_lines=statement.leading_lines)
    return statement, cst.FlattenSentinel([new, statement.with_changes(leading_lines=())])


def fuses_batch_norm(ctx: Any, groups: Any) -> bool:
    """Whether a literal ``modules_to_fuse`` holds a BatchNorm: a name with ``bn`` / ``norm`` /
    ``batch`` in it, or a group of three (Conv-BN-ReLU, the one three-module fusion written with
    positional names such as ``["0", "1", "2"]``).  Linear+ReLU or Conv+ReLU fuse the same way in
    train and eval mode and in both variants; a list built by code is unknown (False)."""
    if isinstance(groups, cst.Name):
        groups = ctx.assigned_value(groups)
    if not isinstance(groups, (cst.List, cst.Tuple)):
        return False
    elements = [e.value for e in groups.elements if isinstance(e, cst.Element)]
    if elements and all(isinstance(e, cst.SimpleString) for e in elements):
        elements = [groups]  # one flat group: ["conv", "bn", "relu"]
    for group in elements:
        if not isinstance(group, (cst.List, cst.Tuple)):
            continue
        names = [
            e.value.evaluated_value
            for e in group.elements
            if isinstance(e, cst.Element) and isinstance(e.value, cst.SimpleString)
        ]
        names = [n.lower() for n in names if isinstance(n, str)]
        if len(names) == 3 or any(("bn" in n or "norm" in n or "batch" in n) for n in names):
            return True
    return False


def escapes(ctx: Any, root: Any, names: Set[str], order: int) -> bool:
    """Whether one of ``names`` leaves the scope after event ``order``: returned or yielded by the
    function, or stored on another object (``self.model = m``, ``d["m"] = m``). At a script's top
    level only the stores count: no code after the file's end can run it."""
    tracked = flows(ctx, root, next(iter(names)), order) | set(names)
    for name in list(tracked):
        tracked |= flows(ctx, root, name, order)
    for items in ctx.object_events(root).values():
        for event in items:
            if event.order > order and event.kind == "setattr" and event.value is not None:
                if tracked & names_in(event.value):
                    return True
    if not isinstance(root, cst.FunctionDef):
        return False
    todo = list(root.body.children)
    while todo:
        current = todo.pop()
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(current, (cst.Return, cst.Yield)) and current.value is not None:
            if {n.split(".")[0] for n in names_in(current.value)} & {n.split(".")[0] for n in tracked}:
                return True
        if isinstance(current, cst.Assign):
            for target in current.targets:
                if isinstance(target.target, (cst.Attribute, cst.Subscript)) and tracked & names_in(current.value):
                    return True
        todo.extend(current.children)
    return False


#: Calls that build plain tensors or constants, never a module.
TENSOR_FACTORIES = frozenset({"tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn",
                              "randint", "arange", "linspace", "eye", "Parameter", "int", "float", "bool", "str",
                              "tuple", "list", "dict"})

#: A path that holds tests.
TEST_PATH = re.compile(r"(^|/)(tests?/|test_[^/]*$|[^/]*_test\.py$)")


def forward_runs_no_submodule(cls: Any) -> bool:
    """Whether the ``forward`` of class ``cls`` can run no submodule: it never mentions ``self``,
    or only reads attributes the class assigns from tensor factories (``torch.tensor``,
    ``torch.zeros``, ``nn.Parameter``) or literals. Eager quantisation only swaps submodules, so
    such a model has nothing that convert() would quantise."""
    forward = next(
        (s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "forward"), None
    )
    if forward is None:
        return False
    plain: Set[str] = set()
    other: Set[str] = set()
    todo: List[Any] = [cls.body]
    while todo:
        current = todo.pop()
        if isinstance(current, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            targets = [t.target for t in current.targets] if isinstance(current, cst.Assign) else [current.target]
            for target in targets:
                if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
                    value = current.value
                    simple = isinstance(value, (cst.Integer, cst.Float, cst.SimpleString, cst.Name)) and not (
                        isinstance(value, cst.Name) and value.value not in ("True", "False", "None")
                    )
                    if isinstance(value, cst.Call):
                        func = value.func
                        last = func.attr.value if isinstance(func, cst.Attribute) else (
                            func.value if isinstance(func, cst.Name) else None)
                        simple = last in TENSOR_FACTORIES
                    (plain if simple else other).add(target.attr.value)
        if isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute):
            if current.func.attr.value in ("add_module", "register_module", "register_parameter"):
                return False
        todo.extend(current.children)
    used: Set[str] = set()
    todo = [forward.body]
    while todo:
        current = todo.pop()
        if isinstance(current, cst.Attribute) and isinstance(current.value, cst.Name) and current.value.value == "self":
            used.add(current.attr.value)
            continue
        if isinstance(current, cst.Name) and current.value == "self":
            return False  # self passed on whole (getattr(self, ...), helper(self))
        todo.extend(current.children)
    return all(attr in plain and attr not in other for attr in used)


def is_test_module(ctx: Any) -> bool:
    """A test file: a tests/ path or test_*.py / *_test.py name, or a module defining a TestCase
    class or top-level ``test_*`` functions."""
    if TEST_PATH.search((ctx.path or "").replace("\\", "/")):
        return True
    for statement in ctx.module.body:
        if isinstance(statement, cst.FunctionDef) and statement.name.value.startswith("test_"):
            return True
        if isinstance(statement, cst.ClassDef):
            for base in statement.bases:
                if (dotted_name(base.value) or "").endswith("TestCase"):
                    return True
    return False
