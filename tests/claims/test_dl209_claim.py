"""DL209: a TFMOT-pruned model needs the UpdatePruningStep callback while it trains.

Measured with TF 2.21, tf_keras 2.21 and TFMOT 0.8.1 on a two-Dense tf_keras model:

* ``fit`` without the callback raises ``InvalidArgumentError`` ("Prune() wrapper requires the
  UpdatePruningStep callback to be provided during training"); with it the model trains and the
  kernels reach the schedule's 50 % sparsity;
* a custom GradientTape loop calling the model with ``training=True`` raises the same error, and
  one calling it without ``training=`` runs but never prunes (sparsity stays 0.0); driving the
  callback by hand (``set_model``, ``on_train_begin``, ``on_train_batch_begin``) prunes.

Importing tensorflow_model_optimization sets TF_USE_LEGACY_KERAS=1 and resolves ``tf.keras`` to
tf_keras for the rest of the process (see test_dl216_claim.py); the other TF claim tests use the
``keras`` package directly, so they do not depend on the order in which the files are collected.
"""

import pytest

tf = pytest.importorskip("tensorflow")
np = pytest.importorskip("numpy")
tfmot = pytest.importorskip("tensorflow_model_optimization")
tf_keras = pytest.importorskip("tf_keras")

MISSING_CALLBACK = r"Prune\(\) wrapper requires the UpdatePruningStep callback to be provided during training"


def _data():
    x = np.random.RandomState(0).rand(32, 8).astype("float32")
    y = (x.sum(axis=1) > 4).astype("float32")[:, None]
    return x, y


def _pruned_model():
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [tf_keras.layers.Dense(16, activation="relu", input_shape=(8,)), tf_keras.layers.Dense(1)]
    )
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=4, frequency=1
    )
    return tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)


def _kernel_sparsity(pruned):
    kernels = [v.numpy() for v in pruned.trainable_weights if "kernel" in v.name]
    assert len(kernels) == 2
    return [float((k == 0).mean()) for k in kernels]


def test_fit_without_update_pruning_step_raises():
    x, y = _data()
    pruned = _pruned_model()
    pruned.compile(optimizer="adam", loss="mse")
    with pytest.raises(tf.errors.InvalidArgumentError, match=MISSING_CALLBACK):
        pruned.fit(x, y, epochs=1, batch_size=8, verbose=0)


def test_fit_with_update_pruning_step_prunes():
    x, y = _data()
    pruned = _pruned_model()
    pruned.compile(optimizer="adam", loss="mse")
    assert _kernel_sparsity(pruned) == [0.0, 0.0]
    pruned.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    assert _kernel_sparsity(pruned) == [0.5, 0.5]


def _custom_loop(pruned, *, training, callback=None, steps=8):
    x, y = _data()
    optimizer = tf_keras.optimizers.Adam()
    if callback is not None:
        callback.set_model(pruned)
        callback.on_train_begin()
    for step in range(steps):
        if callback is not None:
            callback.on_train_batch_begin(batch=step)
        with tf.GradientTape() as tape:
            out = pruned(x, training=True) if training else pruned(x)
            loss = tf.reduce_mean((out - y) ** 2)
        grads = tape.gradient(loss, pruned.trainable_variables)
        optimizer.apply_gradients(zip(grads, pruned.trainable_variables))
    if callback is not None:
        callback.on_epoch_end(0)


def test_custom_loop_with_training_true_raises_the_same_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match=MISSING_CALLBACK):
        _custom_loop(_pruned_model(), training=True)


def test_custom_loop_without_training_flag_silently_never_prunes():
    pruned = _pruned_model()
    _custom_loop(pruned, training=False)
    assert _kernel_sparsity(pruned) == [0.0, 0.0]


def test_custom_loop_driving_the_callback_by_hand_prunes():
    pruned = _pruned_model()
    _custom_loop(pruned, training=True, callback=tfmot.sparsity.keras.UpdatePruningStep())
    assert _kernel_sparsity(pruned) == [0.5, 0.5]
