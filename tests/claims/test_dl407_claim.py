"""DL407: shuffle() after batch() only permutes whole batches.

With tf.data, range(12).batch(3).shuffle(4) yields the same four groups of examples every epoch,
in a new order; range(12).shuffle(12).batch(3) mixes the examples across batches.
"""

import pytest

tf = pytest.importorskip("tensorflow")


def _epochs(ds, n=5):
    return [[tuple(int(v) for v in batch.numpy()) for batch in ds] for _ in range(n)]


def test_shuffle_after_batch_keeps_batches_together():
    tf.random.set_seed(0)
    ds = tf.data.Dataset.range(12).batch(3).shuffle(4)
    epochs = _epochs(ds)
    groups = {frozenset(b) for epoch in epochs for b in epoch}
    assert groups == {frozenset({0, 1, 2}), frozenset({3, 4, 5}), frozenset({6, 7, 8}), frozenset({9, 10, 11})}
    # the batches themselves are contiguous and in order inside
    assert all(list(b) == sorted(b) and b[-1] - b[0] == 2 for epoch in epochs for b in epoch)


def test_shuffle_before_batch_mixes_examples():
    tf.random.set_seed(0)
    ds = tf.data.Dataset.range(12).shuffle(12).batch(3)
    epochs = _epochs(ds)
    groups = {frozenset(b) for epoch in epochs for b in epoch}
    assert len(groups) > 4
    assert sorted(v for b in epochs[0] for v in b) == list(range(12))
