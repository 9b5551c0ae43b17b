from __future__ import annotations

from typing import Any, Dict, List, Set

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization.dl204_eager_quant_missing_quantstub import (
    EAGER_QUANT,
    FLOAT_FUNCTIONAL,
    GRAPH_MODE_WORDS,
    call_order,
    file_index,
    last_name,
    resolve_model,
)

ARITHMETIC_OPS = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.MatrixMultiply)
ARITHMETIC_AUG = (cst.AddAssign, cst.SubtractAssign, cst.MultiplyAssign, cst.DivideAssign, cst.MatrixMultiplyAssign)
#: torch functions and tensor methods without a QuantizedCPU kernel (measured, torch 2.13);
#: torch.cat and torch.stack do run on quantised tensors and are not listed.
ARITHMETIC_FUNCTIONS = frozenset({"add", "sub", "subtract", "mul", "multiply", "div", "divide", "matmul", "mm", "bmm"})
ARITHMETIC_METHODS = frozenset({"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "matmul"})
FLOAT_FUNCTIONAL_OPS = frozenset({"add", "mul", "cat", "add_relu", "add_scalar", "mul_scalar", "matmul"})
#: Tensor methods that return a tensor of the same kind (a quantised one stays quantised).
TENSOR_METHODS = frozenset({
    "view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze", "relu",
    "relu_", "sigmoid", "tanh", "mean", "clone", "detach", "expand", "expand_as", "repeat", "narrow",
    "select", "chunk", "split", "t", "view_as", "reshape_as", "max_pool2d", "hardtanh",
})
#: torch functions whose result is not a quantised activation.
NON_TENSOR_TORCH = frozenset({
    "numel", "is_tensor", "is_floating_point", "dequantize", "Size", "tensor", "zeros", "ones", "arange",
    "randn", "rand", "empty", "full", "as_tensor", "from_numpy",
})
BUILTINS = frozenset({
    "len", "int", "float", "bool", "str", "range", "isinstance", "print", "getattr", "hasattr", "list",
    "tuple", "zip", "enumerate", "max", "min", "abs", "sum", "round", "type", "dict", "set", "sorted",
})
SCALAR_ANNOTATIONS = frozenset({"int", "float", "bool", "str"})


def _is_number(node: Any) -> bool:
    if isinstance(node, cst.UnaryOperation):
        node = node.expression
    return isinstance(node, (cst.Integer, cst.Float))


class _Forward:
    """One pass over a forward body, in statement order, tracking which names hold quantised
    activations (after ``self.quant(...)`` in the class that owns the stubs; every tensor input
    in a block used inside the quantised region)."""

    def __init__(self, ctx: Any, rule: "EagerQuantFloatArithmetic", facts: Any, mode: str) -> None:
        self.ctx = ctx
        self.rule = rule
        self.facts = facts
        self.quant = set(facts.attrs_of("quant"))
        self.dequant = set(facts.attrs_of("dequant"))
        self.float_functional = set(facts.attrs_of("ff"))
        self.active: Set[str] = set()
        #: self.<attr> submodules called with quantised / float inputs
        self.called_active: Set[str] = set()
        self.called_float: Set[str] = set()
        forward = facts.forward
        if mode == "block":
            for param in list(forward.params.params)[1:]:
                annotation = param.annotation
                if param.default is not None:
                    continue
                if annotation is not None and last_name(annotation.annotation) in SCALAR_ANNOTATIONS:
                    continue
                self.active.add(param.name.value)

    # ---------------------------------------------------------------- values

    def is_active(self, node: Any) -> bool:
        if isinstance(node, cst.Name):
            return node.value in self.active
        if isinstance(node, cst.Subscript):
            return self.is_active(node.value)
        if isinstance(node, cst.BinaryOperation):
            return self.is_active(node.left) or self.is_active(node.right)
        if isinstance(node, cst.IfExp):
            return self.is_active(node.body) or self.is_active(node.orelse)
        if not isinstance(node, cst.Call):
            return False
        func = node.func
        args_active = any(self.is_active(a.value) for a in node.args)
        if isinstance(func, cst.Attribute):
            receiver = func.value
            if isinstance(receiver, cst.Name) and receiver.value == "self":
                attr = func.attr.value
                if attr in self.quant:
                    return True
                if attr in self.dequant:
                    return False
                return args_active
            if (
                isinstance(receiver, cst.Attribute)
                and isinstance(receiver.value, cst.Name)
                and receiver.value.value == "self"
                and receiver.attr.value in self.float_functional
            ):
                return args_active
            qualified = self.ctx.qualname(func)
            if qualified is not None:
                if not qualified.startswith("torch.") or func.attr.value in NON_TENSOR_TORCH:
                    return False
                return args_active
            if func.attr.value in ARITHMETIC_METHODS or func.attr.value in FLOAT_FUNCTIONAL_OPS:
                return args_active or self.is_active(receiver)
            return func.attr.value in TENSOR_METHODS and self.is_active(receiver)
        if isinstance(func, cst.Name):
            qualified = self.ctx.qualname(func)
            if qualified is not None:
                return qualified.startswith("torch.") and func.value not in NON_TENSOR_TORCH and args_active
            if func.value in BUILTINS:
                return False
            return args_active
        return False

    def operands_fail(self, left: Any, right: Any) -> bool:
        """One operand is a quantised activation and the other a tensor of the region, a number
        or a ``self.<attr>`` value: none of these has a QuantizedCPU kernel."""
        def other_ok(node: Any) -> bool:
            return (
                self.is_active(node)
                or _is_number(node)
                or (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self")
            )
        return (self.is_active(left) and other_ok(right)) or (self.is_active(right) and other_ok(left))

    # ---------------------------------------------------------------- checks

    def check(self, node: Any, guarded: bool) -> None:
        """Report failing arithmetic in an expression (outermost failing node only)."""
        todo = [(node, guarded)]
        while todo:
            current, in_if = todo.pop()
            if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            if isinstance(current, cst.Call):
                self._note_calls(current)
                if last_name(current.func) in FLOAT_FUNCTIONAL and self.ctx.qualname(current.func) is not None:
                    self.rule.flag(current, inline=True)
                    continue
                if self._failing_call(current) and not (in_if and self.float_functional):
                    self.rule.flag(current)
                    continue
            if (
                isinstance(current, cst.BinaryOperation)
                and isinstance(current.operator, ARITHMETIC_OPS)
                and self.operands_fail(current.left, current.right)
                and not (in_if and self.float_functional)
            ):
                self.rule.flag(current)
                continue
            inner_if = in_if or isinstance(current, cst.IfExp)
            for child in current.children:
                todo.append((child, inner_if))

    def _failing_call(self, call: cst.Call) -> bool:
        func = call.func
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        qualified = self.ctx.qualname(func)
        if qualified is not None and qualified.startswith("torch.") and last_name(func) in ARITHMETIC_FUNCTIONS:
            if qualified.count(".") == 1 and len(args) >= 2:
                return self.operands_fail(args[0], args[1])
            return False
        if (
            qualified is None
            and isinstance(func, cst.Attribute)
            and func.attr.value in ARITHMETIC_METHODS
            and len(args) >= 1
        ):
            return self.is_active(func.value) and self.operands_fail(func.value, args[0])
        return False

    def _note_calls(self, call: cst.Call) -> None:
        func = call.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            if any(self.is_active(a.value) for a in call.args):
                self.called_active.add(func.attr.value)
            else:
                self.called_float.add(func.attr.value)

    # ---------------------------------------------------------------- statements

    def run(self) -> None:
        self.block(self.facts.forward.body, False)

    def block(self, body: Any, guarded: bool) -> None:
        statements = body.body if hasattr(body, "body") else body
        if isinstance(statements, cst.BaseSuite):
            statements = statements.body
        for statement in statements:
            self.statement(statement, guarded)

    def statement(self, statement: Any, guarded: bool) -> None:
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            return
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                self.small(small, guarded)
            return
        if isinstance(statement, cst.If):
            self.check(statement.test, guarded)
            self.block(statement.body, True)
            orelse = statement.orelse
            if orelse is not None:
                self.statement(orelse, True) if isinstance(orelse, cst.If) else self.block(orelse.body, True)
            return
        if isinstance(statement, cst.For):
            self.check(statement.iter, guarded)
            if self.is_active(statement.iter):
                self._bind(statement.target, True)
            self.block(statement.body, guarded)
            return
        if isinstance(statement, cst.While):
            self.check(statement.test, guarded)
            self.block(statement.body, guarded)
            return
        if isinstance(statement, cst.With):
            for item in statement.items:
                self.check(item.item, guarded)
            self.block(statement.body, guarded)
            return
        if isinstance(statement, cst.Try):
            self.block(statement.body, guarded)
            for handler in statement.handlers:
                self.block(handler.body, True)
            return

    def small(self, small: Any, guarded: bool) -> None:
        if isinstance(small, cst.Assign):
            self.check(small.value, guarded)
            active = self.is_active(small.value)
            for target in small.targets:
                self._bind(target.target, active, small.value)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self.check(small.value, guarded)
                self._bind(small.target, self.is_active(small.value), small.value)
        elif isinstance(small, cst.AugAssign):
            self.check(small.value, guarded)
            if (
                isinstance(small.operator, ARITHMETIC_AUG)
                and self.operands_fail(small.target, small.value)
                and not (guarded and self.float_functional)
            ):
                self.rule.flag(small)
        elif isinstance(small, (cst.Return, cst.Expr)):
            if small.value is not None:
                self.check(small.value, guarded)

    def _bind(self, target: Any, active: bool, value: Any = None) -> None:
        if isinstance(target, cst.Name):
            if active:
                self.active.add(target.value)
            else:
                self.active.discard(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            values = value.elements if isinstance(value, (cst.Tuple, cst.List)) else None
            for i, element in enumerate(target.elements):
                if values is not None and len(values) == len(target.elements):
                    self._bind(element.value, self.is_active(values[i].value))
                else:
                    self._bind(element.value, active)


class EagerQuantFloatArithmetic(Rule):
    """Plain tensor arithmetic on quantised activations inside an eager-quantised model.

    Finds, in the `forward` of a class that eager quantisation converts, `+`, `-`, `*`, `/`,
    `@`, `+=` (and the other augmented forms), `torch.add / sub / mul / div / matmul / mm /
    bmm` and the tensor methods `.add() / .mul() / ...` applied to a quantised activation and
    another activation, a number or a `self.<attr>` value; and a `FloatFunctional()` created
    inside `forward`. The classes looked at: a class of the file whose `__init__` creates a
    `QuantStub` (from the `self.quant(...)` call on, until `self.dequant(...)`), a class
    wrapped in `QuantWrapper` and handed to `prepare` / `quantize` / `prepare_qat` /
    `quantize_qat` (its inputs are quantised), and the file's classes those use as blocks
    (`self.layer1 = self._make_layer(BasicBlock, ...)`, `nn.Sequential(Block(), ...)`), whose
    tensor inputs are quantised too. Values are followed by name through the forward body:
    `self.<submodule>(q)`, `torch.*(q)`, `q.view(...)` stay quantised; `self.dequant(q)`,
    `q.shape`, `q.size()`, `len(q)` are not.

    Why it is a bug: after `convert`, activations are quantised tensors and these operators
    have no QuantizedCPU kernel. Measured with torch 2.13: `qx + qy` raises
    `NotImplementedError: Could not run 'aten::add.out' with arguments from the 'QuantizedCPU'
    backend` (also `mul.out`, `sub.out`, `div.out`, `mm.out`); `qx + 1` and `qx * 2` raise
    `RuntimeError: empty_strided not supported on quantized tensors yet`
    (pytorch/pytorch#98596, #91875, #35595; leimao/PyTorch-Quantization-Aware-Training#6).
    `torch.cat` and `torch.stack` do run on quantised tensors in torch 2.13 and are not
    reported. A `FloatFunctional()` created inside `forward` is a fresh module on every call:
    prepare never observed it and convert never swapped it for `QFunctional`, so it calls
    `torch.add` on the quantised tensors and fails the same way (pytorch/tutorials#1227).

    How to fix: create `self.skip_add = torch.ao.nn.quantized.FloatFunctional()` in
    `__init__` and write `self.skip_add.add(x, y)` (`.mul`, `.add_scalar`, `.mul_scalar`,
    `.cat`, `.add_relu`) in `forward`, or dequantise before the arithmetic, or use FX / PT2E
    graph mode, which handles these operators.

    Stays silent in files that use FX or PT2E quantisation, on arithmetic after
    `self.dequant(...)` or before `self.quant(...)`, on shapes and sizes, inside an `if` of a
    class that also has a FloatFunctional attribute (a float / quantised switch), in blocks
    only called with float inputs, and in blocks when the file sets some `qconfig = None`.
    """

    code = "DL205"
    name = "eager-quant-float-arithmetic"
    family = "optimization"
    message = (
        "float tensor arithmetic (+, cat, mul) inside an eager-quantised module fails on quantised tensors; "
        "use a FloatFunctional attribute created in __init__"
    )
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="quantisation API misuse: float tensor operators on quantised activations in eager mode",
        links=(
            "https://github.com/pytorch/pytorch/issues/98596",
            "https://github.com/pytorch/pytorch/issues/91875",
            "https://github.com/pytorch/pytorch/issues/35595",
            "https://github.com/leimao/PyTorch-Quantization-Aware-Training/issues/6",
            "https://github.com/pytorch/tutorials/issues/1227",
        ),
    )
    triggers = ("QuantStub", "QuantWrapper")
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            import torch.nn as nn
            from torch.ao.quantization import QuantStub, DeQuantStub

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.block = nn.Conv2d(8, 8, 3, padding=1)
                    self.skip_add = torch.ao.nn.quantized.FloatFunctional()
                    self.dequant = DeQuantStub()

                def forward(self, x):
                    x = self.quant(x)
                    return self.dequant(self.skip_add.add(x, self.block(x)))
            """), "routed through a FloatFunctional attribute"),
        Valid(dedent("""
            import torch.nn as nn
            from torch.quantization import QuantStub, DeQuantStub

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.block = nn.Conv2d(8, 8, 3, padding=1)
                    self.dequant = DeQuantStub()

                def forward(self, x):
                    x = self.quant(x)
                    x = self.dequant(self.block(x))
                    return x * 0.5 + 1
            """), "arithmetic after dequant"),
        Valid(dedent("""
            import torch.nn as nn
            from torch.ao.quantization import QuantStub, DeQuantStub

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.fc = nn.Linear(8, 8)
                    self.dequant = DeQuantStub()

                def forward(self, x):
                    n = x.shape[0] * x.shape[1]
                    x = self.quant(x)
                    y = self.fc(x.view(x.size(0), -1))
                    return self.dequant(y), n + 1
            """), "shapes and sizes are Python ints"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            from torch.ao.quantization import QuantStub, DeQuantStub

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.a = nn.Conv2d(8, 8, 1)
                    self.b = nn.Conv2d(8, 8, 1)
                    self.dequant = DeQuantStub()

                def forward(self, x):
                    x = self.quant(x)
                    return self.dequant(torch.cat([self.a(x), self.b(x)], dim=1))
            """), "torch.cat runs on quantised tensors (torch 2.13)"),
        Valid(dedent("""
            import torch.nn as nn
            from torch.ao.quantization import QuantStub, DeQuantStub
            from torch.ao.quantization.quantize_fx import prepare_fx

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.block = nn.Conv2d(8, 8, 3, padding=1)
                    self.dequant = DeQuantStub()

                def forward(self, x):
                    x = self.quant(x)
                    return self.dequant(x + self.block(x))

            prepared = prepare_fx(Net().eval(), qconfig_mapping, example_inputs)
            """), "FX graph mode handles the operator"),
        Valid(dedent("""
            import torch.nn as nn
            from torch.ao.quantization import QuantStub, DeQuantStub

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.quant = QuantStub()
                    self.block = nn.Conv2d(8, 8, 3, padding=1)
                    self.skip = nn.quantized.FloatFunctional()
                    self.dequant = DeQuantStub()

                def forward(self, x):
                    x = self.quant(x)
                    if self.quantized:
                        y = self.skip.add(x, self.block(x))
                    else:
                        y = x + self.block(x)
                    return self.dequant(y)
            """), "a float / quantised switch"),
        Valid(dedent("""
            import torch.nn as nn

            class Block(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(8, 8, 3, padding=1)

                def forward(self, x):
                    return x + self.conv(x)
            """), "no quantisation anywhere"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch.nn as nn
                from torch.ao.quantization import QuantStub, DeQuantStub

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.quant = QuantStub()
                        self.block = nn.Conv2d(8, 8, 3, padding=1)
                        self.dequant = DeQuantStub()

                    def forward(self, x):
                        x = self.quant(x)
                        return self.dequant(x + self.block(x))
                """),
            note="the catalogue's example",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                from torch.quantization import QuantStub, DeQuantStub

                class BasicBlock(nn.Module):
                    def __init__(self, c):
                        super().__init__()
                        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
                        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

                    def forward(self, x):
                        identity = x
                        out = self.conv2(torch.relu(self.conv1(x)))
                        out += identity
                        return out

                class ResNet(nn.Module):
                    def __init__(self, block):
                        super().__init__()
                        self.quant = QuantStub()
                        self.layer = nn.Sequential(block(8), block(8))
                        self.dequant = DeQuantStub()

                    def forward(self, x):
                        return self.dequant(self.layer(self.quant(x)))

                model = ResNet(BasicBlock)
                """),
            note="a residual block used inside the quantised region (legacy spelling)",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                import torch.ao.quantization as tq

                class Attention(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.q = nn.Linear(16, 16)
                        self.k = nn.Linear(16, 16)

                    def forward(self, x):
                        scores = torch.matmul(self.q(x), self.k(x).transpose(-2, -1))
                        return scores * 0.25

                model = tq.QuantWrapper(Attention()).eval()
                model.qconfig = tq.get_default_qconfig("x86")
                prepared = tq.prepare(model)
                """),
            count=2,
            note="QuantWrapper: the wrapped class sees quantised inputs; torch.matmul and a scalar product",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                from torch.ao.quantization import QuantStub, DeQuantStub

                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.quant = QuantStub()
                        self.a = nn.Conv2d(8, 8, 1)
                        self.dequant = DeQuantStub()

                    def forward(self, x):
                        x = self.quant(x)
                        y = self.a(x)
                        z = torch.nn.quantized.FloatFunctional().add(x, y)
                        return self.dequant(torch.mul(z, y))
                """),
            count=2,
            note="FloatFunctional created inside forward, and torch.mul",
        ),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        self._reported: Set[int] = set()
        #: classes wrapped in QuantWrapper and handed to eager quantisation, with their constructor calls
        self._wrapped: Dict[int, Any] = {}

    def flag(self, node: Any, inline: bool = False) -> None:
        if id(node) in self._reported:
            return
        self._reported.add(id(node))
        if inline:
            self.report(
                node,
                "FloatFunctional() created inside forward is never observed or converted; on quantised "
                "tensors it fails like plain arithmetic. Create it in __init__ as an attribute",
            )
        else:
            self.report(node)

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if ctx.call_name(node) not in EAGER_QUANT or ctx.has_star_args(node):
            return
        model = ctx.argument(node, 0, "model")
        if model is None:
            return
        events = ctx.object_events()
        order = call_order(events, model.value, node) if isinstance(model, cst.Name) else float("inf")
        result = resolve_model(ctx, model, events, order, function=ctx.function())
        if result is not None and result[0] == "wrapped" and result[1] is not None and result[1][0] == "class":
            cls = result[1][1]
            self._wrapped[id(cls)] = cls

    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        source = ctx.source
        if any(word in source for word in GRAPH_MODE_WORDS):
            return
        index = file_index(ctx)
        roots: List[Any] = []
        for cls in index.classes.values():
            if cls is not None and index.facts(cls).attrs_of("quant") and index.facts(cls).forward is not None:
                roots.append(cls)
        done: Set[int] = set()
        blocks: List[Any] = list(self._wrapped.values())
        for cls in roots:
            facts = index.facts(cls)
            done.add(id(cls))
            walker = _Forward(ctx, self, facts, "root")
            walker.run()
            float_only = walker.called_float - walker.called_active
            for name in facts.referenced:
                other = index.cls(name)
                if other is None:
                    continue
                if any(
                    facts.attrs.get(attr) == name for attr in float_only
                ) and not any(facts.attrs.get(attr) == name for attr in walker.called_active):
                    continue
                blocks.append(other)
        constructor_args = _constructor_class_args(node, index)
        for cls in roots + list(self._wrapped.values()):
            for name in constructor_args.get(id(cls), []):
                blocks.append(index.cls(name))
        if "qconfig = None" in source or "qconfig=None" in source:
            blocks = list(self._wrapped.values())
        while blocks:
            cls = blocks.pop()
            if id(cls) in done:
                continue
            done.add(id(cls))
            facts = index.facts(cls)
            if facts.forward is not None:
                _Forward(ctx, self, facts, "block").run()
            for name in facts.referenced:
                other = index.cls(name)
                if other is not None:
                    blocks.append(other)


def _constructor_class_args(module: cst.Module, index: Any) -> Dict[int, List[str]]:
    """For each class of the file: the file classes passed to its constructor anywhere
    (``ResNet(BasicBlock, [2, 2])``)."""
    out: Dict[int, List[str]] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        if isinstance(current, cst.Call) and isinstance(current.func, cst.Name):
            cls = index.cls(current.func.value)
            if cls is not None:
                for arg in current.args:
                    if isinstance(arg.value, cst.Name) and index.cls(arg.value.value) is not None:
                        out.setdefault(id(cls), []).append(arg.value.value)
        todo.extend(current.children)
    return out
