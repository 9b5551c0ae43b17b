from __future__ import annotations

import re
from typing import Any, Optional

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import expects_error, tensorflow_version
from dllint.rules.conversion._pins import version as pinned_version

#: TensorFlow's own interpreter class, under every public and internal spelling.
INTERPRETERS = frozenset(
    {
        "tensorflow.lite.Interpreter",
        "tensorflow.compat.v1.lite.Interpreter",
        "tensorflow.compat.v2.lite.Interpreter",
        "tensorflow.lite.python.interpreter.Interpreter",
    }
)

#: Converter classes whose ``experimental_from_jax`` factory is deprecated.
CONVERTERS = frozenset(
    {
        "tensorflow.lite.TFLiteConverter",
        "tensorflow.compat.v2.lite.TFLiteConverter",
        "tensorflow.lite.python.lite.TFLiteConverterV2",
    }
)

#: The release the interpreter's warning names for its deletion; from it on (and for unknown
#: targets, read as the newest release) the class is reported.
DEPRECATED_FROM = (2, 20)

#: Packages whose presence in a file marks a tf.lite fallback (``try: ai_edge_litert ... except``).
REPLACEMENTS = ("ai_edge_litert",)

REPLACEMENT = "ai_edge_litert.interpreter.Interpreter"

_IMPORTS_REPLACEMENT = re.compile(r"^[ \t]*(?:from|import)[ \t]+(?:%s)\b" % "|".join(REPLACEMENTS), re.MULTILINE)


def _tf_qualname(ctx: Any, node: Any) -> Optional[str]:
    """The qualified name of ``node``; for a ``tf.X`` chain whose ``tf`` has no binding in reach
    (imported inside another function), ``tensorflow.X``."""
    name = ctx.qualname(node)
    if name is not None:
        return name
    text = dotted_name(node)
    if text is None:
        return None
    head, _, rest = text.partition(".")
    if head in ("tf", "tensorflow") and rest and ctx.lookup(head) is None and "import tensorflow" in ctx.source:
        return "tensorflow." + rest
    return None


