"""Edge cases of DL209 (tfmot-pruning-without-update-step), DL210 (tfmot-pruned-model-not-stripped)
and DL216 (tfmot-on-keras3-model) beyond the examples the rules carry: spellings, callbacks lists,
custom loops, export contexts, import order and version pins."""

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


TFMOT = """
import tensorflow as tf
import tensorflow_model_optimization as tfmot
pm = tfmot.sparsity.keras.prune_low_magnitude(model)
"""


# ---------------------------------------------------------------------- DL209 flagged


@pytest.mark.parametrize(
    "use",
    [
        "pm.fit(x, y)",
        "pm.fit(ds, epochs=3, callbacks=[])",
        "pm.fit(ds, callbacks=[tf.keras.callbacks.EarlyStopping(), tfmot.sparsity.keras.PruningSummaries(log_dir=d)])",
        "cb = tf.keras.callbacks.TensorBoard(log_dir=d)\npm.fit(ds, callbacks=[cb])",
        "cbs = [tf.keras.callbacks.ModelCheckpoint(p)]\npm.fit(ds, callbacks=cbs)",
        "pm.fit_generator(gen, steps_per_epoch=10)",
        "pm2 = pm\npm2.fit(x, y)",
    ],
)
def test_dl209_flags(use):
    assert _lines(TFMOT + use, "DL209")


def test_dl209_internal_spelling_and_fix():
    code = """
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.sparsity.keras import prune
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_callbacks
    model = prune.prune_low_magnitude(model)
    model.fit(
        x,
        y,
        callbacks=[
            tf.keras.callbacks.TensorBoard(log_dir=d),
        ],
    )
    """
    fixed = _fixed(code, "DL209")
    assert "TensorBoard(log_dir=d),\n        pruning_callbacks.UpdatePruningStep(),\n    ]" in fixed
    assert _lines(fixed, "DL209") == []


def test_dl209_fix_adds_keyword_with_sparsity_alias():
    code = """
    from tensorflow_model_optimization.sparsity import keras as sparsity
    pm = sparsity.prune_low_magnitude(model)
    pm.fit(x, y, epochs=1)
    """
    assert "pm.fit(x, y, epochs=1, callbacks=[sparsity.UpdatePruningStep()])" in _fixed(code, "DL209")


def test_dl209_named_list_is_reported_without_fix():
    code = TFMOT + "cbs = [tf.keras.callbacks.TensorBoard()]\npm.fit(x, y, callbacks=cbs)\n"
    _, _, found = _lint(code, "DL209")
    assert len(found) == 1 and found[0].fix is None


def test_dl209_sequential_of_pruned_layers_in_helper():
    code = """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    def build():
        m = tf.keras.Sequential([tfmot.sparsity.keras.prune_low_magnitude(tf.keras.layers.Dense(4))])
        return m
    def main():
        model = build()
        model.compile("adam", "mse")
        model.fit(x, y, epochs=1)
    """
    assert _lines(code, "DL209") == [9]


def test_dl209_tape_loop_reported_once_per_function():
    code = """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    def train(base):
        pm = tfmot.sparsity.keras.prune_low_magnitude(base)
        for x, y in ds:
            with tf.GradientTape() as tape:
                out = pm(x)
                again = pm(x)
            tape.gradient(loss(out), pm.trainable_variables)
    """
    assert _lines(code, "DL209") == [7]


# ---------------------------------------------------------------------- DL209 silent


@pytest.mark.parametrize(
    "use",
    [
        "pm.fit(x, y, callbacks=[step])",  # unknown name
        "step = tfmot.sparsity.keras.UpdatePruningStep()\npm.fit(x, y, callbacks=[step])",
        "cbs = [tf.keras.callbacks.TensorBoard()]\ncbs += [tfmot.sparsity.keras.UpdatePruningStep()]\npm.fit(x, callbacks=cbs)",
        "cbs = [tf.keras.callbacks.TensorBoard()]\nadd_pruning(cbs)\npm.fit(x, callbacks=cbs)",
        "pm.fit(x, y, 32, 1, 0, cbs)",  # positional callbacks
        "pm.fit(x, y, **fit_kwargs)",
        "pm.fit(x, y, callbacks=[MyPruningCallback()])",
        "pm.fit(x, y, callbacks=base_callbacks + [tf.keras.callbacks.TensorBoard()])",
        "pm = tf.keras.models.clone_model(pm)\npm.fit(x, y)",
        "with self.assertRaises(tf.errors.InvalidArgumentError):\n    pm.fit(x, y)",
    ],
)
def test_dl209_silent(use):
    assert _lines(TFMOT + use, "DL209") == []


