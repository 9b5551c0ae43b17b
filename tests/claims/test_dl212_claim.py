"""DL212: a TFLite model with int8 I/O must be fed x / scale + zero_point and read back scaled.

Measured with TF 2.21 / Keras 3.15: a Dense(3) classifier over inputs ``img / 255.0`` is
converted with full-integer quantisation and ``inference_input_type = inference_output_type =
tf.int8``.  Then

* feeding the float array is refused: ``ValueError: Cannot set tensor: Got value of type FLOAT32
  but expected type INT8``;
* feeding the float array cast to int8 without the scale (``x.astype(np.int8)``) runs silently
  but every value in [0, 1) becomes 0, the model sees a constant input and its predictions no
  longer follow the float model's (class agreement about a third, the chance level);
* quantising with ``input_details["quantization_parameters"]`` and dequantising the output with
  the output's parameters matches the float model within one output quantisation step, while
  the raw int8 output read as scores is in other units (negative values, off by tens).

The interpreter is ai_edge_litert's when installed, else ``tf.lite.Interpreter`` (whose
deprecation warning is filtered).  The model uses the ``keras`` package (Keras 3).
"""

import warnings

import pytest

tf = pytest.importorskip("tensorflow")
np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")


def _interpreter(content):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        return Interpreter(model_content=content)


@pytest.fixture(scope="module")
def setup():
    img = np.random.RandomState(0).randint(0, 256, size=(64, 8)).astype(np.uint8)
    x = img / 255.0  # float preprocessing, float64 in [0, 1]
    x32 = x.astype(np.float32)

    # Logits are the first three features: the predicted class depends on the input.
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    kernel = np.zeros((8, 3), dtype=np.float32)
    kernel[0, 0] = kernel[1, 1] = kernel[2, 2] = 1.0
    model.layers[0].set_weights([kernel, np.zeros(3, dtype=np.float32)])
    reference = model.predict(x32, verbose=0)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter.representative_dataset = lambda: ([x32[i : i + 1]] for i in range(len(x32)))
    interpreter = _interpreter(converter.convert())
    interpreter.allocate_tensors()
    return interpreter, x, reference


def _invoke(interpreter, data):
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], data.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], data)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _params(details):
    qp = details["quantization_parameters"]
    return float(qp["scales"][0]), int(qp["zero_points"][0])


def test_float_input_is_refused(setup):
    interpreter, x, _ = setup
    inp = interpreter.get_input_details()[0]
    assert inp["dtype"] == np.int8
    with pytest.raises(ValueError, match="Cannot set tensor: Got value of type FLOAT32 but expected type INT8"):
        _invoke(interpreter, x.astype(np.float32))


def test_cast_without_scale_gives_different_predictions(setup):
    interpreter, x, reference = setup
    naive_input = x.astype(np.int8)
    assert set(np.unique(naive_input)) <= {0, 1}  # the preprocessing is lost in the cast
    out = _invoke(interpreter, naive_input)
    out_scale, out_zp = _params(interpreter.get_output_details()[0])
    scores = (out.astype(np.float32) - out_zp) * out_scale  # even with the output read correctly
    agreement = float((scores.argmax(axis=1) == reference.argmax(axis=1)).mean())
    assert agreement < 0.6
    assert np.abs(scores - reference).max() > 0.3


def test_scaling_with_quantization_parameters_matches(setup):
    interpreter, x, reference = setup
    in_scale, in_zp = _params(interpreter.get_input_details()[0])
    out_scale, out_zp = _params(interpreter.get_output_details()[0])
    q = np.clip(np.round(x / in_scale + in_zp), -128, 127).astype(np.int8)
    raw = _invoke(interpreter, q)
    scores = (raw.astype(np.float32) - out_zp) * out_scale
    assert np.abs(scores - reference).max() <= 1.5 * out_scale
    assert float((scores.argmax(axis=1) == reference.argmax(axis=1)).mean()) >= 0.95
    # The output side: read without its scale the int8 scores are in other units (negative
    # numbers for the float model's non-negative scores, off by tens).
    assert (reference >= 0).all() and (raw < 0).any()
    assert np.abs(raw.astype(np.float32) - reference).max() > 10
