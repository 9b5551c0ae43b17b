"""Edge cases of the Keras rules DL401 (from_logits mismatch), DL402 (tape call without
training=True) and DL404 (trainable change without recompile) beyond their examples."""

from __future__ import annotations

import textwrap

from dllint import fixes
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())
KERAS = {"DL401", "DL402", "DL404"}


def _lint(code: str, rules=KERAS):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "case.py", RULESET, enabled=set(rules))
    found = [f for f in result.findings if f.code in rules]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _where(code: str, rules=KERAS):
    return sorted((f.code, f.line) for f in _lint(code, rules)[2])


def _fixed(code: str, rule: str) -> str:
    _, result, found = _lint(code, {rule})
    return fixes.apply(result.module, fixes.fixable(found, True)).code


def test_dl401_functional_output_reassigned_in_a_branch_is_unknown():
    assert _where("""
        import keras
        inputs = keras.Input((4,))
        x = keras.layers.Dense(10)(inputs)
        if probs:
            x = keras.layers.Softmax()(x)
        model = keras.Model(inputs, x)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        """) == []


def test_dl401_named_output_layer_and_message():
    code, _, found = _lint("""
        import keras
        inputs = keras.Input((4,))
        head = keras.layers.Dense(1)
        outputs = head(inputs)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        """)
    assert [(f.code, f.line) for f in found] == [("DL401", 6)]
    assert "output activation (linear) and loss from_logits=False" in found[0].message


def test_dl401_string_fix_imports_tensorflow_when_no_reference_reaches_keras():
    fixed = _fixed("""
        from tensorflow.keras import layers, Sequential
        model = Sequential([layers.Dense(10)])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        """, "DL401")
    assert "tensorflow.keras.losses.CategoricalCrossentropy(from_logits=True)" in fixed
    assert "import tensorflow" in fixed


def test_dl401_softmax_with_from_logits_true_is_silent_on_tf_backend_but_not_torch():
    bad = """
        import os
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras
        model = keras.Sequential([keras.layers.Dense(10), keras.layers.Activation("softmax")])
        model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
        """
    assert _where(bad) == [("DL401", 5)]
    assert _where(bad.replace('"torch"', '"tensorflow"')) == []


def test_dl401_conv_positional_kernel_size_is_not_an_activation():
    assert _where("""
        import keras
        model = keras.Sequential([keras.layers.Conv2D(8, "same")])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        """) == [("DL401", 3)]


def test_dl401_helper_receiving_the_model_makes_the_output_unknown():
    assert _where("""
        import keras
        model = keras.Sequential([keras.layers.Dense(10)])
        add_head(model)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        """) == []


def test_dl402_tape_name_reused_matches_each_block_to_its_gradient():
    found = _where("""
        import tensorflow as tf
        def step(a, b, x):
            with tf.GradientTape() as tape:
                la = a(x)
            tape.gradient(la, a.trainable_variables)
            with tf.GradientTape() as tape:
                lb = a(x, training=False) + b(x)
            tape.gradient(lb, b.trainable_variables)
            tf.keras.layers.Dropout(0.1)
        """)
    assert found == [("DL402", 4), ("DL402", 7)]


def test_dl402_imported_function_is_not_a_model():
    assert _where("""
        import tensorflow as tf
        def step(model, x):
            with tf.GradientTape() as tape:
                y = tf.nn.relu(model(x, training=True))
            tape.gradient(y, model.trainable_variables)
            tf.keras.layers.Dropout(0.1)
        """) == []


def test_dl404_recompile_of_another_model_silences_the_gan_idiom_only_between_change_and_fit():
    assert _where("""
        import keras
        d = keras.Sequential([keras.layers.Dense(1)])
        d.compile(optimizer="adam", loss="mse")
        d.fit(x, y)
        d.trainable = False
        gan.compile(optimizer="adam", loss="mse")
        d.fit(x, y)
        """) == []


def test_dl404_one_finding_per_change_even_with_several_fits():
    assert _where("""
        import keras
        model = keras.Sequential([keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y)
        model.trainable = False
        model.fit(x, y)
        model.fit(x, y)
        """) == [("DL404", 5)]


def test_dl404_tf_keras_change_before_first_fit_is_reported_but_keras3_is_not():
    code = """
        import tf_keras as keras
        model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        for layer in model.layers:
            layer.trainable = False
        model.fit(x, y)
        """
    assert _where(code) == [("DL404", 5)]
    assert _where(code.replace("import tf_keras as keras", "import keras")) == []
