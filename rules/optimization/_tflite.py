"""TFLite converter and interpreter facts shared by DL211, DL212 and DL213.

A *converter* is an object made by ``tf.lite.TFLiteConverter.from_keras_model`` /
``from_saved_model`` / ``from_concrete_functions`` / ``experimental_from_jax``, the
``TFLiteConverter(...)`` constructor, or the TF1 spellings ``tf.compat.v1.lite.TFLiteConverter``
(``from_session``, ``from_frozen_graph``, ``from_keras_model_file``, ``from_saved_model``).  Its
settings are read from the attribute assignments made on it (``converter.X = ...``) and on its
``target_spec`` (``converter.target_spec.supported_ops = [...]``) before ``converter.convert()``,
through ``Context.object_events`` of the function (or of the module's top level) that converts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children, dotted_name

# ---------------------------------------------------------------------- names

_TF_PREFIXES = ("tensorflow", "tensorflow.compat.v1", "tensorflow.compat.v2")

#: Converter classes (qualified names) -> "v1" / "v2" (TF 2's ``tf.lite.TFLiteConverter`` is V2).
CONVERTER_CLASSES: Dict[str, str] = {}
for _prefix in ("tensorflow", "tensorflow.compat.v2"):
    CONVERTER_CLASSES[f"{_prefix}.lite.TFLiteConverter"] = "v2"
CONVERTER_CLASSES["tensorflow.lite.python.lite.TFLiteConverterV2"] = "v2"
CONVERTER_CLASSES["tensorflow.compat.v1.lite.TFLiteConverter"] = "v1"
CONVERTER_CLASSES["tensorflow.lite.python.lite.TFLiteConverter"] = "v1"

#: Factory class methods; the TF1-only ones make a V1 converter whatever the spelling.
V2_FACTORIES = frozenset({"from_keras_model", "from_saved_model", "from_concrete_functions", "experimental_from_jax"})
V1_FACTORIES = frozenset({"from_session", "from_frozen_graph", "from_keras_model_file", "from_saved_model"})

#: Interpreter classes (DL212 needs one in the file).
INTERPRETERS = frozenset(
    {
        "tensorflow.lite.Interpreter",
        "tensorflow.compat.v1.lite.Interpreter",
        "tensorflow.compat.v2.lite.Interpreter",
        "tensorflow.lite.python.interpreter.Interpreter",
        "tflite_runtime.interpreter.Interpreter",
        "ai_edge_litert.interpreter.Interpreter",
        "pycoral.utils.edgetpu.make_interpreter",
    }
)


def tf_name(ctx: Any, node: Any) -> Optional[str]:
    """The qualified name of a TensorFlow attribute chain, with a fallback for ``tf.X`` /
    ``tensorflow.X`` spellings whose import is out of reach (imported inside another function)."""
    name = ctx.qualname(node)
    if name is not None:
        return name
    text = dotted_name(node)
    if text is None:
        return None
    head, _, rest = text.partition(".")
    if head in ("tf", "tensorflow") and rest:
        return "tensorflow." + rest
    return None


def _strip_tf(name: Optional[str]) -> Optional[str]:
    """``tensorflow.compat.v1.lite.X`` -> ``lite.X``; None for names outside TensorFlow."""
    if name is None:
        return None
    for prefix in sorted(_TF_PREFIXES, key=len, reverse=True):
        if name.startswith(prefix + "."):
            return name[len(prefix) + 1:]
    return None


def converter_kind(ctx: Any, call: Any) -> Optional[str]:
    """"v1" / "v2" when ``call`` makes a TFLite converter, else None."""
    if not isinstance(call, cst.Call):
        return None
    func = call.func
    name = tf_name(ctx, func)
    if name is None:
        return None
    if name in CONVERTER_CLASSES:
        return CONVERTER_CLASSES[name]
    owner, _, method = name.rpartition(".")
    if owner in CONVERTER_CLASSES:
        if method in V1_FACTORIES - V2_FACTORIES:
            return "v1"
        if method in V1_FACTORIES | V2_FACTORIES:
            return CONVERTER_CLASSES[owner]
    return None


def is_int8_ops_entry(ctx: Any, node: Any) -> bool:
    """``tf.lite.OpsSet.TFLITE_BUILTINS_INT8`` in any spelling."""
    return _strip_tf(tf_name(ctx, node)) == "lite.OpsSet.TFLITE_BUILTINS_INT8"


def integer_dtype(ctx: Any, node: Any) -> Optional[str]:
    """"int8" / "uint8" for ``tf.int8`` / ``tf.uint8`` (also ``tf.dtypes.int8``), else None."""
    short = _strip_tf(tf_name(ctx, node))
    if short in ("int8", "dtypes.int8"):
        return "int8"
    if short in ("uint8", "dtypes.uint8"):
        return "uint8"
    return None


def quantized_inference_type(ctx: Any, node: Any) -> bool:
    """A TF1 ``inference_type`` value that makes the model's I/O integer."""
    if integer_dtype(ctx, node) is not None:
        return True
    short = _strip_tf(tf_name(ctx, node)) or ""
    return short.endswith(("lite.constants.QUANTIZED_UINT8", "lite.constants.INT8"))


