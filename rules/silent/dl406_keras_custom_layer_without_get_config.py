from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import (
    TFMOT,
    environment_hidden,
    is_keras3,
    keras_family,
    legacy_keras_requested,
    pinned_packages,
    tensorflow_version,
    walk,
)

#: Keras namespaces whose ``Layer`` / ``Model`` a custom class may derive from.
_KERAS_PREFIXES = ("keras.", "tensorflow.keras.", "tf_keras.", "tensorflow.python.keras.")

#: Keys that ``Layer.get_config()`` / ``Model.get_config()`` of the base class already provide.
BASE_KEYS = frozenset({"name", "trainable", "dtype", "dynamic", "batch_input_shape", "input_shape",
                       "activity_regularizer", "autocast", "input_dim", "batch_size", "weights"})

#: Calls whose presence in the file means models are saved or loaded whole (not weights only).
SAVE_FUNCTIONS = frozenset({"save_model", "load_model", "model_from_json", "model_from_config"})

#: Receivers of ``.save(...)`` that are not Keras models.
_NOT_MODELS = ("numpy.", "torch.", "PIL.", "matplotlib.", "tensorflow.train.", "tensorflow.saved_model.",
               "pandas.", "joblib.", "pickle.")

#: Names that register custom objects for loading, anywhere in the file.
_SCOPES = ("custom_object_scope", "CustomObjectScope", "get_custom_objects")

_REASONS = {
    "kwargs": "no **kwargs forwarded",
    "nonserial": "non-serialisable __init__ argument without get_config",
    "omits": "get_config omits {param}",
    "unregistered": "class not registered",
}


def _message(reason: str, param: str = "") -> str:
    text = _REASONS[reason].format(param=param)
    return (
        f"custom layer/model will not survive save/load ({text}); saving/loading will fail or "
        "silently rebuild it with wrong arguments"
    )


