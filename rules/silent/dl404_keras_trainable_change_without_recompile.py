from __future__ import annotations

from typing import Any, Set

import libcst as cst

from dllint.rule import Evidence, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import is_keras3
from dllint.rules.silent._keras import (
    contained_models,
    keras_family,
    model_definition,
    root_of,
    training_events,
)


class KerasTrainableChangeWithoutRecompile(Rule):
    """A layer's `trainable` flag is changed after `compile()` and the model is trained again
    without recompiling.

    Finds, inside one function (or a script's top level): `m.compile(...)`, then an assignment to
    `m.trainable`, `m.layers[i].trainable`, `m.get_layer(name).trainable`, `layer.trainable` in
    `for layer in m.layers:` or `base.trainable` for a layer `base` of `m` (an element of its
    `Sequential([...])` literal, an `m.add(base)` argument, or an object called while its functional
    graph was built in the same function), then `m.fit(...)` / `m.train_on_batch(...)` /
    `m.fit_generator(...)` with no `compile()` between the assignment and the training call.

    Why it breaks at run time (measured with Keras 3.15.1 and tf_keras 2.21, a `Dense` base inside
    a functional model): the training step is built with the trainable variables of the moment.
    In Keras 3 (`keras`, and `tf.keras` in TF >= 2.16) the step is built by the first `fit` /
    `train_on_batch` after `compile()`: a change made after that first training call is ignored
    (a frozen base is still updated, an unfrozen base stays frozen), while a change made between
    `compile()` and the first training call still takes effect. In tf_keras 2.21 every change
    after `compile()` is ignored, even before the first `fit`. Nothing warns.

    How to fix: call `compile()` again after changing `trainable` (with the optimizer and learning
    rate meant for the new phase; there is no autofix because recompiling resets the optimizer
    state).

    Limits (precision first): only the same model object that was compiled and is trained again
    is checked; when any `compile()` (of any model) runs between the change and the training
    call, the rule stays silent: this covers the GAN idiom where `discriminator.trainable = False`
    is meant for the combined model compiled next. For Keras 3 models the rule needs a training
    call between `compile()` and the change (the case Keras 3 ignores); a change right after
    `compile()` is only reported for tf_keras. Changes made in helper functions, compile / fit calls
    in other functions and loops that recompile on a later iteration are not followed.
    """

    code = "DL404"
    name = "keras-trainable-change-without-recompile"
    family = "silent"
    message = "trainable flag changed after compile() without recompiling; the change has no effect on training"
    fix = FixKind.NONE
    evidence = Evidence(
        study="(d) silent bugs in Keras / TensorFlow (Tambon et al.)",
        category="Wrong parameter setting",
        links=(
            "https://github.com/jacobgil/keras-dcgan/issues/10",
            "https://github.com/tensorflow/tensorflow/issues/46329",
            "https://keras.io/guides/transfer_learning/",
        ),
    )
    triggers = ("trainable",)
    frameworks = ("tensorflow", "keras", "tf_keras")

    VALID = (
        Valid(dedent("""
            import keras
            base.trainable = True
            model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse")
            model.fit(x, y)
            """), "recompiled after the change"),
        Valid(dedent("""
            import keras
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y)
            base.trainable = True
            model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse")
            model.fit(x, y)
            """), "the fine-tuning phase recompiles"),
        Valid(dedent("""
            from keras import layers, models
            discriminator.compile(optimizer="adam", loss="binary_crossentropy")
            discriminator.trainable = False
            gan = models.Sequential([generator, discriminator])
            gan.compile(optimizer="adam", loss="binary_crossentropy")
            for step in range(100):
                discriminator.train_on_batch(x, y)
                gan.train_on_batch(z, y)
            """), "GAN idiom: the flag is meant for the combined model compiled next"),
        Valid(dedent("""
            import keras
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y)
            other.trainable = False
            model.fit(x, y)
            """), "the changed object is not known to be part of the model"),
        Valid(dedent("""
            import keras
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y)
            base.trainable = True
            model.evaluate(x, y)
            """), "not trained again"),
        Valid(dedent("""
            import keras
            inputs = keras.Input((4,))
            outputs = keras.layers.Dense(1)(base(inputs))
            model = keras.Model(inputs, outputs)
            model.compile(optimizer="adam", loss="mse")
            base.trainable = False
            model.fit(x, y)
            """), "Keras 3: a change before the first training call still takes effect"),
        Valid(dedent("""
            import keras
            def fine_tune(model, base):
                base.trainable = True
                model.fit(x, y)
            """), "compiled elsewhere: unknown"),
    )

    INVALID = (
        Invalid(dedent("""
            import keras
            inputs = keras.Input((160, 160, 3))
            base = keras.applications.MobileNetV2(include_top=False)
            outputs = keras.layers.Dense(1)(base(inputs, training=False))
            model = keras.Model(inputs, outputs)
            base.trainable = False
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y, epochs=5)
            base.trainable = True
            model.fit(x, y, epochs=5)
            """), note="the catalogue's Bad example (Keras 3): unfreezing after a fit is ignored"),
        Invalid(dedent("""
            import tensorflow as tf
            model = tf.keras.Sequential([tf.keras.layers.Dense(8), tf.keras.layers.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
            model.fit(x, y)
            for layer in model.layers[:1]:
                layer.trainable = False
            model.fit(x, y)
            """), note="tf.keras: freezing through a layer loop after fit"),
        Invalid(dedent("""
            import tf_keras as keras
            model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
            model.layers[0].trainable = False
            model.fit(x, y)
            """), note="tf_keras ignores a change right after compile()"),
        Invalid(dedent("""
            import keras
            def train(model, x, y):
                model.compile(optimizer="adam", loss="mse")
                model.train_on_batch(x, y)
                model.get_layer("encoder").trainable = True
                model.train_on_batch(x, y)
            """), note="get_layer and train_on_batch"),
        Invalid(dedent("""
            import keras
            model = keras.Sequential([base, keras.layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y)
            if args.finetune:
                base.trainable = True
            model.fit(x, y)
            """), note="a Sequential element unfrozen under a condition"),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        self._done: Set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in ("fit", "train_on_batch", "fit_generator"):
            return
        ctx = self.ctx
        root = root_of(ctx)
        events = training_events(ctx, root)
        fit = next((e for e in events if e.node is node and e.kind == "fit"), None)
        if fit is None:
            return
        model = fit.model
        before = [e for e in events if e.order < fit.order]
        compiles = [e for e in before if e.kind == "compile" and e.model == model]
        if not compiles:
            return
        compiled = compiles[-1]
        members = {model} | set(contained_models(ctx, root, model))
        changes = [
            e for e in before if e.kind == "trainable" and e.order > compiled.order and e.model in members
        ]
        if not changes:
            return
        change = changes[0]
        if any(e.kind == "compile" and e.order > change.order for e in before):
            return  # recompiled (this model or the combined model of a GAN)
        trained_since_compile = any(
            e.kind == "fit" and e.model == model and compiled.order < e.order < change.order for e in before
        )
        if not trained_since_compile and self._keras3(model):
            return
        if id(change.node) in self._done:
            return
        self._done.add(id(change.node))
        self.report(change.node)

    def _keras3(self, model: str) -> bool:
        """Whether the model is (or may be) a Keras 3 model; True unless it is known to be tf_keras."""
        ctx = self.ctx
        receiver = cst.parse_expression(model)
        definition = model_definition(ctx, receiver) if isinstance(receiver, cst.Name) else None
        family = keras_family(ctx, definition.func) if definition is not None else None
        if family is None:
            if ctx.imported_modules and all(
                m.split(".")[0] == "tf_keras" for m in ctx.imported_modules if m.split(".")[0] in ("keras", "tf_keras")
            ) and any(m.split(".")[0] == "tf_keras" for m in ctx.imported_modules) and not any(
                m.split(".")[0] == "keras" for m in ctx.imported_modules
            ) and not any(m.startswith("tensorflow") for m in ctx.imported_modules):
                return False
            return True
        if family == "tf_keras":
            return False
        return is_keras3(ctx, family)