def elements_of(ctx: Any, value: Any) -> Optional[List[Any]]:
    """The elements of a list / tuple / set literal, given directly or through a name assigned
    once; None when the value is anything else."""
    if isinstance(value, cst.Name):
        value = ctx.assigned_value(value)
    if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
        return [e.value for e in value.elements if isinstance(e, cst.Element)]
    return None


# ---------------------------------------------------------------------- converter life cycles


@dataclass
class Conversion:
    """One ``converter.convert()`` and what was done to that converter before it."""

    name: str  # the converter's dotted name
    kind: str  # "v1" / "v2"
    factory: Any  # the Call that made the converter
    convert: Any  # the ``.convert()`` Call
    #: attribute -> values assigned before convert, in order (``target_spec.X`` for the target spec)
    settings: Dict[str, List[Any]] = field(default_factory=dict)
    #: ``converter.target_spec.supported_ops.append(x)`` and the like: the calls
    ops_mutations: List[Any] = field(default_factory=list)
    #: the converter (or its target_spec) reached code this file cannot see before convert
    escaped: bool = False


#: Methods of a converter that do not change its quantisation settings.
_HARMLESS_METHODS = frozenset({"convert", "_get_base_converter_args"})
#: Callees that only look at an object.
_HARMLESS_CALLEES = frozenset({"print", "repr", "str", "type", "id", "isinstance", "hasattr", "getattr"})


def conversions(ctx: Any, function: Any = None) -> List[Conversion]:
    """Every ``X.convert()`` of a TFLite converter made in ``function`` (default: the innermost
    enclosing function or the module's top level), with the settings made before it."""
    if function is None:
        function = ctx.function() or ctx.module
    return ctx.memo(f"tflite-conversions:{id(function)}", lambda c: _conversions(c, function))


def _conversions(ctx: Any, function: Any) -> List[Conversion]:
    events = ctx.object_events(function)
    out: List[Conversion] = []
    for name, own in events.items():
        if not any(e.kind == "assign" and converter_kind(ctx, e.value) for e in own):
            continue
        spec = f"{name}.target_spec"
        merged = []
        for key in (name, spec, f"{spec}.supported_ops", f"{spec}.supported_types"):
            merged.extend((key, e) for e in events.get(key, ()))
        merged.sort(key=lambda pair: pair[1].order)
        state: Optional[Conversion] = None
        for key, event in merged:
            if key == name:
                if event.kind == "assign":
                    kind = converter_kind(ctx, event.value)
                    state = Conversion(name, kind, event.value, None) if kind else None
                elif state is None:
                    continue
                elif event.kind == "setattr":
                    state.settings.setdefault(event.name, []).append(event.value)
                elif event.kind == "method" and event.name == "convert":
                    out.append(
                        Conversion(
                            name, state.kind, state.factory, event.node,
                            {k: list(v) for k, v in state.settings.items()},
                            list(state.ops_mutations), state.escaped,
                        )
                    )
                elif event.kind == "method" and event.name not in _HARMLESS_METHODS:
                    state.escaped = True
                elif event.kind == "argument" and (event.name or "") not in _HARMLESS_CALLEES:
                    state.escaped = True
            elif state is None:
                continue
            elif key == spec:
                if event.kind == "setattr":
                    state.settings.setdefault(f"target_spec.{event.name}", []).append(event.value)
                elif event.kind in ("assign", "argument", "method"):
                    state.escaped = True
            else:  # supported_ops / supported_types objects
                attribute = "target_spec." + key.rsplit(".", 1)[1]
                if event.kind == "method" and event.name in ("append", "extend", "add", "update", "insert"):
                    if attribute == "target_spec.supported_ops":
                        state.ops_mutations.append(event.node)
                    else:
                        state.escaped = True
                elif event.kind in ("method", "argument"):
                    state.escaped = True
    return out


