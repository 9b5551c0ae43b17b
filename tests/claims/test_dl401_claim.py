"""DL401: a crossentropy loss whose from_logits flag disagrees with the model's output activation.

Measured with TF 2.21 / Keras 3.15 (TensorFlow backend), tiny models, fixed seeds:

* (ii) a linear output with the default ``from_logits=False``: Keras treats the logits as
  probabilities (clipped to [eps, 1 - eps]); the loss differs from the consistent pair
  (``from_logits=True``) on the same logits;
* (i) a softmax output with ``from_logits=True`` fed straight to the loss: the TensorFlow backend
  recovers the logits the softmax output carries, so the loss equals the consistent pair;
  after an op that drops that attribute (``tf.identity``) the softmax is applied twice and the
  loss differs.
"""

import warnings

import pytest

tf = pytest.importorskip("tensorflow")
np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")

LOGITS = np.array([[4.0, -2.0, 0.5], [-1.0, 3.0, 0.0], [0.2, 0.1, 5.0]], dtype="float32")
LABELS = np.array([0, 1, 2])


def _scce(from_logits, prediction):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)(LABELS, prediction))


def test_linear_output_with_probability_loss_gives_a_wrong_loss():
    right = _scce(True, tf.constant(LOGITS))
    wrong = _scce(False, tf.constant(LOGITS))  # logits read as probabilities
    assert right == pytest.approx(0.0379, abs=1e-3)  # measured 0.0379
    assert wrong == pytest.approx(0.2226, abs=1e-3)  # measured 0.2226: logits clipped and renormalised


def test_softmax_output_with_from_logits_true():
    probs = keras.layers.Softmax()(tf.constant(LOGITS))
    consistent = _scce(False, probs)
    direct = _scce(True, probs)  # TF backend: logits recovered from the softmax output
    assert direct == pytest.approx(consistent, abs=1e-5)
    doubled = _scce(True, tf.identity(probs))  # the attribute is gone: softmax applied twice
    assert doubled == pytest.approx(0.5755, abs=1e-3)  # measured 0.5755 against 0.0379


def test_linear_output_training_stalls_with_probability_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")

    def train(loss):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss, metrics=["accuracy"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = model.fit(x, y, epochs=8, batch_size=64, verbose=0)
        return history.history["accuracy"][-1]

    good = train(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    bad = train("sparse_categorical_crossentropy")
    print(f"accuracy after 8 epochs: from_logits=True {good:.3f}, string loss {bad:.3f}")
    assert good > bad + 0.1
