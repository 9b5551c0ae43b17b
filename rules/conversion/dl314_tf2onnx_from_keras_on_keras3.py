from __future__ import annotations

import re
from typing import Any, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import class_of, export_call, file_base_classes
from dllint.rules.conversion._pins import version as pinned_version
from dllint.rules.optimization._tfmot import (
    TFMOT,
    environment_hidden,
    expects_error,
    is_keras3,
    keras_family,
    legacy_keras_requested,
    model_family,
    pinned_packages,
    tensorflow_version,
)

#: The first tf2onnx release that might accept Keras 3 models (1.17.0, the newest, does not).
KERAS3_SUPPORT_FROM = (1, 18)


def _subclass_family(ctx: Any, value: Any) -> Optional[str]:
    """The Keras flavour of an instance of a model class defined in this file (``class
    Net(keras.Model)``), through single assignments; None when unknown."""
    for _ in range(4):
        if isinstance(value, cst.Name):
            value = ctx.assigned_value(value)
            continue
        break
    cls = class_of(ctx, value)
    if cls is None:
        return None
    for owner in file_base_classes(ctx, cls):
        for base in owner.bases:
            family = keras_family(ctx.qualname(base.value))
            if family is not None:
                return family
    return None


def _tf_keras_is_keras3(ctx: Any) -> bool:
    """``tf.keras`` is Keras 3 on TF >= 2.16 unless ``TF_USE_LEGACY_KERAS=1`` is in effect.
    Importing tf2onnx does not set the variable (only TFMOT's import does), so without a TFMOT
    import the order of statements does not matter."""
    if TFMOT in {module.split(".")[0] for module in ctx.imported_modules}:
        return is_keras3(ctx, "tf.keras")
    version = tensorflow_version(ctx) or pinned_version(ctx, "tensorflow")
    if version is not None and version < (2, 16):
        return False
    if legacy_keras_requested(ctx) or environment_hidden(ctx) or "tf-keras" in pinned_packages(ctx):
        return False
    return True


#: Names that exist only in Keras 2 (tf_keras): a file built on them runs with legacy Keras (old
#: TF, or TF_USE_LEGACY_KERAS set outside the code), so its tf.keras is not Keras 3 there.
_KERAS2_ONLY = re.compile(r"\b(?:KerasLayer|DenseFeatures|get_session|set_session)\b")


def _written_for_keras2(ctx: Any) -> bool:
    return bool(ctx.memo("dl314.keras2-only", lambda c: bool(_KERAS2_ONLY.search(c.source))))


def _tf2onnx_supports_keras3(ctx: Any) -> bool:
    version = ctx.target_version("tf2onnx")
    return version is not None and version >= KERAS3_SUPPORT_FROM