def int8_request(ctx: Any, conversion: Conversion) -> Optional[str]:
    """Which setting asks this conversion for full-integer quantisation, as source text, or None."""
    for value in conversion.settings.get("target_spec.supported_ops", ()):
        if any(is_int8_ops_entry(ctx, e) for e in elements_of(ctx, value) or ()):
            return "target_spec.supported_ops = [TFLITE_BUILTINS_INT8]"
    for call in conversion.ops_mutations:
        if any(is_int8_ops_entry(ctx, a.value) for a in call.args):
            return "target_spec.supported_ops += TFLITE_BUILTINS_INT8"
    for value in conversion.settings.get("target_spec.supported_types", ()):
        items = elements_of(ctx, value)
        if items and len(items) == 1 and integer_dtype(ctx, items[0]) == "int8":
            return "target_spec.supported_types = [tf.int8]"
    if conversion.kind == "v2":
        for attribute in ("inference_input_type", "inference_output_type"):
            for value in conversion.settings.get(attribute, ()):
                dtype = integer_dtype(ctx, value)
                if dtype is not None:
                    return f"{attribute} = tf.{dtype}"
    return None


# ---------------------------------------------------------------------- small tree helpers


def walk_function(node: Any) -> Iterator[Any]:
    """Every node under ``node``, not entering nested functions, lambdas or classes."""
    todo = list(children(node))
    while todo:
        current = todo.pop()
        yield current
        if isinstance(current, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            continue
        todo.extend(children(current))


def walk_all(node: Any) -> Iterator[Any]:
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        todo.extend(children(current))


def string_value(node: Any) -> Optional[str]:
    if isinstance(node, cst.SimpleString):
        try:
            value = node.evaluated_value
        except Exception:  # pragma: no cover - odd literal
            return None
        return value if isinstance(value, str) else None
    return None


def function_defs(ctx: Any) -> Dict[str, List[cst.FunctionDef]]:
    """Every function definition of the file by name (all scopes)."""

    def compute(c: Any) -> Dict[str, List[cst.FunctionDef]]:
        out: Dict[str, List[cst.FunctionDef]] = {}
        for node in walk_all(c.module):
            if isinstance(node, cst.FunctionDef):
                out.setdefault(node.name.value, []).append(node)
        return out

    return ctx.memo("tflite-function-defs", compute)


def mentioned_words(node: Any) -> Set[str]:
    """Identifiers (names, attribute names) and string literals used in ``node``'s code."""
    words: Set[str] = set()
    for current in walk_all(node):
        if isinstance(current, cst.Name):
            words.add(current.value)
        elif isinstance(current, cst.SimpleString):
            value = string_value(current)
            if value is not None:
                words.add(value)
    return words


# ---------------------------------------------------------------------- interpreter side (DL212)

_NUMPY_INT8 = frozenset({"numpy.int8", "numpy.uint8"})


def numpy_int8(ctx: Any, node: Any) -> bool:
    """``np.int8`` / ``np.uint8`` (or the ``"int8"`` / ``"uint8"`` strings)."""
    name = ctx.qualname(node)
    if name in _NUMPY_INT8:
        return True
    text = dotted_name(node) or ""
    if text in ("np.int8", "np.uint8", "numpy.int8", "numpy.uint8"):
        return True
    return string_value(node) in ("int8", "uint8")


def _dtype_subscript(node: Any) -> bool:
    """``details[0]["dtype"]`` / ``inp["dtype"]``."""
    if not isinstance(node, cst.Subscript):
        return False
    return any(
        isinstance(e.slice, cst.Index) and string_value(e.slice.value) == "dtype" for e in node.slice
    )


def quantized_io(ctx: Any) -> Dict[str, bool]:
    """Whether the file makes (``inference_input_type`` / ``inference_output_type`` /
    ``inference_type`` = tf.int8 / tf.uint8) or checks (``details["dtype"] == np.uint8``) a model
    with integer inputs / outputs: {"input": ..., "output": ...}."""

    def compute(c: Any) -> Dict[str, bool]:
        found = {"input": False, "output": False}
        dtype_names: Set[str] = set()
        dead = dead_branch_nodes(c)
        nodes = [n for n in walk_all(c.module) if id(n) not in dead]
        for node in nodes:
            if isinstance(node, cst.Assign) and _dtype_subscript(node.value):
                for target in node.targets:
                    if isinstance(target.target, cst.Name):
                        dtype_names.add(target.target.value)
        for node in nodes:
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    t = target.target
                    if not isinstance(t, cst.Attribute):
                        continue
                    attr = t.attr.value
                    if attr == "inference_input_type" and integer_dtype(c, node.value):
                        found["input"] = True
                    elif attr == "inference_output_type" and integer_dtype(c, node.value):
                        found["output"] = True
                    elif attr == "inference_type" and quantized_inference_type(c, node.value):
                        found["input"] = found["output"] = True
            elif isinstance(node, cst.Comparison):
                sides = [node.left] + [t.comparator for t in node.comparisons]
                checks = any(
                    _dtype_subscript(s) or (isinstance(s, cst.Name) and s.value in dtype_names) for s in sides
                )
                if checks and any(numpy_int8(c, s) for s in sides):
                    found["input"] = found["output"] = True
        return found

    return ctx.memo("tflite-quantized-io", compute)


_SCALE_WORDS = ("quantiz", "scale", "zero_point", "zeropoint", "dequant")


def handles_quantization(node: Any) -> bool:
    """Whether the code of ``node`` mentions quantisation parameters anywhere: the
    ``"quantization"`` / ``"quantization_parameters"`` keys, a scale, a zero point."""
    for word in mentioned_words(node):
        lowered = word.lower()
        if any(w in lowered for w in _SCALE_WORDS) or lowered in ("zp", "zps", "zero"):
            return True
    return False


_FLOAT_DTYPES = frozenset({"numpy.float32", "numpy.float64", "numpy.float16", "tensorflow.float32", "tensorflow.float16"})
_SHAPE_FUNCTIONS = frozenset(
    {
        "numpy.expand_dims", "numpy.array", "numpy.asarray", "numpy.ascontiguousarray", "numpy.reshape",
        "numpy.transpose", "numpy.squeeze", "tensorflow.expand_dims", "tensorflow.convert_to_tensor",
        "tensorflow.reshape", "tensorflow.transpose", "tensorflow.squeeze", "tensorflow.constant",
    }
)
_SHAPE_METHODS = frozenset({"reshape", "copy", "squeeze", "transpose", "numpy"})


def float_dtype(ctx: Any, node: Any) -> bool:
    name = ctx.qualname(node) or ""
    if name in _FLOAT_DTYPES:
        return True
    text = dotted_name(node) or ""
    if text in ("float", "np.float32", "np.float64", "tf.float32"):
        return ctx.lookup(text) is None if text == "float" else True
    return string_value(node) in ("float32", "float64", "float")


def straight_line_values(ctx: Any, name: Any) -> List[Any]:
    """The values a name was given, oldest first, as far as they reach the node being visited in
    straight-line code: its single assignment; or, when it was bound several times, the trailing
    run of plain assignments that are statements of blocks enclosing the current node
    (``x = img / 255.0`` then ``x = x.astype(np.uint8)``).  Empty when the last binding is
    anything else (a branch, a loop variable, a parameter)."""
    if not isinstance(name, cst.Name):
        value = ctx.assigned_value(name)
        return [value] if value is not None else []
    bindings = ctx.lookup(name.value)
    if not bindings:
        return []
    if len(bindings) == 1:
        value = bindings[0].expression()
        return [value] if value is not None else []
    enclosing = set()
    for ancestor in ctx.stack:
        if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            for statement in ancestor.body:
                if isinstance(statement, cst.SimpleStatementLine):
                    for small in statement.body:
                        if isinstance(small, cst.Assign):
                            enclosing.add(id(small.value))
    out: List[Any] = []
    for binding in reversed(bindings):
        if binding.kind != "assign" or id(binding.value) not in enclosing:
            break
        out.append(binding.value)
    return list(reversed(out))


def float_prepared(ctx: Any, node: Any, depth: int = 0, pinned: Optional[Dict[str, int]] = None) -> bool:
    """Whether ``node`` is data made float by preprocessing: a true division, arithmetic with
    a float literal, ``.astype(np.float32)``, ``tf.cast(x, tf.float32)``, ``preprocess_input``;
    followed through names assigned once, shape-only operations and a later integer cast
    (``(img / 255.0).astype(np.uint8)`` drops the scale all the same)."""
    if depth > 8 or node is None:
        return False
    pinned = pinned or {}
    if isinstance(node, cst.Name):
        # ``x = x.astype(...)``: the ``x`` inside a value is the one assigned before it
        chain = straight_line_values(ctx, node)
        upper = pinned.get(node.value, len(chain))
        if upper <= 0:
            return False
        return float_prepared(ctx, chain[upper - 1], depth + 1, {**pinned, node.value: upper - 1})
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Divide):
            return True
        if isinstance(node.operator, (cst.Multiply, cst.Subtract, cst.Add)) and (
            isinstance(node.left, cst.Float) or isinstance(node.right, cst.Float)
        ):
            return True
        return float_prepared(ctx, node.left, depth + 1, pinned) or float_prepared(ctx, node.right, depth + 1, pinned)
    if isinstance(node, cst.Subscript):
        return float_prepared(ctx, node.value, depth + 1, pinned)
    if not isinstance(node, cst.Call):
        return False
    func = node.func
    name = ctx.qualname(func) or ""
    if isinstance(func, cst.Attribute) and not name:
        method = func.attr.value
        if method == "astype" and node.args:
            if float_dtype(ctx, node.args[0].value):
                return True
            return float_prepared(ctx, func.value, depth + 1, pinned)
        if method in _SHAPE_METHODS:
            return float_prepared(ctx, func.value, depth + 1, pinned)
        if method == "preprocess_input":
            return True
        return False
    if name in ("numpy.float32", "numpy.float64") or name.endswith(".preprocess_input"):
        return True
    if name in ("tensorflow.cast", "tensorflow.image.convert_image_dtype") and len(node.args) > 1:
        return float_dtype(ctx, ctx.argument(node, 1, "dtype"))
    if name in _SHAPE_FUNCTIONS and node.args:
        dtype = ctx.argument(node, 99, "dtype")
        if dtype is not None and float_dtype(ctx, dtype):
            return True
        return float_prepared(ctx, node.args[0].value, depth + 1, pinned)
    return False


