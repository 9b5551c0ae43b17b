from __future__ import annotations

import re
from typing import Any, List, Optional

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tflite import (
    makes_dataset,
    representative_generators,
    string_value,
    strip_dataset_methods,
)

#: Calls that return one numpy array / TensorFlow tensor.
ARRAY_FUNCTIONS = frozenset(
    {
        "numpy.array", "numpy.asarray", "numpy.expand_dims", "numpy.zeros", "numpy.ones", "numpy.empty",
        "numpy.full", "numpy.stack", "numpy.concatenate", "numpy.reshape", "numpy.transpose", "numpy.float32",
        "numpy.float64", "numpy.uint8", "numpy.int8", "numpy.load",
        "tensorflow.cast", "tensorflow.expand_dims", "tensorflow.constant", "tensorflow.convert_to_tensor",
        "tensorflow.zeros", "tensorflow.ones", "tensorflow.reshape", "tensorflow.stack", "tensorflow.concat",
        "tensorflow.transpose", "tensorflow.squeeze", "tensorflow.image.resize",
        "tensorflow.image.convert_image_dtype",
    }
)
RANDOM_PREFIXES = ("numpy.random.", "tensorflow.random.")
ARRAY_METHODS = frozenset({"astype", "numpy", "reshape", "squeeze", "transpose", "copy"})
#: Calls that keep the data and only change its shape or container (followed to their input).
SHAPE_FUNCTIONS = frozenset(
    {"numpy.expand_dims", "numpy.array", "numpy.asarray", "numpy.reshape", "numpy.transpose",
     "tensorflow.expand_dims", "tensorflow.convert_to_tensor", "tensorflow.reshape", "tensorflow.constant",
     "tensorflow.transpose", "tensorflow.squeeze"}
)

_INT_DTYPES = {"numpy.uint8": "uint8", "numpy.int8": "int8", "numpy.float64": "float64",
               "tensorflow.uint8": "uint8", "tensorflow.int8": "int8", "tensorflow.float64": "float64"}

#: Signs that the model takes integer inputs (token ids, lookups, integer Input dtypes).
INTEGER_INPUT_SIGNS = re.compile(
    r"input_ids|token|Embedding|vocab|TextVectorization|StringLookup|IntegerLookup|"
    r"dtype\s*=\s*['\"]?(?:tf\.|np\.|numpy\.|tensorflow\.)?u?int(?:8|16|32|64)",
)
FLOAT64_INPUT_SIGNS = re.compile(r"set_floatx|Input\([^)]*float64|dtype\s*=\s*['\"]?(?:tf\.|np\.)?float64")

TEST_PATH = re.compile(r"(^|/)(tests?/|test_[^/]*$|[^/]*_test\.py$)")