def test_dl209_silent_on_parameter_and_tape_without_pruned_model():
    code = """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    def train(pm):
        pm.fit(x, y)
        with tf.GradientTape() as tape:
            out = model(x)
    """
    assert _lines(code, "DL209") == []


def test_dl209_silent_on_quantize_and_cluster():
    code = """
    import tensorflow_model_optimization as tfmot
    qm = tfmot.quantization.keras.quantize_model(model)
    qm.fit(x, y)
    cm = tfmot.clustering.keras.cluster_weights(model, number_of_clusters=8)
    cm.fit(x, y)
    """
    assert _lines(code, "DL209") == []


# ---------------------------------------------------------------------- DL210


def test_dl210_converter_in_function_on_global_pruned_model():
    code = """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    pm = tfmot.sparsity.keras.prune_low_magnitude(model)
    def convert():
        return tf.lite.TFLiteConverter.from_keras_model(pm).convert()
    """
    assert _lines(code, "DL210") == [5]


@pytest.mark.parametrize(
    "use, expected",
    [
        ("pm.fit(x, y, callbacks=cbs)\ntf.saved_model.save(pm, 'out')", [6]),
        ("pm.fit(x, y, callbacks=cbs)\ntf.keras.models.save_model(pm, 'out.h5')", [6]),
        ("pm.save('out.h5')", []),  # no training before: not the end of a script
        ("pm.fit(x, y, callbacks=cbs)\npm.save_weights('w.h5')", []),
        ("pm.fit(x, y, callbacks=cbs)\npm.save('ckpt.h5')\npm.fit(x, y, callbacks=cbs)", []),
        ("pm.fit(x, y, callbacks=cbs)\nfor i in range(2):\n    pm.save(f'{i}.h5')", []),
        ("pm.fit(x, y, callbacks=cbs)\nfinal = tfmot.sparsity.keras.strip_pruning(pm)\nfinal.save('out.h5')", []),
    ],
)
def test_dl210_module_level_saves(use, expected):
    assert _lines(TFMOT + "pm.compile('adam', 'mse')\n" + use, "DL210") == expected


def test_dl210_function_names():
    code = """
    import tensorflow_model_optimization as tfmot
    def train_model(base):
        pm = tfmot.sparsity.keras.prune_low_magnitude(base)
        pm.fit(x, y, callbacks=cbs)
        pm.save("a.h5")
    def export_for_mobile(base):
        pm = tfmot.sparsity.keras.prune_low_magnitude(base)
        pm.fit(x, y, callbacks=cbs)
        pm.save("b.h5")
    """
    assert _lines(code, "DL210") == [9]


def test_dl210_prune_scope_keeps_saves_but_not_conversions():
    code = TFMOT + (
        "pm.fit(x, y, callbacks=cbs)\npm.save('p.h5')\n"
        "with tfmot.sparsity.keras.prune_scope():\n    m = tf.keras.models.load_model('p.h5')\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(pm)\n"
    )
    assert _lines(code, "DL210") == [8]


def test_dl210_strip_before_fit_rebinding():
    code = TFMOT + "pm.compile('adam', 'mse')\npm = tfmot.sparsity.keras.strip_pruning(pm)\npm.fit(x, y)\n"
    _, _, found = _lint(code, "DL210")
    assert [f.line for f in found] == [5] and "before fit" in found[0].message


def test_dl210_fix_wraps_the_model():
    code = TFMOT + "pm.fit(x, y, callbacks=cbs)\nc = tf.lite.TFLiteConverter.from_keras_model(pm)\n"
    fixed = _fixed(code, "DL210", unsafe=True)
    assert "from_keras_model(tfmot.sparsity.keras.strip_pruning(pm))" in fixed
    assert _fixed(code, "DL210", unsafe=False) == textwrap.dedent(code).lstrip("\n")


# ---------------------------------------------------------------------- DL216

KERAS3 = """
import keras
import tensorflow_model_optimization as tfmot
m = keras.Sequential([keras.layers.Dense(1)])
pm = tfmot.sparsity.keras.prune_low_magnitude(m)
"""

TF_KERAS_FIRST = """
import tensorflow as tf
from tensorflow.keras import layers
import tensorflow_model_optimization as tfmot
m = tf.keras.Sequential([layers.Dense(1)])
qm = tfmot.quantization.keras.quantize_model(to_quantize=m)
"""


