"""Facts about TensorFlow Model Optimization (TFMOT) code shared by DL209, DL210 and DL216.

Spellings: ``import tensorflow_model_optimization as tfmot`` (``tfmot.sparsity.keras.prune_low_magnitude``),
``from tensorflow_model_optimization.sparsity import keras as sparsity`` (older tutorials), and the
internal modules ``tensorflow_model_optimization.python.core.sparsity.keras.prune`` /
``pruning_callbacks``; every one is recognised by its last component under the
``tensorflow_model_optimization`` package.

Which Keras builds a model (checked against TFMOT 0.8.1's ``python/core/keras/compat.py`` and the
catalogue's measurements with TF 2.21 / Keras 3.15 / tf_keras 2.21): ``import keras`` is Keras 3 when
Keras >= 3 is installed; ``tf.keras`` is Keras 3 on TF >= 2.16 unless ``TF_USE_LEGACY_KERAS=1`` is
in the environment when ``tf.keras`` is first used, and importing ``tensorflow_model_optimization``
sets that variable itself, so a ``tf.keras`` first used after the TFMOT import is tf_keras;
``tf_keras`` and TFMOT's own ``compat.keras`` are Keras 2.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import libcst as cst

from dllint.context import dotted_name

TFMOT = "tensorflow_model_optimization"

#: Public and internal homes of the names the rules write into fixes (first found wins).
UPDATE_STEP_HOMES = (
    "tensorflow_model_optimization.sparsity.keras.UpdatePruningStep",
    "tensorflow_model_optimization.python.core.sparsity.keras.pruning_callbacks.UpdatePruningStep",
    "tensorflow_model_optimization.python.core.api.sparsity.keras.UpdatePruningStep",
)
STRIP_HOMES = (
    "tensorflow_model_optimization.sparsity.keras.strip_pruning",
    "tensorflow_model_optimization.python.core.sparsity.keras.prune.strip_pruning",
    "tensorflow_model_optimization.python.core.api.sparsity.keras.strip_pruning",
)

#: Keras model classes whose list argument may hold pruned layers.
SEQUENTIAL_NAMES = ("Sequential",)


def tfmot_api(ctx: Any, func: Any) -> Optional[str]:
    """``prune_low_magnitude`` for any spelling of a TFMOT function or class; else None."""
    name = ctx.qualname(func)
    if name and name.startswith(TFMOT + "."):
        return name.rsplit(".", 1)[-1]
    return None


def is_tfmot_call(ctx: Any, node: Any, *names: str) -> bool:
    return isinstance(node, cst.Call) and tfmot_api(ctx, node.func) in names


def reference(ctx: Any, homes: Tuple[str, ...]) -> Tuple[str, Tuple[str, ...]]:
    """Source text for a TFMOT name with this file's imports, and the imports it needs."""
    for home in homes:
        text = ctx.reference_to(home)
        if text:
            return text, ()
    return homes[0], (TFMOT,)


# ---------------------------------------------------------------------- walking helpers


def walk(node: Any, enter_functions: bool = False) -> Iterator[Any]:
    """Every node under ``node`` (itself included), without entering nested functions,
    lambdas and classes unless asked."""
    from dllint.context import children

    todo = [node]
    first = True
    while todo:
        current = todo.pop()
        yield current
        if not first and not enter_functions and isinstance(current, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            continue
        first = False
        todo.extend(reversed(children(current)))


def module_function(ctx: Any, name: str) -> Optional[cst.FunctionDef]:
    """A function defined once at module level under ``name``."""
    bindings = ctx.scopes[0].bindings.get(name)
    if bindings and len(bindings) == 1 and isinstance(bindings[0].value, cst.FunctionDef):
        return bindings[0].value
    return None


def assignments_in(function: Any, name: str) -> List[Any]:
    """Values assigned to the plain name ``name`` in a function's own body, in source order;
    ``None`` for a binding whose value is unknown (loop target, augmented assignment...)."""
    out: List[Any] = []
    for node in walk(function.body):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name) and target.target.value == name:
                    out.append(node.value)
                elif name in _target_names(target.target):
                    out.append(None)
        elif isinstance(node, (cst.AugAssign, cst.For)) and name in _target_names(node.target):
            out.append(None)
        elif isinstance(node, cst.AnnAssign) and isinstance(node.target, cst.Name) and node.target.value == name:
            out.append(node.value)
    return out


def _target_names(target: Any) -> List[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _target_names(e.value)]
    return []


def returns_of(function: Any) -> List[Any]:
    return [n.value for n in walk(function.body) if isinstance(n, cst.Return)]


# ---------------------------------------------------------------------- pruned models


