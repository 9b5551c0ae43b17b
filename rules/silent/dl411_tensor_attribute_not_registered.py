from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.silent._module import TENSOR_FACTORIES, AttrAssign, class_facts, init_values, is_module_class

#: tensor methods that keep "a new tensor built here" (followed back to the factory)
TENSOR_CHAIN = frozenset({
    "view", "reshape", "unsqueeze", "squeeze", "float", "long", "int", "bool", "double", "half", "tril", "triu",
    "t", "transpose", "permute", "expand", "repeat", "contiguous", "flip", "clone", "detach", "exp", "log",
    "cos", "sin", "pow", "sqrt", "masked_fill", "fill_", "uniform_", "normal_", "zero_", "mul", "div", "add",
    "sub", "cumsum", "flatten", "view_as", "tril_", "triu_",
})
#: uses of the attribute that cannot hit the device / checkpoint problem, or that place it themselves
HARMLESS_METHODS = frozenset({"to", "cuda", "cpu", "type_as", "numpy", "tolist", "item", "size", "dim", "numel",
                              "new_tensor", "__len__"})
HARMLESS_ATTRIBUTES = frozenset({"shape", "dtype", "ndim", "device", "is_cuda"})
#: classes that manage devices of their attributes themselves
OWN_PLUMBING = frozenset({"to", "cuda", "_apply", "state_dict", "load_state_dict", "_load_from_state_dict",
                          "_save_to_state_dict"})


