"""DL211: a full-integer TFLite conversion needs converter.representative_dataset.

Measured with TF 2.21 / Keras 3.15 on a two-Dense model converted with ``from_keras_model`` and
``optimizations = [tf.lite.Optimize.DEFAULT]``:

* ``target_spec.supported_ops = [TFLITE_BUILTINS_INT8]`` (or ``supported_types = [tf.int8]``)
  without a dataset: ``ValueError: For full integer quantization, a `representative_dataset`
  must be specified.`` (raised by ``_validate_int8_required`` before the model is exported);
* ``inference_input_type`` / ``inference_output_type = tf.int8`` or ``tf.uint8`` alone, without a
  dataset: ``ValueError: The inference_input_type and inference_output_type must be tf.float32.``;
* the same settings with a representative dataset convert, and the int8 I/O request yields a
  model whose input and output are int8.

The model is built with the ``keras`` package (Keras 3), not ``tf.keras``, whose meaning depends
on whether tensorflow_model_optimization was imported earlier in the process.
"""

import warnings

import pytest

tf = pytest.importorskip("tensorflow")
np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")

# TF's own converter notice on every calibrated conversion; unrelated to the claim.
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")

NEEDS_DATASET = "For full integer quantization, a `representative_dataset` must be specified."
NEEDS_FLOAT_IO = "The inference_input_type and inference_output_type must be tf.float32."


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])


def _converter(model):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter


def _representative_dataset():
    data = np.random.RandomState(0).rand(8, 1, 8).astype("float32")
    for sample in data:
        yield [sample]


def _interpreter(content):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    return interpreter


def test_builtins_int8_without_dataset_raises(model):
    converter = _converter(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with pytest.raises(ValueError, match=NEEDS_DATASET):
        converter.convert()


def test_supported_types_int8_without_dataset_raises(model):
    converter = _converter(model)
    converter.target_spec.supported_types = [tf.int8]
    with pytest.raises(ValueError, match=NEEDS_DATASET):
        converter.convert()


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_integer_io_without_dataset_raises(model, io_type):
    converter = _converter(model)
    converter.inference_input_type = getattr(tf, io_type)
    converter.inference_output_type = getattr(tf, io_type)
    with pytest.raises(ValueError, match=NEEDS_FLOAT_IO):
        converter.convert()


def test_builtins_int8_with_dataset_converts(model):
    converter = _converter(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = _representative_dataset
    content = converter.convert()
    assert isinstance(content, bytes) and content
    # Float I/O is kept unless asked otherwise; the kernels inside are int8.
    interpreter = _interpreter(content)
    assert interpreter.get_input_details()[0]["dtype"] == np.float32


def test_integer_io_with_dataset_converts(model):
    converter = _converter(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter.representative_dataset = _representative_dataset
    interpreter = _interpreter(converter.convert())
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