class KerasCustomLayerWithoutGetConfig(Rule):
    """A custom Keras layer or model that cannot be saved and reloaded as written.

    Finds classes deriving directly from `keras.layers.Layer` / `keras.Layer` / `keras.Model`
    (also `tf.keras.layers.Layer`, `tf.keras.Model`, `tf_keras.*`, under any import or alias)
    that reach a whole-model save or load of the same file (`model.save(...)` on a model,
    `save_model`, `load_model`, `to_json`, `model_from_json`): the class is instantiated before
    that call in the same function or top-level code, or inside a function or class of the file
    that such code calls, or is named in the load's `custom_objects`; and where:

    (a) `__init__` takes no `**kwargs` while the config handed back to `cls(**config)` holds the
        base keys: no `get_config` (the automatic config adds `trainable` and `dtype`) or a
        `get_config` built on `super().get_config()`: reload fails with
        `__init__() got an unexpected keyword argument 'trainable'`;
    (b) no `get_config` while `__init__` receives a non-primitive value (a layer, an array, a
        callable: a call or lambda passed where the class is instantiated in the file, a call or
        function as a default, or a parameter stored as `self.p = p` and then called
        `self.p(...)`), or, for a `Model` subclass, any `__init__` argument at all: saving
        raises `NotImplementedError: Object X was created by passing non-serializable argument
        values in __init__()`;
    (c) a `get_config` whose returned keys are all known (a dict literal, `config.update({...})`,
        `config[...] = ...`, the `dict(list(base.items()) + list(config.items()))` idiom) and
        miss an `__init__` parameter, with no `from_config`: the layer is rebuilt with the
        parameter's default (or fails with a missing argument);
    (d) a class not registered (`@keras.saving.register_keras_serializable()`,
        `get_custom_objects()`), while the file reloads a path it saved (same literal or name)
        with `load_model(...)` without `custom_objects=` and uses no `custom_object_scope`.

    Why it breaks: Keras rebuilds a layer from `cls(**layer.get_config())`. Keras 3 generates the
    config of a class without `get_config` from its `__init__` arguments only when all are
    str/int/float/bool/None. Measured with Keras 3.15 (`.keras` files): (a) reload raises
    TypeError, (b) `save` raises NotImplementedError (a `keras.Model` subclass with even one int
    argument and no `get_config` does too), (c) a `factor=3.0` layer reloads as `factor=1.0`
    and predicts different numbers with no error, (d) `load_model` raises TypeError for an
    unregistered class (Keras 3 imports classes by module only for its own packages).

    How to fix: accept `**kwargs` and pass them to `super().__init__(**kwargs)`, write
    `get_config` returning `{**super().get_config(), "factor": self.factor}` (serialise nested
    layers with `keras.saving.serialize_keras_object` and rebuild them in `from_config`), and
    decorate the class with `@keras.saving.register_keras_serializable()` or pass
    `custom_objects=` to `load_model`. The suggested fix (for (a) and for a `Model` without
    `get_config` whose parameters are all stored as same-named attributes) adds `**kwargs` and
    a `get_config`.

    Limits (precision first): only direct subclasses of Layer / Model; classes with a
    `from_config`, with `*args` in `__init__`, or whose `get_config` returns keys that cannot be
    read statically are left alone; files that only `save_weights` / `load_weights` (or
    `tf.train.Checkpoint`, `tf.saved_model.save`) are not reported, nor classes that no save or
    load of the file reaches (a layer module saved by another file is missed). Under Keras 2
    (`tf_keras`, `tf.keras` with TensorFlow pinned below 2.16, `keras` pinned below 3) the
    SavedModel format revives custom classes without their config, so the
    rule fires there only when the file uses HDF5 (`.h5`, `save_format="h5"`) or JSON.
    """

    code = "DL406"
    name = "keras-custom-layer-without-get-config"
    family = "silent"
    message = (
        "custom layer/model will not survive save/load (no **kwargs forwarded | non-serialisable __init__ "
        "argument without get_config | get_config omits <param> | class not registered); saving/loading will "
        "fail or silently rebuild it with wrong arguments"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(d) silent bugs in TensorFlow/Keras",
        category="Wrong save/reload",
        links=(
            "https://github.com/keras-team/keras/issues/4871",
            "https://github.com/keras-team/keras/issues/1927",
            "https://github.com/keras-team/keras/issues/8956",
            "https://github.com/jkiesele/caloGraphNN/pull/2",
            "https://github.com/Benjamin-Etheredge/mlp-mixer-keras/issues/2",
            "https://github.com/keras-team/keras-core/issues/469",
            "https://github.com/tensorflow/tensorflow/issues/46329",
        ),
    )
    triggers = ("Layer", "Model")
    frameworks = ("keras", "tensorflow", "tf_keras")

    VALID = (
        Valid(dedent("""
            import keras

            class Scale(keras.layers.Layer):
                def __init__(self, factor, **kwargs):
                    super().__init__(**kwargs)
                    self.factor = factor

                def call(self, x):
                    return x * self.factor

            model = keras.Sequential([Scale(2.0)])
            model.save("m.keras")
            """), "primitive argument, **kwargs forwarded: the automatic config is enough"),
        Valid(dedent("""
            import keras

            class Scale(keras.layers.Layer):
                def __init__(self, factor):
                    super().__init__()
                    self.factor = factor

            model = keras.Sequential([Scale(2.0)])
            model.save_weights("m.weights.h5")
            """), "weights only: no config is needed"),
        Valid(dedent("""
            import tensorflow as tf

            class Block(tf.keras.layers.Layer):
                def __init__(self, units, rate=0.1, **kwargs):
                    super().__init__(**kwargs)
                    self.units = units
                    self.rate = rate

                def get_config(self):
                    config = super().get_config()
                    config.update({"units": self.units, "rate": self.rate})
                    return config

            model.save("m.keras")
            """), "complete get_config"),
        Valid(dedent("""
            import keras

            class Scale(keras.layers.Layer):
                def __init__(self, factor):
                    super().__init__()
                    self.factor = factor

                def get_config(self):
                    return {"factor": self.factor}

            model.save("m.keras")
            """), "own get_config without the base keys: cls(**config) works"),
        Valid(dedent("""
            import keras

            class Wrap(keras.layers.Layer):
                def __init__(self, inner, **kwargs):
                    super().__init__(**kwargs)
                    self.inner = inner

                def get_config(self):
                    return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

                @classmethod
                def from_config(cls, config):
                    config["inner"] = keras.saving.deserialize_keras_object(config["inner"])
                    return cls(**config)

            model.save("m.keras")
            """), "from_config handles the nested layer"),
        Valid(dedent("""
            import keras

            @keras.saving.register_keras_serializable()
            class Scale(keras.layers.Layer):
                def __init__(self, factor=1.0, **kwargs):
                    super().__init__(**kwargs)
                    self.factor = factor

            model = keras.Sequential([Scale(2.0)])
            model.save("m.keras")
            restored = keras.models.load_model("m.keras")
            """), "registered: load_model finds it"),
        Valid(dedent("""
            import tensorflow as tf

            class Net(tf.keras.Model):
                def __init__(self, units):
                    super().__init__()
                    self.d = tf.keras.layers.Dense(units)

            net = Net(3)
            ckpt = tf.train.Checkpoint(model=net)
            ckpt.save("ckpt")
            """), "a tf.train.Checkpoint saves variables only"),
        Valid(dedent("""
            import keras

            class Scale(keras.layers.Layer):
                def __init__(self, factor, **kwargs):
                    super().__init__(**kwargs)
                    self.factor = factor

                def get_config(self):
                    config = super().get_config()
                    config.update(self.extra_config())
                    return config

            model.save("m.keras")
            """), "keys cannot be read statically"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import keras

                class Scale(keras.layers.Layer):
                    def __init__(self, factor):
                        super().__init__()
                        self.factor = factor

                model = keras.Sequential([Scale(2.0)])
                model.save("m.keras")
                """),
            fixed=dedent("""
                import keras

                class Scale(keras.layers.Layer):
                    def __init__(self, factor, **kwargs):
                        super().__init__(**kwargs)
                        self.factor = factor

                    def get_config(self):
                        return {**super().get_config(), "factor": self.factor}

                model = keras.Sequential([Scale(2.0)])
                model.save("m.keras")
                """),
            unsafe=True,
            note="(a) the catalogue's Bad example: no **kwargs",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf

                class Residual(tf.keras.layers.Layer):
                    def __init__(self, block, **kwargs):
                        super().__init__(**kwargs)
                        self.block = block

                    def call(self, x):
                        return x + self.block(x)

                model = tf.keras.Sequential([Residual(tf.keras.layers.Dense(8))])
                model.save("m.keras")
                """),
            note="(b) a layer passed to __init__, no get_config (tf.keras = Keras 3)",
        ),
        Invalid(
            dedent("""
                from keras import layers
                import keras

                class Scale(layers.Layer):
                    def __init__(self, factor=1.0, bias=0.0, **kwargs):
                        super().__init__(**kwargs)
                        self.factor = factor
                        self.bias = bias

                    def get_config(self):
                        config = super().get_config()
                        config.update({"factor": self.factor})
                        return config

                model = keras.Sequential([Scale(2.0, bias=1.0)])
                keras.saving.save_model(model, "m.keras")
                """),
            note="(c) get_config omits bias: reloaded with bias=0.0",
        ),
        Invalid(
            dedent("""
                import tf_keras

                class Scale(tf_keras.layers.Layer):
                    def __init__(self, factor, **kwargs):
                        super(Scale, self).__init__(**kwargs)
                        self.factor = factor

                    def get_config(self):
                        base_config = super(Scale, self).get_config()
                        config = {"scale": self.factor}
                        return dict(list(base_config.items()) + list(config.items()))

                model = tf_keras.Sequential([Scale(2.0)])
                model.save("m.h5")
                """),
            note="(c) tf_keras with HDF5: the key is not the parameter's name",
        ),
        Invalid(
            dedent("""
                import keras

                class Scale(keras.layers.Layer):
                    def __init__(self, factor, **kwargs):
                        super().__init__(**kwargs)
                        self.factor = factor

                model = keras.Sequential([keras.Input((3,)), Scale(2.0)])
                model.save("m.keras")
                restored = keras.models.load_model("m.keras")
                """),
            note="(d) unregistered class, load_model without custom_objects",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf

                class Net(tf.keras.Model):
                    def __init__(self, units):
                        super().__init__()
                        self.units = units
                        self.dense = tf.keras.layers.Dense(units)

                    def call(self, x):
                        return self.dense(x)

                net = Net(3)
                net.save("net.keras")
                """),
            fixed=dedent("""
                import tensorflow as tf

                class Net(tf.keras.Model):
                    def __init__(self, units, **kwargs):
                        super().__init__(**kwargs)
                        self.units = units
                        self.dense = tf.keras.layers.Dense(units)

                    def call(self, x):
                        return self.dense(x)

                    def get_config(self):
                        return {**super().get_config(), "units": self.units}

                net = Net(3)
                net.save("net.keras")
                """),
            unsafe=True,
            note="(b) a subclassed Model with an argument and no get_config",
        ),
    )

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        ctx = self.ctx
        if ctx.function() is not None:
            return
        kind, family = self._keras_base(node)
        if kind is None:
            return
        facts = ctx.memo("dl406.file", _file_facts)
        if node.name.value not in facts["reached"]:
            return
        if not _keras3(ctx, family) and not facts["h5_or_json"]:
            return
        init = _method(node, "__init__")
        get_config = _method(node, "get_config")
        if _method(node, "from_config") is not None:
            return
        params, has_kwargs, has_varargs = _params(init)
        if has_varargs:
            return
        found = self._problem(node, kind, init, get_config, params, has_kwargs, facts)
        if found is None:
            return
        reason, param = found
        fix = None
        if get_config is None and reason in ("kwargs", "nonserial") and init is not None:
            fix = _fix(node, init, params, has_kwargs, kind, reason)
        self.report(node.name, _message(reason, param), fix=fix)

    # ------------------------------------------------------------------ analysis

    def _keras_base(self, node: cst.ClassDef) -> Tuple[Optional[str], str]:
        for base in node.bases:
            if base.keyword is not None:
                continue
            qualified = self.ctx.qualname(base.value) or ""
            if not qualified.startswith(_KERAS_PREFIXES):
                continue
            last = qualified.rsplit(".", 1)[-1]
            if last in ("Layer", "Model"):
                return last, keras_family(qualified) or "keras"
        return None, ""

    def _problem(self, node, kind, init, get_config, params, has_kwargs, facts) -> Optional[Tuple[str, str]]:
        names = [p.name.value for p in params]
        if get_config is None:
            if kind == "Model" and names:
                return "nonserial", ""
            if self._non_primitive(node, init, params):
                return "nonserial", ""
            if not has_kwargs and init is not None and "trainable" not in names:
                return "kwargs", ""
        else:
            keys = _config_keys(get_config)
            if keys is None:
                return None
            own, with_base = keys
            if with_base and not has_kwargs and "trainable" not in names and init is not None:
                return "kwargs", ""
            for name in names:
                if name in own or (with_base and name in BASE_KEYS):
                    continue
                return "omits", name
        if (
            facts["unregistered_load"]
            and not _registered(self.ctx, node)
            and node.name.value in facts["instantiated"]
        ):
            return "unregistered", ""
        return None

    def _non_primitive(self, node: cst.ClassDef, init: Any, params: List[cst.Param]) -> bool:
        if init is None:
            return False
        for param in params:
            if param.default is not None and _non_primitive_value(param.default):
                return True
        stored = _stored_params(init, {p.name.value for p in params})
        called = set()
        for item in walk(node, enter_functions=True):
            if isinstance(item, cst.Call) and isinstance(item.func, cst.Attribute):
                owner = item.func.value
                if isinstance(owner, cst.Name) and owner.value == "self":
                    called.add(item.func.attr.value)
        if any(attr in called for attr in stored.values()):
            return True
        positions = [p.name.value for p in params]
        for call in self.ctx.memo("dl406.file", _file_facts)["calls"].get(node.name.value, []):
            for index, arg in enumerate(call.args):
                if arg.star:
                    return False
            for index, arg in enumerate(call.args):
                if arg.keyword is None and index >= len(positions):
                    continue
                if _non_primitive_value(arg.value, self.ctx):
                    return True
        return False


# ---------------------------------------------------------------------- helpers


def _keras3(ctx: Any, family: str) -> bool:
    """Whether classes of this Keras spelling are Keras 3 classes under the project's versions:
    ``tf.keras`` is, unless TensorFlow is pinned below 2.16, tf_keras is installed, the legacy
    switch is mentioned or TFMOT (which sets it) is imported."""
    if family != "tf.keras":
        return is_keras3(ctx, family)
    tf_version = tensorflow_version(ctx)
    if tf_version is not None and tf_version < (2, 16):
        return False
    if "tf-keras" in pinned_packages(ctx) or environment_hidden(ctx) or legacy_keras_requested(ctx):
        return False
    return not any(module.split(".")[0] == TFMOT for module in ctx.imported_modules)


def _method(cls: cst.ClassDef, name: str) -> Optional[cst.FunctionDef]:
    found = None
    for statement in cls.body.body if isinstance(cls.body, cst.IndentedBlock) else []:
        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
            found = statement
    return found


def _params(init: Optional[cst.FunctionDef]) -> Tuple[List[cst.Param], bool, bool]:
    if init is None:
        return [], True, False
    parameters = init.params
    plain = list(parameters.posonly_params) + list(parameters.params) + list(parameters.kwonly_params)
    plain = [p for p in plain[1:]] if plain and plain[0].name.value in ("self",) else plain
    has_kwargs = isinstance(parameters.star_kwarg, cst.Param)
    has_varargs = isinstance(parameters.star_arg, cst.Param)
    return plain, has_kwargs, has_varargs


def _stored_params(init: cst.FunctionDef, names: Set[str]) -> Dict[str, str]:
    """Parameter -> attribute for ``self.<attr> = <param>`` statements of ``__init__``."""
    out: Dict[str, str] = {}
    for item in walk(init.body):
        if isinstance(item, cst.Assign) and isinstance(item.value, cst.Name) and item.value.value in names:
            for target in item.targets:
                t = target.target
                if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                    out.setdefault(item.value.value, t.attr.value)
    return out


_PRIMITIVE_CALLS = frozenset({"int", "float", "str", "bool", "tuple", "list", "dict", "len", "max", "min", "round"})


def _non_primitive_value(value: Any, ctx: Any = None) -> bool:
    """A value surely not a str/int/float/bool/None (nor a nest of them): a lambda, or a call
    of a Keras layer / initializer / activation / numpy or TF array builder."""
    if isinstance(value, cst.Lambda):
        return True
    if isinstance(value, (cst.List, cst.Tuple)):
        return any(_non_primitive_value(e.value, ctx) for e in value.elements if isinstance(e, cst.Element))
    if isinstance(value, cst.Call) and ctx is not None:
        qualified = ctx.qualname(value.func) or ""
        return qualified.startswith(_KERAS_PREFIXES + ("numpy.", "tensorflow."))
    return False


def _config_keys(function: cst.FunctionDef) -> Optional[Tuple[Set[str], bool]]:
    """(keys, whether the base config is included) of what ``get_config`` returns; None when
    they cannot be read."""
    returns = [n for n in walk(function.body) if isinstance(n, cst.Return)]
    if len(returns) != 1 or returns[0].value is None:
        return None
    names: Dict[str, Tuple[Set[str], bool]] = {}
    body = function.body.body if isinstance(function.body, cst.IndentedBlock) else []
    for statement in body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Return):
                    return _expr_keys(small.value, names)
                if isinstance(small, cst.Assign):
                    if len(small.targets) != 1:
                        return None
                    target = small.targets[0].target
                    if isinstance(target, cst.Name):
                        got = _expr_keys(small.value, names)
                        if got is None:
                            names.pop(target.value, None)
                            names[target.value] = None  # type: ignore[assignment]
                        else:
                            names[target.value] = got
                        continue
                    if isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
                        entry = names.get(target.value.value)
                        key = _subscript_key(target)
                        if entry is None or key is None:
                            return None
                        entry[0].add(key)
                        continue
                    return None
                if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                    call = small.value
                    func = call.func
                    if (
                        isinstance(func, cst.Attribute)
                        and func.attr.value == "update"
                        and isinstance(func.value, cst.Name)
                        and names.get(func.value.value) is not None
                    ):
                        entry = names[func.value.value]
                        for arg in call.args:
                            if arg.keyword is not None:
                                entry[0].add(arg.keyword.value)
                                continue
                            got = _expr_keys(arg.value, names)
                            if got is None or arg.star:
                                return None
                            entry[0].update(got[0])
                            if got[1]:
                                names[func.value.value] = (entry[0], True)
                        continue
                    return None
                if isinstance(small, (cst.Pass,)):
                    continue
                return None
        else:
            return None
    return None


def _subscript_key(node: cst.Subscript) -> Optional[str]:
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    value = node.slice[0].slice.value
    if isinstance(value, cst.SimpleString):
        return value.evaluated_value if isinstance(value.evaluated_value, str) else None
    return None


def _is_super_config(node: Any) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "get_config"
        and isinstance(node.func.value, cst.Call)
        and isinstance(node.func.value.func, cst.Name)
        and node.func.value.func.value == "super"
    )


def _expr_keys(node: Any, names: Dict[str, Any]) -> Optional[Tuple[Set[str], bool]]:
    if _is_super_config(node):
        return set(), True
    if isinstance(node, cst.Name):
        entry = names.get(node.value)
        return (set(entry[0]), entry[1]) if entry is not None else None
    if isinstance(node, cst.Dict):
        keys: Set[str] = set()
        base = False
        for element in node.elements:
            if isinstance(element, cst.StarredDictElement):
                got = _expr_keys(element.value, names)
                if got is None:
                    return None
                keys |= got[0]
                base = base or got[1]
            elif isinstance(element.key, cst.SimpleString) and isinstance(element.key.evaluated_value, str):
                keys.add(element.key.evaluated_value)
            else:
                return None
        return keys, base
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "dict":
        if len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star:
            return _items_sum(node.args[0].value, names)
        if all(a.keyword is not None for a in node.args):
            return {a.keyword.value for a in node.args}, False
        return None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        left = _expr_keys(node.left, names)
        right = _expr_keys(node.right, names)
        if left is None or right is None:
            return None
        return left[0] | right[0], left[1] or right[1]
    return None


def _items_sum(node: Any, names: Dict[str, Any]) -> Optional[Tuple[Set[str], bool]]:
    """``list(a.items()) + list(b.items())``."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        left = _items_sum(node.left, names)
        right = _items_sum(node.right, names)
        if left is None or right is None:
            return None
        return left[0] | right[0], left[1] or right[1]
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value == "list"
        and len(node.args) == 1
    ):
        inner = node.args[0].value
        if isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute) and inner.func.attr.value == "items":
            return _expr_keys(inner.func.value, names)
    return None


