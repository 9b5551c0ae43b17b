"""DL404: what Keras does with a ``trainable`` change made after ``compile()``.

Measured with Keras 3.15.1 and tf_keras 2.21 (TF 2.21, CPU), a ``Dense`` base inside a functional
model, plain SGD:

* Keras 3: the training step is built by the first ``fit`` / ``train_on_batch`` after
  ``compile()``. A change made after that first training call is ignored (a base frozen then is
  still updated; a base unfrozen then stays frozen); a change made between ``compile()`` and the
  first training call still takes effect.
* tf_keras 2.21: every change after ``compile()`` is ignored, even before the first ``fit``.

tf_keras is measured in a subprocess (``TF_USE_LEGACY_KERAS`` must be set before TF loads Keras).
"""

import subprocess
import sys
import warnings

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("tensorflow")

SCRIPT = r'''
import os, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
if sys.argv[1] == "tf_keras":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras
else:
    import keras
x = np.random.default_rng(0).random((64, 4)).astype("float32")
y = np.random.default_rng(1).random((64, 1)).astype("float32")
def build(frozen):
    keras.utils.set_random_seed(0)
    base = keras.Sequential([keras.layers.Dense(3)])
    base.trainable = not frozen
    inp = keras.Input((4,))
    return base, keras.Model(inp, keras.layers.Dense(1)(base(inp)))
def moved(frozen_at_compile, fit_first):
    base, model = build(frozen_at_compile)
    model.compile(optimizer="sgd", loss="mse")
    if fit_first:
        model.fit(x, y, epochs=1, verbose=0)
    before = base.layers[0].get_weights()[0].copy()
    base.trainable = frozen_at_compile  # flip it
    model.fit(x, y, epochs=1, verbose=0)
    return bool(not np.allclose(before, base.layers[0].get_weights()[0]))
print([moved(False, True), moved(True, True), moved(False, False), moved(True, False)])
'''


def _run(flavour):
    out = subprocess.run([sys.executable, "-c", SCRIPT, flavour], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return eval(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def results():
    pytest.importorskip("keras")
    return {flavour: _run(flavour) for flavour in ("keras", "tf_keras")}


def test_keras3_ignores_changes_after_the_first_fit(results):
    frozen_after_fit, unfrozen_after_fit, frozen_before_fit, unfrozen_before_fit = results["keras"]
    assert frozen_after_fit is True  # freezing ignored: the base still moves
    assert unfrozen_after_fit is False  # unfreezing ignored: the base stays put
    assert frozen_before_fit is False  # before the first fit the change takes effect
    assert unfrozen_before_fit is True


def test_tf_keras_ignores_every_change_after_compile(results):
    pytest.importorskip("tf_keras")
    assert results["tf_keras"] == [True, False, True, False]
