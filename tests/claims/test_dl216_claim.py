"""DL216: TFMOT 0.8.1 accepts only tf_keras (Keras 2) models, and its import flips tf.keras.

Measured with TF 2.21 / Keras 3.15 / tf_keras 2.21 / TFMOT 0.8.1:

* ``prune_low_magnitude`` on a Keras 3 ``keras.Sequential`` raises ``ValueError:
  `prune_low_magnitude` can only prune an object of the following types: ... You passed an
  object of type: Sequential.``; ``quantize_model`` raises ``ValueError: `to_quantize` can only
  either be a keras Sequential or Functional model.``; both work on a tf_keras model;
* ``tensorflow_model_optimization/python/core/keras/compat.py`` runs
  ``os.environ['TF_USE_LEGACY_KERAS'] = '1'`` when imported.  In a fresh process, importing TFMOT
  before ``tf.keras`` is touched makes ``tf.keras`` tf_keras (``tf_keras.api._v2.keras``) and
  pruning a ``tf.keras.Sequential`` works; touching ``tf.keras`` first keeps it Keras 3
  (``keras._tf_keras.keras``) even though the import still sets the variable, and the same
  pruning call raises the ValueError.

The import-order part runs in subprocesses (launched together to save time), with
TF_USE_LEGACY_KERAS removed from their environment, so the state of this process (where TFMOT
is already imported) neither leaks into them nor changes.
"""

import inspect
import json
import os
import subprocess
import sys

import pytest

tf = pytest.importorskip("tensorflow")
tfmot = pytest.importorskip("tensorflow_model_optimization")
tf_keras = pytest.importorskip("tf_keras")
keras = pytest.importorskip("keras")

KERAS3_PRUNE = (
    r"`prune_low_magnitude` can only prune an object of the following types: keras\.models\.Sequential, "
    r"keras functional model, keras\.layers\.Layer, list of keras\.layers\.Layer\. "
    r"You passed an object of type: Sequential\."
)
KERAS3_QUANTIZE = r"`to_quantize` can only either be a keras Sequential or Functional model\."


def _keras3_model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])


def _tf_keras_model():
    return tf_keras.Sequential([tf_keras.Input((8,)), tf_keras.layers.Dense(2)])


def test_keras3_model_is_rejected():
    assert keras.__version__.startswith("3.")
    with pytest.raises(ValueError, match=KERAS3_PRUNE):
        tfmot.sparsity.keras.prune_low_magnitude(_keras3_model())
    with pytest.raises(ValueError, match=KERAS3_QUANTIZE):
        tfmot.quantization.keras.quantize_model(_keras3_model())


def test_tf_keras_model_is_accepted():
    pruned = tfmot.sparsity.keras.prune_low_magnitude(_tf_keras_model())
    assert isinstance(pruned, tf_keras.Model)
    assert type(pruned.layers[0]).__name__ == "PruneLowMagnitude"
    quantized = tfmot.quantization.keras.quantize_model(_tf_keras_model())
    assert isinstance(quantized, tf_keras.Model)


def test_compat_module_sets_the_legacy_keras_variable():
    from tensorflow_model_optimization.python.core.keras import compat

    assert "os.environ['TF_USE_LEGACY_KERAS'] = '1'" in inspect.getsource(compat._get_keras_instance)


_PROLOGUE = """
import json, os
report = {"env_before": os.environ.get("TF_USE_LEGACY_KERAS")}
"""

_PRUNE = """
try:
    tfmot.sparsity.keras.prune_low_magnitude(model)
    report["prune"] = "ok"
except ValueError as error:
    report["prune"] = "ValueError: " + str(error)
report["env_after"] = os.environ.get("TF_USE_LEGACY_KERAS")
report["tf_keras_module"] = tf.keras.__name__
print("REPORT " + json.dumps(report))
"""

SCRIPTS = {
    # TFMOT first: tf.keras is first touched after the import.
    "tfmot_first": _PROLOGUE
    + """
import tensorflow_model_optimization as tfmot
report["env_after_import"] = os.environ.get("TF_USE_LEGACY_KERAS")
import tensorflow as tf
model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(2)])
"""
    + _PRUNE,
    # tf.keras first: the model is built before TFMOT is imported.
    "tf_keras_first": _PROLOGUE
    + """
import tensorflow as tf
model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(2)])
import tensorflow_model_optimization as tfmot
report["env_after_import"] = os.environ.get("TF_USE_LEGACY_KERAS")
"""
    + _PRUNE,
}


@pytest.fixture(scope="module")
def import_order_reports():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, script in SCRIPTS.items()
    }
    reports = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        lines = [line for line in out.splitlines() if line.startswith("REPORT ")]
        assert proc.returncode == 0 and lines, f"{name}: rc={proc.returncode}\n{out}\n{err[-3000:]}"
        reports[name] = json.loads(lines[-1][len("REPORT ") :])
    return reports


def test_importing_tfmot_first_makes_tf_keras_legacy(import_order_reports):
    report = import_order_reports["tfmot_first"]
    assert report["env_before"] is None
    assert report["env_after_import"] == "1"
    assert report["tf_keras_module"].startswith("tf_keras")
    assert report["prune"] == "ok"


def test_touching_tf_keras_first_keeps_keras3(import_order_reports):
    report = import_order_reports["tf_keras_first"]
    assert report["env_before"] is None
    assert report["env_after_import"] == "1"  # set, but too late for tf.keras
    assert report["tf_keras_module"] == "keras._tf_keras.keras"
    assert report["prune"].startswith("ValueError: ")
    assert "You passed an object of type: Sequential." in report["prune"]
