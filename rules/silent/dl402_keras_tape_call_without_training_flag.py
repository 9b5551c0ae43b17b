from __future__ import annotations

import re
from typing import Any, List, Optional, Set

import libcst as cst

from dllint.context import dotted_name, names_in
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import walk
from dllint.rules.silent._keras import keras_api, model_definition

#: Layers whose behaviour depends on the training flag.
MODE_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
               "GaussianDropout", "GaussianNoise", "BatchNormalization", "SyncBatchNormalization")
_MODE_WORDS = re.compile(r"Dropout|BatchNorm|GaussianNoise|keras\.applications|\btraining\s*=")


class KerasTapeCallWithoutTrainingFlag(Rule):
    """A Keras model is called inside `tf.GradientTape` without `training=True`.

    Finds, inside `with tf.GradientTape() as tape:`, a call `model(x)` with no `training=` argument
    (and no `**kwargs`), where `model`'s `trainable_variables` / `trainable_weights` feed
    `tape.gradient(...)` in the same function (the model being trained), and the model contains a
    layer whose behaviour depends on the flag: a `Sequential` / functional model of the file with
    `Dropout` / `BatchNormalization` / `GaussianNoise` layers, or, for a model the rule cannot see
    (a parameter, `self.model`, a class), a file that mentions such layers or a `training` argument.

    Why it breaks at run time: outside `fit()`, Keras calls layers in inference mode when no
    `training` value is given, so in the hand-written training step dropout is off and
    BatchNormalization normalises with (and never updates) its moving statistics. Nothing warns.

    How to fix: `model(x, training=True)` (the safe fix adds it; Keras accepts the argument for
    every layer and model, also when `call` does not declare it).

    Limits (precision first): models whose variables are not differentiated by that tape (a
    frozen teacher, a target network) are left alone, and so are Sequential / functional models
    of the file that contain no such layer and files with no trace of them.
    """

    code = "DL402"
    name = "keras-tape-call-without-training-flag"
    family = "silent"
    message = (
        "Keras model called inside GradientTape without training=True; Dropout/BatchNorm run in "
        "inference mode during training"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(d) silent bugs in Keras / TensorFlow (Tambon et al.)",
        category="Wrong parameter setting",
        links=(
            "https://github.com/tensorflow/tensorflow/issues/27275",
            "https://github.com/tensorflow/tensorflow/issues/26319",
            "https://github.com/tensorflow/tensorflow/issues/32586",
            "https://github.com/tensorflow/model-optimization/issues/271",
            "https://www.tensorflow.org/guide/keras/writing_a_training_loop_from_scratch",
        ),
    )
    triggers = ("GradientTape",)
    frameworks = ("tensorflow",)

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            def train_step(model, x, y):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
                grads = tape.gradient(loss, model.trainable_variables)
            """), "training=True"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras.layers import Dropout
            def train_step(student, teacher, x, y):
                with tf.GradientTape() as tape:
                    soft = teacher(x)
                    loss = loss_fn(soft, student(x, training=True))
                grads = tape.gradient(loss, student.trainable_variables)
            """), "a teacher whose variables are not differentiated"),
        Valid(dedent("""
            import tensorflow as tf
            model = tf.keras.Sequential([tf.keras.layers.Dense(10), tf.keras.layers.Dense(1)])
            def train_step(x, y):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x))
                grads = tape.gradient(loss, model.trainable_variables)
            """), "no Dropout / BatchNorm in the model"),
        Valid(dedent("""
            import tensorflow as tf
            def train_step(model, x, y):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x))
                grads = tape.gradient(loss, model.trainable_variables)
            """), "unknown model in a file with no mode-dependent layers"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            def train_step(model, x, y):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, **kwargs))
                grads = tape.gradient(loss, model.trainable_variables)
                layers.Dropout(0.1)
            """), "keyword arguments may carry training"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            class M(tf.keras.Model):
                def train_step(self, x):
                    with tf.GradientTape() as tape:
                        if self._call_has_training_arg:
                            y = self(x, training=True)
                        else:
                            y = self(x)
                    tape.gradient(y, self.trainable_variables)
            """), "a branch on the training flag decides"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            generator = tf.keras.Sequential([layers.Dense(8), layers.Conv2DTranspose(4, 3)])
            discriminator = tf.keras.Sequential([layers.Conv2D(4, 3), layers.Dropout(0.2)])
            class GAN(tf.keras.Model):
                def __init__(self, generator, discriminator):
                    super().__init__()
                    self.generator = generator
                    self.discriminator = discriminator
                def train_step(self, z):
                    with tf.GradientTape() as tape:
                        p = self.discriminator(self.generator(z), training=True)
                    tape.gradient(p, self.generator.trainable_weights)
            """), "the generator has no Dropout / BatchNorm; the discriminator is not differentiated here"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow.keras import layers
            def evaluate(model, x, y):
                d = layers.Dropout(0.1)
                return loss_fn(y, model(x))
            """), "not inside a tape"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import tensorflow as tf
                model = tf.keras.Sequential([tf.keras.layers.Dense(64), tf.keras.layers.Dropout(0.5), tf.keras.layers.Dense(10)])
                def train_step(x, y):
                    with tf.GradientTape() as tape:
                        loss = loss_fn(y, model(x))
                    grads = tape.gradient(loss, model.trainable_variables)
                """),
            fixed=dedent("""
                import tensorflow as tf
                model = tf.keras.Sequential([tf.keras.layers.Dense(64), tf.keras.layers.Dropout(0.5), tf.keras.layers.Dense(10)])
                def train_step(x, y):
                    with tf.GradientTape() as tape:
                        loss = loss_fn(y, model(x, training=True))
                    grads = tape.gradient(loss, model.trainable_variables)
                """),
            note="the catalogue's Bad example (tf.keras)",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import keras
                class Trainer:
                    def step(self, x, y):
                        with tf.GradientTape() as tape:
                            pred = self.model(x)
                            loss = self.loss(y, pred)
                        variables = self.model.trainable_weights
                        grads = tape.gradient(loss, variables)
                        keras.layers.BatchNormalization()
                """),
            fixed=dedent("""
                import tensorflow as tf
                import keras
                class Trainer:
                    def step(self, x, y):
                        with tf.GradientTape() as tape:
                            pred = self.model(x, training=True)
                            loss = self.loss(y, pred)
                        variables = self.model.trainable_weights
                        grads = tape.gradient(loss, variables)
                        keras.layers.BatchNormalization()
                """),
            note="Keras 3 model on self, variables through a name",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tf_keras as keras
                inputs = keras.Input((8,))
                x = keras.layers.BatchNormalization()(inputs)
                model = keras.Model(inputs, keras.layers.Dense(1)(x))
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(model(data) - target)
                tape.gradient(loss, model.trainable_variables)
                """),
            fixed=dedent("""
                import tensorflow as tf
                import tf_keras as keras
                inputs = keras.Input((8,))
                x = keras.layers.BatchNormalization()(inputs)
                model = keras.Model(inputs, keras.layers.Dense(1)(x))
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(model(data, training=True) - target)
                tape.gradient(loss, model.trainable_variables)
                """),
            note="tf_keras functional model with BatchNorm at script level",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def train_step(generator, discriminator, z, real):
                    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
                        fake = generator(z, training=True)
                        d_loss = loss_fn(discriminator(real), discriminator(fake))
                    d_tape.gradient(d_loss, discriminator.trainable_variables)
                    tf.keras.layers.Dropout(0.3)
                """),
            fixed=dedent("""
                import tensorflow as tf
                def train_step(generator, discriminator, z, real):
                    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
                        fake = generator(z, training=True)
                        d_loss = loss_fn(discriminator(real, training=True), discriminator(fake, training=True))
                    d_tape.gradient(d_loss, discriminator.trainable_variables)
                    tf.keras.layers.Dropout(0.3)
                """),
            count=2,
            note="two tapes: both calls of the differentiated discriminator",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        name = dotted_name(func)
        if name is None or ctx.qualname(func) is not None:
            return  # an imported function, not a model object
        if ctx.keyword(node, "training") is not None or ctx.has_star_args(node):
            return
        tapes = self._tapes()
        if not tapes:
            return
        function = ctx.function() or ctx.module
        if name not in self._differentiated(function, tapes):
            return
        if not self._has_mode_layers(func):
            return
        new = node.with_changes(args=[*_with_comma(node.args), cst.Arg(
            keyword=cst.Name("training"), value=cst.Name("True"),
            equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
        )])
        self.report(node, fix=Fix("Pass training=True", [(node, new)], FixKind.SAFE))

    def _tapes(self) -> List[Any]:
        """The enclosing ``with tf.GradientTape() as t`` blocks (innermost function)."""
        out: List[Any] = []
        for ancestor in reversed(self.ctx.stack):
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                break
            if isinstance(ancestor, cst.If) and "training" in cst.Module(body=[]).code_for_node(ancestor.test):
                return []  # a branch on the training flag decides how to call
            if isinstance(ancestor, cst.With) and _tape_names(self.ctx, ancestor):
                out.append(ancestor)
        return out

    def _differentiated(self, function: Any, tapes: List[Any]) -> Set[str]:
        """Objects whose trainable variables are the sources of the ``tape.gradient`` calls that
        follow each of the ``with`` blocks ``tapes`` (up to the next block binding the same name)."""
        ctx = self.ctx

        def compute(_: Any) -> dict:
            found: dict = {}
            open_blocks: dict = {}  # tape name -> id(With) of the latest block binding it
            for current in walk(function.body if isinstance(function, cst.FunctionDef) else function):
                if isinstance(current, cst.With):
                    for tape in _tape_names(ctx, current):
                        open_blocks[tape] = id(current)
                    continue
                if not (isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute)
                        and current.func.attr.value == "gradient"):
                    continue
                tape = dotted_name(current.func.value)
                sources = ctx.argument(current, 1, "sources")
                if tape not in open_blocks or sources is None:
                    continue
                expressions = [sources]
                if isinstance(sources, cst.Name):
                    value = ctx.assigned_value(sources)
                    if value is None:
                        value = _assigned_in(function, sources.value)
                    if value is not None:
                        expressions.append(value)
                for expression in expressions:
                    for dotted in names_in(expression):
                        for suffix in (".trainable_variables", ".trainable_weights"):
                            if dotted.endswith(suffix):
                                found.setdefault(open_blocks[tape], set()).add(dotted[: -len(suffix)])
            return found

        table = ctx.memo(f"dl402:grad:{id(function)}", compute)
        out: Set[str] = set()
        for block in tapes:
            out |= table.get(id(block), set())
        return out

    def _has_mode_layers(self, func: Any) -> bool:
        ctx = self.ctx
        definition: Optional[cst.Call] = model_definition(ctx, func)
        if definition is not None:
            return any(
                isinstance(n, cst.Call) and keras_api(ctx, n.func) in MODE_LAYERS for n in walk(definition)
            ) or _functional_has_mode_layers(ctx, definition)
        return bool(_MODE_WORDS.search(ctx.source))


def _functional_has_mode_layers(ctx: Any, definition: cst.Call) -> bool:
    """For a functional ``Model(...)``: whether the file builds any mode-dependent layer (the graph
    between inputs and outputs is not followed)."""
    if keras_api(ctx, definition.func) not in ("Model", "Functional"):
        return False
    return any(isinstance(n, cst.Call) and keras_api(ctx, n.func) in MODE_LAYERS for n in walk(ctx.module))


def _tape_names(ctx: Any, block: cst.With) -> List[str]:
    out = []
    for item in block.items:
        name = ctx.call_name(item.item) or ""
        if (
            name.startswith("tensorflow.") and name.endswith("GradientTape")
            and item.asname is not None and isinstance(item.asname.name, cst.Name)
        ):
            out.append(item.asname.name.value)
    return out


def _assigned_in(function: Any, name: str) -> Optional[Any]:
    values = [
        n.value for n in walk(function)
        if isinstance(n, cst.Assign) and any(isinstance(t.target, cst.Name) and t.target.value == name for t in n.targets)
    ]
    return values[0] if len(values) == 1 else None


def _with_comma(args: Any) -> List[cst.Arg]:
    args = list(args)
    if args and args[-1].comma is cst.MaybeSentinel.DEFAULT:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return args