def _registered(ctx: Any, node: cst.ClassDef) -> bool:
    for decorator in node.decorators:
        target = decorator.decorator
        func = target.func if isinstance(target, cst.Call) else target
        name = ctx.qualname(func) or dotted_name(func) or ""
        if name.rsplit(".", 1)[-1] == "register_keras_serializable":
            return True
    return False


def _save_kind(ctx: Any, node: cst.Call) -> Optional[str]:
    """"save" / "load" for a call that saves or loads a whole Keras model, "json" for to_json /
    model_from_json, else None."""
    func = node.func
    qualified = ctx.qualname(func) or ""
    last = qualified.rsplit(".", 1)[-1] if qualified else (func.attr.value if isinstance(func, cst.Attribute) else "")
    keras_call = qualified.startswith(_KERAS_PREFIXES)
    if last in SAVE_FUNCTIONS and (keras_call or not qualified):
        if last in ("model_from_json", "model_from_config"):
            return "json"
        return "load" if last == "load_model" else "save"
    if isinstance(func, cst.Attribute):
        if func.attr.value == "to_json":
            return "json"
        if func.attr.value == "save" and _model_receiver(ctx, func.value, node):
            return "save"
    return None


def _path_text(ctx: Any, node: cst.Call, kind: str) -> Optional[str]:
    """Source text of the file path a save / load call writes or reads."""
    if kind == "load":
        value = ctx.argument(node, 0, "filepath")
    elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "save":
        value = ctx.argument(node, 0, "filepath")
    else:
        value = ctx.argument(node, 1, "filepath")
    if value is None:
        return None
    return cst.Module([]).code_for_node(value)


