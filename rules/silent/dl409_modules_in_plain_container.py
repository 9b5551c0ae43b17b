from __future__ import annotations

from typing import Any, List, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.silent._module import AttrAssign, ClassFacts, class_facts, init_values, is_module_class, module_kind

#: Methods a class may override to handle unregistered submodules itself.
OWN_PLUMBING = frozenset({"parameters", "named_parameters", "to", "cuda", "_apply", "state_dict", "load_state_dict",
                          "train", "eval", "children", "modules", "named_modules"})

#: list methods nn.ModuleList also has, and dict methods nn.ModuleDict also has.
LIST_METHODS = frozenset({"append", "extend", "insert", "pop"})
DICT_METHODS = frozenset({"keys", "items", "values", "pop", "update", "clear"})
#: builtins that work the same on a ModuleList / ModuleDict as on a list / dict
SAME_BUILTINS = frozenset({"len", "enumerate", "zip", "reversed", "list", "iter", "tuple", "print"})

#: keys an nn.ModuleDict cannot hold (attributes of nn.Module).
MODULE_ATTRIBUTES = frozenset({
    "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "clear", "compile", "cpu",
    "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "items", "keys", "load_state_dict",
    "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "pop", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state",
    "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "type", "update", "values",
    "xpu", "zero_grad", "training", "T_destination",
})

FIX_NOTE = " (checkpoint keys for these layers now appear: load older checkpoints with strict=False)"


