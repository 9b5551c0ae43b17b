from __future__ import annotations

import re

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tflite import conversions, int8_request, walk_all

#: Signs that the converted model may come from quantisation-aware training (fake-quant ops in
#: the graph): the converter then needs no representative dataset.
QAT_SIGNS = re.compile(
    r"quantize_model|quantize_apply|quantize_annotate|quantize_scope|tfmot\.quantization|"
    r"tensorflow_model_optimization\.quantization|fake_quant|FakeQuant|quant_aware|quantization_aware|"
    r"(?<![a-z])qat(?![a-z])",
    re.IGNORECASE,
)


class TfliteInt8WithoutRepresentativeDataset(Rule):
    """A full-integer TFLite conversion without `converter.representative_dataset`.

    Finds `converter.convert()` on a converter made by `tf.lite.TFLiteConverter.from_keras_model`
    / `from_saved_model` / `from_concrete_functions` / `experimental_from_jax`, the
    `TFLiteConverter(...)` constructor, or `tf.compat.v1.lite.TFLiteConverter` (any import or
    alias), when before the call, in the same function (or at the module's top level, which for a
    notebook is every cell), the converter was asked for integer-only kernels or I/O:
    `converter.target_spec.supported_ops` holding `tf.lite.OpsSet.TFLITE_BUILTINS_INT8` (a literal,
    a name assigned once, or `supported_ops.append(...)`), `converter.target_spec.supported_types
    = [tf.int8]`, or (TF2 converters) `converter.inference_input_type` /
    `inference_output_type = tf.int8 / tf.uint8`, and `converter.representative_dataset` was never
    assigned. The finding is at the `convert()` call.

    Why it is a bug: full-integer quantisation needs calibration data to choose the activation
    ranges. TensorFlow's converter checks this in `QuantizationMode._validate_int8_required`
    (tensorflow/lite/python/lite.py): the catalogue measured, in TF 2.21, ``ValueError: For full
    integer quantization, a `representative_dataset` must be specified.``; older releases said
    "representative_dataset is required when specifying TFLITE_BUILTINS_INT8 or INT8 supported
    types" (tensorflow/tensorflow#38285). Setting only `inference_input_type` /
    `inference_output_type = tf.int8` fails with ``ValueError: The inference_input_type and
    inference_output_type must be tf.float32.`` because without calibration data the conversion is
    not an integer one. (TensorFlow is not installed here; these are the catalogue's measured
    messages and the converter source, not a test of this project.)

    How to fix: assign a generator of real, preprocessed float32 samples before converting:
    `converter.representative_dataset = rep_gen` with `def rep_gen(): for x in
    ds.batch(1).take(100): yield [x]` (see DL213 for what it must yield).

    Stays silent when the converter, its `target_spec` or its `supported_ops` list reaches code
    the rule cannot follow before `convert()` (passed to a function, `setattr`, an unknown method),
    when a function or lambda nested in the converting one assigns the dataset, when the settings
    are made in another function than the conversion, for TF1 converters set up
    through `inference_input_type` alone (the TF1 flow uses `inference_type` and
    `quantized_input_stats` instead of a dataset), and whenever the file shows a sign of
    quantisation-aware training (`quantize_model`, `quantize_apply`, `tfmot.quantization`,
    `fake_quant`, names with `qat`): a QAT model carries its ranges in fake-quant ops and converts
    without calibration data (the catalogue suggests info severity there; this rule stays silent).
    A model loaded with `from_saved_model` may have been trained with QAT in another script; the
    rule cannot see that, which is its main false-positive risk.
    """

    code = "DL211"
    name = "tflite-int8-without-representative-dataset"
    family = "optimization"
    message = "full-integer TFLite conversion needs converter.representative_dataset (calibration data)"
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="TFLite full-integer quantisation without calibration data",
        links=(
            "https://github.com/tensorflow/tensorflow/issues/38285",
            "https://github.com/tensorflow/tensorflow/pull/37192",
            "https://www.tensorflow.org/lite/performance/post_training_integer_quant",
        ),
    )
    triggers = ("TFLiteConverter",)
    frameworks = ("tensorflow",)

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            def rep():
                for x in ds.batch(1).take(100):
                    yield [x]
            c = tf.lite.TFLiteConverter.from_keras_model(m)
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.representative_dataset = rep
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            c.inference_input_type = tf.int8
            c.inference_output_type = tf.int8
            tflite_model = c.convert()
            """), "calibration data given"),
        Valid(dedent("""
            import tensorflow as tf
            c = tf.lite.TFLiteConverter.from_saved_model("saved")
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            tflite_model = c.convert()
            """), "dynamic-range quantisation needs no dataset"),
        Valid(dedent("""
            import tensorflow as tf
            c = tf.lite.TFLiteConverter.from_keras_model(m)
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_types = [tf.float16]
            tflite_model = c.convert()
            """), "float16 quantisation"),
        Valid(dedent("""
            import tensorflow as tf
            import tensorflow_model_optimization as tfmot
            q_aware = tfmot.quantization.keras.quantize_model(model)
            q_aware.fit(x, y)
            c = tf.lite.TFLiteConverter.from_keras_model(q_aware)
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.inference_input_type = tf.uint8
            tflite_model = c.convert()
            """), "a QAT model converts without calibration data"),
        Valid(dedent("""
            import tensorflow as tf
            def build():
                c = tf.lite.TFLiteConverter.from_keras_model(m)
                c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                configure_calibration(c)
                return c.convert()
            """), "the converter goes through a helper that may set the dataset"),
        Valid(dedent("""
            import tensorflow as tf
            c = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph("g.pb", ["in"], ["out"])
            c.inference_type = tf.uint8
            c.inference_input_type = tf.uint8
            c.quantized_input_stats = {"in": (128.0, 127.0)}
            tflite_model = c.convert()
            """), "TF1 quantised conversion with input stats"),
        Valid(dedent("""
            import tensorflow as tf
            c = tf.lite.TFLiteConverter.from_keras_model(m)
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if int8:
                c.representative_dataset = lambda: rep_gen(data)
                c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                c.inference_input_type = tf.uint8
            tflite_model = c.convert()
            """), "the dataset is set in the same branch as the int8 settings"),
    )

    INVALID = (
        Invalid(dedent("""
            import tensorflow as tf
            c = tf.lite.TFLiteConverter.from_keras_model(m)
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            tflite_model = c.convert()
            """), note="the catalogue's example"),
        Invalid(dedent("""
            import tensorflow as tf
            def export(saved_dir):
                converter = tf.lite.TFLiteConverter.from_saved_model(saved_dir)
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.inference_input_type = tf.uint8
                converter.inference_output_type = tf.uint8
                return converter.convert()
            """), note="integer I/O only, inside a function"),
        Invalid(dedent("""
            from tensorflow import lite
            from tensorflow.lite import TFLiteConverter
            ops = [lite.OpsSet.TFLITE_BUILTINS_INT8, lite.OpsSet.SELECT_TF_OPS]
            conv = TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
            conv.target_spec.supported_ops = ops
            model_bytes = conv.convert()
            """), note="imported class, ops list through a name"),
        Invalid(dedent("""
            import tensorflow as tf
            c = tf.compat.v1.lite.TFLiteConverter.from_keras_model_file("m.h5")
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.target_spec.supported_types = [tf.int8]
            tflite_model = c.convert()
            """), note="TF1 converter, int8 supported types"),
        Invalid(dedent("""
            import tensorflow as tf
            c = tf.lite.TFLiteConverter.from_keras_model(m)
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            c.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS_INT8)
            tflite_model = c.convert()
            """), note="INT8 appended to the ops list"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "convert"):
            return
        if dotted_name(func.value) is None:
            return
        for conversion in conversions(self.ctx):
            if conversion.convert is not node or conversion.escaped:
                continue
            if "representative_dataset" in conversion.settings:
                continue
            request = int8_request(self.ctx, conversion)
            if request is None or self._qat_file() or self._set_in_nested_code(conversion.name):
                continue
            self.report(
                node,
                f"{self.message}: `{conversion.name}.{request}` asks for integer-only quantisation but no "
                f"`{conversion.name}.representative_dataset` is set before convert() (ValueError at conversion)",
            )

    def _set_in_nested_code(self, name: str) -> bool:
        """Whether a function or lambda nested in the converting scope assigns
        ``<name>.representative_dataset`` (object_events does not look inside them)."""
        scope = self.ctx.function() or self.ctx.module
        nested = [n for n in walk_all(scope) if isinstance(n, (cst.FunctionDef, cst.Lambda)) and n is not scope]
        for node in (inner for function in nested for inner in walk_all(function)):
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    t = target.target
                    if (
                        isinstance(t, cst.Attribute)
                        and t.attr.value == "representative_dataset"
                        and dotted_name(t.value) == name
                    ):
                        return True
        return False

    def _qat_file(self) -> bool:
        return self.ctx.memo("tflite-qat-signs", lambda c: QAT_SIGNS.search(c.source) is not None)
