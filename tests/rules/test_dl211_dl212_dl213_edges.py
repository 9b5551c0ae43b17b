"""Edge cases of DL211 (tflite-int8-without-representative-dataset), DL212
(tflite-quantized-io-not-scaled) and DL213 (representative-dataset-bad-yield) beyond the examples
the rules carry: spellings, scopes, converter life cycles, and near-misses."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _lint(code: str, rule: str, path: str = "case.py"):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, path, RULESET, enabled={rule})
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _lines(code: str, rule: str, path: str = "case.py"):
    return [f.line for f in _lint(code, rule, path)[2]]


def _fixed(code: str, rule: str) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, True)).code


# ---------------------------------------------------------------------- DL211

INT8 = "tf.lite.OpsSet.TFLITE_BUILTINS_INT8"


@pytest.mark.parametrize(
    "make",
    [
        "tf.lite.TFLiteConverter.from_keras_model(m)",
        "tf.lite.TFLiteConverter.from_saved_model('d')",
        "tf.lite.TFLiteConverter.from_concrete_functions([f], m)",
        "tf.lite.TFLiteConverter([f], m)",
        "tf.compat.v1.lite.TFLiteConverter.from_session(sess, [i], [o])",
        "tf.compat.v1.lite.TFLiteConverter.from_frozen_graph('g.pb', ['i'], ['o'])",
        "tf.compat.v1.lite.TFLiteConverter.from_keras_model_file('m.h5')",
    ],
)
def test_dl211_every_converter_spelling(make):
    code = f"""
    import tensorflow as tf
    c = {make}
    c.target_spec.supported_ops = [{INT8}]
    out = c.convert()
    """
    assert _lines(code, "DL211") == [4]


def test_dl211_module_alias_and_function_local_import():
    code = """
    import tensorflow.lite as tfl
    c = tfl.TFLiteConverter.from_keras_model(m)
    c.target_spec.supported_ops = {tfl.OpsSet.TFLITE_BUILTINS_INT8}
    out = c.convert()

    def export(m):
        import tensorflow as tf
        converter = tf.lite.TFLiteConverter.from_keras_model(m)
        converter.inference_input_type = tf.int8
        return converter.convert()
    """
    assert _lines(code, "DL211") == [4, 10]


def test_dl211_yolov5_shape_is_silent():
    code = """
    def export_tflite(keras_model, int8, nms, data):
        import tensorflow as tf
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.target_spec.supported_types = [tf.float16]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if int8:
            from models.tf import representative_dataset_gen
            converter.representative_dataset = lambda: representative_dataset_gen(data, ncalib=100)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.target_spec.supported_types = []
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        if nms:
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        return converter.convert()
    """
    assert _lines(code, "DL211") == []


def test_dl211_reassigned_converter_is_tracked_per_object():
    code = f"""
    import tensorflow as tf
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.target_spec.supported_ops = [{INT8}]
    c.representative_dataset = rep
    int8_model = c.convert()
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.inference_output_type = tf.uint8
    second = c.convert()
    third = c.convert()
    """
    assert _lines(code, "DL211") == [8, 9]


@pytest.mark.parametrize(
    "between",
    [
        "setattr(c, 'representative_dataset', rep)",
        "c.target_spec = spec",
        "configure(c.target_spec)",
        "c.representative_dataset = tf.lite.RepresentativeDataset(rep)",
        "c.representative_dataset = lambda: gen(100)",
    ],
)
def test_dl211_silent_when_the_dataset_may_be_set(between):
    code = f"""
    import tensorflow as tf
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.target_spec.supported_ops = [{INT8}]
    {between}
    out = c.convert()
    """
    assert _lines(code, "DL211") == []


@pytest.mark.parametrize(
    "setting",
    [
        "c.target_spec.supported_types = [tf.int8, tf.float16]",
        "c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]",
        "c.inference_input_type = tf.float32",
        "c.optimizations = [tf.lite.Optimize.DEFAULT]",
    ],
)
def test_dl211_settings_that_do_not_ask_for_full_integer(setting):
    code = f"""
    import tensorflow as tf
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    {setting}
    out = c.convert()
    """
    assert _lines(code, "DL211") == []


def test_dl211_settings_in_another_function_are_not_followed():
    code = f"""
    import tensorflow as tf
    def make(m):
        c = tf.lite.TFLiteConverter.from_keras_model(m)
        c.target_spec.supported_ops = [{INT8}]
        return c
    def run(m):
        c = make(m)
        return c.convert()
    """
    assert _lines(code, "DL211") == []


def test_dl211_qat_file_is_silent():
    code = """
    import tensorflow as tf
    model = load_qat_model()
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.inference_input_type = tf.int8
    out = c.convert()
    """
    assert _lines(code, "DL211") == []


def test_dl211_message_names_the_setting():
    _, _, found = _lint(
        f"""
        import tensorflow as tf
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        conv.target_spec.supported_ops = [{INT8}]
        out = conv.convert()
        """,
        "DL211",
    )
    assert "conv.target_spec.supported_ops" in found[0].message
    assert found[0].message.startswith("full-integer TFLite conversion needs converter.representative_dataset")


# ---------------------------------------------------------------------- DL212

QUANT_HEADER = """
import numpy as np
import tensorflow as tf
converter.inference_input_type = tf.uint8
converter.inference_output_type = tf.uint8
"""


@pytest.mark.parametrize(
    "feed",
    [
        "x = img.astype(np.float32) / 255.0\ninterp.set_tensor(idx, x[None])",
        "x = (img - 127.5) / 127.5\ninterp.set_tensor(idx, np.expand_dims(x, 0))",
        "x = img * 0.0039\ninterp.set_tensor(idx, x.reshape(1, 224, 224, 3))",
        "x = tf.cast(img, tf.float32)\ninterp.set_tensor(idx, tf.expand_dims(x, 0))",
        "x = np.float32(img)\ninterp.set_tensor(tensor_index=idx, value=x)",
        "x = tf.keras.applications.mobilenet_v2.preprocess_input(img)\ninterp.set_tensor(idx, x)",
        "x = img / 255.0\nx = x.astype(np.uint8)\ninterp.set_tensor(idx, x)",
    ],
)
def test_dl212_float_preprocessing_is_flagged(feed):
    body = textwrap.indent(feed, "    ")
    code = QUANT_HEADER + f"def run(interp, img):\n    idx = interp.get_input_details()[0]['index']\n{body}\n"
    assert len(_lint(code, "DL212")[2]) == 1


@pytest.mark.parametrize(
    "feed",
    [
        "interp.set_tensor(idx, np.expand_dims(img, 0))",
        "interp.set_tensor(idx, img[None].astype(np.uint8))",
        "x = prepare(img)\ninterp.set_tensor(idx, x)",
        "x = img / 255.0\nif fp:\n    x = x.astype(np.float32)\nelse:\n    x = to_int(x)\ninterp.set_tensor(idx, x)",
        "s, z = interp.get_input_details()[0]['quantization']\ninterp.set_tensor(idx, (img / 255.0 / s + z).astype(np.uint8))",
        "qp = interp.get_input_details()[0]['quantization_parameters']\ninterp.set_tensor(idx, apply(qp, img / 255.0))",
    ],
)
def test_dl212_near_misses(feed):
    body = textwrap.indent(feed, "    ")
    code = QUANT_HEADER + f"def run(interp, img):\n    idx = interp.get_input_details()[0]['index']\n{body}\n"
    assert _lint(code, "DL212")[2] == []


def test_dl212_needs_integer_io_or_a_dtype_check_in_the_file():
    float_model = """
    import numpy as np
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path="m.tflite")
    idx = interp.get_input_details()[0]["index"]
    interp.set_tensor(idx, (img / 255.0)[None].astype(np.float32))
    """
    assert _lines(float_model, "DL212") == []
    checked = """
    import numpy as np
    from tflite_runtime.interpreter import Interpreter
    interp = Interpreter(model_path="m.tflite")
    details = interp.get_input_details()
    input_type = details[0]["dtype"]
    print("quantised input" if input_type == np.uint8 else "float input")
    def feed(image):
        interp.set_tensor(details[0]["index"], (image / 255.0)[None])
    """
    assert _lines(checked, "DL212") == [8]


def test_dl212_output_read_as_score():
    code = QUANT_HEADER + textwrap.dedent("""
    def detect(interp):
        interp.invoke()
        out = interp.get_output_details()
        boxes = interp.get_tensor(out[0]["index"])[0]
        scores = interp.get_tensor(out[1]["index"])[0]
        keep = scores > 0.4
        best = np.argmax(interp.get_tensor(out[2]["index"])[0])
        flag = interp.get_tensor(out[3]["index"])[0][0] > 0.5
        return boxes[keep], best, flag
    """)
    assert _lines(code, "DL212") == [10, 13]


def test_dl212_output_side_needs_integer_output():
    code = """
    import numpy as np
    import tensorflow as tf
    converter.inference_input_type = tf.uint8
    def detect(interp):
        out = interp.get_output_details()
        scores = interp.get_tensor(out[0]["index"])[0]
        return scores > 0.5
    """
    assert _lines(code, "DL212") == []


def test_dl212_scale_applied_in_the_function_silences_the_output():
    code = QUANT_HEADER + textwrap.dedent("""
    def detect(interp):
        out = interp.get_output_details()[0]
        scale, zero_point = out["quantization"]
        scores = interp.get_tensor(out["index"])[0]
        return scores > 0.5
    """)
    assert _lines(code, "DL212") == []


# ---------------------------------------------------------------------- DL213


def test_dl213_catalogue_bad_example_gives_bare_and_cast():
    code = """
    import numpy as np
    import tensorflow as tf
    def rep():
        for x in ds.take(100):
            yield x.numpy().astype(np.uint8)
    converter.representative_dataset = rep
    """
    found = _lint(code, "DL213")[2]
    assert len(found) == 2
    assert any("bare array" in f.message for f in found)
    assert any("cast to uint8" in f.message for f in found)


@pytest.mark.parametrize(
    "assign",
    [
        "converter.representative_dataset = rep",
        "converter.representative_dataset = functools.partial(rep)",
        "converter.representative_dataset = tf.lite.RepresentativeDataset(rep)",
        "gen = lambda: rep(); converter.representative_dataset = gen",
        "self.converter.representative_dataset = rep",
    ],
)
def test_dl213_ways_of_giving_the_generator(assign):
    code = f"""
    import functools
    import numpy as np
    import tensorflow as tf
    def rep():
        for i in range(10):
            yield np.zeros((1, 8), np.float32) + i
    {assign}
    """
    assert _lines(code, "DL213") == [6]


def test_dl213_factory_returning_a_nested_generator():
    code = """
    import numpy as np
    def make_rep(images):
        def gen():
            for img in images:
                yield [img.astype(np.float64)]
        return gen
    converter.representative_dataset = make_rep(x_train)
    """
    assert _lines(code, "DL213") == [5]


def test_dl213_generator_defined_after_the_assignment_in_a_function():
    code = """
    import numpy as np
    def main():
        converter.representative_dataset = rep
    def rep():
        for i in range(10):
            yield np.expand_dims(data[i], 0).astype(np.float32)
    """
    assert _lines(code, "DL213") == [6]


@pytest.mark.parametrize(
    "yielded",
    [
        "[x, mask]",
        "{'input_1': x}",
        "('serving_default', {'input_1': x})",
        "list(batch)",
        "batch",
    ],
)
def test_dl213_containers_and_unknowns_are_not_bare(yielded):
    code = f"""
    import numpy as np
    def rep():
        for batch in loader:
            x = np.asarray(batch[0], dtype=np.float32)
            yield {yielded}
    converter.representative_dataset = rep
    """
    assert _lines(code, "DL213") == []


@pytest.mark.parametrize("yielded", ["(x,)", "x, x", "(x, x * 2.0)"])
def test_dl213_tuples_of_arrays_are_reported(yielded):
    # TF 2.21 reads a yielded tuple as (signature_key, dict): (x,) -> IndexError, (x, y) -> ValueError
    code = f"""
    import numpy as np
    def rep():
        for batch in loader:
            x = np.asarray(batch[0], dtype=np.float32)
            yield {yielded}
    converter.representative_dataset = rep
    """
    assert _lines(code, "DL213") == [5]


def test_dl213_tuple_dataset_component_and_image_directory_dataset():
    code = """
    import numpy as np
    import tensorflow as tf
    xs = np.load("x.npy")
    def rep():
        for x, _ in tf.data.Dataset.from_tensor_slices((xs, ys)).batch(1).take(100):
            yield x
    def rep2():
        for images, labels in tf.keras.utils.image_dataset_from_directory("d").take(10):
            yield images
    converter.representative_dataset = rep
    other.representative_dataset = rep2
    """
    assert _lines(code, "DL213") == [6, 9]


def test_dl213_integer_inputs_allow_integer_casts_but_not_float64():
    code = """
    import numpy as np
    import tensorflow as tf
    emb = tf.keras.layers.Embedding(1000, 16)
    def rep():
        for ids in batches:
            yield [np.array(ids).astype(np.int8)]
    def rep64():
        for ids in batches:
            yield [np.array(ids).astype(np.float64)]
    converter.representative_dataset = rep
    other.representative_dataset = rep64
    """
    assert _lines(code, "DL213") == [9]


def test_dl213_tf_cast_to_uint8():
    code = """
    import tensorflow as tf
    def rep():
        for image in images:
            yield [tf.cast(image[None], tf.uint8)]
    converter.representative_dataset = rep
    """
    assert _lines(code, "DL213") == [4]


def test_dl213_random_data_is_info_and_not_in_tests():
    code = """
    import numpy as np
    import tensorflow as tf
    def rep():
        for _ in range(100):
            data = np.random.rand(1, 244, 244, 3)
            yield [data.astype(np.float32)]
    def rep_tf():
        for _ in range(100):
            yield [tf.random.normal((1, 8)) * 2.0]
    converter.representative_dataset = rep
    other.representative_dataset = rep_tf
    """
    found = _lint(code, "DL213")[2]
    assert [f.line for f in found] == [6, 9]
    assert all("calibration-quality smell" in f.message for f in found)
    assert _lines(code, "DL213", "pkg/converter_test.py") == []
    assert _lines(code, "DL213", "tests/test_convert.py") == []


def test_dl213_mixed_random_and_real_is_silent():
    code = """
    import numpy as np
    def rep():
        for img in real_images:
            yield [(img + np.random.normal(0, 0.01, img.shape)).astype(np.float32)]
    converter.representative_dataset = rep
    """
    assert _lines(code, "DL213") == []


@pytest.mark.parametrize(
    "source, flagged",
    [
        ("tf.keras.utils.image_dataset_from_directory('d')", True),
        ("tf.keras.preprocessing.image_dataset_from_directory('d').map(f)", True),
        ("tf.data.TFRecordDataset(files).map(parse).batch(8)", True),
        ("tfds.load('mnist', split='train')", True),
        ("np.load('x.npy')", False),
        ("load_images()", False),
    ],
)
def test_dl213_dataset_rewrapped_in_from_tensor_slices(source, flagged):
    code = f"""
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds
    data = {source}
    def rep():
        for item in tf.data.Dataset.from_tensor_slices(data).batch(1).take(100):
            yield [item]
    converter.representative_dataset = rep
    """
    assert _lines(code, "DL213") == ([6] if flagged else [])


def test_dl213_not_a_representative_generator():
    code = """
    import numpy as np
    def batches():
        for i in range(10):
            yield np.zeros((1, 8)).astype(np.uint8)
    train(batches)
    """
    assert _lines(code, "DL213") == []


def test_dl213_fix_wraps_the_bare_yield():
    code = """
    import numpy as np
    def rep():
        for i in range(10):
            yield np.expand_dims(x_test[i], 0).astype(np.float32)
    converter.representative_dataset = rep
    """
    fixed = _fixed(code, "DL213")
    assert "yield [np.expand_dims(x_test[i], 0).astype(np.float32)]" in fixed
    assert _lint(fixed, "DL213")[2] == []


@pytest.mark.parametrize(
    "make, flagged",
    [
        ("tf.lite.Interpreter(model_path='model_int8.tflite')", True),
        ("edgetpu.make_interpreter(path)", True),
        ("tf.lite.Interpreter(model_path='model_float32.tflite')", False),
        ("tf.lite.Interpreter(model_content=tflite_fp16_model)", False),
        ("core.compile_model(net).create_infer_request()", False),
    ],
)
def test_dl212_receiver(make, flagged):
    code = QUANT_HEADER + textwrap.dedent(f"""
    from pycoral.utils import edgetpu
    def run(img):
        interp = {make}
        interp.set_tensor(0, (img / 255.0)[None])
    """)
    assert len(_lint(code, "DL212")[2]) == (1 if flagged else 0)


def test_dl211_dataset_set_in_a_nested_helper():
    code = f"""
    import tensorflow as tf
    def export(m, data):
        c = tf.lite.TFLiteConverter.from_keras_model(m)
        c.target_spec.supported_ops = [{INT8}]
        def calibrate():
            c.representative_dataset = lambda: iter(data)
        calibrate()
        return c.convert()
    """
    assert _lines(code, "DL211") == []