class ModulesInPlainContainer(Rule):
    """Submodules or parameters kept in a plain list / tuple / dict attribute of an nn.Module.

    Finds, in the `__init__` of a class that derives from `torch.nn.Module` (any spelling, also
    through other classes of the file, `nn.Sequential`-like torch.nn bases, Lightning modules and
    transformers `PreTrainedModel`s): `self.x = [...]`, `self.x = (...)`, `self.x = {k: ...}`,
    a list / generator / dict comprehension, or an empty `[]` / `{}` later filled with
    `self.x.append(...)`, `.extend([...])`, `.insert(i, ...)`, `self.x += [...]` or
    `self.x[k] = ...`, when an element certainly builds a new module (a `torch.nn` layer with
    state or a train/eval difference, or a module class defined in the file) or an
    `nn.Parameter`. Nested lists of such layers count too (`self.hidden.append([nn.Linear(...), act])`).

    Why it is a bug: `nn.Module.__setattr__` registers a submodule or parameter only when it is
    assigned directly or held in `nn.ModuleList` / `nn.ModuleDict` / `nn.ParameterList` /
    `nn.ParameterDict`. Layers in a plain container are missing from `parameters()` (the
    optimizer never trains them), `.to(device)` / `.cuda()` / `.half()` do not move them,
    `state_dict()` does not save them and `train()` / `eval()` do not switch them. Nothing warns.
    Measured with torch 2.13: a module holding `[nn.Linear(4, 4), nn.Linear(4, 4)]` reports 0
    parameters and an empty state_dict; with `nn.ModuleList` 40 parameters and 4 keys.

    How to fix: wrap the container: `nn.ModuleList([...])`, `nn.ModuleDict({...})`,
    `nn.ParameterList([...])` / `nn.ParameterDict({...})`, or start from `nn.ModuleList()` and
    append. The fix does this when every element is a module (or every one a parameter), the
    assignment comes after `super().__init__()`, dict keys are string literals a ModuleDict
    accepts, and every use of the attribute in the class works the same on the torch container
    (indexing, iteration, `len`, `append` / `extend` / `insert` / `pop`, `keys` / `items` /
    `values`); otherwise it reports without a rewrite. Checkpoints saved before the fix lack the
    new keys: load them with `strict=False`.

    Stays silent when the elements are existing objects (`[self.conv1, self.conv2]`, already
    registered or deliberately hidden), only stateless layers (activations, pooling, reshaping),
    or classes of unknown origin; when the attribute is passed to a call in `__init__`
    (`nn.Sequential(*self.blocks)`), registered by name, re-assigned to something else, or the
    class registers submodules under computed names (`setattr(self, ...)`, `add_module(f"...")`)
    or overrides `parameters()` / `to()` / `state_dict()` itself.
    """

    code = "DL409"
    name = "modules-in-plain-container"
    family = "silent"
    message = (
        "modules/parameters stored in a plain list/dict are not registered (not trained, not moved by .to(), "
        "not saved, not switched by eval()); use nn.ModuleList/ModuleDict/ParameterList"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(d) silent bugs in deep learning frameworks (Keras/TF and PyTorch module semantics)",
        category="Wrong parameter setting / Wrong save/reload: submodules not registered",
        links=(
            "https://github.com/pytorch/pytorch/issues/666",
            "https://github.com/pytorch/pytorch/issues/1053",
            "https://github.com/pytorch/pytorch/issues/715",
            "https://github.com/pytorch/pytorch/issues/8017",
            "https://github.com/pytorch/pytorch/issues/59925",
            "https://github.com/open-mmlab/mmdetection/issues/472",
            "https://github.com/asyml/texar-pytorch/issues/72",
        ),
    )
    triggers = ("Module", "Parameter", "nn")
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(4)])
            """), "already a ModuleList"),
        Valid(dedent("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(3, 8, 3)
                    self.conv2 = nn.Conv2d(8, 8, 3)
                    self.stages = [self.conv1, self.conv2]
            """), "a list of already registered submodules"),
        Valid(dedent("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.acts = [nn.ReLU(), nn.Tanh(), nn.Identity()]
                    self.sizes = [64, 128, 256]
            """), "stateless layers and numbers: nothing to register"),
        Valid(dedent("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(8, 8) for _ in range(3)]
                    self.body = nn.Sequential(*self.layers)
            """), "the layers are registered through the Sequential"),
        Valid(dedent("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.heads = [nn.Linear(8, 2) for _ in range(3)]
                    for i, head in enumerate(self.heads):
                        self.add_module(f"head_{i}", head)
            """), "registered under computed names"),
        Valid(dedent("""
            import torch.nn as nn
            class Helper:
                def __init__(self):
                    self.layers = [nn.Linear(8, 8), nn.Linear(8, 8)]
            """), "not an nn.Module"),
        Valid(dedent("""
            import torch.nn as nn
            from mylib import Block
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.blocks = [Block() for _ in range(3)]
            """), "Block comes from elsewhere: unknown"),
        Valid(dedent("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.blocks = [nn.Linear(8, 8) for _ in range(3)]
                    self.blocks = nn.ModuleList(self.blocks)
            """), "wrapped afterwards"),
        Valid(dedent("""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = []
                    for _ in range(3):
                        self.layers.append(make_layer())
            """), "appended objects of unknown type"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch.nn as nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.blocks = [nn.Linear(64, 64) for _ in range(4)]
                    def forward(self, x):
                        for block in self.blocks:
                            x = block(x)
                        return x
                """),
            dedent("""
                import torch.nn as nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.blocks = nn.ModuleList([nn.Linear(64, 64) for _ in range(4)])
                    def forward(self, x):
                        for block in self.blocks:
                            x = block(x)
                        return x
                """),
            note="the catalogue's example",
        ),
        Invalid(
            dedent("""
                import torch as th
                class TextCNN(th.nn.Module):
                    def __init__(self):
                        super(TextCNN, self).__init__()
                        self.convs = [
                            th.nn.Conv1d(300, 1, 2),
                            th.nn.Conv1d(300, 1, 3),
                        ]
                    def forward(self, x):
                        return [conv(x) for conv in self.convs]
                """),
            dedent("""
                import torch as th
                class TextCNN(th.nn.Module):
                    def __init__(self):
                        super(TextCNN, self).__init__()
                        self.convs = th.nn.ModuleList([
                            th.nn.Conv1d(300, 1, 2),
                            th.nn.Conv1d(300, 1, 3),
                        ])
                    def forward(self, x):
                        return [conv(x) for conv in self.convs]
                """),
            note="torch.nn spelled through the torch alias",
        ),
        Invalid(
            dedent("""
                import torch.nn as nn
                class Net(nn.Module):
                    def __init__(self, n):
                        super().__init__()
                        self.hidden = []
                        for _ in range(n):
                            self.hidden.append(nn.Linear(8, 8))
                    def forward(self, x):
                        for layer in self.hidden:
                            x = layer(x)
                        return x
                """),
            dedent("""
                import torch.nn as nn
                class Net(nn.Module):
                    def __init__(self, n):
                        super().__init__()
                        self.hidden = nn.ModuleList()
                        for _ in range(n):
                            self.hidden.append(nn.Linear(8, 8))
                    def forward(self, x):
                        for layer in self.hidden:
                            x = layer(x)
                        return x
                """),
            note="an empty list filled by append",
        ),
        Invalid(
            dedent("""
                from torch import nn
                class Heads(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.heads = {"cls": nn.Linear(8, 2), "box": nn.Linear(8, 4)}
                    def forward(self, x):
                        return {k: h(x) for k, h in self.heads.items()}
                """),
            dedent("""
                from torch import nn
                class Heads(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 2), "box": nn.Linear(8, 4)})
                    def forward(self, x):
                        return {k: h(x) for k, h in self.heads.items()}
                """),
            note="a dict with string keys: nn.ModuleDict",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                class Mix(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.weights = [nn.Parameter(torch.ones(4)) for _ in range(3)]
                """),
            dedent("""
                import torch
                import torch.nn as nn
                class Mix(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.weights = nn.ParameterList([nn.Parameter(torch.ones(4)) for _ in range(3)])
                """),
            note="parameters: nn.ParameterList",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                class PairClassifier(nn.Module):
                    def __init__(self, n):
                        super().__init__()
                        self.hidden = []
                        for i in range(n):
                            self.hidden.append([nn.Linear(8, 8), nn.Tanh()])
                """),
            note="a list of lists of layers: reported, no rewrite",
        ),
        Invalid(
            dedent("""
                import torch.nn as nn
                class Block(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(8, 8)
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.blocks = (Block(), Block())
                    def forward(self, x):
                        return self.blocks.index(x)
                """),
            note="a tuple of file modules; .index() does not exist on ModuleList: no rewrite",
        ),
        Invalid(
            dedent("""
                import pytorch_lightning as pl
                import torch.nn as nn
                class Lit(pl.LightningModule):
                    def __init__(self):
                        super().__init__()
                        self.dropouts = [nn.Dropout(0.1), nn.Dropout(0.2)]
                """),
            dedent("""
                import pytorch_lightning as pl
                import torch.nn as nn
                class Lit(pl.LightningModule):
                    def __init__(self):
                        super().__init__()
                        self.dropouts = nn.ModuleList([nn.Dropout(0.1), nn.Dropout(0.2)])
                """),
            note="Lightning module; dropout has a train/eval difference",
        ),
    )

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        ctx = self.ctx
        if not any(_plain_container(value) for value in init_values(ctx, node)):
            return  # no container assigned in __init__: skip the full scan of the class
        if not is_module_class(ctx, node):
            return
        facts = class_facts(ctx, node)
        if facts.init is None or facts.dynamic_registration or OWN_PLUMBING & set(facts.methods):
            return
        for attr, assigns in facts.assigns.items():
            if attr in facts.registered:
                continue
            init_assigns = [a for a in assigns if a.method == "__init__" and not a.augmented]
            if not init_assigns:
                continue
            first = init_assigns[0]
            if any(a is not first and not _plain_container(a.value) for a in assigns if not a.augmented):
                continue  # re-assigned (maybe wrapped) somewhere
            if any(_passed_on(r) for r in facts.reads.get(attr, []) if r.method == "__init__"):
                continue  # passed on in __init__ (nn.Sequential(*self.x), register helpers...)
            self._check(facts, first, attr)

    # ------------------------------------------------------------------ one attribute

    def _check(self, facts: ClassFacts, assign: AttrAssign, attr: str) -> None:
        value = assign.value
        elements = _elements(value)
        if elements is None:
            return
        kinds: List[Optional[str]] = []
        nested = False
        for element in elements:
            kind, deep = self._kind(element)
            kinds.append(kind)
            nested = nested or deep
        filled_by = "literal"
        if not elements:
            # an empty container filled later in __init__
            filled_by = "calls"
            added = [e for c in facts.calls.get(attr, []) if c.owner == "__init__" for e in self._added(c)]
            for augmented in facts.assigns.get(attr, []):
                if augmented.method == "__init__" and augmented.augmented:
                    added.extend(_elements(augmented.value) or [])
            for element in added:
                kind, deep = self._kind(element)
                kinds.append(kind)
                nested = nested or deep
        if not any(k in ("module", "parameter") for k in kinds):
            return
        fix = self._fix(facts, assign, attr, kinds, nested, filled_by)
        self.report(assign.statement, fix=fix)

    def _kind(self, element: Any) -> Tuple[Optional[str], bool]:
        """(kind, nested) of one element; a nested list/tuple literal reports its strongest kind."""
        if isinstance(element, (cst.List, cst.Tuple)):
            inner = [self._kind(e.value)[0] for e in element.elements if isinstance(e, cst.Element)]
            for wanted in ("module", "parameter"):
                if wanted in inner:
                    return wanted, True
            return None, True
        return module_kind(self.ctx, element), False

    def _added(self, call: Any) -> List[Any]:
        """Elements an append / extend / insert / += / [k] = adds."""
        if call.method == "__setitem__":
            return [call.value]
        node = call.call
        if call.method == "append" and len(node.args) == 1:
            return [node.args[0].value]
        if call.method == "insert" and len(node.args) == 2:
            return [node.args[1].value]
        if call.method == "extend" and len(node.args) == 1:
            return _elements(node.args[0].value) or []
        return []

    # ------------------------------------------------------------------ the rewrite

    def _fix(self, facts: ClassFacts, assign: AttrAssign, attr: str, kinds: List[Optional[str]], nested: bool,
             filled_by: str) -> Optional[Fix]:
        ctx = self.ctx
        value = assign.value
        if nested or not assign.after_super or not isinstance(assign.statement, cst.Assign):
            return None
        known = [k for k in kinds if k is not None]
        if len(known) != len(kinds):
            return None  # some element of unknown type: a torch container may reject it
        parameters = all(k == "parameter" for k in known)
        if not parameters and "parameter" in known:
            return None
        is_dict = isinstance(value, (cst.Dict, cst.DictComp)) or _is_call_to(value, "dict")
        if is_dict:
            if isinstance(value, cst.DictComp) or not _dict_keys_ok(value, facts, attr):
                return None
        if not _uses_compatible(facts, attr, is_dict):
            return None
        container = ("ParameterDict" if is_dict else "ParameterList") if parameters else (
            "ModuleDict" if is_dict else "ModuleList"
        )
        reference = ctx.reference_to("torch.nn." + container)
        if reference is None:
            return None
        func = cst.parse_expression(reference)
        if filled_by == "calls" or (isinstance(value, (cst.List, cst.Dict)) and not value.elements):
            new_value: Any = cst.Call(func=func)
        else:
            if isinstance(value, cst.Call):
                if value.args:
                    return None
                new_value = cst.Call(func=func)
            else:
                inner = value.with_changes(lpar=[], rpar=[]) if isinstance(value, cst.GeneratorExp) else value
                if isinstance(inner, cst.GeneratorExp):
                    inner = inner.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                    new_value = cst.Call(func=func, args=[cst.Arg(inner)])
                else:
                    new_value = cst.Call(func=func, args=[cst.Arg(inner)])
        return Fix(f"wrap in {reference}(...)" + FIX_NOTE, [(value, new_value)], FixKind.SAFE)


def _passed_on(read: Any) -> bool:
    """``self.<attr>`` given to a call other than a builtin that only reads it."""
    if not (isinstance(read.parent, cst.Arg) and isinstance(read.grandparent, cst.Call)):
        return False
    func = read.grandparent.func
    return not (isinstance(func, cst.Name) and func.value in SAME_BUILTINS)


def _is_call_to(value: Any, builtin: str) -> bool:
    return isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == builtin


def _plain_container(value: Any) -> bool:
    return isinstance(value, (cst.List, cst.Tuple, cst.Dict, cst.ListComp, cst.DictComp, cst.GeneratorExp)) or (
        _is_call_to(value, "list") or _is_call_to(value, "dict")
    ) and not value.args


def _elements(value: Any) -> Optional[List[Any]]:
    """Elements of a literal container (dict values; comprehension element); [] for an empty one;
    None when ``value`` is not a plain container."""
    if isinstance(value, (cst.List, cst.Tuple)):
        if any(isinstance(e, cst.StarredElement) for e in value.elements):
            return [e.value for e in value.elements if isinstance(e, cst.Element)] or None
        return [e.value for e in value.elements]
    if isinstance(value, cst.Dict):
        return [e.value for e in value.elements if isinstance(e, cst.DictElement)]
    if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
        return [value.elt]
    if isinstance(value, cst.DictComp):
        return [value.value]
    if (_is_call_to(value, "list") or _is_call_to(value, "dict")) and not value.args:
        return []
    return None


def _dict_keys_ok(value: Any, facts: ClassFacts, attr: str) -> bool:
    keys: List[Any] = []
    if isinstance(value, cst.Dict):
        if any(not isinstance(e, cst.DictElement) for e in value.elements):
            return False
        keys = [e.key for e in value.elements]
    for call in facts.calls.get(attr, []):
        if call.method == "__setitem__":
            target = call.call.targets[0].target if isinstance(call.call, cst.Assign) else None
            if not isinstance(target, cst.Subscript) or len(target.slice) != 1:
                return False
            index = target.slice[0].slice
            if not isinstance(index, cst.Index):
                return False
            keys.append(index.value)
    for key in keys:
        if not isinstance(key, cst.SimpleString):
            return False
        text = key.evaluated_value
        if not isinstance(text, str) or not text or "." in text or text.startswith("_") or text in MODULE_ATTRIBUTES:
            return False
    return True


def _uses_compatible(facts: ClassFacts, attr: str, is_dict: bool) -> bool:
    """Whether every use of ``self.<attr>`` in the class works the same on the torch container."""
    allowed = DICT_METHODS if is_dict else LIST_METHODS
    for read in facts.reads.get(attr, []):
        parent, grandparent = read.parent, read.grandparent
        if isinstance(parent, cst.Subscript) and parent.value is read.node:
            if not is_dict and any(not isinstance(s.slice, cst.Index) for s in parent.slice):
                continue  # slices give a ModuleList too
            continue
        if isinstance(parent, cst.Attribute) and parent.value is read.node:
            if parent.attr.value in allowed and isinstance(grandparent, cst.Call) and grandparent.func is parent:
                continue
            return False
        if isinstance(parent, (cst.For, cst.CompFor)) and parent.iter is read.node:
            continue
        if isinstance(parent, cst.Arg) and isinstance(grandparent, cst.Call):
            func = grandparent.func
            if isinstance(func, cst.Name) and func.value in SAME_BUILTINS:
                continue
            return False
        if isinstance(parent, cst.ComparisonTarget) and is_dict and isinstance(parent.operator, (cst.In, cst.NotIn)):
            continue
        if isinstance(parent, cst.AugAssign) and not is_dict:
            continue
        return False
    return True
