from __future__ import annotations

from typing import Any, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import (
    UPDATE_STEP_HOMES,
    assignments_in,
    expects_error,
    pruned_at,
    pruning_call,
    reference,
    tfmot_api,
)

#: Keras training methods and the position of ``callbacks`` among their positional parameters.
FIT_METHODS = {"fit": 5, "fit_generator": 4}

#: Methods of a list that change what it holds.
LIST_MUTATORS = frozenset({"append", "extend", "insert", "__iadd__", "clear", "pop", "remove"})


class TfmotPruningWithoutUpdateStep(Rule):
    """A model pruned with TFMOT is trained without the UpdatePruningStep callback.

    Finds `model.fit(...)` (and the old `fit_generator`) on a model produced by
    `prune_low_magnitude(...)` (any spelling: `tfmot.sparsity.keras.prune_low_magnitude`,
    `sparsity.prune_low_magnitude` after `from tensorflow_model_optimization.sparsity import keras
    as sparsity`, the internal `...python.core.sparsity.keras.prune` module, a local alias), also
    through a `Sequential([...])` list holding pruned layers and a local helper that returns the
    pruned model, when its `callbacks` (absent, a list literal, or a name assigned a list literal
    once and never changed) holds no `UpdatePruningStep()`. Also finds a custom training loop:
    the pruned model called inside `with tf.GradientTape()` in a file that never mentions
    `UpdatePruningStep` (the callback driven by hand through `set_model` /
    `on_train_batch_begin` counts as a mention).

    Why it breaks: the pruning wrappers read the step variable that only the callback advances.
    With a tf_keras model, `fit` without it raises `InvalidArgumentError: Prune() wrapper requires
    the UpdatePruningStep callback to be provided during training`
    (tensorflow/model-optimization#4); a custom loop raises the same error when the model is
    called with `training=True`, and silently never prunes when it is called without `training=`
    (the catalogue's measurement with TFMOT 0.8.1 and tf_keras 2.21: sparsity 0.0 after
    training). TensorFlow is not installed where this rule was written, so these are the
    catalogue's measured notes, not a test of ours.

    How to fix: `pm.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])`; in a
    custom loop create the callback, `set_model(pm)`, call `on_train_begin()` once and
    `on_train_batch_begin(batch=step)` before every step (and `on_epoch_end` at the end of each
    epoch). The fix adds the callback, spelled with the file's own TFMOT import, when
    `callbacks=` is absent, `None` or a list literal; it is safe: the step callback changes
    nothing but the pruning step.

    Stays silent when the callbacks come from a parameter, a call, a list that is appended to or
    passed anywhere before `fit`, an element that cannot be told (a name assigned from a helper,
    `*others`, a local class deriving from `UpdatePruningStep`), `**kwargs`, and on models whose
    pruning is not visible in the same function (a model passed in as a parameter).
    """

    code = "DL209"
    name = "tfmot-pruning-without-update-step"
    family = "optimization"
    message = (
        "pruned Keras model is trained without tfmot.sparsity.keras.UpdatePruningStep(); "
        "pruning will error or never progress"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="pruning API misuse: the pruning step callback is missing from training",
        links=(
            "https://github.com/tensorflow/model-optimization/issues/4",
            "https://github.com/tensorflow/model-optimization/issues/271",
            "https://github.com/tensorflow/model-optimization/issues/590",
            "https://github.com/tensorflow/tensorflow/issues/59679",
            "https://www.tensorflow.org/model_optimization/guide/pruning/comprehensive_guide",
        ),
    )
    triggers = ("prune_low_magnitude",)
    frameworks = ("tensorflow_model_optimization",)

    VALID = (
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.compile(optimizer="adam", loss="mse")
            pm.fit(x, y, epochs=2, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
            """), "the callback is there"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            callbacks = [tfmot.sparsity.keras.PruningSummaries(log_dir="logs")]
            callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
            pm.fit(x, y, callbacks=callbacks)
            """), "the list gets the callback later: not followed"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.fit(x, y, callbacks=get_callbacks())
            """), "callbacks built elsewhere"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            def train(pm, callbacks):
                pm.fit(x, y, callbacks=callbacks)
            """), "callbacks from a parameter"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            model = tfmot.sparsity.keras.prune_low_magnitude(model)
            model = tfmot.sparsity.keras.strip_pruning(model)
            model.fit(x, y)
            """), "the wrappers were stripped before this fit (DL210's concern, not this rule's)"),
        Valid(dedent("""
            import tensorflow as tf
            import tensorflow_model_optimization as tfmot
            qat = tfmot.quantization.keras.quantize_model(model)
            qat.fit(x, y, epochs=1)
            """), "quantisation-aware training needs no pruning step"),
        Valid(dedent("""
            import tensorflow as tf
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            step = tfmot.sparsity.keras.UpdatePruningStep()
            step.set_model(pm)
            step.on_train_begin()
            for x, y in ds:
                step.on_train_batch_begin(batch=-1)
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, pm(x, training=True))
            """), "custom loop that drives the callback by hand"),
        Valid(dedent("""
            from tensorflow_model_optimization.sparsity import keras as sparsity
            pm = sparsity.prune_low_magnitude(model)
            cbs = [sparsity.UpdatePruningStep(), sparsity.PruningSummaries(log_dir=d)]
            pm.fit_generator(gen, steps_per_epoch=10, callbacks=cbs)
            """), "older tutorial spelling, with the callback"),
        Valid(dedent("""
            import tensorflow_model_optimization as tfmot
            pm = tfmot.sparsity.keras.prune_low_magnitude(model)
            pm.fit(x, y, callbacks=[*extra, tfmot.sparsity.keras.PruningSummaries(log_dir=d)])
            """), "a starred element may hold the callback"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model, **params)
                pm.compile(optimizer="adam", loss="mse")
                pm.fit(x, y, epochs=2)
                """),
            dedent("""
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model, **params)
                pm.compile(optimizer="adam", loss="mse")
                pm.fit(x, y, epochs=2, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                """),
            note="no callbacks at all",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                from tensorflow_model_optimization.sparsity import keras as sparsity
                model = sparsity.prune_low_magnitude(model, **pruning_params)
                model.fit(x, y, callbacks=[tf.keras.callbacks.TensorBoard(log_dir=d)])
                """),
            dedent("""
                import tensorflow as tf
                from tensorflow_model_optimization.sparsity import keras as sparsity
                model = sparsity.prune_low_magnitude(model, **pruning_params)
                model.fit(x, y, callbacks=[tf.keras.callbacks.TensorBoard(log_dir=d), sparsity.UpdatePruningStep()])
                """),
            note="older tutorial spelling, a list literal without the step, the model name rebound",
        ),
        Invalid(
            dedent("""
                import tensorflow_model_optimization as tfmot
                from tensorflow_model_optimization.python.core.sparsity.keras import prune
                def build(base):
                    pruned = prune.prune_low_magnitude(base)
                    return pruned
                def main():
                    cbs = [tfmot.sparsity.keras.PruningSummaries(log_dir="logs")]
                    m = build(base)
                    m.fit(x, y, callbacks=cbs)
                """),
            note="through a helper and a callbacks name: reported without a fix",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tensorflow_model_optimization as tfmot
                prune_low_magnitude = tfmot.sparsity.keras.prune_low_magnitude
                model = tf.keras.Sequential([prune_low_magnitude(tf.keras.layers.Dense(10)), tf.keras.layers.Dense(1)])
                model.compile("adam", "mse")
                model.fit(x, y, callbacks=None)
                """),
            dedent("""
                import tensorflow as tf
                import tensorflow_model_optimization as tfmot
                prune_low_magnitude = tfmot.sparsity.keras.prune_low_magnitude
                model = tf.keras.Sequential([prune_low_magnitude(tf.keras.layers.Dense(10)), tf.keras.layers.Dense(1)])
                model.compile("adam", "mse")
                model.fit(x, y, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
                """),
            note="a Sequential of pruned layers; callbacks=None",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tensorflow_model_optimization as tfmot
                pm = tfmot.sparsity.keras.prune_low_magnitude(model)
                @tf.function
                def train_step(x, y):
                    with tf.GradientTape() as tape:
                        loss = loss_fn(y, pm(x, training=True))
                    grads = tape.gradient(loss, pm.trainable_variables)
                    opt.apply_gradients(zip(grads, pm.trainable_variables))
                """),
            note="custom GradientTape loop with no UpdatePruningStep anywhere",
        ),
        Invalid(
            dedent("""
                from tensorflow_model_optimization.sparsity.keras import prune_low_magnitude
                pm = prune_low_magnitude(model)
                pm.fit(
                    x,
                    y,
                    epochs=2,
                )
                """),
            dedent("""
                from tensorflow_model_optimization.sparsity.keras import prune_low_magnitude
                import tensorflow_model_optimization
                pm = prune_low_magnitude(model)
                pm.fit(
                    x,
                    y,
                    epochs=2,
                    callbacks=[tensorflow_model_optimization.sparsity.keras.UpdatePruningStep()],
                )
                """),
            note="no module alias in scope: the fix imports the package; a multi-line call keeps its layout",
        ),
    )

    def __init__(self, ctx: Any, sink: List[Any]) -> None:
        super().__init__(ctx, sink)
        self._tape_reported: Set[Tuple[int, str]] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if expects_error(self.ctx):
            return
        if isinstance(func, cst.Attribute) and func.attr.value in FIT_METHODS:
            self._check_fit(node, func)
        elif not self.ctx.memo("tfmot:mentions-update-step", lambda ctx: "UpdatePruningStep" in ctx.source):
            self._check_tape_call(node)

    # ------------------------------------------------------------------ fit

    def _check_fit(self, node: cst.Call, func: cst.Attribute) -> None:
        ctx = self.ctx
        receiver = dotted_name(func.value)
        if receiver is None or ctx.has_star_args(node):
            return
        if pruned_at(ctx, receiver, node) is None:
            return
        positional = [a for a in node.args if a.keyword is None]
        position = FIT_METHODS[func.attr.value]
        keyword = ctx.keyword(node, "callbacks")
        if keyword is not None:
            callbacks: Any = keyword.value
        elif len(positional) > position:
            return  # callbacks given positionally: too unusual to rewrite, and rare
        else:
            callbacks = None
        if callbacks is None or (isinstance(callbacks, cst.Name) and callbacks.value == "None"):
            self.report(node, fix=self._fix_add(node, keyword))
            return
        if isinstance(callbacks, cst.List):
            if self._lacks_step(callbacks):
                self.report(node, fix=self._fix_extend(callbacks))
            return
        if isinstance(callbacks, cst.Name) and self._name_lacks_step(callbacks, node):
            self.report(node)

    def _name_lacks_step(self, name: cst.Name, call: cst.Call) -> bool:
        """A callbacks list held in a name: assigned a list literal once and not changed or
        handed to anything before ``call``."""
        ctx = self.ctx
        value = ctx.assigned_value(name)
        if not isinstance(value, cst.List):
            return False
        events = ctx.object_events().get(name.value, [])
        if not events:
            return False  # a global list seen from a function: its changes are elsewhere
        for event in events:
            if event.node is call:
                break
            if event.kind in ("method", "argument", "setattr", "called"):
                return False
            if event.kind == "assign" and event.value is not value:
                return False
        else:
            return False
        return self._lacks_step(value)

    def _lacks_step(self, callbacks: cst.List) -> bool:
        return all(not self._may_be_step(e) for e in callbacks.elements)

    def _may_be_step(self, element: Any, depth: int = 0) -> bool:
        ctx = self.ctx
        if isinstance(element, cst.StarredElement) or depth > 3:
            return True
        value = element.value if isinstance(element, cst.Element) else element
        if isinstance(value, cst.Name):
            assigned = ctx.assigned_value(value)
            if assigned is not None:
                return self._may_be_step(assigned, depth + 1)
            # several assignments (an if / else): every one must be a known other callback
            function = ctx.function()
            values = assignments_in(function, value.value) if function is not None else []
            bindings = ctx.lookup(value.value) or []
            if not values or len(values) != len(bindings) or any(v is None for v in values):
                return True
            return any(self._may_be_step(v, depth + 1) for v in values)
        if not isinstance(value, cst.Call):
            return True
        api = tfmot_api(ctx, value.func)
        if api is not None:
            return api == "UpdatePruningStep"
        qualified = ctx.qualname(value.func)
        if qualified is not None:
            # a project's own callback named after pruning may drive the step
            return "prun" in qualified.lower()
        return True  # a local class or helper may well advance the pruning step

    def _step_call(self) -> Tuple[cst.Call, Tuple[str, ...]]:
        text, imports = reference(self.ctx, UPDATE_STEP_HOMES)
        return cst.parse_expression(f"{text}()"), imports  # type: ignore[return-value]

    def _fix_add(self, node: cst.Call, keyword: Optional[cst.Arg]) -> Fix:
        step, imports = self._step_call()
        new_list = cst.List([cst.Element(step)])
        if keyword is not None:
            replacement = keyword.with_changes(value=new_list)
            return Fix("Pass UpdatePruningStep() in callbacks", [(keyword, replacement)], FixKind.SAFE, imports)
        args = list(node.args)
        new_arg = cst.Arg(
            value=new_list,
            keyword=cst.Name("callbacks"),
            equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
        )
        if args:
            last = args[-1]
            if isinstance(last.comma, cst.Comma):
                if len(args) > 1 and isinstance(args[-2].comma, cst.Comma):
                    previous = args[-2].comma
                else:
                    previous = cst.Comma(whitespace_after=node.whitespace_before_args)
                new_arg = new_arg.with_changes(comma=last.comma)
                args[-1] = last.with_changes(comma=previous)
        args.append(new_arg)
        return Fix("Pass UpdatePruningStep() in callbacks", [(node, node.with_changes(args=args))], FixKind.SAFE, imports)

    def _fix_extend(self, callbacks: cst.List) -> Fix:
        step, imports = self._step_call()
        elements = list(callbacks.elements)
        new = cst.Element(step)
        if elements:
            last = elements[-1]
            if isinstance(last.comma, cst.Comma):
                if len(elements) > 1 and isinstance(elements[-2].comma, cst.Comma):
                    previous = elements[-2].comma
                else:
                    previous = cst.Comma(whitespace_after=callbacks.lbracket.whitespace_after)
                new = new.with_changes(comma=last.comma)
                elements[-1] = last.with_changes(comma=previous)
            else:
                elements[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        elements.append(new)
        return Fix(
            "Add UpdatePruningStep() to the callbacks",
            [(callbacks, callbacks.with_changes(elements=elements))],
            FixKind.SAFE,
            imports,
        )

    # ------------------------------------------------------------------ custom loops

    def _check_tape_call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = dotted_name(node.func)
        if name is None or not self._inside_tape():
            return
        function = ctx.function()
        key = (id(function) if function is not None else 0, name)
        if key in self._tape_reported:
            return
        pruned = pruned_at(ctx, name, node)
        if pruned is None and "." not in name:
            bindings = ctx.lookup(name)
            if bindings and len(bindings) == 1 and bindings[0].kind == "assign":
                pruned = pruning_call(ctx, bindings[0].value)
        if pruned is None:
            return
        self._tape_reported.add(key)
        self.report(
            node,
            "pruned Keras model is trained in a custom loop without tfmot.sparsity.keras.UpdatePruningStep() "
            "driven by hand (set_model, on_train_begin, on_train_batch_begin); pruning will error "
            "(training=True) or never progress",
        )

    def _inside_tape(self) -> bool:
        ctx = self.ctx
        for ancestor in reversed(ctx.stack):
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                return False
            if isinstance(ancestor, cst.With):
                for item in ancestor.items:
                    call = item.item
                    if isinstance(call, cst.Call) and (ctx.qualname(call.func) or "").endswith(".GradientTape"):
                        return (ctx.qualname(call.func) or "").startswith("tensorflow.")
        return False

