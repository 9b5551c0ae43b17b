"""The semantic layer every rule shares, built during the engine's single walk of a tree.

It answers, cheaply and without libcst's metadata providers:

* the qualified name of a call or attribute through imports and aliases
  (``import torch.nn.functional as F`` -> ``F.softmax`` is ``torch.nn.functional.softmax``),
  with local rebindings (parameters, assignments) shadowing imports;
* which deep-learning frameworks the file imports;
* the single reaching assignment of a local name (``p = F.softmax(x); torch.log(p)``);
* the chain of ancestors of the node being visited;
* source positions of nodes (computed on demand by one code generation pass);
* astroid inference, loaded lazily for the rare question that needs it.

The Context registers its own ``visit_``/``leave_`` handlers with the engine, which runs them
before the rules' visit handlers and after their leave handlers, so while a rule looks at a
node the Context describes everything that came before it in source order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

import libcst as cst

#: Top-level packages recognised as deep-learning frameworks (and their close friends).
FRAMEWORKS = {
    "torch": "torch",
    "torchvision": "torch",
    "torchao": "torch",
    "tensorflow": "tensorflow",
    "tf_keras": "keras",
    "keras": "keras",
    "tensorflow_model_optimization": "tensorflow",
    "tf2onnx": "tensorflow",
    "transformers": "transformers",
    "numpy": "numpy",
    "scipy": "numpy",
    "jax": "jax",
    "onnx": "onnx",
    "onnxruntime": "onnx",
}


@dataclass
class Binding:
    """One way a name got a value in a scope."""

    kind: str  # "import", "assign", "unpack", "param", "other"
    value: Any = None  # qualified name (import) or the assigned expression
    index: Optional[int] = None  # position inside a tuple target (unpack)

    def expression(self) -> Optional[Any]:
        """The expression this binding gave the name, when it is known: the assigned value, or
        the matching element of an unpacked tuple / list literal."""
        if self.kind == "assign":
            return self.value
        if self.kind == "unpack" and isinstance(self.value, (cst.Tuple, cst.List)):
            elements = self.value.elements
            if self.index is not None and self.index < len(elements) and not any(
                isinstance(e, cst.StarredElement) for e in elements
            ):
                return elements[self.index].value
        return None


@dataclass
class Event:
    """One thing that happens to an object (a dotted name such as ``model`` or ``self.net``)
    inside one function, in evaluation order (``order``; inner calls before outer ones)."""

    kind: str  # "method" (m.eval()), "called" (m(x)), "argument" (f(m)), "assign" (m = ...), "setattr" (m.qconfig = ...)
    name: Optional[str]  # the method or attribute name; for "argument" the callee's dotted or qualified name
    node: Any  # the Call, or the assignment statement
    order: int
    loop: Optional[Any] = None  # innermost enclosing for / while loop inside the function, if any
    value: Any = None  # assign / setattr: the assigned expression


class Scope:
    __slots__ = ("kind", "node", "bindings", "returns", "guards", "attributes")

    def __init__(self, kind: str, node: Any) -> None:
        self.kind = kind  # "module", "class", "function", "lambda"
        self.node = node
        self.bindings: Dict[str, List[Binding]] = {}
        #: functions: the values of its own ``return`` statements
        self.returns: List[Any] = []
        #: dotted names an ``assert`` or an early-exit ``if`` has checked so far
        self.guards: Set[str] = set()
        #: classes: ``self.<name>`` assignments made in its methods
        self.attributes: Dict[str, List[Any]] = {}

    def bind(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


def dotted_name(node: Any) -> Optional[str]:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def names_in(node: Any) -> Set[str]:
    """Dotted names (``d``, ``self.count``) mentioned anywhere in an expression."""
    found: Set[str] = set()
    todo = [node]
    while todo:
        current = todo.pop()
        name = dotted_name(current)
        if name is not None:
            found.add(name)
            if isinstance(current, cst.Name):
                continue
        if isinstance(current, cst.CSTNode):
            todo.extend(children(current))
    return found


def children(node: Any) -> List[Any]:
    """A node's child nodes without libcst's ``children`` property (which runs a visitor)."""
    from dllint.walk import child_fields

    out: List[Any] = []
    for name in child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, cst.CSTNode))
    return out


def guard_names(test: Any) -> Set[str]:
    """Names a test checks the value of; a name only compared with ``is None`` / ``is not
    None`` is not checked (the test says nothing about it being zero)."""
    names = names_in(test)
    none_only: Set[str] = set()
    todo = [test]
    while todo:
        current = todo.pop()
        if isinstance(current, cst.Comparison):
            if all(
                isinstance(t.operator, (cst.Is, cst.IsNot)) and isinstance(t.comparator, cst.Name)
                and t.comparator.value == "None"
                for t in current.comparisons
            ):
                none_only |= names_in(current.left)
        elif isinstance(current, cst.BooleanOperation):
            todo += [current.left, current.right]
        elif isinstance(current, cst.UnaryOperation):
            todo.append(current.expression)
    other: Set[str] = set()
    todo = [test]
    while todo:  # names that also appear outside the None comparisons stay checked
        current = todo.pop()
        if isinstance(current, cst.Comparison) and current.left is not None and all(
            isinstance(t.operator, (cst.Is, cst.IsNot)) for t in current.comparisons
        ):
            continue
        if isinstance(current, (cst.BooleanOperation,)):
            todo += [current.left, current.right]
        elif isinstance(current, cst.UnaryOperation):
            todo.append(current.expression)
        else:
            other |= names_in(current)
    return (names - none_only) | other


def _exits(statement: Any) -> bool:
    """Whether a statement always leaves the block (return, raise, continue, break)."""
    if isinstance(statement, cst.SimpleStatementLine):
        return any(isinstance(s, (cst.Return, cst.Raise, cst.Continue, cst.Break)) for s in statement.body)
    return False


def _module_name(node: Any) -> str:
    return dotted_name(node) or ""


class Context:
    """Facts about one file, filled in during the walk."""

    def __init__(
        self,
        module: cst.Module,
        source: str,
        path: str = "<string>",
        target_versions: Optional[Dict[str, str]] = None,
    ) -> None:
        self.module = module
        self.source = source
        self.path = path
        self.target_versions = dict(target_versions or {})
        self.frameworks: Set[str] = set()
        self.imported_modules: Set[str] = set()
        #: Ancestors of the node being visited or left, outermost first; the node itself is not
        #: on it while its own visit and leave handlers run (it is while its children are walked).
        self.stack: List[cst.CSTNode] = []
        self.scopes: List[Scope] = [Scope("module", module)]
        self._positions: Optional[Dict[int, Tuple[int, int, int, int]]] = None
        self._positions_complete = False
        #: per-file facts that rule helpers compute once (see memo())
        self._memo: Dict[str, Any] = {}
        #: id(FunctionDef) -> the values its return statements return (after it was walked)
        self.function_returns: Dict[int, List[Any]] = {}
        self._astroid: Any = None
        self._astroid_failed = False
        self._prescan_imports(module.body)

    # ------------------------------------------------------------------ imports

    def _prescan_imports(self, body: Iterable[Any]) -> None:
        """Record module-level imports (also under if/try) before the walk starts, so a
        function defined above an import still resolves names through it."""
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, (cst.Import, cst.ImportFrom)):
                        self._record_import(small, self.scopes[0])
            elif isinstance(stmt, cst.If):
                self._prescan_imports(stmt.body.body)
                orelse = stmt.orelse
                while orelse is not None:
                    self._prescan_imports(orelse.body.body)
                    orelse = getattr(orelse, "orelse", None)
            elif isinstance(stmt, cst.Try):
                self._prescan_imports(stmt.body.body)
                for handler in stmt.handlers:
                    self._prescan_imports(handler.body.body)

    def _record_import(self, node: Any, scope: Scope) -> None:
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = _module_name(alias.name)
                self._note_module(full)
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    scope.bind(alias.asname.name.value, Binding("import", full))
                else:
                    top = full.split(".")[0]
                    scope.bind(top, Binding("import", top))
        elif isinstance(node, cst.ImportFrom):
            if node.relative:
                return
            base = _module_name(node.module) if node.module is not None else ""
            self._note_module(base)
            if isinstance(node.names, cst.ImportStar):
                return
            for alias in node.names:
                name = _module_name(alias.name)
                local = name
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    local = alias.asname.name.value
                scope.bind(local, Binding("import", f"{base}.{name}" if base else name))

    def _note_module(self, full: str) -> None:
        if not full:
            return
        self.imported_modules.add(full)
        top = full.split(".")[0]
        if top in FRAMEWORKS:
            self.frameworks.add(FRAMEWORKS[top])

    def memo(self, key: str, compute: Any) -> Any:
        """A per-file fact shared by rules: ``compute(self)`` runs once per file and key."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        return self._memo[key]

    def object_events(self, node: Optional[Any] = None) -> Dict[str, List["Event"]]:
        """What happens to each object in one function (default: the innermost enclosing one, or
        the module's top-level code), as an ordered list of Events per dotted name: method calls,
        calls of the object, uses as an argument, assignments to it and to its attributes.
        Nested functions and classes are not entered.  Computed once per function, on demand."""
        if node is None:
            node = self.function() or self.module
        return self.memo(f"events:{id(node)}", lambda ctx: _object_events(ctx, node))

    def target_version(self, package: str) -> Optional[Tuple[int, ...]]:
        """The newest release of ``package`` this file targets: the config's ``target-versions``,
        else the project's pins (requirements, pyproject, setup, environment files); None when
        nothing bounds it, which rules read as the newest release."""
        from dllint.versions import notebook_code, target_version

        def compute(ctx: "Context") -> Optional[Tuple[int, ...]]:
            source = ctx.memo("versions.own_source", lambda c: notebook_code(c.path) or c.source)
            return target_version(package, ctx.target_versions, ctx.path, source)

        return self.memo(f"target_version:{package}", compute)

    def imports(self, framework: str) -> bool:
        """Whether the file imports ``framework`` (torch, tensorflow, keras, transformers, numpy...)."""
        return framework in self.frameworks

    # ------------------------------------------------------------------ scopes

    @property
    def scope(self) -> Scope:
        return self.scopes[-1]

    def function(self) -> Optional[cst.CSTNode]:
        """The innermost enclosing function definition, if any."""
        for scope in reversed(self.scopes):
            if scope.kind == "function":
                return scope.node
        return None

    def enclosing_class(self) -> Optional[cst.ClassDef]:
        for scope in reversed(self.scopes):
            if scope.kind == "class":
                return scope.node
        return None

    def lookup(self, name: str) -> Optional[List[Binding]]:
        """Bindings of ``name`` in the innermost scope that binds it (class scopes are only
        visible from their own body, as in Python)."""
        innermost = True
        for scope in reversed(self.scopes):
            if scope.kind == "class" and not innermost:
                continue
            innermost = False
            found = scope.bindings.get(name)
            if found:
                return found
        return None

    def _bind_target(self, target: Any, value: Any, kind: str = "assign") -> None:
        scope = self.scope
        if isinstance(target, cst.Name):
            scope.bind(target.value, Binding(kind, value))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for i, element in enumerate(target.elements):
                inner = element.value
                if isinstance(element, cst.StarredElement):
                    self._bind_target(inner, None, "other")
                elif isinstance(inner, cst.Name) and kind == "assign":
                    scope.bind(inner.value, Binding("unpack", value, i))
                else:
                    self._bind_target(inner, None, "other")
        elif isinstance(target, cst.StarredElement):
            self._bind_target(target.value, None, "other")
        # attributes and subscripts bind no local name

    # --- handlers the engine calls (the Context sees nodes before the rules do) ---

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope.bind(node.name.value, Binding("other", node))
        scope = Scope("function", node)
        params = node.params
        for param in (
            list(params.posonly_params)
            + list(params.params)
            + list(params.kwonly_params)
            + [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
        ):
            scope.bind(param.name.value, Binding("param", param))
        self.scopes.append(scope)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        scope = self.scopes.pop()
        self.function_returns[id(node)] = scope.returns

    def visit_Return(self, node: cst.Return) -> None:
        for scope in reversed(self.scopes):
            if scope.kind == "function":
                scope.returns.append(node.value)
                return
            if scope.kind == "lambda":
                return

    def visit_Assert(self, node: cst.Assert) -> None:
        self._guard_scope().guards.update(guard_names(node.test))

    def leave_If(self, node: cst.If) -> None:
        # ``if d == 0: return / raise / continue / break`` guards the rest of the block
        body = node.body.body
        if node.orelse is None and body and _exits(body[-1]):
            self._guard_scope().guards.update(guard_names(node.test))

    def _guard_scope(self) -> "Scope":
        for scope in reversed(self.scopes):
            if scope.kind in ("function", "module"):
                return scope
        return self.scopes[0]

    def visit_Lambda(self, node: cst.Lambda) -> None:
        scope = Scope("lambda", node)
        params = node.params
        for param in list(params.posonly_params) + list(params.params) + list(params.kwonly_params):
            scope.bind(param.name.value, Binding("param", param))
        self.scopes.append(scope)

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self.scopes.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scope.bind(node.name.value, Binding("other", node))
        self.scopes.append(Scope("class", node))

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.scopes.pop()

    def visit_Import(self, node: cst.Import) -> None:
        if self.scope.kind != "module":
            self._record_import(node, self.scope)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if self.scope.kind != "module":
            self._record_import(node, self.scope)

    def leave_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind_target(target.target, node.value)
            if isinstance(target.target, cst.Attribute):
                self._bind_attribute(target.target, node.value)
            elif isinstance(target.target, (cst.Tuple, cst.List)):
                for element in target.target.elements:
                    if isinstance(element.value, cst.Attribute):
                        self._bind_attribute(element.value, None)

    def _self_class(self, receiver: Any) -> Optional[Scope]:
        """The class scope whose instance ``receiver`` (the method's first parameter) is."""
        if not isinstance(receiver, cst.Name):
            return None
        for i in range(len(self.scopes) - 1, 0, -1):
            scope = self.scopes[i]
            if scope.kind == "function":
                owner = self.scopes[i - 1]
                params = scope.node.params.params
                if owner.kind == "class" and params and params[0].name.value == receiver.value:
                    return owner
                return None
        return None

    def _bind_attribute(self, target: cst.Attribute, value: Any) -> None:
        owner = self._self_class(target.value)
        if owner is not None:
            owner.attributes.setdefault(target.attr.value, []).append(value)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind_target(node.target, node.value)

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind_target(node.target, None, "other")
        if isinstance(node.target, cst.Attribute):
            self._bind_attribute(node.target, None)

    def leave_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind_target(node.target, node.value)

    def visit_For(self, node: cst.For) -> None:
        self._bind_target(node.target, None, "other")

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind_target(node.target, None, "other")

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind_target(node.asname.name, None, "other")

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._bind_target(node.name.name, None, "other")

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self.scope.bind(item.name.value, Binding("other"))

    visit_Nonlocal = visit_Global

    # ------------------------------------------------------------------ questions for rules

    def qualname(self, node: Any, _depth: int = 0) -> Optional[str]:
        """The qualified name a Name / Attribute chain refers to, through imports and aliases;
        None when it does not come from an import (a local variable, a parameter...)."""
        if isinstance(node, cst.Call):
            return None
        if isinstance(node, cst.Attribute):
            base = self.qualname(node.value, _depth)
            return f"{base}.{node.attr.value}" if base else None
        if isinstance(node, cst.Name):
            bindings = self.lookup(node.value)
            if not bindings:
                return None
            last = bindings[-1]
            if last.kind == "import":
                return last.value
            if (
                last.kind == "assign"
                and len(bindings) == 1
                and _depth < 4
                and isinstance(last.value, (cst.Name, cst.Attribute))
            ):
                return self.qualname(last.value, _depth + 1)
            return None
        return None

    def call_name(self, call: Any) -> Optional[str]:
        """Qualified name of the function a Call node calls."""
        if isinstance(call, cst.Call):
            return self.qualname(call.func)
        return None

    def assigned_value(self, node: Any) -> Optional[Any]:
        """The value expression of the single reaching assignment of a Name (or of ``self.x``
        inside a method: the single ``self.x = ...`` of the class), else None: several
        assignments so far, a parameter, a loop variable, an import...  Unpacking a tuple
        literal (``a, b = f(x), g(x)``) gives the matching element; unpacking anything else
        gives None."""
        if isinstance(node, cst.Attribute):
            owner = self._self_class(node.value)
            if owner is None:
                return None
            values = owner.attributes.get(node.attr.value)
            return values[0] if values and len(values) == 1 else None
        if not isinstance(node, cst.Name):
            return None
        bindings = self.lookup(node.value)
        if not bindings or len(bindings) != 1:
            return None
        return bindings[0].expression()

    def returned_value(self, call: Any) -> Optional[Any]:
        """For a call of a function defined (and already walked) in this file with exactly one
        ``return <value>``, that value: ``def predict(x): return F.softmax(...)``.  Methods
        are found through ``self.method(...)``."""
        if not isinstance(call, cst.Call):
            return None
        func = call.func
        definition = None
        if isinstance(func, cst.Name):
            bindings = self.lookup(func.value)
            if bindings and len(bindings) == 1 and isinstance(bindings[0].value, cst.FunctionDef):
                definition = bindings[0].value
        elif isinstance(func, cst.Attribute):
            owner = self._self_class(func.value)
            if owner is not None:
                bindings = owner.bindings.get(func.attr.value)
                if bindings and len(bindings) == 1 and isinstance(bindings[0].value, cst.FunctionDef):
                    definition = bindings[0].value
        if definition is None:
            return None
        returns = self.function_returns.get(id(definition))
        if returns and len(returns) == 1 and returns[0] is not None:
            return returns[0]
        return None

    def resolve(self, node: Any, depth: int = 3) -> Any:
        """Follow a value back through single reaching assignments, ``self.x`` attributes and
        one level of a helper's return (up to ``depth`` steps) to the expression that produced
        it; returns the node itself when it cannot."""
        helper_used = False
        for _ in range(depth):
            # after following a helper's return, its local names mean nothing in this scope
            value = None if helper_used and isinstance(node, cst.Name) else self.assigned_value(node)
            if value is None and not helper_used:
                value = self.returned_value(node)
                helper_used = value is not None
            if value is None:
                return node
            node = value
        return node

    def is_guarded(self, node: Any) -> bool:
        """Whether a check on ``node`` (a name or ``self.x`` chain) protects this point: an
        enclosing ``if`` / conditional expression / ``while`` / ``and`` whose test mentions
        it, or an earlier ``assert`` or early-exit ``if`` in the same function."""
        name = dotted_name(node)
        if name is None:
            return False
        if name in self._guard_scope().guards:
            return True
        for ancestor in self.stack:
            test = None
            if isinstance(ancestor, (cst.If, cst.While, cst.IfExp)):
                test = ancestor.test
            elif isinstance(ancestor, cst.BooleanOperation):
                test = ancestor.left
            if test is not None and name in guard_names(test):
                return True
        return False

    def in_no_grad(self) -> bool:
        """Inside ``with torch.no_grad()`` / ``inference_mode()`` / ``set_grad_enabled(False)``,
        or a function decorated with ``@torch.no_grad()`` / ``@torch.inference_mode()``."""
        for ancestor in self.stack:
            if isinstance(ancestor, cst.With):
                for item in ancestor.items:
                    if self._no_grad_call(item.item):
                        return True
            elif isinstance(ancestor, cst.FunctionDef):
                for decorator in ancestor.decorators:
                    if self._no_grad_call(decorator.decorator):
                        return True
        return False

    def _no_grad_call(self, node: Any) -> bool:
        func = node.func if isinstance(node, cst.Call) else node
        name = self.qualname(func)
        if name in ("torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
                    "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode"):
            return True
        if name in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled") and isinstance(node, cst.Call):
            arg = self.argument(node, 0, "mode")
            return isinstance(arg, cst.Name) and arg.value == "False"
        return False

    def keyword(self, call: cst.Call, name: str) -> Optional[cst.Arg]:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == name:
                return arg
        return None

    def argument(self, call: cst.Call, position: int, name: Optional[str] = None) -> Optional[Any]:
        """The value passed as positional ``position`` or as keyword ``name``."""
        if name is not None:
            kw = self.keyword(call, name)
            if kw is not None:
                return kw.value
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if position < len(positional):
            return positional[position].value
        return None

    def has_star_args(self, call: cst.Call) -> bool:
        return any(a.star for a in call.args)

    def parent(self, levels: int = 1) -> Optional[cst.CSTNode]:
        """The ancestor ``levels`` above the node whose handler is running (1: its parent)."""
        return self.stack[-levels] if 0 < levels <= len(self.stack) else None

    def reference_to(self, qualified: str) -> Optional[str]:
        """Source text that refers to ``qualified`` with this file's imports (``F.log_softmax``
        for ``torch.nn.functional.log_softmax`` after ``import torch.nn.functional as F``), or
        None when no import in scope reaches it."""
        best: Optional[Tuple[int, str]] = None
        for scope in self.scopes:
            if scope.kind == "class" and scope is not self.scopes[-1]:
                continue
            for local, bindings in scope.bindings.items():
                last = bindings[-1]
                if last.kind != "import":
                    continue
                target = last.value
                if qualified == target or qualified.startswith(target + "."):
                    # the innermost live binding of ``local`` must be this import
                    live = self.lookup(local)
                    if not live or live[-1] is not last:
                        continue
                    text = local + qualified[len(target):]
                    if best is None or len(target) > best[0]:
                        best = (len(target), text)
        return best[1] if best else None

    # ------------------------------------------------------------------ positions

    def position(self, node: Any) -> Optional[Tuple[int, int, int, int]]:
        """(line, col, end_line, end_col) of a node, 1-based line, 0-based column.  Computes
        positions in one code generation pass the first time it is asked (see locate())."""
        if self._positions is None or (id(node) not in self._positions and not self._positions_complete):
            self._positions = compute_positions(self.module)
            self._positions_complete = True
        return self._positions.get(id(node))

    def locate(self, nodes: Iterable[Any]) -> None:
        """Compute the positions of ``nodes`` in one pass that stops as soon as the last of
        them is reached (code generation of the rest of a long file is skipped)."""
        targets = {id(n) for n in nodes if n is not None}
        if self._positions is not None and all(t in self._positions for t in targets):
            return
        self._positions = compute_positions(self.module, targets)
        self._positions_complete = not targets

    # ------------------------------------------------------------------ astroid (lazy)

    def astroid_module(self) -> Any:
        """The file as an astroid module, built on first use; None when astroid cannot read it."""
        if self._astroid is None and not self._astroid_failed:
            try:
                import astroid

                self._astroid = astroid.parse(self.source, path=self.path)
            except Exception:  # astroid cannot read all syntax: degrade to "unknown"
                self._astroid_failed = True
        return self._astroid

    def infer(self, node: Any) -> List[Any]:
        """astroid's inferred values for the expression ``node`` (an empty list when unknown)."""
        tree = self.astroid_module()
        pos = self.position(node)
        if tree is None or pos is None:
            return []
        line, col, end_line, end_col = pos
        try:
            for candidate in tree.nodes_of_class(_astroid_expr_types()):
                if (
                    candidate.lineno == line
                    and candidate.col_offset == col
                    and candidate.end_lineno == end_line
                    and candidate.end_col_offset == end_col
                ):
                    import astroid

                    return [v for v in candidate.infer() if v is not astroid.Uninferable]
        except Exception:
            return []
        return []


def _astroid_expr_types() -> Tuple[type, ...]:
    import astroid.nodes as n

    return (n.Call, n.Name, n.Attribute, n.Subscript, n.BinOp, n.Const)


# ---------------------------------------------------------------------- positions

from libcst._nodes.internal import CodegenState as _CodegenState  # noqa: E402


class _PositionState(_CodegenState):  # type: ignore[misc]
    """A code generation state that tracks line and column, recording each node's range."""

    def __init__(self, module: cst.Module) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line = 1
        self.column = 0
        self.starts: List[Tuple[int, int]] = []
        self.ranges: Dict[int, Tuple[int, int, int, int]] = {}
        self.waiting: Optional[Set[int]] = None

    def _advance(self, value: str) -> None:
        newlines = value.count("\n")
        if newlines:
            self.line += newlines
            self.column = len(value) - value.rfind("\n") - 1
        elif "\r" in value:
            # a lone carriage return ends a line too
            self.line += value.count("\r")
            self.column = len(value) - value.rfind("\r") - 1
        else:
            self.column += len(value)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self._advance(value)

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.tokens.append(token)
            self._advance(token)

    def before_codegen(self, node: Any) -> None:
        self.starts.append((self.line, self.column))

    def after_codegen(self, node: Any) -> None:
        line, col = self.starts.pop()
        key = id(node)
        if key not in self.ranges:
            self.ranges[key] = (line, col, self.line, self.column)
        if self.waiting is not None and key in self.waiting:
            self.waiting.discard(key)
            if not self.waiting:
                raise _AllLocated

    from contextlib import contextmanager as _cm

    @_cm
    def record_syntactic_position(
        self, node: Any, *, start_node: Any = None, end_node: Any = None
    ) -> Iterator[None]:
        start = (self.line, self.column)
        try:
            yield
        finally:
            end = (self.line, self.column)
            if start_node is not None and id(start_node) in self.ranges:
                start = self.ranges[id(start_node)][:2]
            if end_node is not None and id(end_node) in self.ranges:
                end = self.ranges[id(end_node)][2:]
            self.ranges[id(node)] = (start[0], start[1], end[0], end[1])


class _AllLocated(Exception):
    """Raised inside code generation once every wanted node has its position."""


def compute_positions(module: cst.Module, targets: Optional[Set[int]] = None) -> Dict[int, Tuple[int, int, int, int]]:
    """Syntactic (line, col, end_line, end_col) of the nodes of ``module``, keyed by id(): of
    every node, or, with ``targets``, of every node up to the last target in source order."""
    state = _PositionState(module)
    if targets:
        state.waiting = set(targets)
    try:
        module._codegen(state)
    except _AllLocated:
        pass
    return state.ranges


def _object_events(ctx: "Context", root: Any) -> Dict[str, List[Event]]:
    events: Dict[str, List[Event]] = {}
    counter = [0]

    def add(name: Optional[str], event: Event) -> None:
        if name is not None:
            events.setdefault(name, []).append(event)

    def walk(node: Any, loop: Optional[Any]) -> None:
        stack: List[Tuple[Any, Optional[Any], bool]] = [(node, loop, False)]
        while stack:
            current, current_loop, done = stack.pop()
            if done:
                counter[0] += 1
                note(current, current_loop, counter[0])
                continue
            stack.append((current, current_loop, True))
            inner_loop = current if isinstance(current, (cst.For, cst.While)) else current_loop
            for child in reversed(children(current)):
                if isinstance(child, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                    continue
                stack.append((child, inner_loop, False))

    def note(node: Any, loop: Optional[Any], order: int) -> None:
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute):
                add(dotted_name(func.value), Event("method", func.attr.value, node, order, loop))
            else:
                add(dotted_name(func), Event("called", None, node, order, loop))
            callee = ctx.qualname(func) or dotted_name(func)
            for arg in node.args:
                add(dotted_name(arg.value), Event("argument", callee, node, order, loop))
        elif isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                elements = target.elements if isinstance(target, (cst.Tuple, cst.List)) else [None]
                for element in elements:
                    item = target if element is None else element.value
                    value = node.value if element is None else None
                    add(dotted_name(item), Event("assign", None, node, order, loop, value))
                    if isinstance(item, cst.Attribute):
                        add(dotted_name(item.value), Event("setattr", item.attr.value, node, order, loop, value))

    body = root.body if isinstance(root, (cst.FunctionDef, cst.Module)) else root
    if isinstance(root, cst.Module):
        for statement in root.body:
            if not isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
                walk(statement, None)
    else:
        walk(body, None)
    return events