# ---------------------------------------------------------------------- representative datasets (DL213)

#: Methods of a tf.data.Dataset that return a dataset of the same kind of element.
DATASET_METHODS = frozenset(
    {"take", "batch", "shuffle", "prefetch", "repeat", "cache", "unbatch", "skip", "filter", "as_numpy_iterator",
     "padded_batch", "rebatch", "shard"}
)
_DATASET_FACTORIES = (
    "image_dataset_from_directory", "text_dataset_from_directory", "audio_dataset_from_directory",
    "timeseries_dataset_from_array",
)
_DATA_CONSTRUCTORS = frozenset(
    {"from_tensor_slices", "from_tensors", "from_generator", "range", "zip", "list_files", "load",
     "TFRecordDataset", "TextLineDataset", "FixedLengthRecordDataset"}
)


def _func_text(node: Any) -> str:
    return dotted_name(node.func) if isinstance(node, cst.Call) else ""  # type: ignore[return-value]


def representative_generators(ctx: Any) -> Dict[int, cst.FunctionDef]:
    """The generator functions assigned to ``X.representative_dataset`` anywhere in the file,
    by id: a function given by name, the function a lambda / ``functools.partial`` /
    ``tf.lite.RepresentativeDataset`` wraps, or the nested generator a factory returns."""

    def compute(c: Any) -> Dict[int, cst.FunctionDef]:
        defs = function_defs(c)
        lambdas: Dict[str, List[Any]] = {}
        values: List[Any] = []
        assigns: Dict[int, Any] = {}
        for node in walk_all(c.module):
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    t = target.target
                    if isinstance(t, cst.Attribute) and t.attr.value == "representative_dataset":
                        values.append(node.value)
                        assigns[id(node.value)] = node
                    elif isinstance(t, cst.Name):
                        lambdas.setdefault(t.value, []).append(node.value)
        out: Dict[int, cst.FunctionDef] = {}
        position = _statement_positions(c.module)

        def add(value: Any, depth: int) -> None:
            if depth > 3 or value is None:
                return
            if isinstance(value, cst.Lambda):
                add(value.body, depth + 1)
            elif isinstance(value, cst.Call):
                text = _func_text(value) or ""
                last = text.rsplit(".", 1)[-1]
                if last in ("RepresentativeDataset", "partial") and value.args:
                    add(value.args[0].value, depth + 1)
                elif isinstance(value.func, cst.Name):
                    # a factory defined here that returns its nested generator
                    for factory in defs.get(value.func.value, ()):
                        for inner in walk_function(factory):
                            if isinstance(inner, cst.Return) and isinstance(inner.value, cst.Name):
                                for nested in defs.get(inner.value.value, ()):
                                    out[id(nested)] = nested
                        # or is itself the generator, called by a lambda
                        if any(isinstance(n, cst.Yield) for n in walk_function(factory)):
                            out[id(factory)] = factory
            elif isinstance(value, cst.Name):
                found = _reaching(defs.get(value.value, ()), assigns.get(id(value)), position)
                for function in found:
                    out[id(function)] = function
                assigned = lambdas.get(value.value, [])
                if not found and len(assigned) == 1:
                    add(assigned[0], depth + 1)

        for value in values:
            add(value, 0)
        return out

    return ctx.memo("tflite-representative-generators", compute)