class TensorAttributeNotRegistered(Rule):
    """A tensor built in nn.Module.__init__ stored as a plain attribute instead of a buffer.

    Finds, in the `__init__` of a class deriving from `torch.nn.Module` (any spelling, also
    through the file's own classes and Lightning / transformers bases), `self.x = <new tensor>`,
    where the value is a call of a torch tensor factory (`torch.tensor([...])`, `torch.zeros`,
    `ones`, `arange`, `randn`, `eye`, `linspace`, `from_numpy`, `tril`, ...), possibly followed by
    tensor methods (`torch.ones(T, T).tril().view(1, 1, T, T)`), not wrapped in `nn.Parameter` and
    not a registered buffer name, and `self.x` is read in another method (`forward`, helpers).

    Why it is a bug: only parameters and buffers are moved by `.to(device)` / `.cuda()` / cast by
    `.half()` and saved in `state_dict()`. A plain tensor attribute stays on the CPU after
    `model.cuda()` (device-mismatch error in forward, or silent CPU compute) and keeps its
    `__init__` value after `load_state_dict` (measured with torch 2.13: the attribute is missing
    from `state_dict()` and `buffers()`, and `model.to(torch.float64)` leaves it float32, while a
    registered buffer follows both).

    How to fix: `self.register_buffer("x", <expr>, persistent=False)` (derived constants; keeps
    checkpoint keys unchanged) or a persistent buffer for state that must be saved. The rewrite
    uses `persistent=False` and is offered only for a plain `self.x = ...` made after
    `super().__init__()` whose other assignments hold tensors too; a tensor built with
    `requires_grad=True` (a parameter in disguise: use `nn.Parameter`) is reported without one.

    Stays silent for 0-d constants (`torch.tensor(2.0)`: a 0-d CPU tensor mixes with CUDA tensors),
    tensors built with `device=`, attributes re-assigned outside `__init__` (caches re-created in
    forward), attributes whose uses place them themselves (`self.x.to(x.device)`, `.type_as(x)`,
    `.cuda()`) or only read their shape / dtype or index with them (a CPU index tensor works on
    CUDA tensors), classes that register under computed names or override `to()` / `_apply()` /
    `state_dict()`, and tensors never read outside `__init__`.
    """

    code = "DL411"
    name = "tensor-attribute-not-registered"
    family = "silent"
    message = (
        "tensor stored as a plain attribute is not moved by .to(device) nor saved in state_dict; use "
        "register_buffer (persistent=False for derived constants)"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(d) silent bugs in deep learning frameworks (Keras/TF and PyTorch module semantics)",
        category="Wrong save/reload / Wrong parameter setting: tensor state not registered",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_buffer",
            "https://github.com/pytorch/pytorch/issues/59925",
        ),
    )
    triggers = ("torch",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            import torch.nn as nn
            class Attn(nn.Module):
                def __init__(self, T):
                    super().__init__()
                    self.register_buffer("mask", torch.tril(torch.ones(T, T)), persistent=False)
                def forward(self, x):
                    return x.masked_fill(self.mask == 0, 0.0)
            """), "a buffer"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.scale = torch.tensor(2.0)
                def forward(self, x):
                    return x * self.scale
            """), "a 0-d constant mixes with tensors on any device"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            class Attn(nn.Module):
                def __init__(self, T):
                    super().__init__()
                    self.mask = torch.tril(torch.ones(T, T))
                def forward(self, x):
                    mask = self.mask.to(x.device)
                    return x.masked_fill(mask == 0, 0.0)
            """), "moved by hand where it is used"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.w = nn.Parameter(torch.randn(n, n))
                    self.table = torch.zeros(n)
            """), "a parameter; a tensor never read after __init__"),
        Valid(dedent("""
            import torch
            class Helper:
                def __init__(self):
                    self.mask = torch.ones(4, 4)
                def apply(self, x):
                    return x * self.mask
            """), "not an nn.Module"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            class Cache(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.cache = torch.zeros(1)
                def forward(self, x):
                    self.cache = x.detach()
                    return x + self.cache
            """), "re-created in forward"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            class Pick(nn.Module):
                def __init__(self, device):
                    super().__init__()
                    self.idx = torch.arange(4)
                    self.pos = torch.zeros(4, 8, device=device)
                def forward(self, x):
                    return x[:, self.idx] + self.pos
            """), "an index tensor, and a tensor placed with device="),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                class Attn(nn.Module):
                    def __init__(self, T):
                        super().__init__()
                        self.mask = torch.tril(torch.ones(T, T))
                    def forward(self, x):
                        return x.masked_fill(self.mask == 0, 0.0)
                """),
            dedent("""
                import torch
                import torch.nn as nn
                class Attn(nn.Module):
                    def __init__(self, T):
                        super().__init__()
                        self.register_buffer("mask", torch.tril(torch.ones(T, T)), persistent=False)
                    def forward(self, x):
                        return x.masked_fill(self.mask == 0, 0.0)
                """),
            note="the catalogue's example",
        ),
        Invalid(
            dedent("""
                import numpy as np
                import torch
                class Norm(torch.nn.Module):
                    def __init__(self):
                        super(Norm, self).__init__()
                        self.mean = torch.from_numpy(np.array([0.485, 0.456, 0.406])).view(1, 3, 1, 1).float()
                    def forward(self, x):
                        return x - self.mean
                """),
            dedent("""
                import numpy as np
                import torch
                class Norm(torch.nn.Module):
                    def __init__(self):
                        super(Norm, self).__init__()
                        self.register_buffer("mean", torch.from_numpy(np.array([0.485, 0.456, 0.406])).view(1, 3, 1, 1).float(), persistent=False)
                    def forward(self, x):
                        return x - self.mean
                """),
            note="from_numpy followed by tensor methods",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class Base(nn.Module):
                    pass
                class Pos(Base):
                    def __init__(self, n, d):
                        self.table = torch.randn(n, d)
                        super().__init__()
                    def forward(self, x):
                        return x + self.table[: x.size(1)]
                """),
            note="before super().__init__(): no rewrite (register_buffer would fail there)",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.w = torch.randn(4, 4, requires_grad=True)
                    def forward(self, x):
                        return x @ self.w
                """),
            note="requires_grad=True: a parameter in disguise, no buffer rewrite",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                class Mel(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.basis = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
                    def project(self, x):
                        return torch.matmul(x, self.basis)
                """),
            dedent("""
                import torch
                import torch.nn as nn
                class Mel(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.register_buffer("basis", torch.tensor([[1.0, 0.0], [0.0, 1.0]]), persistent=False)
                    def project(self, x):
                        return torch.matmul(x, self.basis)
                """),
            note="a list literal tensor read by a helper method",
        ),
    )

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        ctx = self.ctx
        if not any(self._factory(value) is not None for value in init_values(ctx, node)):
            return  # no tensor made in __init__: skip the full scan of the class
        if not is_module_class(ctx, node):
            return
        facts = class_facts(ctx, node)
        if facts.init is None or facts.dynamic_registration or OWN_PLUMBING & set(facts.methods):
            return
        for attr, assigns in facts.assigns.items():
            if attr in facts.registered or len(assigns) != 1:
                continue
            assign = assigns[0]
            if assign.method != "__init__" or assign.augmented:
                continue
            factory = self._factory(assign.value)
            if factory is None:
                continue
            reads = [r for r in facts.reads.get(attr, []) if r.method != "__init__"]
            if not reads or all(_harmless(r) for r in reads):
                continue
            if any(_places_itself(r) for r in reads):
                continue
            grad = self.ctx.keyword(factory, "requires_grad")
            self.report(assign.statement, fix=None if grad is not None else self._fix(assign, attr))

    def _factory(self, value: Any) -> Optional[cst.Call]:
        """The torch factory call that builds the tensor ``value`` holds, when it certainly is a new
        tensor on the default device; None otherwise."""
        ctx = self.ctx
        for _ in range(8):
            if not isinstance(value, cst.Call):
                return None
            name = ctx.call_name(value)
            if name in TENSOR_FACTORIES:
                if ctx.keyword(value, "device") is not None or ctx.has_star_args(value):
                    return None
                if name in ("torch.tensor", "torch.as_tensor"):
                    data = ctx.argument(value, 0, "data")
                    if not isinstance(data, (cst.List, cst.Tuple, cst.ListComp)):
                        return None  # maybe a 0-d constant (or an existing tensor)
                if name in ("torch.tril", "torch.triu", "torch.exp", "torch.log", "torch.cos", "torch.sin",
                            "torch.cumsum", "torch.outer", "torch.stack", "torch.cat", "torch.polar"):
                    inner = ctx.argument(value, 0)
                    if isinstance(inner, (cst.List, cst.Tuple)) and inner.elements:
                        inner = inner.elements[0].value
                    found = self._factory(inner)
                    return found
                return value
            func = value.func
            if isinstance(func, cst.Attribute) and func.attr.value in TENSOR_CHAIN and ctx.qualname(func) is None:
                value = func.value
                continue
            return None
        return None

    def _fix(self, assign: AttrAssign, attr: str) -> Optional[Fix]:
        statement = assign.statement
        if not assign.after_super or not isinstance(statement, cst.Assign) or len(statement.targets) != 1:
            return None
        receiver = statement.targets[0].target.value  # the self name
        call = cst.Call(
            func=cst.Attribute(value=receiver, attr=cst.Name("register_buffer")),
            args=[
                cst.Arg(cst.SimpleString(f'"{attr}"'), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                cst.Arg(statement.value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                cst.Arg(
                    cst.Name("False"),
                    keyword=cst.Name("persistent"),
                    equal=cst.AssignEqual(
                        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
                    ),
                ),
            ],
        )
        return Fix(
            f'register "{attr}" as a non-persistent buffer', [(statement, cst.Expr(call))], FixKind.SAFE
        )


def _harmless(read: Any) -> bool:
    """A use that reads only metadata, or indexes with the tensor."""
    parent, grandparent = read.parent, read.grandparent
    if isinstance(parent, cst.Attribute) and parent.value is read.node:
        if parent.attr.value in HARMLESS_ATTRIBUTES:
            return True
        return parent.attr.value in HARMLESS_METHODS and isinstance(grandparent, cst.Call)
    if isinstance(parent, cst.Index):
        return True  # x[self.idx]
    if isinstance(parent, cst.Arg) and isinstance(grandparent, cst.Call):
        func = grandparent.func
        return isinstance(func, cst.Name) and func.value in ("len", "print", "str", "repr")
    return False


def _places_itself(read: Any) -> bool:
    parent = read.parent
    return (
        isinstance(parent, cst.Attribute)
        and parent.value is read.node
        and parent.attr.value in ("to", "cuda", "type_as")
    )