class Tf2onnxFromKerasOnKeras3(Rule):
    """tf2onnx.convert.from_keras on a Keras 3 model (KeyError: 'keras_tensor').

    Finds `tf2onnx.convert.from_keras(m, ...)` (any import spelling) where `m` is built, through
    single assignments and a local helper's return, by a Keras 3 call: `keras.Sequential(...)`,
    `keras.Model(inputs, outputs)`, `keras.applications...`, `keras.models.load_model(...)` after
    `import keras` (the project not pinning Keras below 3 nor TensorFlow below 2.16), or the same
    calls under `tf.keras` on TF >= 2.16; an instance of a model class defined in the file whose
    base is `keras.Model` / `tf.keras.Model` counts too. The Keras flavour is read as DL216 reads
    it (shared helpers): `tf_keras` models are Keras 2 and fine.

    Why it breaks: tf2onnx 1.17.0 `from_keras` accepts only tf_keras models; on a Keras 3 model it
    fails with `KeyError: 'keras_tensor'` (the catalogue's measurement with TF 2.21 / Keras 3.15;
    TensorFlow is not installed where this rule was written). Since TF 2.16, `tf.keras` is Keras 3
    unless `TF_USE_LEGACY_KERAS=1` is set before it is first used; importing tf2onnx does not set
    it.

    How to fix: wrap the model in a `tf.function` with an `input_signature` and convert that with
    `tf2onnx.convert.from_function(fn, input_signature=...)`; or build the model with tf_keras
    (`import tf_keras as keras`, with `TF_USE_LEGACY_KERAS=1`). No fix is offered (the input
    signature is not known statically).

    Stays silent when the project pins TensorFlow below 2.16, pins `tf-keras`, pins Keras below 3
    (for `import keras`) or a tf2onnx release after 1.17; when the file mentions
    `TF_USE_LEGACY_KERAS`; in notebooks whose IPython lines (`!pip install tensorflow==2.15`,
    `%env`) are masked before the walk; in files built on Keras-2-only APIs (`hub.KerasLayer`,
    `tf.keras.layers.DenseFeatures`, `tf.keras.backend.get_session`), which cannot run on Keras 3 at
    all and so presume legacy Keras is set up outside the code; when TFMOT is imported before `tf.keras` is used (TFMOT's
    import sets the legacy switch, see DL216); inside `pytest.raises` / `assertRaises`; and when the
    model's origin cannot be told (a parameter, a hub layer of unknown flavour, an unknown helper).
    Unpinned projects are read as the newest releases (TF 2.21, Keras 3, tf2onnx 1.17).
    """

    code = "DL314"
    name = "tf2onnx-from-keras-on-keras3"
    family = "conversion"
    message = (
        "tf2onnx.convert.from_keras accepts only tf_keras models (KeyError: 'keras_tensor' on Keras 3); "
        "wrap the model in a tf.function and use from_function"
    )
    evidence = Evidence(
        study="(c) Jajal et al., failures of DL model converters; catalogue measurement with tf2onnx 1.17.0 / TF 2.21 / Keras 3.15",
        category="converter input not supported: Keras 3 model given to tf2onnx.convert.from_keras",
        links=(
            "https://github.com/onnx/tensorflow-onnx/issues/2329",
            "https://github.com/onnx/tensorflow-onnx/issues/2448",
            "https://github.com/onnx/tensorflow-onnx/blob/main/tf2onnx/convert.py",
            "https://keras.io/getting_started/#tensorflow--keras-2-backwards-compatibility",
        ),
    )
    triggers = ("from_keras",)
    frameworks = ("tf2onnx",)

    VALID = (
        Valid(dedent("""
            import tf_keras as keras
            import tf2onnx
            m = keras.Sequential([keras.layers.Dense(10)])
            onnx_model, _ = tf2onnx.convert.from_keras(m)
            """), "tf_keras model"),
        Valid(dedent("""
            import os
            os.environ["TF_USE_LEGACY_KERAS"] = "1"
            import tensorflow as tf
            import tf2onnx
            m = tf.keras.Sequential([tf.keras.layers.Dense(10)])
            onnx_model, _ = tf2onnx.convert.from_keras(m)
            """), "legacy Keras requested"),
        Valid(dedent("""
            import keras
            import tensorflow as tf
            import tf2onnx
            m = keras.Sequential([keras.layers.Dense(10)])
            spec = [tf.TensorSpec([None, 4], tf.float32, name="x")]
            fn = tf.function(lambda x: m(x), input_signature=spec)
            onnx_model, _ = tf2onnx.convert.from_function(fn, input_signature=spec)
            """), "the catalogue's Good: from_function on a tf.function"),
        Valid(dedent("""
            import tf2onnx
            def to_onnx(model):
                return tf2onnx.convert.from_keras(model)
            """), "model from a parameter: flavour unknown"),
        Valid(dedent("""
            import keras
            import tf2onnx
            m = keras.Sequential([keras.layers.Dense(10)])
            with pytest.raises(KeyError):
                tf2onnx.convert.from_keras(m)
            """), "a test expecting the error"),
        Valid(dedent("""
            import keras
            import tf2onnx
            m = keras.Sequential([keras.layers.Dense(10)])
            m.save("m.keras")
            onnx_model, _ = tf2onnx.convert.from_tflite("m.tflite")
            """), "another entry point"),
        Valid(dedent("""
            import tensorflow as tf
            import tensorflow_hub as hub
            import tf2onnx
            model = tf.keras.Sequential([hub.KerasLayer("https://tfhub.dev/google/imagenet/resnet_v1_101/feature_vector/5")])
            tf2onnx.convert.from_keras(model, opset=13)
            """), "hub.KerasLayer needs tf_keras: the file presumes legacy Keras"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import keras
                import tf2onnx
                m = keras.Sequential([keras.layers.Dense(10)])
                onnx_model, _ = tf2onnx.convert.from_keras(m)
                """),
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tf2onnx
                model = tf.keras.applications.ResNet50(weights="imagenet")
                spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="input"),)
                model_proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path="r.onnx")
                """),
            note="tf.keras on TF >= 2.16 is Keras 3",
        ),
        Invalid(
            dedent("""
                from tensorflow import keras
                from tf2onnx import convert
                def build():
                    inputs = keras.Input((4,))
                    outputs = keras.layers.Dense(2)(inputs)
                    return keras.Model(inputs, outputs)
                def export():
                    model = build()
                    convert.from_keras(model, output_path="m.onnx")
                """),
            note="functional model from a local helper, `from tf2onnx import convert`",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tf2onnx
                class Net(tf.keras.Model):
                    def __init__(self):
                        super().__init__()
                        self.d = tf.keras.layers.Dense(2)
                    def call(self, x):
                        return self.d(x)
                net = Net()
                tf2onnx.convert.from_keras(net, opset=15)
                """),
            note="a subclassed Keras 3 model",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tf2onnx
                model = tf.keras.models.load_model("model.h5")
                tf2onnx.convert.from_keras(model, output_path="model.onnx")
                """),
            note="a model loaded by tf.keras (Keras 3) on TF >= 2.16",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.entry != "tf2onnx.convert.from_keras" or export.model is None:
            return
        if expects_error(ctx) or _tf2onnx_supports_keras3(ctx) or _written_for_keras2(ctx):
            return
        family = self._family(ctx, export.model)
        if family is None:
            return
        if family == "keras":
            keras3 = is_keras3(ctx, "keras")
        elif family == "tf.keras":
            keras3 = _tf_keras_is_keras3(ctx)
        else:
            keras3 = False
        if not keras3:
            return
        built = "`import keras` (Keras 3)" if family == "keras" else "tf.keras, which is Keras 3 on TF >= 2.16"
        self.report(
            export.model,
            "tf2onnx.convert.from_keras accepts only tf_keras models (KeyError: 'keras_tensor' on Keras 3; "
            f"this model is built with {built}); wrap the model in a tf.function and use from_function",
        )

    @staticmethod
    def _family(ctx: Any, model: Any) -> Optional[str]:
        found: Optional[Tuple[str, Any]] = model_family(ctx, model)
        if found is not None:
            return found[0]
        return _subclass_family(ctx, model)
