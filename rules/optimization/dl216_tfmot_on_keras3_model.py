from __future__ import annotations

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import expects_error, is_keras3, model_family, tfmot_api, tfmot_supports_keras3

#: TFMOT entry points that accept only tf_keras models / layers, and their first parameter.
ENTRY_POINTS = {"prune_low_magnitude": "to_prune", "quantize_model": "to_quantize"}


class TfmotOnKeras3Model(Rule):
    """TFMOT's prune_low_magnitude or quantize_model applied to a Keras 3 model.

    Finds `tfmot.sparsity.keras.prune_low_magnitude(m)` and `tfmot.quantization.keras.quantize_model(m)`
    (any TFMOT spelling) where `m` is built, through single assignments and a local helper's
    return, by a Keras 3 call: `keras.Sequential(...)`, `keras.layers.Dense(...)`,
    `keras.applications...` after `import keras`, when the project does not pin Keras below 3
    (nor TensorFlow below 2.16); or the same calls under `tf.keras` when the project does not pin
    TensorFlow below 2.16 and `tf.keras` is surely loaded (an attribute of it read, or a name
    imported from it) by a module-level statement that runs before the first import of
    `tensorflow_model_optimization`.

    Why it breaks: TFMOT 0.8.1 supports only tf_keras (Keras 2) models. On a Keras 3 model
    `prune_low_magnitude` raises `ValueError: ... You passed an object of type: Sequential` and
    `quantize_model` raises "`to_quantize` can only either be a keras Sequential or Functional
    model" (the catalogue's measurement with TF 2.21 / Keras 3.15 / TFMOT 0.8.1; TensorFlow is
    not installed where this rule was written). Importing `tensorflow_model_optimization` sets
    `TF_USE_LEGACY_KERAS=1` itself (its `python/core/keras/compat.py`), so `tf.keras` first used
    after that import is tf_keras and the same script works or fails depending on import order.

    How to fix: build the model with tf_keras (`import tf_keras as keras`, or TFMOT's own
    `from tensorflow_model_optimization.python.core.keras.compat import keras`), or import
    `tensorflow_model_optimization` (or set `os.environ["TF_USE_LEGACY_KERAS"] = "1"`) before
    `tf.keras` is first used.

    Stays silent (precision first, since most TFMOT code predates Keras 3) when the project pins
    TensorFlow below 2.16, pins `tf-keras`, pins Keras below 3 (for `import keras`) or a TFMOT
    release after 0.8; when the file mentions `TF_USE_LEGACY_KERAS` anywhere; for `tf.keras`
    whose first use is only `from tensorflow import keras` / inside functions; in notebooks with
    IPython lines (`!pip install tensorflow==2.15`, `%env TF_USE_LEGACY_KERAS=1` are masked before
    the walk, so the environment they set up cannot be read); and when the model's origin cannot
    be told (a parameter, a subclassed model, a star import, an unknown helper).
    Unpinned projects are read as the newest releases (TF 2.21, Keras 3).
    """

    code = "DL216"
    name = "tfmot-on-keras3-model"
    family = "optimization"
    message = (
        "TFMOT supports only tf_keras (Keras 2) models; prune_low_magnitude rejects a Keras 3 model. "
        "Build the model with tf_keras (or set TF_USE_LEGACY_KERAS=1 before tf.keras is first used)"
    )
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs); catalogue measurement with TF 2.21 / Keras 3.15 / TFMOT 0.8.1",
        category="TFMOT on a Keras 3 model: the library rejects it",
        links=(
            "https://github.com/tensorflow/model-optimization/issues/1141",
            "https://github.com/tensorflow/model-optimization/issues/1172",
            "https://github.com/tensorflow/tensorflow/issues/62929",
            "https://github.com/tensorflow/model-optimization/blob/master/tensorflow_model_optimization/python/core/keras/compat.py",
            "https://keras.io/getting_started/#tensorflow--keras-2-backwards-compatibility",
        ),
    )
    triggers = ("prune_low_magnitude", "quantize_model")
    frameworks = ("tensorflow_model_optimization",)

    VALID = (
        Valid(dedent("""
            import tf_keras as keras
            import tensorflow_model_optimization as tfmot
            m = keras.Sequential([keras.layers.Dense(10)])
            pm = tfmot.sparsity.keras.prune_low_magnitude(m)
            """), "tf_keras model"),
        Valid(dedent("""
            import tensorflow as tf
            import tensorflow_model_optimization as tfmot
            m = tf.keras.Sequential([tf.keras.layers.Dense(10)])
            qm = tfmot.quantization.keras.quantize_model(m)
            """), "tfmot imported before tf.keras is first used: tf.keras is tf_keras"),
        Valid(dedent("""
            import os
            os.environ["TF_USE_LEGACY_KERAS"] = "1"
            import tensorflow as tf
            from tensorflow.keras import layers
            import tensorflow_model_optimization as tfmot
            m = tf.keras.Sequential([layers.Dense(10)])
            pm = tfmot.sparsity.keras.prune_low_magnitude(m)
            """), "legacy Keras requested before tf.keras is used"),
        Valid(dedent("""
            from tensorflow_model_optimization.python.core.keras.compat import keras
            import tensorflow_model_optimization as tfmot
            m = keras.Sequential([keras.layers.Dense(10)])
            pm = tfmot.sparsity.keras.prune_low_magnitude(m)
            """), "TFMOT's own compat keras is tf_keras"),
        Valid(dedent("""
            import tensorflow as tf
            from tensorflow import keras
            import tensorflow_model_optimization as tfmot
            m = keras.Sequential([keras.layers.Dense(10)])
            pm = tfmot.sparsity.keras.prune_low_magnitude(m)
            """), "`from tensorflow import keras` alone need not load tf.keras before the tfmot import"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            def prune(model):
                return tfmot.sparsity.keras.prune_low_magnitude(model)
            """), "model from a parameter"),
        Valid(dedent("""
            import keras
            import tensorflow_model_optimization as tfmot
            qm = tfmot.quantization.keras.quantize_annotate_model(model)
            """), "other TFMOT entry points on an unknown model"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import keras
                import tensorflow_model_optimization as tfmot
                m = keras.Sequential([keras.layers.Dense(10)])
                pm = tfmot.sparsity.keras.prune_low_magnitude(m)
                """),
            note="Keras 3 model from `import keras`",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                from tensorflow.keras import layers
                import tensorflow_model_optimization as tfmot
                m = tf.keras.Sequential([layers.Dense(10)])
                qm = tfmot.quantization.keras.quantize_model(m)
                """),
            note="tf.keras loaded (a name imported from it) before the tfmot import",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                (x, y), _ = tf.keras.datasets.mnist.load_data()
                model = tf.keras.models.load_model("base.h5")
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                """),
            note="tf.keras used at the top of a script, tfmot imported later (a notebook's order)",
        ),
        Invalid(
            dedent("""
                import keras
                from tensorflow_model_optimization.sparsity import keras as sparsity
                def build():
                    model = keras.Sequential()
                    model.add(keras.layers.Dense(4))
                    return model
                pm = sparsity.prune_low_magnitude(build())
                """),
            note="older spelling, model from a local helper",
        ),
        Invalid(
            dedent("""
                import keras
                import tensorflow_model_optimization as tfmot
                layer = tfmot.sparsity.keras.prune_low_magnitude(keras.layers.Dense(10))
                """),
            note="a Keras 3 layer is rejected too",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        api = tfmot_api(ctx, node.func)
        if api not in ENTRY_POINTS or expects_error(ctx):
            return
        model = ctx.argument(node, 0, ENTRY_POINTS[api])
        origin = model_family(ctx, model)
        if origin is None:
            return
        family, _ = origin
        if family not in ("keras", "tf.keras") or tfmot_supports_keras3(ctx) or not is_keras3(ctx, family):
            return
        self.report(model if model is not None else node, self._message(api, family))

    @staticmethod
    def _message(api: str, family: str) -> str:
        built = "`import keras` (Keras 3)" if family == "keras" else "tf.keras, which is Keras 3 on TF >= 2.16 here"
        return (
            f"TFMOT supports only tf_keras (Keras 2) models; {api} rejects a Keras 3 model (built with {built}). "
            "Build the model with tf_keras (or set TF_USE_LEGACY_KERAS=1 before tf.keras is first used)"
        )