def _statement_positions(module: cst.Module) -> Dict[int, Tuple[int, int]]:
    """For every statement directly in a block (the module body, a function or class body, a
    branch): (id of the block, index in it). Loop bodies are left out: a later definition there
    reaches earlier statements on the next iteration."""
    out: Dict[int, Tuple[int, int]] = {}
    todo: List[Any] = [module]
    while todo:
        current = todo.pop()
        body = None
        if isinstance(current, cst.Module):
            body = current.body
        elif isinstance(current, cst.IndentedBlock):
            body = current.body
        if body is not None:
            for index, statement in enumerate(body):
                out[id(statement)] = (id(current), index)
                if isinstance(statement, cst.SimpleStatementLine):
                    for small in statement.body:
                        out[id(small)] = (id(current), index)
        if isinstance(current, (cst.For, cst.While)):
            todo.extend(c for c in current.children if c is not current.body)
            if current.orelse is not None:
                todo.append(current.orelse)
            continue
        todo.extend(current.children)
    return out


def _reaching(functions: Any, assign: Any, position: Dict[int, Tuple[int, int]]) -> List[cst.FunctionDef]:
    """Of the definitions of one name, those that can be the one bound when ``assign`` runs: when
    the assignment and some definitions sit in the same block, only the last definition before
    it there; definitions after it in that block (a redefinition for later code) are dropped."""
    functions = list(functions)
    where = position.get(id(assign)) if assign is not None else None
    if where is None or len(functions) < 2:
        return functions
    block, index = where
    same = [(position[id(f)][1], f) for f in functions if position.get(id(f), (None, 0))[0] == block]
    before = [item for item in same if item[0] < index]
    if not before:
        return functions
    last = max(before, key=lambda item: item[0])[1]
    return [f for f in functions if f is last or position.get(id(f), (None, 0))[0] != block]


