"""DL213: a representative_dataset must yield, per sample, a list of float32 input arrays.

Measured with TF 2.21 / Keras 3.15 on a Dense(3) model converted for full-integer quantisation
(``TFLITE_BUILTINS_INT8``); every failure is raised by ``convert()``:

* ``yield x`` with a bare numpy array or tf tensor: ``ValueError: You need to provide either a
  dictionary with input names and values, a tuple with signature key and a dictionary with input
  names and values, or an array with input values in the order of input tensors of the graph in
  the representative_dataset function. Unsupported value from dataset: ...``;
* ``yield [x]`` with float64 data: ``ValueError: Cannot set tensor: Got value of type FLOAT64 but
  expected type FLOAT32 for input 0, ...``; uint8 and int8 data fail the same way (the message
  names UINT8 / INT8);
* ``yield [x]`` with float32 data converts.

Also measured: the calibrator (tensorflow/lite/python/optimize/calibrator.py) reads any tuple as
``(signature_key, dict)``: ``yield (x,)`` fails with ``IndexError: tuple index out of range`` and
``yield (x, x)`` with ``ValueError: You need to provide either a dictionary with input names and
values in the second argument in the tuple``.  A tuple is therefore not a substitute for the list.
"""

import pytest

tf = pytest.importorskip("tensorflow")
np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")

BARE_ARRAY = (
    r"You need to provide either a dictionary with input names and values, a tuple with signature key "
    r"and a dictionary with input names and values, or an array with input values in the order of input "
    r"tensors of the graph in the representative_dataset function\. Unsupported value from dataset"
)

DATA = np.random.RandomState(0).rand(8, 1, 8).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])


def _convert(model, generator):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = generator
    return converter.convert()


def test_bare_array_fails_at_convert(model):
    def representative_dataset():
        for sample in DATA:
            yield sample

    with pytest.raises(ValueError, match=BARE_ARRAY):
        _convert(model, representative_dataset)


def test_bare_tensor_fails_at_convert(model):
    def representative_dataset():
        for sample in DATA:
            yield tf.constant(sample)

    with pytest.raises(ValueError, match=BARE_ARRAY):
        _convert(model, representative_dataset)


@pytest.mark.parametrize("dtype, name", [(np.float64, "FLOAT64"), (np.uint8, "UINT8"), (np.int8, "INT8")])
def test_non_float32_data_fails_at_convert(model, dtype, name):
    def representative_dataset():
        for sample in DATA:
            yield [sample.astype(dtype)]

    with pytest.raises(ValueError, match=f"Cannot set tensor: Got value of type {name} but expected type FLOAT32"):
        _convert(model, representative_dataset)


def test_list_of_float32_converts(model):
    def representative_dataset():
        for sample in DATA:
            yield [sample]

    content = _convert(model, representative_dataset)
    assert isinstance(content, bytes) and content


def test_tuple_is_read_as_signature_key_and_dict(model):
    def one_tuple():
        for sample in DATA:
            yield (sample,)

    def pair():
        for sample in DATA:
            yield (sample, sample)

    with pytest.raises(IndexError, match="tuple index out of range"):
        _convert(model, one_tuple)
    with pytest.raises(ValueError, match="in the second argument in the tuple"):
        _convert(model, pair)
