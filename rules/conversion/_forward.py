"""What the DL3xx rules know about the ``forward`` of an exported class.

``ForwardScan`` collects, during the walk, the export calls of the file with the module each one
exports (``_export.export_call`` / ``exported_module``: both need the scopes of the call).  At the
end of the file ``forward_facts(ctx, cls)`` reads the class's ``forward`` (through file base
classes), the ``self.<method>(...)`` helpers it calls and the module-level functions it calls by
name (one level each), and returns per statement the facts the rules need:

- which names hold tensors: forward's parameters other than ``self``, than those with non-tensor
  defaults (numbers, strings, booleans) and than those annotated with a non-tensor type; names
  assigned from tensor expressions (``torch.*`` calls, tensor methods, ``self.<submodule>(...)``
  calls, indexing and arithmetic on tensors).  ``.shape`` / ``.size()`` / ``.dim()`` / ``.ndim`` /
  ``len(...)`` / ``.dtype`` / ``.device`` are Python values (symbolic sizes under the new
  exporters), not tensors.  A helper's parameters hold tensors when a call passes tensors to them.
- ``branch``: an ``if`` / ``while`` / ternary whose test reads a tensor VALUE (``x.sum() > 0``,
  ``torch.any(m)``, ``t.item()``, ``bool(t)``, ``torch.equal(a, b)``), or a ``for`` loop whose
  count depends on tensor values (``range(int(x.max()))``, iteration over ``torch.nonzero(x)``).
- ``value``: ``.item()`` / ``.tolist()`` / ``.numpy()`` / ``int()`` / ``float()`` / ``bool()`` of a
  tensor value (outside a branch test).
- ``shape``: ``int(x.size(k))`` / ``int(x.shape[k])`` / ``float(...)`` of a size, ``len(t)``,
  ``[int(s) for s in x.size()]``, ``x.data.size()`` / ``x.data.shape``.
- ``random``: ``torch.rand/randn/randint/*_like/normal/bernoulli/multinomial/poisson``,
  ``Tensor.normal_/uniform_/bernoulli_/exponential_/random_``, ``F.dropout``-family calls whose
  ``training`` is not given (it defaults to True) or is literally True.
- ``masked_write``: ``t[index_tensor] = v`` / ``t[mask] op= v`` on a tensor, ``masked_fill_`` /
  ``index_put_`` / ``masked_scatter_`` / ``index_fill_`` / ``scatter_`` calls on a tensor.

Each fact says whether it is ``guarded``: inside a branch (or ternary arm) whose test reads
``self.training``, ``torch.jit.is_tracing()`` / ``is_scripting()``, ``torch.onnx.is_in_onnx_export()``,
``torch.compiler.is_exporting()`` / ``is_compiling()``; rules stay silent on guarded facts.
Unknown answers stay silent: a name is a tensor only when the code says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import dotted_name
from dllint.rules.conversion._export import ExportCall, ExportedModule, export_call, exported_module, find_method

# ---------------------------------------------------------------------- vocabulary

#: torch functions (after "torch.") that return Python values, not tensors
_NON_TENSOR_TORCH_PREFIXES = (
    "is_", "get_", "set_", "jit.", "onnx.", "cuda.", "backends.", "distributed.", "_C.", "compiler.",
    "_dynamo.", "fx.", "autograd.", "utils.", "testing.", "manual_seed", "no_grad", "enable_grad",
    "inference_mode", "autocast", "amp.", "Size", "device", "dtype", "finfo", "iinfo", "numel",
    "typename", "use_deterministic", "cond", "_assert", "save", "load", "nn.Module", "nn.Parameter",
    "Generator", "broadcast_shapes",
)

#: torch functions that read tensor values into a Python bool
VALUE_BOOL_TORCH = frozenset({"torch.equal", "torch.allclose", "torch.is_nonzero"})

#: tensor methods / attributes whose result is not a tensor
NON_TENSOR_METHODS = frozenset({
    "size", "dim", "ndimension", "numel", "nelement", "item", "tolist", "numpy", "data_ptr", "element_size",
    "is_contiguous", "is_floating_point", "is_complex", "get_device", "stride", "storage_offset", "__len__",
    "type", "equal", "allclose", "is_nonzero", "is_set_to", "untyped_storage", "storage", "dim_order",
    "has_names", "is_pinned", "is_shared", "register_hook", "backward",
})
NON_TENSOR_ATTRIBUTES = frozenset({
    "shape", "ndim", "dtype", "device", "is_cuda", "requires_grad", "layout", "is_leaf", "names",
    "is_sparse", "is_quantized", "is_meta", "training",
})
#: tensor attributes that are tensors
TENSOR_ATTRIBUTES = frozenset({"T", "mT", "H", "mH", "data", "real", "imag", "grad"})

#: conversions of a tensor to a Python value
VALUE_METHODS = ("item", "tolist", "numpy")
VALUE_BUILTINS = ("int", "float", "bool")

RANDOM_TORCH = frozenset({
    "torch.rand", "torch.randn", "torch.randint", "torch.rand_like", "torch.randn_like", "torch.randint_like",
    "torch.normal", "torch.bernoulli", "torch.multinomial", "torch.poisson", "torch.randperm",
})
RANDOM_METHODS = frozenset({"normal_", "uniform_", "bernoulli_", "exponential_", "random_", "cauchy_",
                            "log_normal_", "geometric_", "bernoulli", "multinomial"})
DROPOUT_FUNCTIONS = frozenset({
    "torch.nn.functional.dropout", "torch.nn.functional.dropout1d", "torch.nn.functional.dropout2d",
    "torch.nn.functional.dropout3d", "torch.nn.functional.alpha_dropout", "torch.nn.functional.feature_alpha_dropout",
    "torch.dropout", "torch.alpha_dropout", "torch.feature_dropout",
})
MASKED_WRITE_METHODS = frozenset({"masked_fill_", "index_put_", "masked_scatter_", "index_fill_", "index_copy_",
                                  "index_add_", "scatter_", "scatter_add_", "scatter_reduce_"})

#: guards under which the traced / exported path is not the one written
_GUARD_QUALNAMES = frozenset({
    "torch.jit.is_tracing", "torch.jit.is_scripting", "torch.onnx.is_in_onnx_export",
    "torch.compiler.is_exporting", "torch.compiler.is_compiling", "torch._dynamo.is_compiling",
    "torch.jit._trace.is_tracing", "torch._C._get_tracing_state",
})
_GUARD_WORDS = ("is_tracing", "is_scripting", "is_in_onnx_export", "is_exporting", "is_compiling",
                "_get_tracing_state", "onnx_export", "exporting", "tracing")

_NON_TENSOR_ANNOTATIONS = ("int", "float", "bool", "str", "list", "tuple", "dict", "List", "Tuple", "Dict",
                           "Sequence", "Callable", "Optional[int]", "Optional[bool]", "Optional[str]",
                           "Optional[float]")


@dataclass(frozen=True)
class Fact:
    kind: str  # "branch", "value", "shape", "random", "masked_write"
    node: Any  # the node to report at
    detail: str
    guarded: bool
    function: Any  # the FunctionDef the fact is in
    statement: Any = None  # for "value"/"shape" facts: the expression to rewrite (len call), when fixable
    extra: Any = None  # masked_write: (target, index, value) for a subscript assignment


@dataclass
class ForwardFacts:
    cls: cst.ClassDef
    functions: List[cst.FunctionDef]
    tensors: Dict[int, Set[str]]  # id(function) -> names holding tensors
    facts: List[Fact] = field(default_factory=list)


# ---------------------------------------------------------------------- collecting export calls


@dataclass(frozen=True)
class Export:
    call: ExportCall
    module: ExportedModule


def note_export(ctx: Any, node: cst.Call) -> None:
    """Record ``node`` when it is an export call whose exported class is defined in the file
    (call from each rule's visit_Call: shared through the file memo, computed once per call)."""
    found: Dict[int, Optional[Export]] = ctx.memo("dl3.forward.exports", lambda _ctx: {})
    if id(node) in found:
        return
    export = export_call(ctx, node)
    if export is None or export.kind not in ("onnx", "onnx-dynamo", "export", "trace"):
        found[id(node)] = None
        return
    module = exported_module(ctx, export)
    if (module is None or module.cls is None) and isinstance(export.model, cst.Name) and export.model.value == "self":
        cls = ctx.enclosing_class()
        if cls is not None and ctx.function() is not None:
            module = ExportedModule(export.model, "self", None, cls, None)  # a module exporting itself
    found[id(node)] = Export(export, module) if module is not None and module.cls is not None else None


def exports(ctx: Any) -> List[Export]:
    found: Dict[int, Optional[Export]] = ctx.memo("dl3.forward.exports", lambda _ctx: {})
    return [e for e in found.values() if e is not None]


def exports_by_class(ctx: Any) -> List[Tuple[cst.ClassDef, List[Export]]]:
    out: Dict[int, Tuple[cst.ClassDef, List[Export]]] = {}
    for export in exports(ctx):
        cls = export.module.cls
        out.setdefault(id(cls), (cls, []))[1].append(export)
    return list(out.values())


def shapes_dynamic(ctx: Any, export: ExportCall) -> bool:
    """Whether the export lets input sizes vary: always for jit.trace (a traced module runs on any
    size); for ONNX / torch.export only with ``dynamic_axes`` / ``dynamic_shapes``."""
    if export.kind == "trace":
        return True
    return any(ctx.keyword(export.node, name) is not None for name in ("dynamic_axes", "dynamic_shapes"))


def legacy_semantics(ctx: Any, export: ExportCall) -> bool:
    """Whether the export freezes Python values like the TorchScript tracer: ``jit.trace`` and the
    legacy ONNX exporter (``dynamo=False``, or a target torch before 2.9, whose default it is).
    A call with no ``dynamo=`` and an unknown target runs the torch.export-based exporter, which
    keeps such values symbolic (measured, torch 2.13), so it is not legacy."""
    if export.kind == "trace":
        return True
    return export.kind == "onnx" and export.exporter == "legacy"


# ---------------------------------------------------------------------- the facts


def forward_facts(ctx: Any, cls: cst.ClassDef) -> Optional[ForwardFacts]:
    return ctx.memo(f"dl3.forward.facts:{id(cls)}", lambda _ctx: _compute(ctx, cls))


def _compute(ctx: Any, cls: cst.ClassDef) -> Optional[ForwardFacts]:
    forward = find_method(ctx, cls, "forward")
    if forward is None:
        return None
    tensor_attrs = _tensor_attributes(ctx, cls)
    methods = _method_names(ctx, cls)
    out = ForwardFacts(cls, [forward], {})
    analyser = _Analyser(ctx, cls, methods, tensor_attrs)
    params = _tensor_params(forward, skip_self=True)
    tensors, optional = analyser.names(forward, params)
    out.tensors[id(forward)] = tensors
    out.facts.extend(analyser.facts(forward, tensors, optional))
    # helpers called from forward, one level
    for call, definition, is_method in analyser.helper_calls(forward, tensors):
        if any(definition is f for f in out.functions):
            continue
        passed = _params_given_tensors(analyser, call, definition, is_method, tensors)
        if not passed:
            continue
        out.functions.append(definition)
        names, optional = analyser.names(definition, passed)
        out.tensors[id(definition)] = names
        out.facts.extend(analyser.facts(definition, names, optional))
    return out


def _tensor_params(function: cst.FunctionDef, skip_self: bool) -> Set[str]:
    params = list(function.params.params) + list(function.params.posonly_params) + list(function.params.kwonly_params)
    out = set()
    for i, param in enumerate(params):
        name = param.name.value
        if skip_self and i == 0 and name in ("self", "cls") and param in function.params.params + function.params.posonly_params:
            continue
        if param.default is not None and not (isinstance(param.default, cst.Name) and param.default.value == "None"):
            continue
        if param.annotation is not None:
            text = cst.Module(body=[]).code_for_node(param.annotation.annotation)
            if text.startswith(_NON_TENSOR_ANNOTATIONS) and "Tensor" not in text:
                continue
        out.add(name)
    return out


def _optional_params(function: cst.FunctionDef) -> Set[str]:
    return {
        p.name.value
        for p in list(function.params.params) + list(function.params.kwonly_params)
        if isinstance(p.default, cst.Name) and p.default.value == "None"
    }


def _params_given_tensors(analyser: "_Analyser", call: cst.Call, definition: cst.FunctionDef, is_method: bool,
                          tensors: Set[str]) -> Set[str]:
    params = list(definition.params.posonly_params) + list(definition.params.params)
    if is_method and params:
        params = params[1:]
    by_name = {p.name.value: p for p in params + list(definition.params.kwonly_params)}
    out = set()
    position = 0
    for arg in call.args:
        if arg.star:
            return set()
        if arg.keyword is not None:
            name = arg.keyword.value
        else:
            if position >= len(params):
                return set()
            name = params[position].name.value
            position += 1
        if name in by_name and analyser.is_tensor(arg.value, tensors):
            out.add(name)
    return out


def _method_names(ctx: Any, cls: cst.ClassDef) -> Dict[str, cst.FunctionDef]:
    from dllint.rules.conversion._export import file_base_classes

    out: Dict[str, cst.FunctionDef] = {}
    for owner in reversed(file_base_classes(ctx, cls)):
        for statement in owner.body.body:
            if isinstance(statement, cst.FunctionDef):
                out[statement.name.value] = statement
    return out


def _tensor_attributes(ctx: Any, cls: cst.ClassDef) -> Set[str]:
    """``self.<name>`` holding tensors: registered buffers, ``nn.Parameter(...)`` and ``torch.*``
    tensors assigned in a method of the class."""
    out: Set[str] = set()
    for node in _walk(cls):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "register_buffer":
            if node.args and isinstance(node.args[0].value, cst.SimpleString):
                out.add(node.args[0].value.evaluated_value)
        elif isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            name = ctx.call_name(node.value) or ""
            if name in ("torch.nn.Parameter", "torch.nn.parameter.Parameter") or (
                name.startswith("torch.") and _torch_returns_tensor(name)
                and not name.startswith("torch.nn.")
            ):
                for target in node.targets:
                    t = target.target
                    if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                        out.add(t.attr.value)
    return out


def _torch_returns_tensor(name: str) -> bool:
    if not name.startswith("torch."):
        return False
    rest = name[len("torch."):]
    if rest.startswith("nn.functional."):
        return True
    if rest.startswith("nn.") or rest.startswith(_NON_TENSOR_TORCH_PREFIXES):
        return False
    if name in VALUE_BOOL_TORCH:
        return False
    return rest[:1].islower() or rest.startswith(("_", "special.", "linalg.", "fft."))


def _walk(node: Any):
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        todo.extend(reversed(list(current.children)))


def _is_self_attr(node: Any, attr: Optional[str] = None) -> bool:
    return (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "self"
        and (attr is None or node.attr.value == attr)
    )


class _Analyser:
    def __init__(self, ctx: Any, cls: cst.ClassDef, methods: Dict[str, cst.FunctionDef], tensor_attrs: Set[str]):
        self.ctx = ctx
        self.cls = cls
        self.methods = methods
        self.tensor_attrs = tensor_attrs

    # ------------------------------------------------------------------ tensors

    def is_tensor(self, expr: Any, tensors: Set[str]) -> bool:
        ctx = self.ctx
        if isinstance(expr, cst.Name):
            return expr.value in tensors
        if isinstance(expr, (cst.SimpleString, cst.Integer, cst.Float, cst.FormattedString)):
            return False
        if isinstance(expr, cst.Attribute):
            if _is_self_attr(expr):
                return expr.attr.value in self.tensor_attrs
            if expr.attr.value in TENSOR_ATTRIBUTES:
                return self.is_tensor(expr.value, tensors)
            return False
        if isinstance(expr, cst.Subscript):
            return self.is_tensor(expr.value, tensors)
        if isinstance(expr, cst.BinaryOperation):
            return self.is_tensor(expr.left, tensors) or self.is_tensor(expr.right, tensors)
        if isinstance(expr, cst.UnaryOperation):
            return not isinstance(expr.operator, cst.Not) and self.is_tensor(expr.expression, tensors)
        if isinstance(expr, cst.Comparison):
            if any(isinstance(t.operator, (cst.Is, cst.IsNot, cst.In, cst.NotIn)) for t in expr.comparisons):
                return False
            return self.is_tensor(expr.left, tensors) or any(
                self.is_tensor(t.comparator, tensors) for t in expr.comparisons
            )
        if isinstance(expr, cst.Call):
            func = expr.func
            name = ctx.call_name(expr)
            if name is not None:
                return _torch_returns_tensor(name)
            if isinstance(func, cst.Attribute):
                if _is_self_attr(func):
                    # self.<submodule>(...) is a tensor; self.<method>(...) is unknown
                    return func.attr.value not in self.methods
                if isinstance(func.value, cst.Subscript) and _is_self_attr(func.value.value):
                    return False
                if func.attr.value in NON_TENSOR_METHODS:
                    return False
                return self.is_tensor(func.value, tensors)
            if isinstance(func, cst.Subscript) and _is_self_attr(func.value):
                return True  # self.layers[i](x)
            return False
        return False

    def names(self, function: cst.FunctionDef, params: Set[str]) -> Tuple[Set[str], Set[str]]:
        """Names holding tensors in ``function`` (two passes, in source order)."""
        tensors = set(params)
        optional = _optional_params(function) & params
        for _ in range(2):
            for node in _walk(function.body):
                if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                    continue
                if isinstance(node, cst.Assign):
                    tensor = self.is_tensor(node.value, tensors) or self._unpack_tensors(node.value, tensors)
                    for target in node.targets:
                        self._bind(target.target, tensor, tensors)
                elif isinstance(node, cst.AnnAssign) and node.value is not None:
                    self._bind(node.target, self.is_tensor(node.value, tensors), tensors)
        return tensors, optional

    def _unpack_tensors(self, value: Any, tensors: Set[str]) -> bool:
        return False

    def _bind(self, target: Any, tensor: bool, tensors: Set[str]) -> None:
        if isinstance(target, cst.Name):
            if tensor:
                tensors.add(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)) and tensor:
            for element in target.elements:
                self._bind(element.value, True, tensors)

    # ------------------------------------------------------------------ helpers called from forward

    def helper_calls(self, function: cst.FunctionDef, tensors: Set[str]):
        for node in _walk(function.body):
            if not isinstance(node, cst.Call):
                continue
            func = node.func
            if _is_self_attr(func) and func.attr.value in self.methods and func.attr.value != "forward":
                yield node, self.methods[func.attr.value], True
            elif isinstance(func, cst.Name):
                bindings = self.ctx.lookup(func.value)
                if bindings and len(bindings) == 1 and isinstance(bindings[0].value, cst.FunctionDef):
                    yield node, bindings[0].value, False

    # ------------------------------------------------------------------ facts

    def facts(self, function: cst.FunctionDef, tensors: Set[str], optional: Set[str]) -> List[Fact]:
        out: List[Fact] = []
        in_test: Set[int] = set()
        self._visit(function.body, function, tensors, optional, False, out, in_test)
        return out

    def _guard(self, test: Any) -> bool:
        for node in _walk(test):
            if _is_self_attr(node, "training"):
                return True
            if isinstance(node, cst.Call):
                name = self.ctx.call_name(node) or dotted_name(node.func) or ""
                if name in _GUARD_QUALNAMES or name.rsplit(".", 1)[-1] in _GUARD_WORDS:
                    return True
            if isinstance(node, (cst.Name, cst.Attribute)):
                text = dotted_name(node) or ""
                last = text.rsplit(".", 1)[-1].lower()
                if last in _GUARD_WORDS:
                    return True
        return False

    def _visit(self, node: Any, function: Any, tensors: Set[str], optional: Set[str], guarded: bool,
               out: List[Fact], in_test: Set[int]) -> None:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return
        if isinstance(node, (cst.If, cst.While)):
            test_guard = self._guard(node.test)
            self._test(node.test, node, function, tensors, optional, guarded or test_guard, out, in_test,
                       "while" if isinstance(node, cst.While) else "if")
            self._visit(node.test, function, tensors, optional, guarded, out, in_test)
            self._visit(node.body, function, tensors, optional, guarded or test_guard, out, in_test)
            if node.orelse is not None:
                self._visit(node.orelse, function, tensors, optional, guarded or test_guard, out, in_test)
            return
        if isinstance(node, cst.IfExp):
            test_guard = self._guard(node.test)
            self._test(node.test, node, function, tensors, optional, guarded or test_guard, out, in_test, "ternary")
            self._visit(node.test, function, tensors, optional, guarded, out, in_test)
            self._visit(node.body, function, tensors, optional, guarded or test_guard, out, in_test)
            self._visit(node.orelse, function, tensors, optional, guarded or test_guard, out, in_test)
            return
        if isinstance(node, cst.For):
            if self._value_iteration(node.iter, tensors):
                out.append(Fact("branch", node.iter, "for", guarded, function))
                for sub in _walk(node.iter):
                    in_test.add(id(sub))
        self._expression_facts(node, function, tensors, guarded, out, in_test)
        if isinstance(node, cst.Call) and _is_logging(node):
            guarded = True  # print / logger calls: a value read only to be shown
        for child in node.children:
            self._visit(child, function, tensors, optional, guarded, out, in_test)

    def _leaves(self, test: Any) -> List[Any]:
        while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            test = test.expression
        if isinstance(test, cst.BooleanOperation):
            return self._leaves(test.left) + self._leaves(test.right)
        return [test]

    def _test(self, test: Any, owner: Any, function: Any, tensors: Set[str], optional: Set[str], guarded: bool,
              out: List[Fact], in_test: Set[int], what: str) -> None:
        for leaf in self._leaves(test):
            if isinstance(leaf, cst.Name) and leaf.value in optional:
                continue  # `if mask:` on an optional argument is a None test
            if self._reads_value(leaf, tensors):
                out.append(Fact("branch", test, what, guarded, function))
                for sub in _walk(test):
                    in_test.add(id(sub))
                return

    def _reads_value(self, leaf: Any, tensors: Set[str]) -> bool:
        """Whether evaluating ``leaf`` as a condition reads tensor values."""
        if isinstance(leaf, cst.Comparison) and any(
            isinstance(t.operator, (cst.Is, cst.IsNot, cst.In, cst.NotIn)) for t in leaf.comparisons
        ):
            return False
        if self.is_tensor(leaf, tensors):
            return True
        for node in _walk(leaf):
            if isinstance(node, cst.Call):
                if self.value_conversion(node, tensors) is not None:
                    return True
                if self.ctx.call_name(node) in VALUE_BOOL_TORCH:
                    return True
        return False

    def _value_iteration(self, iterable: Any, tensors: Set[str]) -> bool:
        if isinstance(iterable, cst.Call):
            name = self.ctx.call_name(iterable) or dotted_name(iterable.func) or ""
            if name == "range":
                return any(self.value_conversion(n, tensors) is not None for n in _walk(iterable) if isinstance(n, cst.Call))
            if name in ("torch.nonzero", "torch.unique", "torch.masked_select", "torch.argwhere"):
                return True
            if isinstance(iterable.func, cst.Attribute) and iterable.func.attr.value in ("nonzero", "unique", "tolist", "masked_select", "argwhere"):
                return self.is_tensor(iterable.func.value, tensors)
        return False

    def value_conversion(self, call: cst.Call, tensors: Set[str]) -> Optional[str]:
        """"item" / "tolist" / "numpy" / "int" / "float" / "bool" when ``call`` converts a tensor
        VALUE to Python (not a size)."""
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in VALUE_METHODS and not call.args:
            return func.attr.value if self.is_tensor(func.value, tensors) else None
        if isinstance(func, cst.Name) and func.value in VALUE_BUILTINS and len(call.args) == 1 and self.ctx.lookup(func.value) is None:
            return func.value if self.is_tensor(call.args[0].value, tensors) else None
        return None

    def shape_conversion(self, call: cst.Call, tensors: Set[str]) -> Optional[str]:
        func = call.func
        if isinstance(func, cst.Name) and self.ctx.lookup(func.value) is None and len(call.args) == 1:
            arg = call.args[0].value
            if func.value in ("int", "float") and self._is_size(arg, tensors):
                return func.value
            if func.value == "len" and self.is_tensor(arg, tensors):
                return "len"
        return None

    def _is_size(self, expr: Any, tensors: Set[str]) -> bool:
        """``x.size(k)`` / ``x.shape[k]`` / ``x.size()[k]`` / ``x.numel()`` of a tensor."""
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            if expr.func.attr.value in ("size", "numel", "dim") and self.is_tensor(expr.func.value, tensors):
                return expr.func.attr.value != "dim"
        if isinstance(expr, cst.Subscript):
            base = expr.value
            if isinstance(base, cst.Attribute) and base.attr.value == "shape":
                return self.is_tensor(base.value, tensors)
            if isinstance(base, cst.Call) and isinstance(base.func, cst.Attribute) and base.func.attr.value == "size" and not base.args:
                return self.is_tensor(base.func.value, tensors)
        return False

    def _expression_facts(self, node: Any, function: Any, tensors: Set[str], guarded: bool, out: List[Fact],
                          in_test: Set[int]) -> None:
        ctx = self.ctx
        if isinstance(node, cst.Call):
            if id(node) not in in_test:
                kind = self.value_conversion(node, tensors)
                if kind is not None:
                    out.append(Fact("value", node, kind, guarded, function))
            kind = self.shape_conversion(node, tensors)
            if kind is not None:
                out.append(Fact("shape", node, kind, guarded, function, statement=node))
            name = ctx.call_name(node)
            if name in RANDOM_TORCH:
                out.append(Fact("random", node, name, guarded, function))
            elif name in DROPOUT_FUNCTIONS:
                if _dropout_live(node):
                    out.append(Fact("random", node, name, guarded, function))
            elif isinstance(node.func, cst.Attribute) and self.is_tensor(node.func.value, tensors):
                attr = node.func.attr.value
                if attr in RANDOM_METHODS:
                    out.append(Fact("random", node, attr, guarded, function))
                elif attr in MASKED_WRITE_METHODS:
                    out.append(Fact("masked_write", node, attr, guarded, function))
        elif isinstance(node, cst.Attribute) and node.attr.value in ("size", "shape"):
            base = node.value
            if isinstance(base, cst.Attribute) and base.attr.value == "data" and self.is_tensor(base.value, tensors):
                out.append(Fact("shape", node, "data." + node.attr.value, guarded, function))
        elif isinstance(node, (cst.ListComp, cst.GeneratorExp, cst.SetComp)):
            pass
        elif isinstance(node, (cst.Assign, cst.AugAssign)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                if isinstance(target, cst.Subscript) and self.is_tensor(target.value, tensors):
                    index = _single_index(target)
                    if index is not None and self.is_tensor(index, tensors):
                        out.append(Fact("masked_write", node, "subscript", guarded, function,
                                        extra=(target.value, index, node.value if isinstance(node, cst.Assign) else None)))
        # [int(s) for s in x.size()] : the comprehension's int(s) converts a size
        if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            for comp in _comp_fors(node.for_in):
                it = comp.iter
                sizes = (
                    isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.attr.value == "size"
                    and not it.args and self.is_tensor(it.func.value, tensors)
                ) or (
                    isinstance(it, cst.Subscript) and isinstance(it.value, cst.Attribute) and it.value.attr.value == "shape"
                    and self.is_tensor(it.value.value, tensors)
                ) or (
                    isinstance(it, cst.Subscript) and isinstance(it.value, cst.Call) and isinstance(it.value.func, cst.Attribute)
                    and it.value.func.attr.value == "size" and self.is_tensor(it.value.func.value, tensors)
                ) or (isinstance(it, cst.Attribute) and it.attr.value == "shape" and self.is_tensor(it.value, tensors))
                elt = node.elt
                if sizes and isinstance(elt, cst.Call) and isinstance(elt.func, cst.Name) and elt.func.value in ("int", "float"):
                    out.append(Fact("shape", node, "comprehension", guarded, function))


_LOG_METHODS = frozenset({"info", "debug", "warning", "warn", "error", "log", "add_scalar", "add_scalars", "print"})


def _is_logging(call: cst.Call) -> bool:
    func = call.func
    if isinstance(func, cst.Name):
        return func.value in ("print", "str", "repr", "format")
    return isinstance(func, cst.Attribute) and func.attr.value in _LOG_METHODS


def _comp_fors(for_in: Any) -> List[cst.CompFor]:
    out = []
    while for_in is not None:
        out.append(for_in)
        for_in = for_in.inner_for_in
    return out


def _single_index(target: cst.Subscript) -> Any:
    if len(target.slice) != 1:
        return None
    element = target.slice[0].slice
    return element.value if isinstance(element, cst.Index) else None


def _dropout_live(call: cst.Call) -> bool:
    """``F.dropout(x, p)`` runs in training mode (its ``training`` defaults to True) unless p is 0."""
    training = None
    for i, arg in enumerate(call.args):
        if arg.keyword is not None and arg.keyword.value == "training":
            training = arg.value
        elif arg.keyword is None and i == 2:
            training = arg.value
        if (arg.keyword is not None and arg.keyword.value == "p") or (arg.keyword is None and i == 1):
            if isinstance(arg.value, (cst.Integer, cst.Float)) and float(arg.value.value) == 0.0:
                return False
    if training is None:
        return True
    return isinstance(training, cst.Name) and training.value == "True"


__all__ = [
    "Export",
    "Fact",
    "ForwardFacts",
    "exports",
    "exports_by_class",
    "forward_facts",
    "legacy_semantics",
    "note_export",
    "shapes_dynamic",
]