def strip_dataset_methods(node: Any) -> Any:
    """``ds.batch(1).take(100)`` -> ``ds``."""
    while (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in DATASET_METHODS
    ):
        node = node.func.value
    return node


def makes_dataset(ctx: Any, node: Any, depth: int = 0) -> bool:
    """Whether ``node`` is a tf.data.Dataset: made by ``tf.data.Dataset.*``, ``tf.data.*Dataset``,
    ``tf.keras.utils.image_dataset_from_directory`` and friends, ``tfds.load``, or a dataset method
    chain on one; followed through names assigned once."""
    if depth > 5 or node is None:
        return False
    if isinstance(node, cst.Name):
        return makes_dataset(ctx, ctx.assigned_value(node), depth + 1)
    if not isinstance(node, cst.Call):
        return False
    func = node.func
    if isinstance(func, cst.Attribute) and func.attr.value in DATASET_METHODS | {"map"}:
        if makes_dataset(ctx, func.value, depth + 1):
            return True
    name = ctx.qualname(func) or ""
    if name.startswith(("tensorflow.", "keras.", "tf_keras.")) and name.endswith(_DATASET_FACTORIES):
        return True
    if name.startswith(("tensorflow.data.", "tensorflow.compat.v2.data.")):
        return name.rsplit(".", 1)[-1] in _DATA_CONSTRUCTORS
    if name == "tensorflow_datasets.load":
        return ctx.keyword(node, "split") is not None
    return False