def pruning_call(ctx: Any, value: Any, depth: int = 0) -> Optional[cst.Call]:
    """The ``prune_low_magnitude(...)`` call whose result ``value`` is (or contains, for a
    ``Sequential([...])`` literal of layers), following single assignments and one local helper
    function's return; None when it is not one or cannot be told."""
    if value is None or depth > 4:
        return None
    if isinstance(value, cst.Call):
        if is_tfmot_call(ctx, value, "prune_low_magnitude"):
            return value
        qualified = ctx.qualname(value.func) or ""
        if qualified.rsplit(".", 1)[-1] in SEQUENTIAL_NAMES and value.args:
            layers = value.args[0].value
            if isinstance(layers, (cst.List, cst.Tuple)):
                for element in layers.elements:
                    if is_tfmot_call(ctx, element.value, "prune_low_magnitude"):
                        return element.value
            return None
        if isinstance(value.func, cst.Name) and depth < 2:
            helper = module_function(ctx, value.func.value)
            if helper is not None:
                return _helper_pruning(ctx, helper, depth)
        return None
    if isinstance(value, cst.Name):
        return pruning_call(ctx, ctx.assigned_value(value), depth + 1)
    return None


def _helper_pruning(ctx: Any, helper: Any, depth: int) -> Optional[cst.Call]:
    """A helper whose every return gives a pruned model."""
    returns = [r for r in returns_of(helper) if r is not None]
    if not returns:
        return None
    found = None
    for value in returns:
        if isinstance(value, cst.Name):
            assigned = assignments_in(helper, value.value)
            if not assigned or assigned[-1] is None:
                return None
            call = pruning_call(ctx, assigned[-1], depth + 2)
        else:
            call = pruning_call(ctx, value, depth + 2)
        if call is None:
            return None
        found = found or call
    return found


def last_assignment(ctx: Any, name: str, order: int, function: Any = None) -> Tuple[bool, Any]:
    """(known, value) of the last assignment to the dotted ``name`` before event ``order`` in
    the function being visited (or the module's top level).  When the function never assigns
    it, the single module-level assignment of a global name is used."""
    events = ctx.object_events(function).get(name, [])
    value: Any = None
    known = False
    for event in events:
        if event.order >= order:
            break
        if event.kind == "assign":
            known = True
            value = event.value
    if known:
        return True, value
    if "." not in name and (function is not None or ctx.function() is not None):
        bindings = ctx.scopes[0].bindings.get(name)
        if bindings and len(bindings) == 1 and bindings[0].kind == "assign":
            return True, bindings[0].value
    return False, None


def event_of(ctx: Any, name: str, node: Any, function: Any = None) -> Optional[Any]:
    for event in ctx.object_events(function).get(name, []):
        if event.node is node:
            return event
    return None


def pruned_at(ctx: Any, name: str, node: Any) -> Optional[cst.Call]:
    """The prune call whose result the object ``name`` holds when ``node`` (a call in the
    function being visited that uses it) runs."""
    event = event_of(ctx, name, node)
    if event is None:
        return None
    known, value = last_assignment(ctx, name, event.order)
    if not known:
        return None
    return pruning_call(ctx, value)


# ---------------------------------------------------------------------- Keras flavour


def keras_family(qualified: Optional[str]) -> Optional[str]:
    """"keras" (the standalone package), "tf.keras" or "tf_keras" for a qualified name."""
    if not qualified:
        return None
    if qualified.startswith("keras."):
        return "keras"
    if qualified.startswith("tensorflow.keras."):
        return "tf.keras"
    if qualified.startswith(("tf_keras.", TFMOT + ".python.core.keras.compat.keras.", "tensorflow.python.keras.")):
        return "tf_keras"
    return None


def model_family(ctx: Any, value: Any, depth: int = 0) -> Optional[Tuple[str, Any]]:
    """(family, the Keras call that built it) for a model or layer expression: a call under a
    Keras namespace (``keras.Sequential``, ``tf.keras.models.load_model``,
    ``tf.keras.applications.MobileNetV2``...), reached through single assignments and one local
    helper's return.  None when the origin cannot be told."""
    if value is None or depth > 5:
        return None
    if isinstance(value, cst.Call):
        family = keras_family(ctx.qualname(value.func))
        if family is not None:
            return family, value
        if isinstance(value.func, cst.Name) and depth < 3:
            helper = module_function(ctx, value.func.value)
            if helper is None:
                return None
            found = None
            for result in returns_of(helper):
                if isinstance(result, cst.Name):
                    assigned = assignments_in(helper, result.value)
                    if not assigned or assigned[-1] is None:
                        return None
                    result = assigned[-1]
                got = model_family(ctx, result, depth + 2) if result is not None else None
                if got is None or (found is not None and got[0] != found[0]):
                    return None
                found = found or got
            return found
        return None
    if isinstance(value, cst.Name):
        return model_family(ctx, ctx.assigned_value(value), depth + 1)
    return None


def _module_statements(ctx: Any) -> List[Any]:
    return list(ctx.module.body)


def _imports_tfmot(statement: Any) -> bool:
    for node in walk(statement):
        if isinstance(node, cst.Import):
            if any((dotted_name(a.name) or "").split(".")[0] == TFMOT for a in node.names):
                return True
        elif isinstance(node, cst.ImportFrom) and node.module is not None and not node.relative:
            if (dotted_name(node.module) or "").split(".")[0] == TFMOT:
                return True
    return False


