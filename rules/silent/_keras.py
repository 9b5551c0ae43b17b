"""Facts about Keras models shared by DL401-DL404.

What a rule can ask here, for any of the three spellings (``keras`` = Keras 3, ``tf.keras`` =
Keras 3 in TF >= 2.16, ``tf_keras`` = Keras 2):

* ``keras_api(ctx, func)``: the last component of a Keras name (``Dense`` for
  ``tf.keras.layers.Dense`` / ``keras.layers.Dense`` / ``tf_keras.layers.Dense``), else None;
* ``model_definition(ctx, receiver, node)``: the ``Sequential(...)`` / ``Model(...)`` call a model
  name holds where ``node`` uses it (single reaching assignment), else None;
* ``output_activation(ctx, model, definition, node)``: ``"softmax"``, ``"sigmoid"``, ``"linear"``,
  another activation name, or None when the output layer cannot be told: the last layer of a
  ``Sequential([...])`` literal, the last unconditional ``.add(...)`` before ``node``, or the
  ``outputs`` expression of a functional ``Model`` (through single assignments);
* ``loss_facts(ctx, value)``: for a ``compile(loss=...)`` value, ``(kind, from_logits, how)``:
  kind ``"categorical"`` / ``"binary"``, from_logits True / False (None when not literal),
  and how the loss is spelled (``"string"``, ``"function"``, ``"object"``);
* ``training_events(ctx, root)``: compile / fit / trainable changes of each model in a function,
  in evaluation order, including ``m.layers[i].trainable = ...``, ``m.get_layer(..).trainable``
  and ``for layer in m.layers: layer.trainable = ...``.

Every helper answers None ("unknown") rather than guess: the rules stay silent then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import libcst as cst

from dllint.context import children, dotted_name

#: Qualified-name prefixes of the three Keras spellings.
KERAS_PREFIXES = ("keras.", "tensorflow.keras.", "tf_keras.", "tensorflow.python.keras.")

#: Model constructors.
SEQUENTIAL = "Sequential"
FUNCTIONAL = ("Model", "Functional")

#: Layers whose ``activation`` argument decides their output (Dense(units, activation)).
ACTIVATION_LAYERS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "EinsumDense")

#: Probability losses that take ``from_logits``: name -> kind.
LOSS_CLASSES = {
    "SparseCategoricalCrossentropy": "categorical",
    "CategoricalCrossentropy": "categorical",
    "CategoricalFocalCrossentropy": "categorical",
    "BinaryCrossentropy": "binary",
    "BinaryFocalCrossentropy": "binary",
}
LOSS_FUNCTIONS = {
    "sparse_categorical_crossentropy": "categorical",
    "categorical_crossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical",
    "binary_crossentropy": "binary",
    "binary_focal_crossentropy": "binary",
}
#: The loss class that replaces a string / function spelling.
CLASS_OF_FUNCTION = {
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_focal_crossentropy": "CategoricalFocalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy",
    "binary_focal_crossentropy": "BinaryFocalCrossentropy",
}

#: Functional activation ops (qualified names) -> activation.
ACTIVATION_OPS = {
    "tensorflow.nn.softmax": "softmax",
    "tensorflow.math.softmax": "softmax",
    "tensorflow.nn.sigmoid": "sigmoid",
    "tensorflow.math.sigmoid": "sigmoid",
    "tensorflow.sigmoid": "sigmoid",
}
KERAS_ACTIVATION_OPS = {"softmax": "softmax", "sigmoid": "sigmoid"}

#: Methods that train a compiled model.
FIT_METHODS = ("fit", "train_on_batch", "fit_generator")


def keras_api(ctx: Any, func: Any) -> Optional[str]:
    """``Dense`` for any Keras spelling of a Keras name; None for anything else."""
    name = ctx.qualname(func)
    if name and name.startswith(KERAS_PREFIXES):
        return name.rsplit(".", 1)[-1]
    return None


def keras_family(ctx: Any, func: Any) -> Optional[str]:
    """"keras", "tf.keras" or "tf_keras" for the Keras name ``func``."""
    name = ctx.qualname(func) or ""
    if name.startswith("keras."):
        return "keras"
    if name.startswith("tensorflow.keras."):
        return "tf.keras"
    if name.startswith(("tf_keras.", "tensorflow.python.keras.")):
        return "tf_keras"
    return None


def is_keras_call(ctx: Any, node: Any, *names: str) -> bool:
    return isinstance(node, cst.Call) and keras_api(ctx, node.func) in names


def _string(node: Any) -> Optional[str]:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


# ---------------------------------------------------------------------- statements and order


def straight_line_statements(root: Any) -> List[Any]:
    """The small statements of a function (or module) that always run, in order: its own
    body and the bodies of ``with`` blocks in it (never ``if`` / loops / ``try``)."""
    body = root.body.body if isinstance(root, cst.FunctionDef) and isinstance(root.body, cst.IndentedBlock) else (
        root.body if isinstance(root, cst.Module) else []
    )
    out: List[Any] = []

    def add(statements: Any) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                out.extend(statement.body)
            elif isinstance(statement, cst.With) and isinstance(statement.body, cst.IndentedBlock):
                add(statement.body.body)

    add(body)
    return out


def _unconditional_calls(root: Any) -> set:
    ids = set()
    for small in straight_line_statements(root):
        value = getattr(small, "value", None)
        if isinstance(small, cst.Expr) and isinstance(value, cst.Call):
            ids.add(id(value))
    return ids


def root_of(ctx: Any) -> Any:
    return ctx.function() or ctx.module


# ---------------------------------------------------------------------- models


def model_definition(ctx: Any, receiver: Any) -> Optional[cst.Call]:
    """The ``Sequential(...)`` / ``Model(...)`` call that ``receiver`` (a name or ``self.x``)
    holds, through single reaching assignments; None when unknown."""
    value = receiver
    for _ in range(3):
        if isinstance(value, cst.Call):
            break
        value = ctx.assigned_value(value)
        if value is None:
            return None
    if is_keras_call(ctx, value, SEQUENTIAL, *FUNCTIONAL):
        return value
    return None


def output_activation(ctx: Any, name: str, definition: cst.Call, node: Any) -> Optional[str]:
    """The output activation of the model ``name`` defined by ``definition`` as used at ``node``
    (a call in the function being visited), or None when it cannot be told."""
    api = keras_api(ctx, definition.func)
    root = root_of(ctx)
    events = ctx.object_events(root).get(name, [])
    use = next((e for e in events if e.node is node), None)
    if use is None:
        return None
    unconditional = _unconditional_calls(root)
    last_layer: Any = None
    if api == SEQUENTIAL:
        layers = ctx.argument(definition, 0, "layers")
        if isinstance(layers, (cst.List, cst.Tuple)) and layers.elements:
            if any(isinstance(e, cst.StarredElement) for e in layers.elements):
                return None
            last_layer = layers.elements[-1].value
        elif layers is not None:
            return None
    # adds count from the definition on; a model defined elsewhere (module level, self.x) counts
    # its adds from the start of this function
    defined = not any(e.kind == "assign" and e.order < use.order for e in events)
    for event in events:
        if event.order >= use.order:
            break
        if event.kind == "assign":
            defined = event.value is definition
            continue
        if not defined:
            continue
        if event.kind == "method" and event.name == "add" and api == SEQUENTIAL:
            if id(event.node) not in unconditional or event.loop is not None:
                return None
            last_layer = ctx.argument(event.node, 0, "layer")
        elif event.kind == "method" and event.name == "pop":
            return None
        elif event.kind == "argument" and event.name not in ("print",):
            return None  # a helper may add layers
    if api == SEQUENTIAL:
        return layer_activation(ctx, last_layer) if last_layer is not None else None
    outputs = ctx.argument(definition, 1, "outputs")
    return tensor_activation(ctx, outputs, definition)


def layer_activation(ctx: Any, layer: Any, depth: int = 0) -> Optional[str]:
    """The activation a layer object applies last: ``Dense(10)`` -> "linear",
    ``Dense(10, activation="softmax")`` / ``Softmax()`` / ``Activation("sigmoid")`` -> that one."""
    if isinstance(layer, cst.Name) and depth < 2:
        return layer_activation(ctx, ctx.assigned_value(layer), depth + 1)
    if not isinstance(layer, cst.Call) or ctx.has_star_args(layer):
        return None
    api = keras_api(ctx, layer.func)
    if api in ACTIVATION_LAYERS:
        if any(a.star == "**" for a in layer.args):
            return None
        position = 1 if api == "Dense" else 99  # Conv2D(filters, kernel_size, ...): keyword only
        return activation_value(ctx, ctx.argument(layer, position, "activation"), missing="linear")
    if api == "Activation":
        return activation_value(ctx, ctx.argument(layer, 0, "activation"), missing=None)
    if api == "Softmax":
        return "softmax"
    return None


def activation_value(ctx: Any, value: Any, missing: Optional[str]) -> Optional[str]:
    """"softmax" for ``"softmax"`` / ``tf.nn.softmax`` / ``keras.activations.softmax``,
    "linear" for ``None`` / ``"linear"``; another name for other strings; None when unknown."""
    if value is None:
        return missing
    if isinstance(value, cst.Name) and value.value == "None":
        return "linear"
    text = _string(value)
    if text is not None:
        return text.lower()
    qualified = ctx.qualname(value) or ""
    if qualified in ACTIVATION_OPS:
        return ACTIVATION_OPS[qualified]
    if qualified.startswith(KERAS_PREFIXES) and ".activations." in qualified:
        return qualified.rsplit(".", 1)[-1]
    return None


def tensor_activation(ctx: Any, tensor: Any, definition: Any, depth: int = 0) -> Optional[str]:
    """The activation that produced a functional-API tensor expression: ``Dense(10)(x)``,
    ``layers.Softmax()(x)``, ``tf.nn.softmax(x)``, through single assignments."""
    if tensor is None or depth > 3:
        return None
    if isinstance(tensor, cst.Name):
        return tensor_activation(ctx, _value_before(ctx, tensor.value, definition), definition, depth + 1)
    if not isinstance(tensor, cst.Call):
        return None
    func = tensor.func
    if isinstance(func, cst.Call):  # Dense(10)(x)
        return layer_activation(ctx, func)
    qualified = ctx.qualname(func) or ""
    if qualified in ACTIVATION_OPS:
        return ACTIVATION_OPS[qualified]
    if qualified.startswith(KERAS_PREFIXES) and (".activations." in qualified or ".ops." in qualified):
        return KERAS_ACTIVATION_OPS.get(qualified.rsplit(".", 1)[-1])
    if isinstance(func, cst.Name):  # head = layers.Dense(10); outputs = head(x)
        return layer_activation(ctx, ctx.assigned_value(func))
    return None


def _value_before(ctx: Any, name: str, node: Any) -> Any:
    """The value of the last straight-line assignment to ``name`` before the call ``node`` in
    the function being visited; None when an assignment in a branch or loop may intervene."""
    root = root_of(ctx)
    events = ctx.object_events(root).get(name, [])
    use = next((e for e in events if e.node is node), None)
    if use is None:
        return None
    straight = {id(s) for s in straight_line_statements(root)}
    value = None
    for event in events:
        if event.order >= use.order:
            break
        if event.kind == "assign":
            if id(event.node) not in straight or event.loop is not None:
                value = None
                continue
            value = event.value
    return value


# ---------------------------------------------------------------------- losses


@dataclass
class LossFacts:
    kind: str  # "categorical" / "binary"
    from_logits: Optional[bool]  # None: not a literal
    how: str  # "string" / "function" / "object"
    node: Any  # the expression (string, name, call)
    name: str  # the loss function name or class name


def loss_facts(ctx: Any, value: Any, depth: int = 0) -> Optional[LossFacts]:
    """What a ``loss=`` value is, for the crossentropy losses that take ``from_logits``."""
    if value is None:
        return None
    text = _string(value)
    if text is not None:
        kind = LOSS_FUNCTIONS.get(text)
        return LossFacts(kind, False, "string", value, text) if kind else None
    if isinstance(value, cst.Call):
        api = keras_api(ctx, value.func)
        if api not in LOSS_CLASSES or any(a.star for a in value.args):
            return None
        flag = ctx.argument(value, 0, "from_logits")
        if flag is None:
            from_logits: Optional[bool] = False
        elif isinstance(flag, cst.Name) and flag.value in ("True", "False"):
            from_logits = flag.value == "True"
        else:
            from_logits = None
        return LossFacts(LOSS_CLASSES[api], from_logits, "object", value, api)
    if isinstance(value, (cst.Name, cst.Attribute)):
        api = keras_api(ctx, value)
        if api in LOSS_FUNCTIONS:
            return LossFacts(LOSS_FUNCTIONS[api], False, "function", value, api)
        if isinstance(value, cst.Name) and depth < 2 and api is None and ctx.qualname(value) is None:
            facts = loss_facts(ctx, ctx.assigned_value(value), depth + 1)
            if facts is not None:
                facts.how = "name"
            return facts
    return None


# ---------------------------------------------------------------------- trainable changes


@dataclass
class TrainEvent:
    kind: str  # "compile", "fit", "trainable", "other-compile"
    model: str  # the dotted model name ("" for other-compile)
    node: Any
    order: int


def trainable_owner(ctx: Any, target: Any, loops: Dict[str, str]) -> Optional[str]:
    """The model whose layers ``<target>.trainable = ...`` changes: ``m`` for ``m.trainable``,
    ``m.layers[i].trainable``, ``m.get_layer("x").trainable``, and for ``layer.trainable``
    inside ``for layer in m.layers:``."""
    if not isinstance(target, cst.Attribute) or target.attr.value != "trainable":
        return None
    owner = target.value
    if isinstance(owner, cst.Subscript):
        owner = owner.value
        if isinstance(owner, cst.Attribute) and owner.attr.value == "layers":
            return dotted_name(owner.value)
        return None
    if isinstance(owner, cst.Call) and isinstance(owner.func, cst.Attribute) and owner.func.attr.value == "get_layer":
        return dotted_name(owner.func.value)
    name = dotted_name(owner)
    if name is None:
        return None
    return loops.get(name, name)


def _loop_owner(node: cst.For) -> Optional[Tuple[str, str]]:
    """``for layer in m.layers[...]:`` -> (layer, m)."""
    if not isinstance(node.target, cst.Name):
        return None
    source = node.iter
    if isinstance(source, cst.Subscript):
        source = source.value
    if isinstance(source, cst.Attribute) and source.attr.value == "layers":
        owner = dotted_name(source.value)
        if owner is not None:
            return node.target.value, owner
    return None


def training_events(ctx: Any, root: Any) -> List[TrainEvent]:
    """compile / fit calls and trainable assignments in one function, in source order (nested
    functions and classes are not entered)."""

    def compute(_: Any) -> List[TrainEvent]:
        out: List[TrainEvent] = []
        counter = [0]

        def visit(node: Any, loops: Dict[str, str]) -> None:
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and node is not root:
                return
            if isinstance(node, cst.For):
                owner = _loop_owner(node)
                visit(node.iter, loops)
                inner = dict(loops)
                if owner is not None:
                    inner[owner[0]] = owner[1]
                visit(node.body, inner)
                if node.orelse is not None:
                    visit(node.orelse, loops)
                return
            for child in children(node):
                visit(child, loops)
            counter[0] += 1
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                method = node.func.attr.value
                model = dotted_name(node.func.value)
                if method == "compile" and model is not None:
                    out.append(TrainEvent("compile", model, node, counter[0]))
                elif method in FIT_METHODS and model is not None:
                    out.append(TrainEvent("fit", model, node, counter[0]))
            elif isinstance(node, cst.Assign):
                for target in node.targets:
                    owner = trainable_owner(ctx, target.target, loops)
                    if owner is not None:
                        out.append(TrainEvent("trainable", owner, node, counter[0]))

        body = root.body if isinstance(root, cst.FunctionDef) else root
        if isinstance(root, cst.Module):
            for statement in root.body:
                if not isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
                    visit(statement, {})
        else:
            visit(body, {})
        return out

    return ctx.memo(f"keras:training:{id(root)}", compute)


def contained_models(ctx: Any, root: Any, model: str) -> List[str]:
    """Names of objects that are layers of ``model`` in this function: the elements of its
    ``Sequential([...])`` literal, its ``.add(x)`` arguments, and objects called while its
    functional graph was built (called before ``Model(...)`` in the same function)."""
    out: List[str] = []
    events = ctx.object_events(root)
    definition = None
    definition_order = None
    for event in events.get(model, []):
        if event.kind == "assign" and isinstance(event.value, cst.Call):
            definition, definition_order = event.value, event.order
        if event.kind == "method" and event.name == "add":
            arg = ctx.argument(event.node, 0, "layer")
            if dotted_name(arg):
                out.append(dotted_name(arg))
    if definition is None:
        return out
    api = keras_api(ctx, definition.func)
    if api == SEQUENTIAL:
        layers = ctx.argument(definition, 0, "layers")
        if isinstance(layers, (cst.List, cst.Tuple)):
            out += [dotted_name(e.value) for e in layers.elements if dotted_name(e.value)]
    elif api in FUNCTIONAL:
        for name, items in events.items():
            if any(e.kind == "called" and e.order < definition_order for e in items):
                out.append(name)
    return out
