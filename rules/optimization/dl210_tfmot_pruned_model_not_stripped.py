from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import STRIP_HOMES, event_of, expects_error, pruned_at, reference, tfmot_api

#: Words in a function's name that say it exports the finished model.
EXPORT_WORDS = ("export", "save", "convert", "tflite", "deploy", "serializ", "freeze", "publish")

#: Keras training methods: a save followed by one of these on the same model is a checkpoint.
FIT_METHODS = frozenset({"fit", "fit_generator", "train_on_batch"})


def _is_converter(qualified: Optional[str]) -> bool:
    return bool(qualified) and qualified.startswith("tensorflow.") and qualified.endswith(  # type: ignore[union-attr]
        "TFLiteConverter.from_keras_model"
    )


def _is_save_function(qualified: Optional[str]) -> bool:
    if not qualified:
        return False
    if qualified in ("tensorflow.saved_model.save", "tensorflow.compat.v2.saved_model.save"):
        return True
    head = qualified.split(".")[0]
    return head in ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization") and qualified.endswith(
        (".models.save_model", ".saving.save_model")
    )


class TfmotPrunedModelNotStripped(Rule):
    """A TFMOT-pruned model is exported with its pruning wrappers, or stripped before training.

    Finds a model produced by `prune_low_magnitude(...)` (any TFMOT spelling, through single
    assignments, a `Sequential` of pruned layers or a local helper's return) that reaches
    `tf.lite.TFLiteConverter.from_keras_model(pm)` without passing through
    `tfmot.sparsity.keras.strip_pruning(...)`; the same model saved with `pm.save(...)`,
    `tf.keras.models.save_model(pm, ...)` or `tf.saved_model.save(pm, ...)` inside a function
    whose name says it exports (export, save, convert, tflite, deploy...) or at the top level of a
    script after `pm.fit(...)` with no later training of it; and `strip_pruning(pm)` whose result
    is trained with `fit` although `pm` was never trained before the strip.

    Why it matters: the pruning wrappers stay in the exported graph: the mask and threshold
    variables are saved next to every pruned kernel, the file is larger than the unpruned model
    and the TFLite flatbuffer gets no size benefit from the zeros (the TFMOT pruning guide strips
    before export "to see the compression benefits"). Stripping before `fit` removes the wrappers
    the training needs, so the fit does not prune at all (keras-team/keras#16889 shows the
    confusion over where the strip goes). TensorFlow is not installed where this rule was
    written: these are the catalogue's and the guide's statements, not a measurement of ours.

    How to fix: train the pruned model, then `final = tfmot.sparsity.keras.strip_pruning(pm)` and
    export `final`. The offered fix wraps the exported model in `strip_pruning(...)`; it is a
    suggestion (the file may mean to keep the wrappers to resume pruning later).

    Stays silent on saves in loops, saves followed by more training of the same model (checkpoints
    to resume pruning), saves in functions that do not look like export code, files that use
    `prune_scope` (they load the wrapped model back on purpose), models that come from a
    parameter, and `save_weights`.
    """

    code = "DL210"
    name = "tfmot-pruned-model-not-stripped"
    family = "optimization"
    message = "strip_pruning() is needed after training and before export; before fit it disables pruning"
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="pruning API misuse: pruning wrappers exported, or stripped before training",
        links=(
            "https://github.com/keras-team/keras/issues/16889",
            "https://www.tensorflow.org/model_optimization/guide/pruning/pruning_with_keras",
            "https://www.tensorflow.org/model_optimization/guide/pruning/comprehensive_guide",
        ),
    )
    triggers = ("prune_low_magnitude",)
    frameworks = ("tensorflow_model_optimization",)

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
            final = tfmot.sparsity.keras.strip_pruning(pm)
            converter = tf.lite.TFLiteConverter.from_keras_model(final)
            """), "stripped before conversion"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            for epoch in range(3):
                pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                pm.save(f"ckpt_{epoch}.h5")
            """), "a checkpoint in the training loop"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            def train(model):
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                pm.save("pruned_ckpt.h5")
                return pm
            """), "a save in a training function, not an export"),
        Valid(dedent("""
            import tensorflow as tf
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
            pm.save("pruned.h5")
            with tfmot.sparsity.keras.prune_scope():
                restored = tf.keras.models.load_model("pruned.h5")
            """), "the guide's checkpoint round trip: wrappers kept on purpose"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
            pm = tfmot.sparsity.keras.strip_pruning(pm)
            pm.save("pruned.h5")
            """), "the name is rebound to the stripped model"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            def export(model, path):
                model.save(path)
            """), "model from a parameter: its pruning is not visible"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
            final = tfmot.sparsity.keras.strip_pruning(pm)
            final.fit(x, y)
            """), "strip after the pruning fit; later fine-tuning is not this rule's case"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.save("before_training.h5")
            pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
            """), "a save before training, training follows"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import tensorflow as tf
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                converter = tf.lite.TFLiteConverter.from_keras_model(pm)
                """),
            dedent("""
                import tensorflow as tf
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                converter = tf.lite.TFLiteConverter.from_keras_model(tfmot.sparsity.keras.strip_pruning(pm))
                """),
            unsafe=True,
            note="TFLite conversion of the wrapped model",
        ),
        Invalid(
            dedent("""
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                pm.compile("adam", "mse")
                pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                pm.save("pruned.h5")
                """),
            dedent("""
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                pm.compile("adam", "mse")
                pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                tfmot.sparsity.keras.strip_pruning(pm).save("pruned.h5")
                """),
            unsafe=True,
            note="end of a script: save after fit",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                from tensorflow_model_optimization.sparsity import keras as sparsity
                def export_model(base, path):
                    pruned = sparsity.prune_low_magnitude(base)
                    pruned.fit(x, y, callbacks=[sparsity.UpdatePruningStep()])
                    tf.keras.models.save_model(pruned, path, include_optimizer=False)
                """),
            dedent("""
                import tensorflow as tf
                from tensorflow_model_optimization.sparsity import keras as sparsity
                def export_model(base, path):
                    pruned = sparsity.prune_low_magnitude(base)
                    pruned.fit(x, y, callbacks=[sparsity.UpdatePruningStep()])
                    tf.keras.models.save_model(sparsity.strip_pruning(pruned), path, include_optimizer=False)
                """),
            unsafe=True,
            note="older spelling, save_model in an export function",
        ),
        Invalid(
            dedent("""
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                pm.compile("adam", "mse")
                stripped = tfmot.sparsity.keras.strip_pruning(pm)
                stripped.fit(x, y)
                """),
            note="strip before fit: the fit does not prune",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                from tensorflow_model_optimization.python.core.sparsity.keras import prune
                def to_tflite(model):
                    pm = prune.prune_low_magnitude(model)
                    pm.fit(x, y, callbacks=cbs)
                    return tf.lite.TFLiteConverter.from_keras_model(pm).convert()
                """),
            dedent("""
                import tensorflow as tf
                from tensorflow_model_optimization.python.core.sparsity.keras import prune
                def to_tflite(model):
                    pm = prune.prune_low_magnitude(model)
                    pm.fit(x, y, callbacks=cbs)
                    return tf.lite.TFLiteConverter.from_keras_model(prune.strip_pruning(pm)).convert()
                """),
            unsafe=True,
            note="internal module spelling",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        if expects_error(self.ctx):
            return
        if isinstance(func, cst.Attribute) and func.attr.value == "save" and ctx.qualname(func) is None:
            model = func.value
            if self._exported_unstripped(model, node, save=True):
                self.report(node, fix=self._wrap(model))
            return
        qualified = ctx.qualname(func)
        if tfmot_api(ctx, func) == "strip_pruning":
            self._check_strip(node)
            return
        converter = _is_converter(qualified)
        if not converter and not _is_save_function(qualified):
            return
        model = ctx.argument(node, 0, "obj" if qualified and qualified.endswith("saved_model.save") else "model")
        if model is not None and self._exported_unstripped(model, node, save=not converter):
            self.report(node, fix=self._wrap(model))

    def _exported_unstripped(self, model: Any, call: cst.Call, save: bool) -> bool:
        ctx = self.ctx
        name = dotted_name(model)
        if name is None or ctx.has_star_args(call) or pruned_at(ctx, name, call) is None:
            return False
        if not save:
            return True
        if "prune_scope" in ctx.source or self._in_loop():
            return False
        function = ctx.function()
        if function is not None and not any(w in function.name.value.lower() for w in EXPORT_WORDS):
            return False
        events = ctx.object_events().get(name, [])
        event = event_of(ctx, name, call)
        if event is None:
            return False
        trained_before = any(e.kind == "method" and e.name in FIT_METHODS and e.order < event.order for e in events)
        trained_after = any(e.kind == "method" and e.name in FIT_METHODS and e.order > event.order for e in events)
        if trained_after:
            return False
        return function is not None or trained_before

    def _in_loop(self) -> bool:
        for ancestor in reversed(self.ctx.stack):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return False
            if isinstance(ancestor, (cst.For, cst.While)):
                return True
        return False

    def _check_strip(self, node: cst.Call) -> None:
        """``s = strip_pruning(pm)`` then ``s.fit(...)`` with no fit of ``pm`` before the strip."""
        ctx = self.ctx
        source = ctx.argument(node, 0, "model")
        source_name = dotted_name(source)
        if source_name is None or pruned_at(ctx, source_name, node) is None:
            return
        statement = ctx.parent()
        if not isinstance(statement, cst.Assign) or statement.value is not node or len(statement.targets) != 1:
            return
        target = dotted_name(statement.targets[0].target)
        if target is None:
            return
        events = ctx.object_events()
        strip_event = event_of(ctx, source_name, node)
        if strip_event is None:
            return
        if any(
            e.kind == "method" and e.name in FIT_METHODS and e.order < strip_event.order
            for e in events.get(source_name, [])
        ):
            return
        for event in events.get(target, []):
            if event.order <= strip_event.order:
                continue
            if event.kind == "assign" and event.node is not statement:
                return
            if event.kind == "method" and event.name in FIT_METHODS:
                self.report(
                    node,
                    "strip_pruning() before fit removes the pruning wrappers, so the training that follows "
                    "does not prune; train the pruned model, then strip it before export",
                )
                return

    def _wrap(self, model: Any) -> Optional[Fix]:
        text, imports = reference(self.ctx, STRIP_HOMES)
        func = cst.parse_expression(text)
        wrapped = cst.Call(func=func, args=[cst.Arg(model.deep_clone())])
        return Fix("Export strip_pruning(model) instead", [(model, wrapped)], FixKind.UNSAFE, imports)