@pytest.mark.parametrize(
    "versions, keras3_lines, tf_keras_lines",
    [
        ({}, [4], [5]),
        ({"tensorflow": "2.21"}, [4], [5]),
        ({"tensorflow": "2.15.1"}, [], []),
        ({"keras": "2.15"}, [], [5]),
        ({"keras": "3.5"}, [4], [5]),
        ({"tf-keras": "2.16"}, [], []),
        ({"tensorflow-model-optimization": "0.9.0"}, [], []),
        ({"tensorflow_model_optimization": "0.8.1"}, [4], [5]),
    ],
)
def test_dl216_versions(versions, keras3_lines, tf_keras_lines):
    assert _lines(KERAS3, "DL216", versions=versions) == keras3_lines
    assert _lines(TF_KERAS_FIRST, "DL216", versions=versions) == tf_keras_lines


def test_dl216_project_pins(tmp_path):
    (tmp_path / "requirements.txt").write_text("tensorflow==2.15.0\ntensorflow-model-optimization==0.7.5\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    path = str(tmp_path / "case.py")
    assert _lines(TF_KERAS_FIRST, "DL216", path=path) == []
    other = tmp_path / "new"
    other.mkdir()
    (other / "requirements.txt").write_text("tensorflow>=2.17\n")
    assert _lines(TF_KERAS_FIRST, "DL216", path=str(other / "case.py")) == [5]


@pytest.mark.parametrize(
    "code, expected",
    [
        # tfmot first: tf.keras becomes tf_keras
        ("import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\nfrom tensorflow.keras import layers\n"
         "m = tf.keras.Sequential([layers.Dense(1)])\ntfmot.sparsity.keras.prune_low_magnitude(m)\n", []),
        # `from tensorflow import keras`, then an attribute read before the tfmot import
        ("from tensorflow import keras\n(x, y), _ = keras.datasets.mnist.load_data()\n"
         "import tensorflow_model_optimization as tfmot\nm = keras.Sequential([keras.layers.Dense(1)])\n"
         "tfmot.sparsity.keras.prune_low_magnitude(m)\n", [5]),
        # tf.keras only inside a function before the import: runs later
        ("import tensorflow as tf\ndef build():\n    return tf.keras.Sequential([tf.keras.layers.Dense(1)])\n"
         "import tensorflow_model_optimization as tfmot\ntfmot.sparsity.keras.prune_low_magnitude(build())\n", []),
        # the environment variable is mentioned: not ordered, silent
        ("import os\nimport tensorflow as tf\nm = tf.keras.Sequential([tf.keras.layers.Dense(1)])\n"
         "import tensorflow_model_optimization as tfmot\nos.environ.setdefault('TF_USE_LEGACY_KERAS', '1')\n"
         "tfmot.sparsity.keras.prune_low_magnitude(m)\n", []),
        # a helper building with import keras
        ("import keras\nimport tensorflow_model_optimization as tfmot\ndef build():\n"
         "    base = keras.applications.MobileNetV2(weights=None)\n    return base\n"
         "tfmot.quantization.keras.quantize_model(build())\n", [6]),
        # model from a parameter, a subclassed model: origin unknown
        ("import keras\nimport tensorflow_model_optimization as tfmot\ndef f(m):\n"
         "    return tfmot.sparsity.keras.prune_low_magnitude(m)\n", []),
        ("import keras\nimport tensorflow_model_optimization as tfmot\nclass Net(keras.Model):\n    pass\n"
         "tfmot.sparsity.keras.prune_low_magnitude(Net())\n", []),
        # tf_keras model, and TFMOT's compat keras
        ("import tf_keras\nimport tensorflow_model_optimization as tfmot\n"
         "tfmot.sparsity.keras.prune_low_magnitude(tf_keras.Sequential([tf_keras.layers.Dense(1)]))\n", []),
    ],
)
def test_dl216_import_order_and_origins(code, expected):
    assert _lines(code, "DL216") == expected


def test_dl216_message_names_api_and_flavour():
    _, _, found = _lint(TF_KERAS_FIRST, "DL216")
    assert "quantize_model" in found[0].message and "TF >= 2.16" in found[0].message
    _, _, found = _lint(KERAS3, "DL216")
    assert "prune_low_magnitude" in found[0].message and "import keras" in found[0].message


def test_dl216_notebook_with_masked_ipython_lines_is_silent():
    code = "pass  # dllint-cell 1\npass  # dllint-mask 1\n" + textwrap.dedent(KERAS3).lstrip("\n")
    assert _lines(code, "DL216", path="nb.ipynb") == []
    assert _lines(code, "DL216", path="script.py") == [6]