def _file_facts(ctx: Any) -> Dict[str, Any]:
    """Whether the file uses HDF5 or JSON; the classes that reach a whole-model save or load
    (instantiated before it in the same function or top-level code, or inside a function or
    class of the file that such code calls, or named in a load's custom_objects); whether it
    loads without custom objects; the instantiations of each top-level name."""
    h5_or_json = False
    scoped = any(word in ctx.source for word in _SCOPES)
    calls: Dict[str, List[cst.Call]] = {}
    instantiated: Set[str] = set()
    reached: Set[str] = set()
    saved_paths: Set[str] = set()
    plain_loads: List[Optional[str]] = []
    #: function / class name -> names called inside it
    inner_calls: Dict[str, Set[str]] = {}

    def scan(root: Any, owner: Optional[str]) -> None:
        nonlocal h5_or_json
        called: List[Tuple[int, str]] = []
        last_save = -1
        index = 0
        todo = [root] if not isinstance(root, list) else list(reversed(root))
        while todo:
            node = todo.pop()
            index += 1
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node is not root:
                name = node.name.value
                if isinstance(node, cst.ClassDef):
                    for statement in node.body.body if isinstance(node.body, cst.IndentedBlock) else []:
                        if isinstance(statement, cst.FunctionDef):
                            scan(statement, name)
                else:
                    scan(node, name)
                continue
            if isinstance(node, cst.Lambda):
                continue
            if isinstance(node, cst.SimpleString):
                text = node.value.lower()
                if ".h5" in text or ".hdf5" in text:
                    h5_or_json = True
            elif isinstance(node, cst.Call):
                func = node.func
                if isinstance(func, cst.Name):
                    calls.setdefault(func.value, []).append(node)
                    instantiated.add(func.value)
                    called.append((index, func.value))
                kind = _save_kind(ctx, node)
                if kind is not None:
                    last_save = index
                    path = _path_text(ctx, node, kind)
                    if kind == "save" and path:
                        saved_paths.add(path)
                    if kind == "json":
                        h5_or_json = True
                    if kind == "load":
                        objects = ctx.keyword(node, "custom_objects")
                        if objects is not None:
                            reached.update(n.value for n in walk(objects.value) if isinstance(n, cst.Name))
                        elif not scoped and not any(a.star == "**" for a in node.args):
                            plain_loads.append(_path_text(ctx, node, kind))
                format_arg = ctx.keyword(node, "save_format")
                if isinstance(getattr(format_arg, "value", None), cst.SimpleString):
                    h5_or_json = h5_or_json or "h5" in format_arg.value.value
            todo.extend(reversed(children(node)))
        if owner is not None:
            inner_calls.setdefault(owner, set()).update(name for _, name in called)
        if last_save >= 0:
            reached.update(name for i, name in called if i < last_save)

    scan(list(ctx.module.body), None)
    # a load without custom objects of a file this file saved
    unregistered_load = any(path in saved_paths for path in plain_loads if path)
    # functions and classes called by reaching code reach too (a few levels)
    for _ in range(4):
        grown = set(reached)
        for name in reached:
            grown |= inner_calls.get(name, set())
        if grown == reached:
            break
        reached = grown
    return {
        "saves": bool(reached),
        "reached": reached,
        "h5_or_json": h5_or_json,
        "unregistered_load": unregistered_load,
        "calls": calls,
        "instantiated": instantiated,
    }


