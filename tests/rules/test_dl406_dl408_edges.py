"""Edge cases of DL406 (keras-custom-layer-without-get-config) and DL408
(known-silent-framework-bug-usage) beyond their examples."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes, versions
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules
from dllint.rules.silent._known_bugs import KNOWN_BUGS

RULESET = RuleSet(all_rules())


@pytest.fixture(autouse=True)
def _fresh_version_cache():
    versions._cache.clear()
    yield
    versions._cache.clear()


def _found(code: str, rule: str, target=None, path: str = "<string>"):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, path, RULESET, enabled={rule}, target_versions=target)
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return found


def _lines(code: str, rule: str, target=None, path: str = "<string>"):
    return [f.line for f in _found(code, rule, target, path)]


# ---------------------------------------------------------------------- DL406

LAYER_NO_KWARGS = """
import keras

class Scale(keras.layers.Layer):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor
"""


@pytest.mark.parametrize(
    "tail",
    [
        'model = keras.Sequential([Scale(2.0)])\nmodel.save_weights("w.weights.h5")',
        'model = keras.Sequential([Scale(2.0)])\nckpt = tf.train.Checkpoint(model=model)\nckpt.save("c")',
        'model = keras.Sequential([Scale(2.0)])\nnp.save("x.npy", model.predict(x))',
        'model.save("m.keras")\nmodel2 = keras.Sequential([Scale(2.0)])',
        'model = keras.Sequential([Scale(2.0)])\nimage.save("out.png")',
    ],
    ids=["save-weights", "checkpoint", "numpy-save", "instantiated-after-save", "image-save"],
)
def test_dl406_silent_without_a_model_save_reaching_the_class(tail):
    layer = textwrap.dedent(LAYER_NO_KWARGS).lstrip("\n")
    code = "import numpy as np\nimport tensorflow as tf\n" + layer + "\n" + tail + "\n"
    assert _lines(code, "DL406") == []


def test_dl406_tf_saved_model_save_is_not_a_keras_save():
    code = """
    import tensorflow as tf

    class Net(tf.keras.Model):
        def __init__(self, units):
            super().__init__()
            self.dense = tf.keras.layers.Dense(units)

    model = Net(3)
    tf.saved_model.save(model, "export_dir")
    """
    assert _lines(code, "DL406") == []


def test_dl406_class_reached_through_a_builder_function():
    code = """
    import keras

    class Scale(keras.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

    def build():
        return keras.Sequential([Scale(2.0)])

    def main():
        model = build()
        model.fit(x, y)
        model.save("m.keras")
    """
    assert _lines(code, "DL406") == [3]


def test_dl406_class_named_in_custom_objects_is_reached():
    code = """
    import keras

    class Scale(keras.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

    model = keras.models.load_model("m.keras", custom_objects={"Scale": Scale})
    """
    found = _found(code, "DL406")
    assert [f.line for f in found] == [3]
    assert "no **kwargs forwarded" in found[0].message


def test_dl406_class_in_a_function_or_with_varargs_is_left_alone():
    code = """
    import keras

    def make():
        class Scale(keras.layers.Layer):
            def __init__(self, factor):
                super().__init__()
                self.factor = factor
        return Scale

    class Many(keras.layers.Layer):
        def __init__(self, *sizes):
            super().__init__()
            self.sizes = sizes

    model = keras.Sequential([make()(2.0), Many(1, 2)])
    model.save("m.keras")
    """
    assert _lines(code, "DL406") == []


@pytest.mark.parametrize(
    "target, path, expected",
    [
        (None, "saved_dir", [3]),  # tf.keras is Keras 3 on the newest TensorFlow
        ({"tensorflow": "2.12.0"}, "saved_dir", []),  # Keras 2: SavedModel revives the class
        ({"tensorflow": "2.12.0"}, "m.h5", [3]),  # Keras 2 with HDF5 needs get_config
    ],
)
def test_dl406_keras2_needs_hdf5_or_json(target, path, expected):
    code = f"""
    import tensorflow as tf

    class Scale(tf.keras.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

    model = tf.keras.Sequential([Scale(2.0)])
    model.save("{path}")
    """
    assert _lines(code, "DL406", target) == expected


def test_dl406_get_config_idioms():
    code = """
    import keras

    class A(keras.layers.Layer):
        def __init__(self, units, rate=0.1, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.rate = rate

        def get_config(self):
            base_config = super().get_config()
            config = {"units": self.units}
            config["rate"] = self.rate
            return dict(list(base_config.items()) + list(config.items()))

    class B(keras.layers.Layer):
        def __init__(self, units, rate=0.1, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.rate = rate

        def get_config(self):
            return super().get_config() | {"units": self.units}

    class C(keras.layers.Layer):
        def __init__(self, units, name=None, **kwargs):
            super().__init__(name=name, **kwargs)
            self.units = units

        def get_config(self):
            config = super().get_config()
            config.update(units=self.units)
            return config

    model = keras.Sequential([A(2), B(2), C(2)])
    model.save("m.keras")
    """
    found = _found(code, "DL406")
    assert [f.line for f in found] == [15]
    assert "get_config omits rate" in found[0].message


def test_dl406_get_config_with_base_keys_and_no_kwargs():
    code = """
    import keras

    class Scale(keras.layers.Layer):
        def __init__(self, factor, name=None):
            super().__init__(name=name)
            self.factor = factor

        def get_config(self):
            config = super().get_config()
            config.update({"factor": self.factor})
            return config

    model = keras.Sequential([Scale(2.0)])
    model.save("m.keras")
    """
    found = _found(code, "DL406")
    assert [f.line for f in found] == [3]
    assert "no **kwargs forwarded" in found[0].message


def test_dl406_non_primitive_argument_by_call_site_default_or_use():
    code = """
    import keras
    import numpy as np

    class ByCall(keras.layers.Layer):
        def __init__(self, table, **kwargs):
            super().__init__(**kwargs)
            self.table = table

    class ByDefault(keras.layers.Layer):
        def __init__(self, fn=lambda x: x, **kwargs):
            super().__init__(**kwargs)
            self.fn = fn

    class ByUse(keras.layers.Layer):
        def __init__(self, block, **kwargs):
            super().__init__(**kwargs)
            self.block = block

        def call(self, x):
            return self.block(x)

    class Fine(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

    model = keras.Sequential([ByCall(np.zeros(3)), ByDefault(), ByUse(b), Fine(units)])
    model.save("m.keras")
    """
    found = _found(code, "DL406")
    assert [f.line for f in found] == [4, 9, 14]
    assert all("non-serialisable" in f.message for f in found)


@pytest.mark.parametrize(
    "variant",
    [
        'restored = keras.models.load_model("other.keras")',
        'with keras.saving.custom_object_scope({"Scale": Scale}):\n    restored = keras.models.load_model("m.keras")',
    ],
    ids=["other-path", "scope"],
)
def test_dl406_unregistered_only_for_a_reload_of_the_saved_file(variant):
    code = (
        "import keras\n\n"
        "class Scale(keras.layers.Layer):\n"
        "    def __init__(self, factor, **kwargs):\n"
        "        super().__init__(**kwargs)\n"
        "        self.factor = factor\n\n"
        "model = keras.Sequential([Scale(2.0)])\n"
        'model.save("m.keras")\n' + variant + "\n"
    )
    assert _lines(code, "DL406") == []


def test_dl406_unregistered_reload_through_a_path_name():
    code = """
    import keras

    PATH = "m.keras"

    class Scale(keras.layers.Layer):
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

    model = keras.Sequential([Scale(2.0)])
    model.save(PATH)
    restored = keras.models.load_model(PATH)
    """
    found = _found(code, "DL406")
    assert [f.line for f in found] == [5]
    assert "class not registered" in found[0].message


def test_dl406_no_fix_when_parameters_are_not_stored_under_their_names():
    code = """
    import keras

    class Scale(keras.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.k = factor

    model = keras.Sequential([Scale(2.0)])
    model.save("m.keras")
    """
    found = _found(code, "DL406")
    assert len(found) == 1 and found[0].fix is None


def test_dl406_fix_appends_kwargs_to_existing_super_arguments():
    code = textwrap.dedent("""
    import keras

    class Scale(keras.layers.Layer):
        def __init__(self, factor):
            super(Scale, self).__init__(name="scale")
            self.factor = factor

    model = keras.Sequential([Scale(2.0)])
    model.save("m.keras")
    """).lstrip("\n")
    result = lint_text(code, "<string>", RULESET, enabled={"DL406"})
    found = [f for f in result.findings if f.code == "DL406"]
    fixed = fixes.apply(result.module, fixes.fixable(found, True)).code
    assert 'super(Scale, self).__init__(name="scale", **kwargs)' in fixed
    assert "def __init__(self, factor, **kwargs):" in fixed
    assert 'return {**super().get_config(), "factor": self.factor}' in fixed


# ---------------------------------------------------------------------- DL408

CLIP = """
import tensorflow as tf
opt = tf.keras.optimizers.Adam(1e-3, clipnorm=1.0)
"""


@pytest.mark.parametrize(
    "target, expected",
    [
        (None, []),  # unknown version: never fires
        ({"tensorflow": "2.1.0"}, [2]),
        ({"tensorflow": "1.15.2"}, [2]),
        ({"tensorflow": "1.14.0"}, []),
        ({"tensorflow": "2.2.0"}, []),
        ({"tensorflow": "2.16.1"}, []),
    ],
)
def test_dl408_version_gate(target, expected):
    assert _lines(CLIP, "DL408", target) == expected


def test_dl408_reads_pin_files(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "requirements.txt").write_text("tensorflow-gpu<2.2\n")
    source = tmp_path / "train.py"
    source.write_text(textwrap.dedent(CLIP).lstrip("\n"))
    found = _found(source.read_text(), "DL408", path=str(source))
    assert [f.line for f in found] == [2]
    message = found[0].message
    assert "tensorflow 2.1.x" in message
    assert "https://github.com/tensorflow/tensorflow/issues/33929" in message
    assert "≥ 2.2" in message


def test_dl408_unbounded_pin_is_unknown(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "requirements.txt").write_text("tensorflow>=2.0\n")
    source = tmp_path / "train.py"
    source.write_text(textwrap.dedent(CLIP).lstrip("\n"))
    assert _found(source.read_text(), "DL408", path=str(source)) == []


def test_dl408_standalone_keras_is_not_tf_keras():
    code = """
    import tensorflow as tf
    import keras
    opt = keras.optimizers.Adam(1e-3, clipnorm=1.0)
    model.compile(optimizer="adagrad", loss="mse")
    """
    assert _lines(code, "DL408", {"tensorflow": "2.1.0"}) == []


def test_dl408_adagrad_case_and_position():
    code = """
    import tensorflow as tf
    model.compile("Adagrad", loss="mse")
    other.compile(optimizer=tf.keras.optimizers.Adagrad(), loss="mse")
    """
    assert _lines(code, "DL408", {"tensorflow": "2.1.3"}) == [2]
    assert _lines(code, "DL408", {"tensorflow": "2.0.0"}) == []


def test_dl408_context_conditions():
    code = """
    from tensorflow.keras import layers
    emb = layers.Embedding(10, 4, trainable=False)
    emb2 = layers.Embedding(10, 4, trainable=True)
    bi = layers.Bidirectional(layers.LSTM(4))
    model.compile(loss="mse")
    """
    # nothing saves / reloads, no reset_states, no sample_weight
    assert _lines(code, "DL408", {"tensorflow": "2.4.0"}) == []
    assert _lines(code, "DL408", {"tensorflow": "2.1.0"}) == []
    assert _lines(code, "DL408", {"tensorflow": "1.13.1"}) == []


def test_dl408_table_is_well_formed():
    seen = set()
    for bug in KNOWN_BUGS:
        assert bug.kind not in seen
        seen.add(bug.kind)
        assert bug.first < bug.fixed
        assert bug.issue.startswith("https://github.com/tensorflow/tensorflow/issues/")
        assert bug.apis and all(api.startswith("tensorflow.") for api in bug.apis)
        assert bug.framework == "tensorflow"
