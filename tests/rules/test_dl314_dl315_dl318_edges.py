"""Edge cases of DL314 (tf2onnx-from-keras-on-keras3), DL315 (deprecated-tflite-interpreter) and
DL318 (tflite-conversion-of-training-mode-layers) beyond the examples the rules carry: version pins,
Keras flavours, fallbacks, conversion entry points and the backward slice of a functional model."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _lint(code: str, rule: str, path: str = "case.py", versions=None):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, path, RULESET, versions or {}, enabled={rule})
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _lines(code: str, rule: str, **kwargs):
    return [f.line for f in _lint(code, rule, **kwargs)[2]]


def _fixed(code: str, rule: str, unsafe: bool = False) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, unsafe)).code


# ---------------------------------------------------------------------- DL314

KERAS3 = """
import keras
import tf2onnx
m = keras.Sequential([keras.layers.Dense(2)])
tf2onnx.convert.from_keras(m)
"""

TF_KERAS = """
import tensorflow as tf
import tf2onnx
def export(path):
    m = tf.keras.models.load_model(path)
    return tf2onnx.convert.from_keras(m)
"""


def test_dl314_flags_keras3_and_tf_keras_inside_functions():
    assert _lines(KERAS3, "DL314") == [4]
    # tf.keras used only inside a function: still Keras 3 on TF >= 2.16 (tf2onnx does not set the switch)
    assert _lines(TF_KERAS, "DL314") == [5]


@pytest.mark.parametrize(
    "versions, expected",
    [
        ({"tensorflow": "2.15"}, []),
        ({"tensorflow": "2.16"}, [5]),
        ({"tf2onnx": "1.18"}, []),
        ({"tf2onnx": "1.16"}, [5]),
        ({"tf-keras": "2.16"}, []),
    ],
)
def test_dl314_version_gates(versions, expected):
    assert _lines(TF_KERAS, "DL314", versions=versions) == expected


def test_dl314_keras_below_3_is_silent():
    assert _lines(KERAS3, "DL314", versions={"keras": "2.15"}) == []


def test_dl314_tfmot_import_before_tf_keras_makes_it_tf_keras():
    code = """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf2onnx
    m = tf.keras.Sequential([tf.keras.layers.Dense(2)])
    tf2onnx.convert.from_keras(m)
    """
    assert _lines(code, "DL314") == []


@pytest.mark.parametrize(
    "line",
    [
        "from tensorflow.keras.layers import DenseFeatures",
        "sess = tf.keras.backend.get_session()",
    ],
)
def test_dl314_keras2_only_files_are_silent(line):
    code = "import tensorflow as tf\nimport tf2onnx\n" + line + "\n" + (
        "m = tf.keras.Sequential([tf.keras.layers.Dense(2)])\ntf2onnx.convert.from_keras(m)\n"
    )
    assert _lines(code, "DL314") == []


def test_dl314_unknown_flavour_and_from_function_are_silent():
    code = """
    import tensorflow as tf
    import tf2onnx
    from mylib import build
    m = build()
    tf2onnx.convert.from_keras(m)
    tf2onnx.convert.from_function(tf.function(m), input_signature=[tf.TensorSpec([1, 2])])
    """
    assert _lines(code, "DL314") == []


# ---------------------------------------------------------------------- DL315

INTERP = """
import tensorflow as tf
interp = tf.lite.Interpreter(model_path="m.tflite")
"""


@pytest.mark.parametrize(
    "versions, expected",
    [({}, [2]), ({"tensorflow": "2.19"}, []), ({"tensorflow": "2.20"}, [2]), ({"tensorflow-cpu": "2.21"}, [2])],
)
def test_dl315_version_gate(versions, expected):
    assert _lines(INTERP, "DL315", versions=versions) == expected


@pytest.mark.parametrize(
    "code",
    [
        "from tensorflow.lite import Interpreter\ni = Interpreter(model_path=p)\n",
        "import tensorflow.compat.v1 as tf\ni = tf.lite.Interpreter(model_path=p)\n",
        "import tensorflow as tf\nI = tf.lite.Interpreter\ni = I(model_path=p)\n",
        "import tensorflow as tf\ndef f(p):\n    return tf.lite.Interpreter(model_content=p)\n",
    ],
)
def test_dl315_spellings(code):
    assert len(_lint(code, "DL315")[2]) == 1


@pytest.mark.parametrize(
    "code",
    [
        "import tensorflow as tf\nimport tflite_runtime.interpreter as tflite\ni = tflite.Interpreter(model_path=p)\n",
        "import tensorflow as tf\ntry:\n    from ai_edge_litert.interpreter import Interpreter\n"
        "except ImportError:\n    Interpreter = None\ni = tf.lite.Interpreter(model_path=p)\n",
        "import tensorflow as tf\nimport pytest\nwith pytest.raises(ValueError):\n    tf.lite.Interpreter(model_path=None)\n",
        "import tensorflow as tf\nc = tf.lite.TFLiteConverter.from_saved_model(d)\n",
    ],
)
def test_dl315_silent(code):
    assert _lint(code, "DL315")[2] == []


def test_dl315_fix_is_unsafe_and_reuses_an_existing_import():
    assert _fixed(INTERP, "DL315") == textwrap.dedent(INTERP).lstrip("\n")
    code = """
    import tensorflow as tf
    import ai_edge_litert
    """
    # a file importing ai_edge_litert is a fallback: silent
    assert _lines(code + "i = tf.lite.Interpreter(model_path=p)\n", "DL315") == []
    fixed = _fixed(INTERP, "DL315", unsafe=True)
    assert "ai_edge_litert.interpreter.Interpreter(model_path=\"m.tflite\")" in fixed
    assert "import ai_edge_litert.interpreter" in fixed


def test_dl315_alias_variable_gets_no_fix():
    code = "import tensorflow as tf\nI = tf.lite.Interpreter\ni = I(model_path=p)\n"
    _, _, found = _lint(code, "DL315")
    assert len(found) == 1 and found[0].fix is None


def test_dl315_experimental_from_jax_message():
    code = "import tensorflow as tf\nc = tf.lite.TFLiteConverter.experimental_from_jax([f], [[('x', x)]])\n"
    _, _, found = _lint(code, "DL315")
    assert len(found) == 1 and "jax2tf" in found[0].message and found[0].fix is None


# ---------------------------------------------------------------------- DL318

HEAD = """
import tensorflow as tf
from tensorflow.keras import layers
"""


def test_dl318_slice_follows_outputs_only():
    code = HEAD + """
