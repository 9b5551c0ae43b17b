from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children, dotted_name, names_in
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import class_of, export_call, file_base_classes, find_method, origin_of
from dllint.rules.optimization._tfmot import expects_error, keras_family

#: Conversion entry points that trace a Keras model in inference mode, and how the model is given.
MODEL_ENTRIES = ("TFLiteConverter.from_keras_model", "tf2onnx.convert.from_keras")
FUNCTION_ENTRIES = ("TFLiteConverter.from_concrete_functions", "tf2onnx.convert.from_function")

#: Classes whose call with (inputs, outputs) builds a functional model.
FUNCTIONAL_CLASSES = ("Model", "Functional")

#: Deliberate Monte Carlo dropout (training-mode dropout at inference to estimate uncertainty).
_MC_DROPOUT = re.compile(r"monte[\s_-]*carlo|\bmc[\s_-]*dropout|MCDropout|uncertaint", re.IGNORECASE)

_STATEMENTS = (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Expr, cst.Return)


def _parents(ctx: Any) -> Dict[int, Any]:
    def compute(ctx: Any) -> Dict[int, Any]:
        out: Dict[int, Any] = {}
        todo = [ctx.module]
        while todo:
            node = todo.pop()
            for child in children(node):
                out[id(child)] = node
                todo.append(child)
        return out

    return ctx.memo("dl318.parents", compute)


def _enclosing(ctx: Any, node: Any, kinds: Tuple[type, ...]) -> Any:
    parents = _parents(ctx)
    current = parents.get(id(node))
    while current is not None and not isinstance(current, kinds):
        current = parents.get(id(current))
    return current


def _walk(node: Any) -> List[Any]:
    """Nodes under ``node`` in source order, without entering nested functions, lambdas and classes."""
    out: List[Any] = []
    todo = [node]
    while todo:
        current = todo.pop()
        out.append(current)
        if current is not node and isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        todo.extend(reversed(children(current)))
    return out


def _is_true(node: Any) -> bool:
    return isinstance(node, cst.Name) and node.value == "True"


def _training_true(call: Any) -> Optional[cst.Arg]:
    if not isinstance(call, cst.Call):
        return None
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "training" and _is_true(arg.value):
            return arg
    return None


def _keras_class(ctx: Any, cls: Optional[cst.ClassDef]) -> bool:
    """A class of this file deriving (through file classes) from a Keras layer or model."""
    if cls is None:
        return False
    for owner in file_base_classes(ctx, cls):
        for base in owner.bases:
            if keras_family(ctx.qualname(base.value)) is not None:
                return True
    return False


def _keras_made(ctx: Any, expr: Any) -> bool:
    """``expr`` (a callee) is a Keras layer / model: made by a call under a Keras namespace or by
    a Keras class of this file, directly or through a name assigned once."""
    for _ in range(4):
        if isinstance(expr, cst.Name):
            value = ctx.assigned_value(expr)
            if value is None:
                value = _single_value(ctx, expr)
            expr = value
            continue
        break
    if not isinstance(expr, cst.Call):
        return False
    if keras_family(ctx.qualname(expr.func)) is not None:
        return True
    return _keras_class(ctx, class_of(ctx, expr))


def _single_value(ctx: Any, name: cst.Name) -> Any:
    """The one value a name is given anywhere in the function that contains it (the walk may be
    past that function, so its bindings are read from the tree)."""
    function = _enclosing(ctx, name, (cst.FunctionDef,))
    root = function.body if function is not None else ctx.module
    values = [
        node.value
        for node in _walk(root)
        if isinstance(node, cst.Assign)
        and any(isinstance(t.target, cst.Name) and t.target.value == name.value for t in node.targets)
    ]
    return values[0] if len(values) == 1 else None