class RepresentativeDatasetBadYield(Rule):
    """A representative_dataset generator that yields the wrong thing.

    Finds the generator assigned to `converter.representative_dataset` (a function defined in the
    file, given by name, through a lambda such as `lambda: gen(data)`, `functools.partial`,
    `tf.lite.RepresentativeDataset(gen)`, or a factory defined here that returns a nested
    generator; when the name is defined several times in the block of the assignment, only the
    last definition before it, since a later one is not the function the converter was given)
    and reports, in that generator:

    1. `yield x` where `x` is a bare array or tensor (an `np.*` / `tf.*` array call, `.astype`,
       `.numpy()`, arithmetic, `x[None]`, the element of a `tf.data.Dataset.from_tensor_slices`
       of an array, a row of such an array) instead of a list of inputs (`yield [x]`); the
       suggested fix wraps it in a list (right for a model with one input);
    2. yielded data cast to `np.uint8` / `np.int8` / `np.float64` (`.astype(...)`, `tf.cast`,
       `np.uint8(x)`), at the cast, except when the file shows that the model takes integer
       inputs (token ids, embeddings, lookups, an integer `dtype=`) or float64 inputs;
    3. every yielded input drawn from `np.random` / `tf.random` alone: a calibration-quality
       smell (info): the ranges are calibrated on noise (not reported in test files, where
       random calibration data only exercises the converter);
    4. `tf.data.Dataset.from_tensor_slices(ds)` / `from_tensors(ds)` on something that already is
       a `tf.data.Dataset` (`image_dataset_from_directory(...)`, a `tf.data` pipeline), which
       tf.data rejects (`ValueError: Unbatching a dataset is only supported for rank >= 1`,
       tensorflow/tensorflow#47027: iterate the dataset itself).

    Why it is a bug: the calibrator takes, per sample, a list of float32 input arrays (one per
    model input), a dict keyed by input name, or a `(signature_key, dict)` tuple. The catalogue
    measured in TF 2.21: a bare array fails at `convert()` with ``ValueError: You need to provide
    either a dictionary with input names and values, a tuple with signature key and a dictionary
    ..., or an array with input values in the order of input tensors ...``; float64 or uint8
    data fails with ``ValueError: Cannot set tensor: Got value of type FLOAT64 but expected type
    FLOAT32``. tensorflow/model-optimization#974 (maintainer: "Quantized data is not needed
    normally in the representative dataset. You should revert to float32"), tensorflow#47027 and
    TensorSpeech/TensorFlowTTS#802 show the same mistakes. Random data converts, but the int8
    ranges then fit noise rather than real inputs, and accuracy drops silently. (TensorFlow is not
    installed here; these are the catalogue's measurements.)

    How to fix: `def rep(): for x in ds.batch(1).take(100): yield [tf.cast(x, tf.float32)]`,
    preprocessing real samples exactly as at inference.

    A tuple of arrays (`yield (x,)`, `yield x, y`) is reported too: TF 2.21 reads any tuple as
    `(signature_key, dict)`, so `(x,)` fails with `IndexError: tuple index out of range` and `(x, y)`
    with a ValueError about the tuple's second argument (measured).
    Stays silent for yields of lists, `(signature_key, dict)` tuples and dicts (dict keys are not checked against the
    signature), for values it cannot follow (parameters, names assigned several times, unknown
    helpers), for dataset elements that may be tuples or dicts, and for generators defined in
    another file (yolov5 imports its generator).
    """

    code = "DL213"
    name = "representative-dataset-bad-yield"
    family = "optimization"
    message = "representative_dataset should yield a list of float32 input arrays (one per model input) from real data"
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="TFLite int8 representative_dataset built wrongly",
        links=(
            "https://github.com/tensorflow/model-optimization/issues/974",
            "https://github.com/tensorflow/tensorflow/issues/47027",
            "https://github.com/TensorSpeech/TensorFlowTTS/issues/802",
            "https://www.tensorflow.org/lite/performance/post_training_integer_quant",
        ),
    )
    triggers = ("representative_dataset",)

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            def rep():
                for x in ds.batch(1).take(100):
                    yield [tf.cast(x, tf.float32)]
            converter.representative_dataset = rep
            """), "the catalogue's good example"),
        Valid(dedent("""
            import numpy as np
            def rep():
                for i in range(100):
                    yield {"image": images[i:i + 1].astype(np.float32), "mask": masks[i:i + 1]}
            converter.representative_dataset = rep
            """), "dict keyed by input name"),
        Valid(dedent("""
            import numpy as np
            def rep():
                for x in x_train[:100]:
                    yield np.expand_dims(x, 0).astype(np.float32)
            """), "not assigned to a converter"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf
            inputs = tf.keras.Input(shape=(128,), dtype=tf.int32)
            def rep():
                for ids in token_batches:
                    yield [np.array(ids).astype(np.int8)]
            converter.representative_dataset = rep
            """), "integer model input: the cast is right"),
        Valid(dedent("""
            def rep():
                for element in dataset.take(100):
                    yield element
            converter.representative_dataset = rep
            """), "dataset elements may already be lists or dicts"),
        Valid(dedent("""
            import tensorflow as tf
            def rep():
                for images, _ in train_ds.take(100):
                    yield [images[:1]]
            train_ds = tf.keras.utils.image_dataset_from_directory("train")
            converter.representative_dataset = rep
            """), "iterates the dataset itself"),
        Valid(dedent("""
            import numpy as np
            from models.tf import representative_dataset_gen
            converter.representative_dataset = lambda: representative_dataset_gen(dataset, ncalib=100)
            """), "generator defined in another file"),
        Valid(dedent("""
            import numpy as np
            import tensorflow as tf

            def calib():
                for frame in recorded_frames[:200]:
                    yield [frame[None].astype(np.float32)]

            lite = tf.lite.TFLiteConverter.from_keras_model(detector)
            lite.optimizations = [tf.lite.Optimize.DEFAULT]
            lite.representative_dataset = calib
            blob = lite.convert()

            def calib():
                for _ in range(8):
                    yield [np.random.uniform(size=(1, 64, 64, 3)).astype(np.float32)]
            """), "a later redefinition of the generator name is not the one the converter was given"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import numpy as np
                import tensorflow as tf
                def rep():
                    for _ in range(10):
                        yield (np.random.rand(1, 4).astype(np.float32),)
                converter = tf.lite.TFLiteConverter.from_keras_model(model)
                converter.representative_dataset = rep
                """),
            fixed=dedent("""
                import numpy as np
                import tensorflow as tf
                def rep():
                    for _ in range(10):
                        yield [np.random.rand(1, 4).astype(np.float32),]
                converter = tf.lite.TFLiteConverter.from_keras_model(model)
                converter.representative_dataset = rep
                """),
            unsafe=True,
            note="a one-element tuple of arrays (IndexError in TF 2.21)",
        ),
        Invalid(
            dedent("""
                import numpy as np
                import tensorflow as tf
                def rep():
                    for x in tf.data.Dataset.from_tensor_slices(x_test.astype(np.float32)).batch(1).take(100):
                        yield x
                converter.representative_dataset = rep
                """),
            fixed=dedent("""
                import numpy as np
                import tensorflow as tf
                def rep():
                    for x in tf.data.Dataset.from_tensor_slices(x_test.astype(np.float32)).batch(1).take(100):
                        yield [x]
                converter.representative_dataset = rep
                """),
            unsafe=True,
            note="bare tensor from a dataset of arrays",
        ),
        Invalid(
            dedent("""
                import numpy as np
                def representative_data_gen():
                    for i in range(100):
                        image = load(paths[i]) / 255.0
                        yield [np.expand_dims(image, 0).astype(np.uint8)]
                converter.representative_dataset = representative_data_gen
                """),
            note="uint8 cast of the calibration data",
        ),
        Invalid(
            dedent("""
                import numpy as np
                import tensorflow as tf
                def rep():
                    for img in images[:100]:
                        sample = np.expand_dims(img, 0).astype(np.float64)
                        yield sample
                converter.representative_dataset = tf.lite.RepresentativeDataset(rep)
                """),
            fixed=dedent("""
                import numpy as np
                import tensorflow as tf
                def rep():
                    for img in images[:100]:
                        sample = np.expand_dims(img, 0).astype(np.float64)
                        yield [sample]
                converter.representative_dataset = tf.lite.RepresentativeDataset(rep)
                """),
            count=2,
            unsafe=True,
            note="bare and float64: two findings",
        ),
        Invalid(
            dedent("""
                import numpy as np
                def calibration_gen(n):
                    for _ in range(n):
                        yield [np.random.rand(1, 224, 224, 3).astype(np.float32)]
                converter.representative_dataset = lambda: calibration_gen(100)
                """),
            note="random data only (info): a calibration-quality smell",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                train_dataset = tf.keras.utils.image_dataset_from_directory("train", batch_size=32)
                def rep_data():
                    ds = tf.data.Dataset.from_tensor_slices(train_dataset)
                    for item in ds.batch(1).take(100):
                        yield [item]
                converter.representative_dataset = rep_data
                """),
            note="a tf.data.Dataset wrapped again in from_tensor_slices (tensorflow#47027)",
        ),
    )

    # ------------------------------------------------------------------ visits

    def _in_generator(self) -> bool:
        function = self.ctx.function()
        return function is not None and id(function) in representative_generators(self.ctx)

    def visit_Call(self, node: cst.Call) -> None:
        if not self._in_generator():
            return
        name = self.ctx.qualname(node.func) or ""
        if not name.startswith("tensorflow.") or name.rsplit(".", 1)[-1] not in ("from_tensor_slices", "from_tensors"):
            return
        if node.args and makes_dataset(self.ctx, node.args[0].value):
            self.report(
                node,
                f"{self.message}: this wraps a tf.data.Dataset in {name.rsplit('.', 1)[-1]}(), which tf.data rejects "
                "('Unbatching a dataset is only supported for rank >= 1'); iterate the dataset itself",
            )

    def visit_Yield(self, node: cst.Yield) -> None:
        value = node.value
        if value is None or isinstance(value, cst.From) or not self._in_generator():
            return
        reported = False
        if not _is_container(self.ctx, value) and self._is_array(value, 0):
            reported = True
            self.report(
                node,
                f"{self.message}: this yields a bare array; yield a list of inputs (`yield [x]`)",
                fix=Fix("Wrap the yielded array in a list (one model input)",
                        [(value, cst.List([cst.Element(value)]))], FixKind.UNSAFE),
            )
        elif (
            isinstance(value, cst.Tuple)
            and value.elements
            and all(isinstance(e, cst.Element) for e in value.elements)
            and all(self._is_array(e.value, 0) for e in value.elements)
        ):
            # TF 2.21 reads any tuple as (signature_key, dict): (x,) raises IndexError, (x, y) a ValueError
            reported = True
            self.report(
                node,
                f"{self.message}: this yields a tuple of arrays, which the converter reads as "
                "(signature_key, dict) and rejects; yield a list (`yield [x]`)",
                fix=Fix("Yield a list instead of a tuple",
                        [(value, cst.List([e.with_changes(comma=e.comma) for e in value.elements]))], FixKind.UNSAFE),
            )
        elements = _elements(self.ctx, value)
        for element in elements:
            cast = self._bad_cast(element, 0)
            if cast is not None:
                call, dtype = cast
                reported = True
                self.report(
                    call,
                    f"{self.message}: calibration data cast to {dtype}; the converter feeds float32 inputs "
                    "('Cannot set tensor: Got value of type ...')",
                )
        if not reported and elements and all(self._random_only(e, 0) for e in elements) and not self._test_file():
            self.report(
                node,
                f"{self.message}: calibration-quality smell (info): only np.random / tf.random data is yielded, so "
                "the int8 ranges are calibrated on noise, not on real inputs",
            )

    # ------------------------------------------------------------------ value questions

    def _resolve_loop(self, name: cst.Name) -> Optional[tuple]:
        """(iterable, index in a tuple target or None) of the innermost enclosing ``for`` binding ``name``."""
        for ancestor in reversed(self.ctx.stack):
            if isinstance(ancestor, cst.For):
                target = ancestor.target
                if isinstance(target, cst.Name) and target.value == name.value:
                    return ancestor.iter, None
                if isinstance(target, (cst.Tuple, cst.List)):
                    for i, element in enumerate(target.elements):
                        if isinstance(element.value, cst.Name) and element.value.value == name.value:
                            return ancestor.iter, i
            if isinstance(ancestor, cst.FunctionDef):
                return None
        return None

    def _is_array(self, node: Any, depth: int) -> bool:
        """Whether ``node`` is one array / tensor (never a list, tuple or dict of them)."""
        ctx = self.ctx
        if depth > 6 or node is None:
            return False
        if isinstance(node, cst.Name):
            bindings = ctx.lookup(node.value)
            if bindings and len(bindings) == 1 and bindings[0].kind == "other":
                loop = self._resolve_loop(node)
                if loop is not None:
                    return self._loop_element_is_array(loop[0], loop[1], depth + 1)
                return False
            return self._is_array(ctx.assigned_value(node), depth + 1)
        if isinstance(node, cst.BinaryOperation):
            if isinstance(node.operator, (cst.Divide, cst.Multiply, cst.Subtract, cst.Power, cst.FloorDivide)):
                return not (isinstance(node.left, (cst.List, cst.Tuple)) or isinstance(node.right, (cst.List, cst.Tuple)))
            if isinstance(node.operator, cst.Add):
                return any(
                    isinstance(s, (cst.Float, cst.Integer)) or self._is_array(s, depth + 1) for s in (node.left, node.right)
                ) and not any(isinstance(s, (cst.List, cst.Tuple)) for s in (node.left, node.right))
            return False
        if isinstance(node, cst.Subscript):
            for element in node.slice:
                index = element.slice
                if isinstance(index, cst.Index) and (
                    (isinstance(index.value, cst.Name) and index.value.value in ("None", "Ellipsis"))
                    or (dotted_name(index.value) or "").endswith("newaxis")
                ):
                    return True
            return self._is_array(node.value, depth + 1)
        if isinstance(node, cst.Call):
            func = node.func
            name = ctx.qualname(func) or ""
            if name in ARRAY_FUNCTIONS or name.startswith(RANDOM_PREFIXES):
                return name not in ("numpy.random.choice", "numpy.random.shuffle", "numpy.random.seed")
            if not name and isinstance(func, cst.Attribute) and func.attr.value in ARRAY_METHODS:
                return func.attr.value != "copy" or self._is_array(func.value, depth + 1)
        return False

    def _loop_element_is_array(self, iterable: Any, index: Optional[int], depth: int) -> bool:
        ctx = self.ctx
        if isinstance(iterable, cst.Name):
            iterable = ctx.assigned_value(iterable)
        base = strip_dataset_methods(iterable)
        if isinstance(base, cst.Name):
            base = ctx.assigned_value(base)
        if isinstance(base, cst.Call):
            name = ctx.qualname(base.func) or ""
            if name.startswith("tensorflow.") and name.endswith(".from_tensor_slices") and base.args:
                source = base.args[0].value
                if index is None:
                    return not _is_container(ctx, source) and self._is_array(source, depth + 1)
                if isinstance(source, cst.Tuple) and index < len(source.elements):
                    return self._is_array(source.elements[index].value, depth + 1)
                return False
            if index == 0 and name.startswith(("tensorflow.", "keras.")) and name.endswith("image_dataset_from_directory"):
                return ctx.keyword(base, "labels") is None or string_value(ctx.keyword(base, "labels").value) != "None"
        if index is None and iterable is not None and iterable is base:
            return self._is_array(iterable, depth + 1)
        return False

    def _bad_cast(self, node: Any, depth: int) -> Optional[tuple]:
        """(cast call, dtype) when ``node`` is data cast to uint8 / int8 / float64."""
        ctx = self.ctx
        if depth > 6 or node is None:
            return None
        if isinstance(node, cst.Name):
            return self._bad_cast(ctx.assigned_value(node), depth + 1)
        if isinstance(node, cst.Subscript):
            return self._bad_cast(node.value, depth + 1)
        if not isinstance(node, cst.Call):
            return None
        func = node.func
        name = ctx.qualname(func) or ""
        dtype = None
        if not name and isinstance(func, cst.Attribute) and func.attr.value == "astype" and node.args:
            dtype = self._dtype(node.args[0].value)
            if dtype is None:
                return self._bad_cast(func.value, depth + 1)
        elif name in ("numpy.uint8", "numpy.int8", "numpy.float64"):
            dtype = name.split(".")[-1]
        elif name in ("tensorflow.cast", "tensorflow.image.convert_image_dtype"):
            dtype = self._dtype(ctx.argument(node, 1, "dtype"))
        elif name in SHAPE_FUNCTIONS:
            dtype = self._dtype(ctx.argument(node, 99, "dtype"))
            if dtype is None and node.args:
                return self._bad_cast(node.args[0].value, depth + 1)
        elif not name and isinstance(func, cst.Attribute) and func.attr.value in ("reshape", "squeeze", "transpose"):
            return self._bad_cast(func.value, depth + 1)
        if dtype is None or self._dtype_allowed(dtype):
            return None
        return node, dtype

    def _dtype(self, node: Any) -> Optional[str]:
        if node is None:
            return None
        name = self.ctx.qualname(node) or ""
        if name in _INT_DTYPES:
            return _INT_DTYPES[name]
        text = string_value(node)
        return text if text in ("uint8", "int8", "float64") else None

    def _dtype_allowed(self, dtype: str) -> bool:
        source = self.ctx.source
        if dtype == "float64":
            return self.ctx.memo("tflite-float64-signs", lambda c: FLOAT64_INPUT_SIGNS.search(source) is not None)
        return self.ctx.memo("tflite-int-signs", lambda c: INTEGER_INPUT_SIGNS.search(source) is not None)

    def _random_only(self, node: Any, depth: int) -> bool:
        ctx = self.ctx
        if depth > 6 or node is None:
            return False
        if isinstance(node, cst.Name):
            return self._random_only(ctx.assigned_value(node), depth + 1)
        if isinstance(node, cst.Subscript):
            return self._random_only(node.value, depth + 1)
        if isinstance(node, cst.BinaryOperation):
            sides = [s for s in (node.left, node.right) if not isinstance(s, (cst.Integer, cst.Float))]
            return bool(sides) and all(self._random_only(s, depth + 1) for s in sides)
        if not isinstance(node, cst.Call):
            return False
        func = node.func
        name = ctx.qualname(func) or ""
        if name.startswith(RANDOM_PREFIXES):
            return True
        if not name and isinstance(func, cst.Attribute) and func.attr.value in ARRAY_METHODS:
            return self._random_only(func.value, depth + 1)
        if name in SHAPE_FUNCTIONS or name == "tensorflow.cast":
            return bool(node.args) and self._random_only(node.args[0].value, depth + 1)
        return False

    def _test_file(self) -> bool:
        return TEST_PATH.search(self.ctx.path.replace("\\", "/")) is not None


def _is_container(ctx: Any, node: Any) -> bool:
    """A list / tuple / dict (literal, comprehension, builtin call), or a name assigned one."""
    if isinstance(node, cst.Name):
        assigned = ctx.assigned_value(node)
        if assigned is not None:
            node = assigned
    if isinstance(node, (cst.List, cst.Tuple, cst.Dict, cst.ListComp, cst.DictComp)):
        return True
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value in ("list", "tuple", "dict", "zip")
    )


def _elements(ctx: Any, value: Any) -> List[Any]:
    """The inputs a yield gives: the elements of a list / tuple, the values of a dict, or the
    value itself."""
    if isinstance(value, cst.Name):
        assigned = ctx.assigned_value(value)
        if isinstance(assigned, (cst.List, cst.Tuple, cst.Dict)):
            value = assigned
    if isinstance(value, (cst.List, cst.Tuple)):
        return [e.value for e in value.elements if isinstance(e, cst.Element)]
    if isinstance(value, cst.Dict):
        return [e.value for e in value.elements if isinstance(e, cst.DictElement)]
    if isinstance(value, (cst.ListComp, cst.DictComp)) or _is_container(ctx, value):
        return []
    return [value]