def build():
    inp = tf.keras.Input((8,))
    aux = layers.Dropout(0.5)(inp, training=True)
    side = tf.keras.Model(inp, aux)
    h = layers.Dense(4)(inp)
    h = layers.BatchNormalization()(h, training=True)
    return tf.keras.Model(inp, h)
model = build()
tf.lite.TFLiteConverter.from_keras_model(model).convert()
"""
    assert _lines(code, "DL318") == [9]


def test_dl318_reassignment_kills_earlier_value():
    code = HEAD + """
inp = tf.keras.Input((8,))
h = layers.Dropout(0.5)(inp, training=True)
h = layers.Dense(4)(inp)
model = tf.keras.Model(inp, h)
tf.lite.TFLiteConverter.from_keras_model(model).convert()
"""
    assert _lines(code, "DL318") == []


def test_dl318_layer_variables_and_loops():
    code = HEAD + """
inp = tf.keras.Input((8,))
drop = layers.Dropout(0.3)
h = inp
for _ in range(3):
    h = layers.Dense(8)(h)
    h = drop(h, training=True)
model = tf.keras.Model(inputs=inp, outputs=h)
tf.lite.TFLiteConverter.from_keras_model(model).convert()
"""
    assert _lines(code, "DL318") == [9]
    assert "h = drop(h)" in _fixed(code, "DL318")


@pytest.mark.parametrize(
    "convert",
    [
        "tf.lite.TFLiteConverter.from_concrete_functions([tf.function(model).get_concrete_function(spec)], model)",
        "fn = tf.function(lambda x: model(x)).get_concrete_function(spec)\n"
        "tf.lite.TFLiteConverter.from_concrete_functions([fn], model)",
        "tf.lite.TFLiteConverter.from_concrete_functions([model.call.get_concrete_function(spec)], model)",
    ],
)
def test_dl318_concrete_function_spellings(convert):
    code = HEAD + """
