"""DL406: custom Keras layers without **kwargs / get_config do not survive a .keras save and reload.

Measured with Keras 3.15 (the `keras` package, which is also `tf.keras` in TF 2.21):
(a) no **kwargs: `load_model` raises TypeError; (b) a layer passed to `__init__` and no get_config:
`save` raises NotImplementedError, and so does a `keras.Model` subclass with one int argument;
(c) a get_config that omits a parameter: the reloaded layer uses the default and predicts other
numbers, with no error; (d) an unregistered class loaded without custom_objects: TypeError.
The good versions reload with identical outputs.
"""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
np = pytest.importorskip("numpy")
keras = pytest.importorskip("keras")

if int(keras.__version__.split(".")[0]) < 3:  # pragma: no cover - the claims are about Keras 3
    pytest.skip("Keras 3 required", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore")


class NoKwargs(keras.layers.Layer):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor


class WithKwargs(keras.layers.Layer):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor


class Wrapper(keras.layers.Layer):
    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, x):
        return self.inner(x)


class OmitsFactor(keras.layers.Layer):
    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return super().get_config()


class FullConfig(OmitsFactor):
    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Net(keras.Model):
    def __init__(self, units):
        super().__init__()
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return self.dense(x)


X = np.ones((2, 3), "float32")


def _round_trip(tmp_path, layer, custom_objects=True):
    model = keras.Sequential([keras.Input((3,)), layer])
    before = np.asarray(model(X))
    path = str(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
        objects = {type(layer).__name__: type(layer)} if custom_objects else None
        restored = keras.models.load_model(path, custom_objects=objects)
    return before, np.asarray(restored(X))


def test_a_no_kwargs_fails_to_reload(tmp_path):
    with pytest.raises(TypeError):
        _round_trip(tmp_path, NoKwargs(3.0))
    before, after = _round_trip(tmp_path, WithKwargs(3.0))
    np.testing.assert_allclose(before, after)


def test_b_non_serialisable_argument_fails_at_save(tmp_path):
    with pytest.raises(NotImplementedError, match="non-serializable"):
        _round_trip(tmp_path, Wrapper(keras.layers.Dense(2)))


def test_b_model_subclass_with_argument_fails_at_save(tmp_path):
    net = Net(2)
    net(X)
    with pytest.raises(NotImplementedError, match="non-serializable"):
        net.save(str(tmp_path / "net.keras"))


def test_c_omitted_parameter_reloads_with_default(tmp_path):
    before, after = _round_trip(tmp_path, OmitsFactor(3.0))
    np.testing.assert_allclose(before, 3.0 * np.ones_like(before))
    np.testing.assert_allclose(after, np.ones_like(after))  # silently factor=1.0
    before, after = _round_trip(tmp_path, FullConfig(3.0))
    np.testing.assert_allclose(before, after)


def test_d_unregistered_class_needs_custom_objects(tmp_path):
    with pytest.raises(TypeError):
        _round_trip(tmp_path, WithKwargs(3.0), custom_objects=False)