_FALSY = ("False", "None")


def _falsy(node: Any) -> bool:
    return (isinstance(node, cst.Name) and node.value in _FALSY) or (
        isinstance(node, cst.Integer) and node.value == "0"
    )


def dead_branch_nodes(ctx: Any) -> Set[int]:
    """Ids of the nodes in branches no call in the file can reach: ``if flag:`` (or the ``else`` of
    ``if not flag:``) in a function whose every call in the file passes a falsy literal
    (``False`` / ``None`` / ``0``, or leaves a falsy default) for the parameter ``flag``. The
    function must be called at least once and be used only by calling it by name."""

    def compute(c: Any) -> Set[int]:
        defs = function_defs(c)
        calls: Dict[str, List[cst.Call]] = {}
        mentions: Dict[str, int] = {}
        for node in walk_all(c.module):
            if isinstance(node, cst.Call):
                func = node.func
                name = func.value if isinstance(func, cst.Name) else (
                    func.attr.value if isinstance(func, cst.Attribute) else None)
                if name is not None:
                    calls.setdefault(name, []).append(node)
            if isinstance(node, cst.Name):
                mentions[node.value] = mentions.get(node.value, 0) + 1
            elif isinstance(node, cst.Attribute):
                mentions[node.attr.value] = mentions.get(node.attr.value, 0) + 1
        dead: Set[int] = set()
        for name, functions in defs.items():
            if len(functions) != 1 or not calls.get(name):
                continue
            function = functions[0]
            # every other mention of the name is the func of one of those calls (+1 for the def itself)
            if mentions.get(name, 0) != len(calls[name]) + 1:
                continue
            params = list(function.params.posonly_params) + list(function.params.params)
            positions = {p.name.value: i for i, p in enumerate(params)}
            offset = 1 if params and params[0].name.value in ("self", "cls") else 0
            for node in walk_function(function):
                if not isinstance(node, cst.If):
                    continue
                test, negated = node.test, False
                if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
                    test, negated = test.expression, True
                if not isinstance(test, cst.Name) or test.value not in positions:
                    continue
                flag = test.value
                param = params[positions[flag]]
                if not all(_passes_falsy(call, flag, positions[flag], offset, param) for call in calls[name]):
                    continue
                branch = node.orelse if negated else node.body
                if branch is not None:
                    dead |= {id(n) for n in walk_all(branch)}
        return dead

    return ctx.memo("tflite-dead-branches", compute)


def _passes_falsy(call: cst.Call, flag: str, position: int, offset: int, param: Any) -> bool:
    if any(a.star for a in call.args):
        return False
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == flag:
            return _falsy(arg.value)
    positional = [a for a in call.args if a.keyword is None]
    index = position - (offset if isinstance(call.func, cst.Attribute) else 0)
    if 0 <= index < len(positional):
        return _falsy(positional[index].value)
    return param.default is not None and _falsy(param.default)