class DeprecatedTfliteInterpreter(Rule):
    """tf.lite.Interpreter (deprecated, scheduled for deletion) and TFLiteConverter.experimental_from_jax.

    Finds calls of TensorFlow's TFLite interpreter class under any spelling: `tf.lite.Interpreter(...)`,
    `tf.compat.v1.lite.Interpreter(...)` / `tf.compat.v2.lite.Interpreter(...)` (the same class),
    `from tensorflow.lite import Interpreter`, `from tensorflow.lite.python.interpreter import
    Interpreter`, and a name assigned once from one of them; and calls of
    `tf.lite.TFLiteConverter.experimental_from_jax(...)`. Reported when the target TensorFlow
    (`target-versions`, else the project's pins of tensorflow / tensorflow-cpu / -gpu / -macos) is
    2.20 or newer, or unknown (read as the newest release, TF 2.21).

    Why: the class warns on construction in TF 2.21: "tf.lite.Interpreter is deprecated and is
    scheduled for deletion in TF 2.20. Please use the LiteRT interpreter from the ai_edge_litert
    package." (`tensorflow/lite/python/interpreter.py`; the catalogue's measurement, TF 2.21 still
    emits it although it names 2.20 for the deletion). Code built on it stops working on the release
    that deletes it. `experimental_from_jax` is marked deprecated ("Use `jax2tf.convert` and
    (`lite.TFLiteConverter.from_saved_model` or `lite.TFLiteConverter.from_concrete_functions`)
    instead"); the rest of `TFLiteConverter` is not deprecated. TensorFlow is not installed where
    this rule was written, so these are the catalogue's measured notes and TF's source, not a test.

    How to fix: `from ai_edge_litert.interpreter import Interpreter; Interpreter(model_path=...)`
    (the same constructor arguments and methods). The suggested fix rewrites the constructor to
    `ai_edge_litert.interpreter.Interpreter` and adds the import; it is not applied unreviewed
    because it needs the `ai-edge-litert` package installed and because enum arguments such as
    `experimental_op_resolver_type=tf.lite.experimental.OpResolverType.AUTO` must move to the new
    package's own enum. For `experimental_from_jax`, convert the JAX function with `jax2tf.convert`
    and use `from_concrete_functions` (no fix offered).

    Stays silent for projects pinned below TF 2.20 (pin files, or, through `_pins.py`, the file's own
    `pip install tensorflow-gpu==2.1.0`, as in a notebook's first cell, or a project Dockerfile); for `tflite_runtime.interpreter.Interpreter`
    (a separate package, not the deprecated class); in a file that imports `ai_edge_litert` (the
    tf.lite call is then a fallback) or where the call sits in an `except` handler (the fallback of
    a `try: import ai_edge_litert`); inside `pytest.raises` / `assertRaises` blocks; and for plain
    references that are not calls.
    """

    code = "DL315"
    name = "deprecated-tflite-interpreter"
    family = "conversion"
    message = "tf.lite.Interpreter is deprecated (scheduled for deletion); use ai_edge_litert.interpreter.Interpreter"
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(c) Jajal et al., failures of DL model converters; TF 2.21 deprecation warning (catalogue measurement)",
        category="deprecated converter / runtime API: tf.lite.Interpreter",
        links=(
            "https://ai.google.dev/edge/litert/migration",
            "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/lite/python/interpreter.py",
            "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/lite/python/lite.py",
        ),
    )
    triggers = ("Interpreter", "experimental_from_jax")
    frameworks = ("tensorflow",)

    VALID = (
        Valid(dedent("""
            import os
            import tensorflow as tf
            os.system("pip install tensorflow-gpu==2.1.0")
            interpreter = tf.lite.Interpreter(model_content=tflite_model)
            """), "the file installs a TensorFlow release that predates the deprecation (a notebook's pip cell)"),
        Valid(dedent("""
            from ai_edge_litert.interpreter import Interpreter
            interp = Interpreter(model_path="m.tflite")
            """), "the LiteRT interpreter"),
        Valid(dedent("""
            import tensorflow as tf
            from tflite_runtime.interpreter import Interpreter
            interp = Interpreter(model_path="m.tflite")
            """), "tflite_runtime is a separate package"),
        Valid(dedent("""
            import tensorflow as tf
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                Interpreter = tf.lite.Interpreter
            interp = Interpreter(model_path="m.tflite")
            """), "a fallback when LiteRT is missing"),
        Valid(dedent("""
            import tensorflow as tf
            try:
                import ai_edge_litert.interpreter as litert
                interp = litert.Interpreter(model_path="m.tflite")
            except ImportError:
                interp = tf.lite.Interpreter(model_path="m.tflite")
            """), "the tf.lite call is the fallback in an except handler"),
        Valid(dedent("""
            import tensorflow as tf
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            tflite_model = converter.convert()
            """), "TFLiteConverter itself is not deprecated"),
        Valid(dedent("""
            import tensorflow as tf
            interpreter_class = tf.lite.Interpreter
            """), "a reference, not a construction"),
        Valid(dedent("""
            import tensorflow as tf
            class Interpreter:
                def __init__(self, model_path):
                    self.path = model_path
            interp = Interpreter("m.tflite")
            """), "a local class of the same name"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import tensorflow as tf
                interp = tf.lite.Interpreter(model_path="m.tflite")
                interp.allocate_tensors()
                """),
            fixed=dedent("""
                import tensorflow as tf
                import ai_edge_litert.interpreter
                interp = ai_edge_litert.interpreter.Interpreter(model_path="m.tflite")
                interp.allocate_tensors()
                """),
            unsafe=True,
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                from tensorflow.lite.python.interpreter import Interpreter
                interp = Interpreter(model_content=tflite_model)
                """),
            fixed=dedent("""
                from tensorflow.lite.python.interpreter import Interpreter
                import ai_edge_litert.interpreter
                interp = ai_edge_litert.interpreter.Interpreter(model_content=tflite_model)
                """),
            unsafe=True,
            note="internal module spelling",
        ),
        Invalid(
            dedent("""
                import tensorflow.compat.v1 as tf
                interp = tf.lite.Interpreter(model_path=path)
                """),
            fixed=dedent("""
                import tensorflow.compat.v1 as tf
                import ai_edge_litert.interpreter
                interp = ai_edge_litert.interpreter.Interpreter(model_path=path)
                """),
            unsafe=True,
            note="the compat.v1 alias is the same class",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def run(path, x):
                    interpreter = tf.lite.Interpreter(path, num_threads=4)
                    interpreter.allocate_tensors()
                    return interpreter
                """),
            fixed=dedent("""
                import tensorflow as tf
                import ai_edge_litert.interpreter
                def run(path, x):
                    interpreter = ai_edge_litert.interpreter.Interpreter(path, num_threads=4)
                    interpreter.allocate_tensors()
                    return interpreter
                """),
            unsafe=True,
            note="inside a function, positional model path",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                converter = tf.lite.TFLiteConverter.experimental_from_jax([predict], [[("x", x)]])
                """),
            note="the one deprecated converter entry point",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        name = _tf_qualname(ctx, func)
        jax = False
        if name not in INTERPRETERS:
            if not (
                isinstance(func, cst.Attribute)
                and func.attr.value == "experimental_from_jax"
                and _tf_qualname(ctx, func.value) in CONVERTERS
            ):
                return
            jax = True
        version = tensorflow_version(ctx) or pinned_version(ctx, "tensorflow")
        if version is not None and version < DEPRECATED_FROM:
            return
        if expects_error(ctx) or self._fallback(ctx):
            return
        if jax:
            self.report(
                node,
                "TFLiteConverter.experimental_from_jax is deprecated; convert the JAX function with jax2tf.convert "
                "and use TFLiteConverter.from_concrete_functions (or from_saved_model)",
            )
            return
        self.report(node, self.message, self._fix(ctx, node))

    @staticmethod
    def _fallback(ctx: Any) -> bool:
        if _IMPORTS_REPLACEMENT.search(ctx.source):
            return True
        return any(isinstance(ancestor, cst.ExceptHandler) for ancestor in ctx.stack)

    @staticmethod
    def _fix(ctx: Any, node: cst.Call) -> Optional[Fix]:
        """Rewrite the constructor when it is written with an import (not through an alias
        variable, whose other uses we would not see)."""
        func = node.func
        base = func
        while isinstance(base, cst.Attribute):
            base = base.value
        if not isinstance(base, cst.Name):
            return None
        bindings = ctx.lookup(base.value)
        if not bindings or bindings[-1].kind != "import":
            return None
        text = ctx.reference_to(REPLACEMENT)
        imports = () if text else ("ai_edge_litert.interpreter",)
        new_func = cst.parse_expression(text or REPLACEMENT)
        return Fix(
            "construct the LiteRT interpreter (needs the ai-edge-litert package)",
            [(func, new_func)],
            FixKind.UNSAFE,
            imports=imports,
        )