inp = tf.keras.Input((8,))
h = layers.Dropout(0.5)(inp, training=True)
model = tf.keras.Model(inp, h)
spec = tf.TensorSpec([1, 8], tf.float32)
""" + convert + "\n"
    assert _lines(code, "DL318") == [5]


def test_dl318_two_conversions_report_once():
    code = HEAD + """
import tf2onnx
inp = tf.keras.Input((8,))
h = layers.Dropout(0.5)(inp, training=True)
model = tf.keras.Model(inp, h)
tf.lite.TFLiteConverter.from_keras_model(model).convert()
tf2onnx.convert.from_keras(model)
"""
    assert _lines(code, "DL318") == [6]


@pytest.mark.parametrize(
    "body",
    [
        "h = layers.Dropout(0.5)(inp, training=flag)",
        "h = unknown_block(inp, training=True)",
        "h = layers.Dropout(0.5)(inp, training=False)",
    ],
)
def test_dl318_silent_shapes(body):
    code = HEAD + "from mylib import unknown_block\ninp = tf.keras.Input((8,))\n" + body + """
model = tf.keras.Model(inp, h)
tf.lite.TFLiteConverter.from_keras_model(model).convert()
"""
    assert _lines(code, "DL318") == []


def test_dl318_sequential_and_unconverted_models_are_silent():
    code = HEAD + """
inp = tf.keras.Input((8,))
h = layers.Dropout(0.5)(inp, training=True)
model = tf.keras.Model(inp, h)
model.save("m.keras")
seq = tf.keras.Sequential([layers.Dense(2)])
tf.lite.TFLiteConverter.from_keras_model(seq).convert()
"""
    assert _lines(code, "DL318") == []


def test_dl318_subclass_through_file_base_class():
    code = HEAD + """
class Base(tf.keras.Model):
    def call(self, x):
        return self.drop(x, training=True)
class Net(Base):
    def __init__(self):
        super().__init__()
        self.drop = layers.Dropout(0.2)
net = Net()
tf.lite.TFLiteConverter.from_keras_model(net)
"""
    assert _lines(code, "DL318") == [6]


def test_dl318_plain_python_class_is_silent():
    code = HEAD + """
class Net:
    def call(self, x):
        return self.drop(x, training=True)
net = Net()
tf.lite.TFLiteConverter.from_keras_model(net)
"""
    assert _lines(code, "DL318") == []


def test_dl318_expected_error_is_silent():
    code = HEAD + """
import pytest
inp = tf.keras.Input((8,))
h = layers.BatchNormalization()(inp, training=True)
model = tf.keras.Model(inp, h)
with pytest.raises(Exception):
    tf.lite.TFLiteConverter.from_keras_model(model).convert()
"""
    assert _lines(code, "DL318") == []


# ---------------------------------------------------------------------- pins outside the pin files

def test_dl315_notebook_that_installs_old_tensorflow_is_silent(tmp_path):
    import json

    from dllint import versions as _pins

    _pins._cache.clear()
    cells = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": ["!pip install tensorflow-gpu==2.1.0\n", "import tensorflow as tf\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": ["interpreter = tf.lite.Interpreter(model_content=tflite_model)\n"]},
    ]
    notebook = tmp_path / "pinned.ipynb"
    notebook.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    masked = "pass\nimport tensorflow as tf\ninterpreter = tf.lite.Interpreter(model_content=tflite_model)\n"
    result = lint_text(masked, str(notebook), RULESET, enabled={"DL315"})
    assert [f for f in result.findings if f.code == "DL315"] == []
    unpinned = tmp_path / "unpinned.ipynb"
    cells[0]["source"] = ["!pip install -q tf-nightly\n", "import tensorflow as tf\n"]
    unpinned.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    result = lint_text(masked, str(unpinned), RULESET, enabled={"DL315"})
    assert [f.line for f in result.findings if f.code == "DL315"] == [3]