class TfliteConversionOfTrainingModeLayers(Rule):
    """A Keras model whose layers are called with training=True is converted to TFLite or ONNX.

    Finds `training=True` (the literal) on a layer call that is part of a Keras model later handed
    to `tf.lite.TFLiteConverter.from_keras_model(m)`, `TFLiteConverter.from_concrete_functions([f])`
    (where `f` is `tf.function(m).get_concrete_function(...)`, `m.call` / `m.__call__`'s concrete
    function, or a local `@tf.function` that calls `m`), `tf2onnx.convert.from_keras(m)` or
    `tf2onnx.convert.from_function(f)` of such a function. The model `m` is followed back through
    names assigned once and one helper's return to the call that built it:
    - a functional model `keras.Model(inputs, outputs)` / `tf.keras.Model(...)`: the statements of
      the function (or module) that build it are sliced backwards from its `inputs, outputs`
      arguments, and every call on the way with `training=True` is a finding
      (`Dropout(0.5)(h, training=True)`, `BatchNormalization()(h, training=True)`,
      `base_model(x, training=True)`), as are calls of a local helper with `training=True` that
      passes its `training` parameter on to a call;
    - a subclassed model (a class of this file deriving from `keras.Model`): calls with
      `training=True` in its `call` method (found through file base classes).

    Why it breaks: `training=True` fixes the mode of that layer call, whatever mode Keras passes
    at inference. The converter traces the model's inference function, so the traced graph keeps
    the training-time ops: dropout's `RandomUniform` mask and batch normalisation's batch
    statistics and moving-average updates (assignments to resource variables). Conversion then
    fails (tensorflow/tensorflow#50502: `TFLiteConverter.from_keras_model(...).convert()` of a
    generator with `Dropout(0.5)(h, training=True)` and `BatchNormalization()(h, training=True)`
    fails with "incompatible with expected resource" and unsupported-op errors; removing both
    arguments made it work), or the converted model computes training-mode outputs (random dropout,
    per-batch normalisation). The Keras guide on the `training` argument: layers such as
    `BatchNormalization` and `Dropout` behave differently in training and inference, and the mode
    is passed down automatically from the outer call. TensorFlow is not installed where this rule
    was written; the claim rests on the report and the Keras documentation.

    How to fix: remove `training=True` and let Keras pass the mode (`fit` calls the model with
    `training=True`, inference and conversion with `training=False`). The fix removes the argument
    and is safe when the call is a direct layer call inside the model definition (a Keras layer or
    model object, or `self.<layer>` in `call`); on a helper call it is only suggested, because
    the helper's own default takes over.

    Stays silent when the model's origin is unknown (loaded, a parameter, built elsewhere), on
    `Sequential` models, on `training=<variable>` (not a literal), on calls under `if training:` in
    a subclassed `call` (inference never runs them), on layers of other models in the
    same function that do not feed the converted model's outputs, inside `pytest.raises` /
    `assertRaises`, and in files that speak of Monte Carlo dropout or uncertainty (training-mode
    dropout kept at inference on purpose). Custom layer classes that force `training=True` in their
    own `call` (the usual Monte Carlo dropout layer) are not followed.
    """

    code = "DL318"
    name = "tflite-conversion-of-training-mode-layers"
    family = "conversion"
    message = (
        "layer called with training=True inside a model that is converted (TFLite / tf2onnx); the traced graph "
        "keeps training-time ops (dropout's RandomUniform, batch-norm moving-average updates), so conversion "
        "fails or the converted model computes training-mode outputs. Remove training=True and let Keras pass the mode"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(c) Jajal et al., failures of DL model converters; dev corpus case gh-tensorflow-tensorflow-50502",
        category="converter input in training mode: layers called with training=True",
        links=(
            "https://github.com/tensorflow/tensorflow/issues/50502",
            "https://keras.io/guides/making_new_layers_and_models_via_subclassing/#privileged-training-argument-in-the-call-method",
            "https://keras.io/getting_started/faq/#whats-the-difference-between-the-training-argument-in-call-and-the-trainable-attribute",
        ),
    )
    triggers = ("training=True",)
    frameworks = ("tensorflow", "tf2onnx")

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            inp = tf.keras.Input((16,))
            h = layers.Dropout(0.5)(inp)
            h = layers.BatchNormalization()(h)
            model = tf.keras.Model(inp, h)
            tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            """), "no training=True: Keras passes the mode"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            inp = tf.keras.Input((16,))
            base = tf.keras.applications.MobileNetV2(include_top=False)
            h = base(inp, training=False)
            model = tf.keras.Model(inp, h)
            tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            """), "training=False is the inference mode"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            inp = tf.keras.Input((16,))
            h = layers.Dense(8)(inp)
            model = tf.keras.Model(inp, h)
            with tf.GradientTape() as tape:
                y = model(x, training=True)
            tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            """), "training=True on a training step, not in the model definition"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            a_in = tf.keras.Input((16,))
            a = layers.Dropout(0.5)(a_in, training=True)
            critic = tf.keras.Model(a_in, a)
            g_in = tf.keras.Input((16,))
            g = layers.Dense(4)(g_in)
            generator = tf.keras.Model(g_in, g)
            tflite = tf.lite.TFLiteConverter.from_keras_model(generator).convert()
            """), "another model in the same script has the training=True layer"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            inp = tf.keras.Input((16,))
            h = layers.Dropout(0.5)(inp, training=True)  # Monte Carlo dropout for uncertainty
            model = tf.keras.Model(inp, h)
            tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            """), "deliberate Monte Carlo dropout"),
        Valid(dedent("""
            import tensorflow as tf
            model = tf.keras.models.load_model("m.keras")
            tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
            """), "a loaded model: its definition is not in the file"),
        Valid(dedent("""
            import tensorflow as tf
            class Net(tf.keras.Model):
                def __init__(self):
                    super().__init__()
                    self.drop = tf.keras.layers.Dropout(0.3)
                def call(self, x, training=False):
                    if training:
                        x = self.drop(x, training=True)
                    return x
            converter = tf.lite.TFLiteConverter.from_keras_model(Net())
            """), "only on the training branch"),
        Valid(dedent("""
            import tensorflow as tf
            class Net(tf.keras.Model):
                def __init__(self):
                    super().__init__()
                    self.drop = tf.keras.layers.Dropout(0.3)
                def call(self, x, training=None):
                    return self.drop(x, training=training)
            converter = tf.lite.TFLiteConverter.from_keras_model(Net())
            """), "the mode passed through, not forced"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import tensorflow as tf
                from keras.models import Input, Model
                from keras.layers import Conv2D, Dropout, BatchNormalization
                src = Input(shape=(128, 128, 3))
                h = Conv2D(32, (4, 4), strides=(2, 2), padding="same")(src)
                h = Dropout(0.5)(h, training=True)
                h = BatchNormalization()(h, training=True)
                generator = Model(src, h)
                converter = tf.lite.TFLiteConverter.from_keras_model(generator)
                tflite_generator = converter.convert()
                """),
            fixed=dedent("""
                import tensorflow as tf
                from keras.models import Input, Model
                from keras.layers import Conv2D, Dropout, BatchNormalization
                src = Input(shape=(128, 128, 3))
                h = Conv2D(32, (4, 4), strides=(2, 2), padding="same")(src)
                h = Dropout(0.5)(h)
                h = BatchNormalization()(h)
                generator = Model(src, h)
                converter = tf.lite.TFLiteConverter.from_keras_model(generator)
                tflite_generator = converter.convert()
                """),
            count=2,
            note="tensorflow/tensorflow#50502",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def build():
                    inputs = tf.keras.Input((224, 224, 3))
                    base = tf.keras.applications.MobileNetV2(include_top=False)
                    x = base(inputs, training=True)
                    outputs = tf.keras.layers.Dense(10)(x)
                    return tf.keras.Model(inputs, outputs)
                model = build()
                tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
                """),
            fixed=dedent("""
                import tensorflow as tf
                def build():
                    inputs = tf.keras.Input((224, 224, 3))
                    base = tf.keras.applications.MobileNetV2(include_top=False)
                    x = base(inputs)
                    outputs = tf.keras.layers.Dense(10)(x)
                    return tf.keras.Model(inputs, outputs)
                model = build()
                tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
                """),
            note="a pretrained base called in training mode, model from a helper",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                class Net(tf.keras.Model):
                    def __init__(self):
                        super().__init__()
                        self.bn = tf.keras.layers.BatchNormalization()
                        self.out = tf.keras.layers.Dense(2)
                    def call(self, x):
                        return self.out(self.bn(x, training=True))
                net = Net()
                fn = tf.function(net).get_concrete_function(tf.TensorSpec([1, 8], tf.float32))
                converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], net)
                """),
            fixed=dedent("""
                import tensorflow as tf
                class Net(tf.keras.Model):
                    def __init__(self):
                        super().__init__()
                        self.bn = tf.keras.layers.BatchNormalization()
                        self.out = tf.keras.layers.Dense(2)
                    def call(self, x):
                        return self.out(self.bn(x))
                net = Net()
                fn = tf.function(net).get_concrete_function(tf.TensorSpec([1, 8], tf.float32))
                converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], net)
                """),
            note="subclassed model, from_concrete_functions",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tf2onnx
                inp = tf.keras.Input((32,))
                h = tf.keras.layers.Dense(16)(inp)
                h = tf.keras.layers.Dropout(0.2)(h, training=True)
                model = tf.keras.Model(inputs=inp, outputs=h)
                onnx_model, _ = tf2onnx.convert.from_keras(model)
                """),
            fixed=dedent("""
                import tensorflow as tf
                import tf2onnx
                inp = tf.keras.Input((32,))
                h = tf.keras.layers.Dense(16)(inp)
                h = tf.keras.layers.Dropout(0.2)(h)
                model = tf.keras.Model(inputs=inp, outputs=h)
                onnx_model, _ = tf2onnx.convert.from_keras(model)
                """),
            note="tf2onnx.convert.from_keras",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tf2onnx
                from tensorflow.keras import layers
                def block(x, training=False):
                    x = layers.Conv2D(8, 3)(x)
                    return layers.BatchNormalization()(x, training=training)
                inp = tf.keras.Input((32, 32, 3))
                out = block(inp, training=True)
                model = tf.keras.Model(inp, out)
                @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
                def serve(x):
                    return model(x)
                tf2onnx.convert.from_function(serve, opset=15)
                """),
            fixed=dedent("""
                import tensorflow as tf
                import tf2onnx
                from tensorflow.keras import layers
                def block(x, training=False):
                    x = layers.Conv2D(8, 3)(x)
                    return layers.BatchNormalization()(x, training=training)
                inp = tf.keras.Input((32, 32, 3))
                out = block(inp)
                model = tf.keras.Model(inp, out)
                @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
                def serve(x):
                    return model(x)
                tf2onnx.convert.from_function(serve, opset=15)
                """),
            unsafe=True,
            note="a helper passing training on, converted through a tf.function",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or (export.entry not in MODEL_ENTRIES and export.entry not in FUNCTION_ENTRIES):
            return
        if expects_error(ctx) or ctx.memo("dl318.mc", lambda c: bool(_MC_DROPOUT.search(c.source))):
            return
        if export.entry in MODEL_ENTRIES:
            models = [export.model] if export.model is not None else []
        else:
            first = ctx.argument(node, 0, "funcs" if export.kind == "tflite" else "function")
            models = self._models_of_functions(ctx, first)
        reported: Set[int] = ctx.memo("dl318.reported", lambda c: set())
        for model in models:
            for call, arg, safe in self._training_calls(ctx, model):
                if id(arg) in reported:
                    continue
                reported.add(id(arg))
                new_args = [a for a in call.args if a is not arg]
                if new_args:
                    last = new_args[-1]
                    new_args[-1] = last.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                fix = Fix(
                    "remove training=True (Keras passes the mode)",
                    [(call, call.with_changes(args=new_args))],
                    FixKind.SAFE if safe else FixKind.UNSAFE,
                )
                self.report(arg, self.message, fix)

    # ------------------------------------------------------------------ converted models

    def _models_of_functions(self, ctx: Any, funcs: Any) -> List[Any]:
        """Model expressions called by the functions (or concrete functions) given to a converter."""
        if funcs is None:
            return []
        funcs = self._value(ctx, funcs)
        items = [e.value for e in funcs.elements] if isinstance(funcs, (cst.List, cst.Tuple)) else [funcs]
        out: List[Any] = []
        for item in items:
            out.extend(self._models_of_function(ctx, item, 0))
        return out

    def _models_of_function(self, ctx: Any, expr: Any, depth: int) -> List[Any]:
        if depth > 4 or expr is None:
            return []
        if isinstance(expr, cst.Name):
            bindings = ctx.lookup(expr.value)
            if bindings and len(bindings) == 1 and isinstance(bindings[0].value, cst.FunctionDef):
                return self._models_called_in(ctx, bindings[0].value)
            value = self._value(ctx, expr)
            if value is not expr and self._function_maker(ctx, value):
                return self._models_of_function(ctx, value, depth + 1)
            return [expr]
        if isinstance(expr, cst.Call):
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value == "get_concrete_function":
                return self._models_of_function(ctx, func.value, depth + 1)
            if ctx.qualname(func) in ("tensorflow.function", "tensorflow.compat.v2.function") and expr.args:
                return self._models_of_function(ctx, expr.args[0].value, depth + 1)
            return []
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("call", "__call__"):
            return [expr.value]
        if isinstance(expr, cst.Lambda):
            return [c.func for c in _walk(expr.body) if isinstance(c, cst.Call) and isinstance(c.func, cst.Name)]
        return [expr] if dotted_name(expr) else []

    @staticmethod
    def _function_maker(ctx: Any, value: Any) -> bool:
        """``x.get_concrete_function(...)``, ``tf.function(...)``, ``m.call`` / ``m.__call__``."""
        if isinstance(value, cst.Call):
            func = value.func
            if isinstance(func, cst.Attribute) and func.attr.value == "get_concrete_function":
                return True
            return ctx.qualname(func) in ("tensorflow.function", "tensorflow.compat.v2.function")
        return isinstance(value, (cst.Attribute, cst.Lambda))

    def _models_called_in(self, ctx: Any, function: cst.FunctionDef) -> List[Any]:
        """Names called in a local (tf.function) body that are not its parameters."""
        params = {p.name.value for p in function.params.params}
        out = []
        for node in _walk(function.body):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value not in params:
                out.append(node.func)
        return out

    @staticmethod
    def _value(ctx: Any, expr: Any) -> Any:
        if isinstance(expr, cst.Name):
            value = ctx.assigned_value(expr)
            if value is None:
                value = _single_value(ctx, expr)
            return value if value is not None else expr
        return expr

    # ------------------------------------------------------------------ training=True calls

    def _training_calls(self, ctx: Any, model: Any) -> List[Tuple[cst.Call, cst.Arg, bool]]:
        origin, _ = origin_of(ctx, model)
        if origin is None and isinstance(model, cst.Name):
            origin = _single_value(ctx, model)
        if not isinstance(origin, cst.Call):
            return []
        cls = class_of(ctx, origin)
        if cls is not None:
            return self._subclassed(ctx, cls)
        name = ctx.qualname(origin.func)
        if keras_family(name) is None or name.rsplit(".", 1)[-1] not in FUNCTIONAL_CLASSES:
            return []
        return self._functional(ctx, origin)

    def _subclassed(self, ctx: Any, cls: cst.ClassDef) -> List[Tuple[cst.Call, cst.Arg, bool]]:
        if not _keras_class(ctx, cls):
            return []
        call = find_method(ctx, cls, "call")
        if call is None:
            return []
        out = []
        for node in _walk(call.body):
            arg = _training_true(node)
            if arg is None:
                continue
            if self._under_training_test(ctx, node, call):
                continue
            func = node.func
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
                out.append((node, arg, True))
            elif isinstance(func, cst.Call) and _keras_made(ctx, func):
                out.append((node, arg, True))
        return out

    @staticmethod
    def _under_training_test(ctx: Any, node: Any, function: Any) -> bool:
        """Inside ``if training:`` (or a conditional expression on it): inference skips it."""
        parents = _parents(ctx)
        current = parents.get(id(node))
        while current is not None and current is not function:
            if isinstance(current, (cst.If, cst.IfExp)) and "training" in names_in(current.test):
                return True
            current = parents.get(id(current))
        return False

    def _functional(self, ctx: Any, origin: cst.Call) -> List[Tuple[cst.Call, cst.Arg, bool]]:
        function = _enclosing(ctx, origin, (cst.FunctionDef,))
        root = function.body if function is not None else ctx.module
        statements = [n for n in _walk(root) if isinstance(n, _STATEMENTS)]
        here = _enclosing(ctx, origin, _STATEMENTS)
        index = next((i for i, s in enumerate(statements) if s is here), None)
        if index is None:
            return []
        top_level = {id(s) for s in self._top_statements(root)}
        live: Set[str] = set()
        values: List[Any] = []
        for arg in origin.args:
            values.append(arg.value)
            live |= names_in(arg.value)
        for statement in reversed(statements[:index]):
            if not isinstance(statement, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                continue
            targets = self._targets(statement)
            if not targets & live or statement.value is None:
                continue
            values.append(statement.value)
            used = names_in(statement.value)
            if id(statement) in top_level and not isinstance(statement, cst.AugAssign):
                live -= targets - used
            live |= used
        out = []
        for value in values:
            for node in _walk(value):
                arg = _training_true(node)
                if arg is None:
                    continue
                kind = self._callee_kind(ctx, node.func)
                if kind is not None:
                    out.append((node, arg, kind == "layer"))
        return out

    @staticmethod
    def _top_statements(root: Any) -> List[Any]:
        body = root.body if isinstance(root, (cst.Module, cst.IndentedBlock)) else []
        out = []
        for statement in body:
            if isinstance(statement, cst.SimpleStatementLine):
                out.extend(statement.body)
        return out

    @staticmethod
    def _targets(statement: Any) -> Set[str]:
        if isinstance(statement, cst.Assign):
            found: Set[str] = set()
            for target in statement.targets:
                todo = [target.target]
                while todo:
                    current = todo.pop()
                    if isinstance(current, (cst.Tuple, cst.List)):
                        todo.extend(e.value for e in current.elements)
                    elif isinstance(current, cst.Name):
                        found.add(current.value)
            return found
        target = statement.target
        return {target.value} if isinstance(target, cst.Name) else set()

    @staticmethod
    def _callee_kind(ctx: Any, func: Any) -> Optional[str]:
        """"layer" for a Keras layer / model object, "helper" for a local function that passes
        its ``training`` parameter on, None otherwise (unknown callees are left alone)."""
        if isinstance(func, cst.Call):
            return "layer" if _keras_made(ctx, func) else None
        if isinstance(func, cst.Name):
            bindings = ctx.lookup(func.value) or ctx.scopes[0].bindings.get(func.value)
            if bindings and len(bindings) == 1 and isinstance(bindings[0].value, cst.FunctionDef):
                helper = bindings[0].value
                passes = any(
                    isinstance(n, cst.Arg) and n.keyword is not None and n.keyword.value == "training"
                    and isinstance(n.value, cst.Name) and n.value.value == "training"
                    for n in _walk(helper.body)
                )
                return "helper" if passes else None
            return "layer" if _keras_made(ctx, func) else None
        return None