def _model_receiver(ctx: Any, receiver: Any, call: cst.Call) -> bool:
    """Whether ``receiver.save(path)`` saves a Keras model: its name says model (``model``,
    ``self.autoencoder_model``...) or the path names a ``.keras`` / ``.h5`` file; not a known
    non-Keras object (numpy, torch, PIL, tf.train.Checkpoint...)."""
    qualified = (ctx.qualname(receiver) or "") + "."
    if qualified.startswith(_NOT_MODELS):
        return False
    value = ctx.resolve(receiver) if isinstance(receiver, cst.Name) else receiver
    if isinstance(value, cst.Call):
        origin = ctx.qualname(value.func) or ""
        if origin.startswith(_NOT_MODELS) or "Checkpoint" in origin or "Saver" in origin:
            return False
    path = ctx.argument(call, 0, "filepath")
    if isinstance(path, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
        text = cst.Module([]).code_for_node(path).lower()
        if ".keras" in text or ".h5" in text:
            return True
    name = dotted_name(receiver) or ""
    last = name.rsplit(".", 1)[-1].lower()
    return "model" in last or last in ("net", "network", "autoencoder", "encoder", "decoder", "classifier")


# ---------------------------------------------------------------------- fix


def _fix(node: cst.ClassDef, init: cst.FunctionDef, params: List[cst.Param], has_kwargs: bool,
         kind: str, reason: str) -> Optional[Fix]:
    """Add ``**kwargs`` (forwarded to ``super().__init__``) and a ``get_config`` returning the
    parameters stored as same-named attributes; None when that cannot be done faithfully."""
    if not isinstance(node.body, cst.IndentedBlock) or not isinstance(init.body, cst.IndentedBlock):
        return None
    names = [p.name.value for p in params]
    stored = _stored_params(init, set(names))
    if any(stored.get(name) != name for name in names):
        return None
    if reason == "nonserial" and kind != "Model":
        return None
    new_init = init
    if not has_kwargs:
        supers = [
            n for n in walk(init.body)
            if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value == "__init__"
            and isinstance(n.func.value, cst.Call) and isinstance(n.func.value.func, cst.Name)
            and n.func.value.func.value == "super"
        ]
        if len(supers) != 1 or any(a.star for a in supers[0].args):
            return None
        old_super = supers[0]
        args = list(old_super.args)
        if args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        args.append(cst.Arg(value=cst.Name("kwargs"), star="**"))
        new_super = old_super.with_changes(args=args)
        new_body = init.body.deep_replace(old_super, new_super)
        new_params = init.params.with_changes(star_kwarg=cst.Param(name=cst.Name("kwargs"), star="**"))
        new_init = init.with_changes(params=new_params, body=new_body)
    entries = "".join(f', "{name}": self.{name}' for name in names)
    method = cst.parse_statement(
        f"def get_config(self):\n    return {{**super().get_config(){entries}}}\n"
    )
    method = method.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    body = [new_init if statement is init else statement for statement in node.body.body]
    body.append(method)
    new_class = node.with_changes(body=node.body.with_changes(body=body))
    return Fix(
        "add **kwargs and a get_config returning the __init__ arguments (review nested layers)",
        [(node, new_class)],
        FixKind.UNSAFE,
    )