def _module_qualname(imports: Dict[str, str], node: Any) -> Optional[str]:
    name = dotted_name(node)
    if name is None:
        return None
    head, _, rest = name.partition(".")
    base = imports.get(head)
    if base is None:
        return None
    return f"{base}.{rest}" if rest else base


def _uses_tf_keras(statement: Any, imports: Dict[str, str]) -> bool:
    """Whether a module-level statement surely loads ``tf.keras`` when it runs: an attribute of
    it is read (``tf.keras.layers``), or a name is imported from it.  Function bodies do not
    run at definition time and are skipped; ``from tensorflow import keras`` alone is not
    counted (it may hand out the lazy loader without loading it)."""
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return False
    for node in walk(statement):
        if isinstance(node, cst.ImportFrom) and node.module is not None and not node.relative:
            module = dotted_name(node.module) or ""
            if module == "tensorflow.keras" or module.startswith("tensorflow.keras."):
                return True
        elif isinstance(node, cst.Attribute):
            qualified = _module_qualname(imports, node)
            if qualified and qualified.startswith("tensorflow.keras."):
                return True
    return False


def _module_imports(ctx: Any) -> Dict[str, str]:
    out = {}
    for name, bindings in ctx.scopes[0].bindings.items():
        if bindings and bindings[-1].kind == "import":
            out[name] = bindings[-1].value
    return out


def tf_keras_is_keras3_at_import(ctx: Any) -> bool:
    """Whether, at module level, ``tf.keras`` is surely loaded before TFMOT is imported (so it
    stays Keras 3 on TF >= 2.16): the first statement using it comes before the first
    statement importing ``tensorflow_model_optimization``, or TFMOT is not imported at module
    level at all while ``tf.keras`` is used there."""

    def compute(_: Any) -> bool:
        imports = _module_imports(ctx)
        for statement in _module_statements(ctx):
            if _imports_tfmot(statement):
                return False
            if _uses_tf_keras(statement, imports):
                return True
        return False

    return ctx.memo("tfmot:tf.keras-first", compute)


def legacy_keras_requested(ctx: Any) -> bool:
    """The file mentions TF_USE_LEGACY_KERAS (an environment setting we do not try to order), or
    it is a notebook with IPython lines (``%env``, ``!pip install tensorflow==2.15``...), which
    are masked before the walk, so the environment they set up cannot be read."""
    return "TF_USE_LEGACY_KERAS" in ctx.source or environment_hidden(ctx)


def environment_hidden(ctx: Any) -> bool:
    """A notebook whose IPython lines (``!pip install tensorflow==2.15``, ``%env ...``) were
    masked before the walk: the versions and environment they set up cannot be read."""
    return ctx.path.endswith(".ipynb") and "# dllint-mask" in ctx.source


def pinned_packages(ctx: Any) -> Dict[str, Any]:
    from dllint.versions import _normal, project_pins

    pins: Dict[str, Any] = {}
    if ctx.path and not ctx.path.startswith("<"):
        try:
            pins.update(project_pins(ctx.path))
        except Exception:  # unreadable project files: nothing is pinned
            pass
    for name, value in ctx.target_versions.items():
        pins[_normal(name)] = value
    return pins


def tensorflow_version(ctx: Any) -> Optional[Tuple[int, ...]]:
    """The newest TensorFlow release the project allows (None: the newest there is)."""
    found = None
    for package in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos"):
        version = ctx.target_version(package)
        if version is not None and (found is None or version > found):
            found = version
    return found


def is_keras3(ctx: Any, family: str) -> bool:
    """Whether a model of this family is a Keras 3 model under the project's versions."""
    tf_version = tensorflow_version(ctx)
    old_tf = tf_version is not None and tf_version < (2, 16)
    pins = pinned_packages(ctx)
    if "tf-keras" in pins or environment_hidden(ctx):
        return False  # the project installs tf_keras: it has met the Keras 2 / 3 split
    if family == "keras":
        keras_version = ctx.target_version("keras")
        if keras_version is not None:
            return keras_version >= (3,)
        return not old_tf
    if family == "tf.keras":
        if old_tf or legacy_keras_requested(ctx):
            return False
        return tf_keras_is_keras3_at_import(ctx)
    return False


def tfmot_supports_keras3(ctx: Any) -> bool:
    """A TFMOT newer than 0.8 (not released when this was written) might accept Keras 3."""
    for package in ("tensorflow-model-optimization", "tensorflow_model_optimization"):
        version = ctx.target_version(package)
        if version is not None:
            return version >= (0, 9)
    return False


#: Context managers of test code that expect the block to raise.
RAISES_NAMES = frozenset({"assertRaises", "assertRaisesRegex", "assertRaisesRegexp", "raises"})


def expects_error(ctx: Any) -> bool:
    """Inside ``with self.assertRaises(...)`` / ``with pytest.raises(...)``: a test showing the
    error on purpose."""
    for ancestor in ctx.stack:
        if isinstance(ancestor, cst.With):
            for item in ancestor.items:
                call = item.item
                func = call.func if isinstance(call, cst.Call) else None
                name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
                if name in RAISES_NAMES:
                    return True
    return False
