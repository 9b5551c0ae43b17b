"""What the DL409-DL411 rules know about the ``nn.Module`` subclasses of a file.

- ``is_module_class(ctx, cls)``: whether a class derives (through the file's own classes) from
  ``torch.nn.Module`` (any spelling: ``nn.Module``, ``torch.nn.Module``, ``from torch.nn import
  Module``), another ``torch.nn`` module class (``nn.Sequential``, ``nn.ModuleList``...), a
  Lightning module (``pl.LightningModule``, ``lightning.LightningModule``...) or a transformers
  ``PreTrainedModel``.  A class whose base is imported from elsewhere counts when it defines
  ``forward`` and its ``__init__`` builds ``torch.nn`` layers; otherwise unknown bases give
  False and rules stay silent.
- ``class_facts(ctx, cls)``: one pass over the class's methods: the ``self.<attr>`` assignments
  of ``__init__`` in order (with whether ``super().__init__()`` ran before them), the
  ``self.<attr>.append/extend/insert(...)`` and ``self.<attr> += ...`` calls of ``__init__``,
  every assignment of ``self.<attr>`` in the other methods, the reads of ``self.<attr>`` outside
  any method (with the method they are in and how they are used), the names given to
  ``register_buffer`` / ``register_parameter`` / ``register_module`` / ``add_module``, whether
  the class registers things under computed names (``setattr(self, ...)``, ``add_module(f"...")``)
  and whether it reads ``self.training``.
- ``module_kind(ctx, expr, ...)``: "module" / "parameter" when an expression certainly builds a
  new ``nn.Module`` (a ``torch.nn`` class or a file class deriving from one) or an
  ``nn.Parameter``; "stateless" for ``torch.nn`` modules without parameters, buffers or a
  train/eval difference (activations, pooling, reshaping); None when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rules.conversion._export import file_classes

#: Qualified base classes that make a class an nn.Module (besides torch.nn.<Class>).
MODULE_BASES = frozenset({
    "torch.nn.Module",
    "torch.nn.modules.module.Module",
    "pytorch_lightning.LightningModule",
    "pytorch_lightning.core.LightningModule",
    "pytorch_lightning.core.module.LightningModule",
    "lightning.LightningModule",
    "lightning.pytorch.LightningModule",
    "lightning.pytorch.core.LightningModule",
    "lightning.pytorch.core.module.LightningModule",
    "transformers.PreTrainedModel",
    "transformers.modeling_utils.PreTrainedModel",
})

#: torch.nn names that are not module classes.
NOT_MODULES = frozenset({
    "Parameter", "UninitializedParameter", "Buffer", "UninitializedBuffer", "ParameterList",
    "ParameterDict",
})

#: torch.nn module classes with no parameters, no buffers and the same behaviour in train and eval.
STATELESS = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
    "Hardtanh", "Hardsigmoid", "Hardswish", "Hardshrink", "Softshrink", "Tanhshrink", "Softplus",
    "Softsign", "LogSigmoid", "Softmax", "Softmin", "LogSoftmax", "Softmax2d", "Threshold", "GLU",
    "Identity", "Flatten", "Unflatten", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d",
    "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "Upsample", "UpsamplingNearest2d",
    "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle", "ZeroPad2d", "ConstantPad1d",
    "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d",
    "ReplicationPad2d", "ChannelShuffle", "CosineSimilarity", "PairwiseDistance", "Fold", "Unfold",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "SmoothL1Loss",
    "HuberLoss", "KLDivLoss", "CTCLoss",
})

#: Torch functions that build a new tensor (DL411).
TENSOR_FACTORIES = frozenset(
    "torch." + n
    for n in (
        "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "arange", "linspace",
        "logspace", "eye", "rand", "randn", "randint", "randperm", "tril", "triu", "zeros_like",
        "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "FloatTensor", "LongTensor",
        "Tensor", "IntTensor", "BoolTensor", "DoubleTensor", "ByteTensor", "stack", "cat",
        "outer", "polar", "exp", "log", "cos", "sin", "meshgrid", "cumsum",
    )
)


def _base_qualname(ctx: Any, base: Any) -> str:
    return ctx.qualname(base) or dotted_name(base) or ""


def _is_module_base(name: str) -> bool:
    if name in MODULE_BASES or name.endswith("PreTrainedModel"):
        return True
    if name.startswith("torch.nn.") and name.count(".") == 2:
        last = name.rsplit(".", 1)[1]
        return last[:1].isupper() and last not in NOT_MODULES
    return False


def is_module_class(ctx: Any, cls: cst.ClassDef) -> bool:
    """Whether ``cls`` derives from nn.Module (directly, through torch.nn / Lightning / transformers
    classes, or through other classes of the file)."""

    def compute(ctx: Any) -> bool:
        classes = file_classes(ctx)
        seen: Set[int] = set()
        todo = [cls]
        while todo:
            current = todo.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            for base in current.bases:
                if base.keyword is not None:
                    continue
                name = _base_qualname(ctx, base.value)
                if _is_module_base(name):
                    return True
                other = classes.get(dotted_name(base.value) or "")
                if other is not None:
                    todo.append(other)
        # a base imported from elsewhere (``from models import BaseVAE``): a module when the
        # class has a ``forward`` and its ``__init__`` builds torch.nn layers
        return any(
            base.keyword is None and dotted_name(base.value) not in (None, "object") and
            dotted_name(base.value) not in classes
            for current in [cls] for base in current.bases
        ) and _looks_like_module(ctx, cls)

    return ctx.memo(f"silent.is_module:{id(cls)}", compute)


def _looks_like_module(ctx: Any, cls: cst.ClassDef) -> bool:
    methods = {s.name.value: s for s in cls.body.body if isinstance(s, cst.FunctionDef)}
    init = methods.get("__init__")
    if "forward" not in methods or init is None:
        return False
    todo: List[Any] = [init.body]
    while todo:
        node = todo.pop()
        if isinstance(node, cst.Call):
            name = torch_nn_class(ctx, node.func)
            if name is not None and name not in NOT_MODULES:
                return True
        if not isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            todo.extend(children(node))
    return False


def torch_nn_class(ctx: Any, func: Any) -> Optional[str]:
    """``Linear`` for ``nn.Linear`` / ``torch.nn.Linear`` / ``torch.nn.modules.linear.Linear``."""
    name = ctx.qualname(func) or ""
    if not name.startswith("torch.nn."):
        return None
    rest = name[len("torch.nn."):]
    if rest.startswith("modules."):
        rest = rest.rsplit(".", 1)[-1]
    if "." in rest or not rest[:1].isupper():
        return None
    return rest


def module_kind(ctx: Any, expr: Any) -> Optional[str]:
    """"parameter" (``nn.Parameter(...)``), "module" (a new nn.Module), "stateless" (a torch.nn
    module with no state and no mode), or None (unknown or not a module)."""
    if not isinstance(expr, cst.Call):
        return None
    cls_name = torch_nn_class(ctx, expr.func)
    if cls_name is not None:
        if cls_name in ("Parameter", "UninitializedParameter"):
            return "parameter"
        if cls_name in NOT_MODULES:
            return None
        return "stateless" if cls_name in STATELESS else "module"
    if isinstance(expr.func, cst.Name) and ctx.qualname(expr.func) is None:
        other = file_classes(ctx).get(expr.func.value)
        if other is not None and is_module_class(ctx, other):
            return "module"
    return None


# ---------------------------------------------------------------------- class facts


@dataclass
class AttrAssign:
    attr: str
    statement: Any  # the Assign / AnnAssign / AugAssign node
    value: Any
    method: str
    after_super: bool  # __init__ only: super().__init__() (or nn.Module.__init__(self)) ran before
    top_level: bool  # directly in the method body (not in an if / loop / try / with)
    augmented: bool = False


@dataclass
class AttrCall:
    attr: str
    call: Any  # self.<attr>.<method>(...)
    method: str  # append / extend / insert / ... ("__setitem__" for self.<attr>[k] = v)
    owner: str  # the method of the class it is in
    value: Any = None  # __setitem__: the assigned value


@dataclass
class AttrRead:
    attr: str
    node: Any  # the self.<attr> Attribute
    parent: Any
    grandparent: Any
    method: str


@dataclass
class ClassFacts:
    cls: cst.ClassDef
    is_module: bool
    init: Optional[cst.FunctionDef]
    assigns: Dict[str, List[AttrAssign]] = field(default_factory=dict)
    calls: Dict[str, List[AttrCall]] = field(default_factory=dict)
    reads: Dict[str, List[AttrRead]] = field(default_factory=dict)
    registered: Set[str] = field(default_factory=set)
    dynamic_registration: bool = False
    reads_training: bool = False
    methods: Dict[str, cst.FunctionDef] = field(default_factory=dict)


_REGISTER = ("register_buffer", "register_parameter", "register_module", "add_module")


def _is_super_init(ctx: Any, node: Any) -> bool:
    """``super().__init__(...)``, ``super(C, self).__init__(...)``, ``nn.Module.__init__(self)``,
    ``Base.__init__(self, ...)``."""
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "__init__"):
        return False
    receiver = node.func.value
    if isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Name) and receiver.func.value == "super":
        return True
    return dotted_name(receiver) is not None and bool(node.args)


def class_facts(ctx: Any, cls: cst.ClassDef) -> ClassFacts:
    return ctx.memo(f"silent.class_facts:{id(cls)}", lambda c: _collect(c, cls))


def _collect(ctx: Any, cls: cst.ClassDef) -> ClassFacts:
    facts = ClassFacts(cls=cls, is_module=is_module_class(ctx, cls), init=None)
    for statement in cls.body.body:
        if isinstance(statement, cst.FunctionDef):
            facts.methods[statement.name.value] = statement
    facts.init = facts.methods.get("__init__")
    for name, function in facts.methods.items():
        params = function.params.params
        if not params:
            continue
        self_name = params[0].name.value
        _scan_method(ctx, facts, function, name, self_name)
    return facts


def _scan_method(ctx: Any, facts: ClassFacts, function: cst.FunctionDef, method: str, self_name: str) -> None:
    super_done = [False]

    def self_attr(node: Any) -> Optional[str]:
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == self_name:
            return node.attr.value
        return None

    def note_assign(target: Any, statement: Any, value: Any, top: bool, augmented: bool = False) -> None:
        attr = self_attr(target)
        if attr is not None:
            facts.assigns.setdefault(attr, []).append(
                AttrAssign(attr, statement, value, method, super_done[0], top, augmented)
            )
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                note_assign(element.value, statement, None, top)
        elif isinstance(target, cst.Subscript) and not augmented:
            owner = self_attr(target.value)
            if owner is not None:
                facts.calls.setdefault(owner, []).append(AttrCall(owner, statement, "__setitem__", method, value))

    # (node, parent, grandparent, top_level)
    stack: List[Tuple[Any, Any, Any, bool]] = [(s, None, None, True) for s in reversed(list(function.body.body))]
    while stack:
        node, parent, grandparent, top = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and parent is not None:
            continue
        if isinstance(node, cst.SimpleStatementLine):
            for small in node.body:
                if isinstance(small, cst.Assign):
                    for target in small.targets:
                        note_assign(target.target, small, small.value, top)
                elif isinstance(small, cst.AnnAssign) and small.value is not None:
                    note_assign(small.target, small, small.value, top)
                elif isinstance(small, cst.AugAssign):
                    note_assign(small.target, small, small.value, top, augmented=True)
        if isinstance(node, cst.Call):
            if _is_super_init(ctx, node):
                super_done[0] = True
            func = node.func
            if isinstance(func, cst.Attribute):
                attr = self_attr(func.value)
                if attr is not None:
                    facts.calls.setdefault(attr, []).append(AttrCall(attr, node, func.attr.value, method))
                if isinstance(func.value, cst.Name) and func.value.value == self_name and func.attr.value in _REGISTER:
                    first = node.args[0].value if node.args else None
                    if isinstance(first, cst.SimpleString):
                        facts.registered.add(first.evaluated_value)
                    else:
                        facts.dynamic_registration = True
            elif isinstance(func, cst.Name) and func.value in ("setattr", "register_buffer") and node.args:
                if dotted_name(node.args[0].value) == self_name:
                    facts.dynamic_registration = True
        if isinstance(node, cst.Attribute):
            attr = self_attr(node)
            if attr is not None:
                if attr == "training":
                    facts.reads_training = True
                if not (
                    isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.AnnAssign) and parent.target is node)
                ):
                    facts.reads.setdefault(attr, []).append(AttrRead(attr, node, parent, grandparent, method))
        for child in reversed(children(node)):
            stack.append((child, node, parent, False))


def reads_outside_init(facts: ClassFacts, attr: str) -> List[AttrRead]:
    """Reads of ``self.<attr>`` in methods other than ``__init__``."""
    return [r for r in facts.reads.get(attr, []) if r.method != "__init__"]


def self_name(function: cst.FunctionDef) -> Optional[str]:
    params = function.params.params
    return params[0].name.value if params else None


def init_values(ctx: Any, cls: cst.ClassDef) -> List[Any]:
    """The values ``__init__`` assigns to attributes of its first parameter (``self.x = v``), found
    with one walk of ``__init__`` only: a cheap test that lets a rule skip the class before the
    full ``class_facts`` scan of every method."""

    def compute(ctx: Any) -> List[Any]:
        init = None
        for statement in cls.body.body:
            if isinstance(statement, cst.FunctionDef) and statement.name.value == "__init__":
                init = statement
        if init is None or not init.params.params:
            return []
        owner = init.params.params[0].name.value
        values: List[Any] = []
        todo: List[Any] = [init.body]
        while todo:
            node = todo.pop()
            if isinstance(node, (cst.Assign, cst.AnnAssign)) and node.value is not None:
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for target in targets:
                    subs = list(target.elements) if isinstance(target, (cst.Tuple, cst.List)) else [target]
                    for sub in subs:
                        sub = getattr(sub, "value", sub) if isinstance(sub, cst.BaseElement) else sub
                        if isinstance(sub, cst.Attribute) and isinstance(sub.value, cst.Name) and sub.value.value == owner:
                            values.append(node.value)
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            todo.extend(children(node))
        return values

    return ctx.memo(f"silent.init_values:{id(cls)}", compute)

