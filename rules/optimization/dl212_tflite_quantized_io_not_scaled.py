from __future__ import annotations

from typing import Any, List, Set

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tflite import (
    INTERPRETERS,
    float_prepared,
    handles_quantization,
    quantized_io,
    walk_function,
    walk_all,
)

#: Functions that read their argument as float scores.
SCORE_FUNCTIONS = ("softmax", "sigmoid", "exp", "log_softmax")


class TfliteQuantizedIoNotScaled(Rule):
    """Float data fed to (or float scores read from) a TFLite model with integer I/O, without
    its scale and zero point.

    Finds, in a file that makes the model's I/O integer (`converter.inference_input_type` /
    `inference_output_type = tf.int8 / tf.uint8`, or the TF1 `inference_type`) or that checks an
    interpreter's dtype (`input_details[0]["dtype"] == np.uint8`):

    * `interpreter.set_tensor(index, x)` where `x` comes from float preprocessing (a true
      division such as `img / 255.0`, arithmetic with a float literal, `.astype(np.float32)`,
      `tf.cast(x, tf.float32)`, `preprocess_input(...)`), followed through names assigned once,
      shape-only operations (`np.expand_dims`, `x[None]`, `.reshape`) and a final integer cast
      (`(img / 255.0).astype(np.uint8)`);
    * `y = interpreter.get_tensor(index)` whose value is then read as a float score: compared
      with a float literal (`y[0] > 0.5`) or passed to softmax / sigmoid / exp;

    when the function (or, for code at the top level and in notebooks, the whole file) never
    mentions the quantisation parameters: no `"quantization"` / `"quantization_parameters"` key,
    no name or string containing scale, zero_point or quantiz. The interpreter may be
    `tf.lite.Interpreter`, `tflite_runtime.interpreter.Interpreter` or LiteRT's
    `ai_edge_litert.interpreter.Interpreter`.

    Why it is a bug: a model converted with integer I/O expects `q = x / scale + zero_point` in
    int8 / uint8 and returns `q` that must be read as `(q - zero_point) * scale`. A float array
    is rejected (`Cannot set tensor: Got value of type FLOAT32 but expected type INT8`,
    Arm-Examples/ML-zoo#49, google-coral/edgetpu#13, tensorflow/tensorflow#52318), and a float
    array cast to the integer type without the scale gives wrong predictions silently
    (haverland/Tenth-of-step-of-a-meter-digit#25, ultralytics/ultralytics#9159,
    ml-gde/e2e-tflite-tutorials#21); integer outputs compared with probability thresholds are
    compared in the wrong units. (No runtime test here: TensorFlow is not installed; these are
    the catalogue's sources.)

    How to fix: read `qp = details["quantization_parameters"]`, `scale, zp = qp["scales"][0],
    qp["zero_points"][0]`; feed `np.clip(np.round(x / scale + zp), lo, hi).astype(details["dtype"])`
    and read `(y.astype(np.float32) - zp) * scale`. The older `details["quantization"]` tuple
    works too but is documented as deprecated.

    Stays silent when the file neither sets integer I/O nor checks the dtype (models converted
    with float I/O, the default, take float data), when the function handles the scale anywhere
    (also in a helper whose name says so), when the data comes from an unknown helper or a
    name assigned several times, for raw uint8 images (no float preprocessing), and for outputs
    only passed to `argmax` (the order of the classes survives quantisation). A function that
    serves both the float and the quantised model in the same file is flagged: it breaks on the
    quantised one. Integer I/O set only in an `if flag:` branch of a function that every call in
    the file invokes with a falsy literal for `flag` (or its falsy default) does not count: no
    model of the file has integer I/O then.
    """

    code = "DL212"
    name = "tflite-quantized-io-not-scaled"
    family = "optimization"
    message = (
        'quantised TFLite input/output used without scale/zero_point (input_details["quantization_parameters"]); '
        "predictions will be wrong"
    )
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="TFLite quantised model I/O used without scale and zero point",
        links=(
            "https://github.com/haverland/Tenth-of-step-of-a-meter-digit/issues/25",
            "https://github.com/ultralytics/ultralytics/issues/9159",
            "https://github.com/ml-gde/e2e-tflite-tutorials/issues/21",
            "https://github.com/Arm-Examples/ML-zoo/issues/49",
            "https://github.com/google-coral/edgetpu/issues/13",
            "https://github.com/tensorflow/tensorflow/issues/52318",
        ),
    )
    triggers = ("set_tensor", "get_tensor")
    frameworks = ("tensorflow", "tflite_runtime", "ai_edge_litert", "pycoral")

    VALID = (
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            interpreter = tf.lite.Interpreter(model_path="m.tflite")
            inp = interpreter.get_input_details()[0]
            x = (img / 255.0).astype(np.float32)[None]
            interpreter.set_tensor(inp["index"], x)
            """), "no integer I/O in the file: a float model"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            converter.inference_input_type = tf.uint8
            interpreter = tf.lite.Interpreter(model_content=tflite_model)
            inp = interpreter.get_input_details()[0]
            qp = inp["quantization_parameters"]
            scale, zp = qp["scales"][0], qp["zero_points"][0]
            x = np.clip(np.round(img / 255.0 / scale + zp), 0, 255).astype(inp["dtype"])[None]
            interpreter.set_tensor(inp["index"], x)
            """), "the catalogue's good example"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            converter.inference_input_type = tf.uint8
            def run(interpreter, img):
                inp = interpreter.get_input_details()[0]
                x = np.expand_dims(img, 0)
                interpreter.set_tensor(inp["index"], x)
            """), "raw uint8 pixels: no float preprocessing"),
        Valid(dedent("""
            import numpy as np
            from ai_edge_litert.interpreter import Interpreter
            def run(interpreter, img):
                inp = interpreter.get_input_details()[0]
                if inp["dtype"] == np.uint8:
                    s, z = inp["quantization"]
                    img = img / s + z
                x = img.astype(inp["dtype"])
                interpreter.set_tensor(inp["index"], x)
            """), "scaling done behind the dtype check"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            converter.inference_output_type = tf.int8
            def predict(interpreter, x):
                interpreter.invoke()
                out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
                return np.argmax(out[0])
            """), "argmax survives quantisation"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            converter.inference_input_type = tf.int8
            def run(interpreter, img):
                x = quantize_input(img / 255.0, interpreter)
                interpreter.set_tensor(0, x)
            """), "a helper that says it quantises"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf

            def accuracy(interpreter, pictures, labels):
                slot = interpreter.get_input_details()[0]["index"]
                hits = 0
                for picture, label in zip(pictures, labels):
                    interpreter.set_tensor(slot, (picture[None] / 255.0).astype(np.float32))
                    interpreter.invoke()
                    hits += int(np.argmax(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])) == label)
                return hits / len(labels)

            def export(keras_model, full_int):
                conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
                if full_int:
                    conv.representative_dataset = calibration_batches
                    conv.inference_input_type = tf.int8
                    conv.inference_output_type = tf.int8
                interp = tf.lite.Interpreter(model_content=conv.convert())
                interp.allocate_tensors()
                return accuracy(interp, pictures, labels)

            print(export(net, False), export(small_net, full_int=False))
            """), "the integer-I/O branch is behind a flag every call in the file passes as False"),
    )

    INVALID = (
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            converter.inference_input_type = tf.uint8
            interpreter = tf.lite.Interpreter(model_content=tflite_model)
            inp = interpreter.get_input_details()[0]
            x = (img / 255.0).astype(np.uint8)[None]
            interpreter.set_tensor(inp["index"], x)
            """), note="the catalogue's bad example"),
        Invalid(dedent("""
            import numpy as np
            from ai_edge_litert.interpreter import Interpreter
            def classify(path, img):
                interpreter = Interpreter(model_path=path)
                interpreter.allocate_tensors()
                inp = interpreter.get_input_details()[0]
                assert inp["dtype"] == np.int8
                x = np.expand_dims(img.astype(np.float32), 0)
                interpreter.set_tensor(inp["index"], x)
                interpreter.invoke()
            """), note="LiteRT interpreter, dtype check in the file"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            def export(m):
                c = tf.lite.TFLiteConverter.from_keras_model(m)
                c.representative_dataset = rep
                c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                c.inference_input_type = tf.int8
                c.inference_output_type = tf.int8
                return c.convert()
            def evaluate(interpreter, images):
                index = interpreter.get_input_details()[0]["index"]
                for image in images:
                    batch = tf.expand_dims(tf.cast(image, tf.float32) / 127.5 - 1.0, 0)
                    interpreter.set_tensor(index, batch)
                    interpreter.invoke()
            """), note="converter and evaluation in one file"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            converter.inference_output_type = tf.uint8
            def detect(interpreter):
                interpreter.invoke()
                scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
                return scores > 0.5
            """), note="integer output compared with a probability"),
        Invalid(dedent("""
            import numpy as np
            import tensorflow as tf
            converter.inference_output_type = tf.int8
            converter.inference_input_type = tf.int8
            def predict(interpreter, x):
                interpreter.set_tensor(0, x)
                interpreter.invoke()
                logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
                return tf.nn.softmax(logits)
            """), note="integer logits into softmax"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in ("set_tensor", "get_tensor"):
            return
        if not self._has_interpreter() or not self._interpreter_receiver(func.value):
            return
        io = quantized_io(self.ctx)
        if func.attr.value == "set_tensor":
            if not io["input"]:
                return
            value = self.ctx.argument(node, 1, "value")
            if value is None or not float_prepared(self.ctx, value):
                return
            if self._scale_aware():
                return
            self.report(
                node,
                f"{self.message}: this float input needs `x / scale + zero_point` cast to the model's int8/uint8 "
                "input type",
            )
        else:
            if not io["output"] or not self._read_as_score(node) or self._scale_aware():
                return
            self.report(
                node,
                f"{self.message}: dequantise the integer output with `(y - zero_point) * scale` before reading it "
                "as a score",
            )

    def _has_interpreter(self) -> bool:
        def compute(ctx: Any) -> bool:
            source = ctx.source
            if "get_input_details" in source or "get_output_details" in source:
                return True
            return any(
                isinstance(n, cst.Call) and (ctx.qualname(n.func) or "") in INTERPRETERS for n in walk_all(ctx.module)
            )

        return self.ctx.memo("tflite-has-interpreter", compute)

    def _interpreter_receiver(self, receiver: Any) -> bool:
        """False when the receiver is known to be something else than a TFLite interpreter for a
        quantised model: made by a call that is not an interpreter factory (an OpenVINO infer
        request...), or an interpreter loaded from a path that names a float model."""
        value = self.ctx.assigned_value(receiver)
        if not isinstance(value, cst.Call):
            return True
        callee = self.ctx.qualname(value.func) or dotted_name(value.func) or ""
        if "interpreter" not in callee.lower():
            return False
        source = self.ctx.argument(value, 0, "model_path") or self.ctx.keyword(value, "model_content")
        if isinstance(source, cst.Arg):
            source = source.value
        if source is not None:
            words = " ".join(w for w in _texts(source)).lower()
            if any(w in words for w in ("float", "fp32", "fp16", "f32")):
                return False
        return True

    def _scope(self) -> Any:
        return self.ctx.function() or self.ctx.module

    def _scale_aware(self) -> bool:
        scope = self._scope()
        return self.ctx.memo(f"tflite-scale-aware:{id(scope)}", lambda c: handles_quantization(scope))

    def _read_as_score(self, call: cst.Call) -> bool:
        """Whether the get_tensor result (directly, or through the name it is assigned to) is
        compared with a float literal or passed to softmax / sigmoid / exp."""
        names: Set[str] = set()
        expr: Any = call
        for ancestor in reversed(self.ctx.stack):
            if isinstance(ancestor, cst.Subscript) and ancestor.value is expr:
                expr = ancestor
                continue
            if isinstance(ancestor, (cst.SubscriptElement, cst.Index, cst.Slice)):
                break
            if isinstance(ancestor, cst.Assign) and ancestor.value is expr:
                for target in ancestor.targets:
                    if isinstance(target.target, cst.Name):
                        names.add(target.target.value)
            break
        if _is_score_use_site(expr, self.ctx.stack):
            return True
        if not names:
            return False
        for node in walk_function(self._scope()):
            if isinstance(node, cst.Comparison):
                sides = [node.left] + [t.comparator for t in node.comparisons]
                if any(isinstance(s, cst.Float) for s in sides) and any(_refers_to(s, names) for s in sides):
                    return True
            elif isinstance(node, cst.Call) and _score_function(node.func):
                if any(_refers_to(a.value, names) for a in node.args):
                    return True
        return False


def _texts(node: Any) -> List[str]:
    """Names and string pieces in an expression (``f"{MODEL_DIR}/float.tflite"``, ``float_path``)."""
    out: List[str] = []
    for current in walk_all(node):
        if isinstance(current, cst.Name):
            out.append(current.value)
        elif isinstance(current, (cst.SimpleString, cst.FormattedStringText)):
            out.append(current.value)
    return out


def _refers_to(node: Any, names: Set[str]) -> bool:
    """``y`` or a subscript of it (``y[0]``, ``y[0][1]``)."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return isinstance(node, cst.Name) and node.value in names


def _score_function(func: Any) -> bool:
    name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
    return name in SCORE_FUNCTIONS


def _is_score_use_site(expr: Any, stack: List[Any]) -> bool:
    """``get_tensor(i)[0] > 0.5`` / ``softmax(get_tensor(i))`` written in one expression."""
    for i in range(len(stack) - 1, -1, -1):
        ancestor = stack[i]
        if isinstance(ancestor, cst.Subscript):
            continue
        if isinstance(ancestor, cst.Comparison):
            sides = [ancestor.left] + [t.comparator for t in ancestor.comparisons]
            return any(isinstance(s, cst.Float) for s in sides)
        if isinstance(ancestor, cst.Arg) and i > 0 and isinstance(stack[i - 1], cst.Call):
            return _score_function(stack[i - 1].func) and ancestor.value is expr
        return False
    return False
