from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.silent._keras import (
    CLASS_OF_FUNCTION,
    LossFacts,
    keras_family,
    loss_facts,
    model_definition,
    output_activation,
)

#: Where a family's loss classes live, and the module a fix imports when no import reaches it.
LOSS_HOMES = {
    "keras": ("keras.losses.", "keras"),
    "tf.keras": ("tensorflow.keras.losses.", "tensorflow"),
    "tf_keras": ("tf_keras.losses.", "tf_keras"),
}

_BACKEND = re.compile(
    r"""KERAS_BACKEND["']\s*(?:\]\s*=|,)\s*["'](jax|torch|numpy)["']|set_backend\(\s*["'](jax|torch)["']"""
)


class KerasFromLogitsMismatch(Rule):
    """The output activation of a Keras model and the `from_logits` flag of its crossentropy loss
    disagree.

    Finds `m.compile(loss=...)` (or the loss as second positional argument) where `m` holds, by a
    single assignment, a `Sequential([...])` (output: the last layer of the literal or of the
    unconditional `m.add(...)` calls before the compile) or a functional `Model(inputs, outputs)`
    (output: the layer call or op that produced `outputs`, through straight-line assignments),
    and the loss is `"sparse_categorical_crossentropy"` / `"categorical_crossentropy"` /
    `"binary_crossentropy"` (string or `keras.losses` function) or one of the crossentropy classes
    (`SparseCategoricalCrossentropy`, `CategoricalCrossentropy`, `BinaryCrossentropy` and the
    focal variants) with a literal `from_logits`. Two shapes are reported, for `keras`, `tf.keras`
    and `tf_keras`:

    (ii) a linear output (`Dense(n)` with no activation, `activation=None` / `"linear"`) with a
    probability loss (`from_logits=False`, the default of every string and class): Keras treats
    the logits as probabilities, clips them to [eps, 1 - eps] and training stalls or goes wrong;
    (i) a `softmax` / `sigmoid` output with `from_logits=True`, only where the file selects the JAX
    or PyTorch backend of Keras 3 (`KERAS_BACKEND`): there the activation is applied twice.

    Why (i) is otherwise not reported: with the TensorFlow backend (tf.keras, tf_keras, Keras 3 by
    default) Keras recovers the logits a softmax / sigmoid output carries and only warns; the loss
    is right (see tests/claims/test_dl401_claim.py for the measured values).

    How to fix: the safe fix sets `from_logits=True` on the loss (a string or function loss becomes
    the matching class, `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`); the
    activation is not touched, because `predict()` consumers rely on it. A loss held in a variable
    is reported without a fix.

    Limits (precision first): models from subclassed `call`, helpers, loaders or conditional /
    looped `add` calls, multi-output models (loss dicts or lists), custom losses and losses used
    in hand-written training loops are not checked.
    """

    code = "DL401"
    name = "keras-from-logits-mismatch"
    family = "silent"
    message = (
        "output activation and loss from_logits disagree; the loss treats logits as probabilities "
        "(training stalls) or applies the activation twice (JAX/PyTorch backends, or an op between "
        "activation and loss)"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(d) silent bugs in Keras / TensorFlow (Tambon et al.)",
        category="Wrong calculation",
        links=(
            "https://github.com/keras-team/keras-hub/pull/1008",
            "https://github.com/keras-team/keras-io/pull/494",
            "https://github.com/tensorflow/tensorflow/issues/32869",
            "https://github.com/keras-team/keras/issues/15271",
            "https://github.com/mmalekzadeh/dana/issues/1",
        ),
    )
    triggers = ("crossentropy", "Crossentropy")
    frameworks = ("tensorflow", "keras", "tf_keras")

    VALID = (
        Valid(dedent("""
            import keras
            from keras import layers
            model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(10)])
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            """), "linear output with from_logits=True"),
        Valid(dedent("""
            import keras
            from keras import layers
            model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            """), "softmax output with the probability loss"),
        Valid(dedent("""
            import tensorflow as tf
            model = tf.keras.Sequential([tf.keras.layers.Dense(10, activation="softmax")])
            model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            """), "softmax with from_logits=True on the TensorFlow backend: Keras recovers the logits"),
        Valid(dedent("""
            import keras
            from keras import layers
            model = keras.Sequential([layers.Dense(10)])
            if use_probs:
                model.add(layers.Softmax())
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            """), "a conditional add: the output layer is unknown"),
        Valid(dedent("""
            import keras
            model = build_model()
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            """), "model from a helper"),
        Valid(dedent("""
            import keras
            from keras import layers
            inputs = keras.Input((32,))
            logits = layers.Dense(10)(inputs)
            model = keras.Model(inputs, {"a": logits, "b": logits})
            model.compile(optimizer="adam", loss={"a": "sparse_categorical_crossentropy", "b": "mse"})
            """), "multi-output losses are not matched"),
        Valid(dedent("""
            import keras
            from keras import layers
            model = keras.Sequential([layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse")
            """), "regression loss"),
        Valid(dedent("""
            import keras
            from keras import layers
            model = keras.Sequential([layers.Dense(10), layers.Dropout(0.1)])
            model.compile(optimizer="adam", loss="categorical_crossentropy")
            """), "last layer is not one whose activation is known"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import keras
                from keras import layers
                model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(10)])
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
                """),
            fixed=dedent("""
                import keras
                from keras import layers
                model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(10)])
                model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                """),
            note="the catalogue's Bad example (Keras 3)",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                model = tf.keras.Sequential()
                model.add(tf.keras.layers.Dense(64, activation="relu"))
                model.add(tf.keras.layers.Dense(1, activation=None))
                model.compile(optimizer="adam", loss=tf.keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
                """),
            fixed=dedent("""
                import tensorflow as tf
                model = tf.keras.Sequential()
                model.add(tf.keras.layers.Dense(64, activation="relu"))
                model.add(tf.keras.layers.Dense(1, activation=None))
                model.compile(optimizer="adam", loss=tf.keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
                """),
            note="tf.keras, .add calls, loss object without from_logits",
        ),
        Invalid(
            dedent("""
                import tf_keras as keras
                inputs = keras.Input((28, 28))
                x = keras.layers.Flatten()(inputs)
                x = keras.layers.Dense(128, activation="relu")(x)
                x = keras.layers.Dense(10)(x)
                model = keras.Model(inputs, x)
                model.compile("adam", keras.losses.sparse_categorical_crossentropy)
                """),
            fixed=dedent("""
                import tf_keras as keras
                inputs = keras.Input((28, 28))
                x = keras.layers.Flatten()(inputs)
                x = keras.layers.Dense(128, activation="relu")(x)
                x = keras.layers.Dense(10)(x)
                model = keras.Model(inputs, x)
                model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                """),
            note="tf_keras functional model, loss function passed positionally",
        ),
        Invalid(
            dedent("""
                from tensorflow.keras import layers, models, losses
                model = models.Sequential([layers.Dense(10, activation="linear")])
                model.compile(optimizer="adam", loss=losses.CategoricalCrossentropy(from_logits=False))
                """),
            fixed=dedent("""
                from tensorflow.keras import layers, models, losses
                model = models.Sequential([layers.Dense(10, activation="linear")])
                model.compile(optimizer="adam", loss=losses.CategoricalCrossentropy(from_logits=True))
                """),
            note="explicit from_logits=False on a linear output",
        ),
        Invalid(
            dedent("""
                import os
                os.environ["KERAS_BACKEND"] = "jax"
                import keras
                model = keras.Sequential([keras.layers.Dense(10, activation="softmax")])
                model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                """),
            fixed=dedent("""
                import os
                os.environ["KERAS_BACKEND"] = "jax"
                import keras
                model = keras.Sequential([keras.layers.Dense(10, activation="softmax")])
                model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False))
                """),
            note="double softmax on the JAX backend",
        ),
        Invalid(
            dedent("""
                import keras
                from keras import layers
                inputs = keras.Input((8,))
                hidden = layers.Dense(16, activation="relu")(inputs)
                outputs = layers.Dense(1)(hidden)
                model = keras.Model(inputs=inputs, outputs=outputs)
                loss = "binary_crossentropy"
                model.compile(optimizer="adam", loss=loss)
                """),
            note="a loss held in a variable: reported without a fix",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or func.attr.value != "compile":
            return
        ctx = self.ctx
        if ctx.has_star_args(node):
            return
        receiver = func.value
        name = receiver.value if isinstance(receiver, cst.Name) else None
        if name is None:
            return
        loss = loss_facts(ctx, ctx.argument(node, 1, "loss"))
        if loss is None or loss.from_logits is None:
            return
        definition = model_definition(ctx, receiver)
        if definition is None:
            return
        activation = output_activation(ctx, name, definition, node)
        family = keras_family(ctx, definition.func)
        if activation is None or family is None:
            return
        if activation == "linear" and loss.from_logits is False:
            self._report(loss, activation, family, True)
        elif activation in ("softmax", "sigmoid") and loss.from_logits is True:
            if family == "keras" and _non_tf_backend(ctx.source):
                self._report(loss, activation, family, False)

    def _report(self, loss: LossFacts, activation: str, family: str, flag: bool) -> None:
        message = (
            f"output activation ({activation}) and loss from_logits={not flag} disagree; "
            + (
                "the loss treats logits as probabilities (Keras clips them to [eps, 1-eps]; training stalls)"
                if flag
                else "the loss applies the activation twice on the JAX/PyTorch backend"
            )
        )
        self.report(loss.node, message, self._fix(loss, family, flag))

    def _fix(self, loss: LossFacts, family: str, flag: bool) -> Optional[Fix]:
        node = loss.node
        value = "True" if flag else "False"
        text = f"Set from_logits={value} on the loss"
        if loss.how == "object":
            keyword = self.ctx.keyword(node, "from_logits")
            if keyword is not None:
                return Fix(text, [(keyword.value, cst.Name(value))], FixKind.SAFE)
            positional = [a for a in node.args if a.keyword is None]
            if positional:
                return Fix(text, [(positional[0].value, cst.Name(value))], FixKind.SAFE)
            new = node.with_changes(args=[cst.Arg(keyword=cst.Name("from_logits"), value=cst.Name(value),
                                                  equal=cst.AssignEqual(
                                                      whitespace_before=cst.SimpleWhitespace(""),
                                                      whitespace_after=cst.SimpleWhitespace("")))])
            return Fix(text, [(node, new)], FixKind.SAFE)
        if loss.how in ("string", "function") and flag:
            prefix, module = LOSS_HOMES[family]
            qualified = prefix + CLASS_OF_FUNCTION[loss.name]
            reference = self.ctx.reference_to(qualified)
            imports = () if reference else (module,)
            new = cst.parse_expression(f"{reference or qualified}(from_logits=True)")
            return Fix(text, [(node, new)], FixKind.SAFE, imports)
        return None


def _non_tf_backend(source: str) -> bool:
    return bool(_BACKEND.search(source))
