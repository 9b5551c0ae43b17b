from __future__ import annotations

from typing import Any, List, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent

#: tf.data methods that group examples into batches.
BATCHING = frozenset({"batch", "padded_batch", "ragged_batch"})
#: Methods after which batch-level shuffling is deliberate: bucketing by length, or splitting
#: the batches again (``batch(n).shuffle(k).unbatch()`` shuffles blocks on purpose).
DELIBERATE = frozenset({"bucket_by_sequence_length", "group_by_window", "unbatch", "rebatch", "window"})
#: Roots that show the chain is a tf.data pipeline.
TF_DATA_PREFIXES = ("tensorflow.data.", "tensorflow.compat.v1.data.", "tensorflow.compat.v2.data.",
                    "tensorflow_datasets.")
#: Words in a pipeline's name that mark an evaluation pipeline, where order does not matter.
EVAL_WORDS = ("val", "test", "eval", "dev", "valid")

Step = Tuple[str, Optional[cst.Call]]


def _chain(expr: Any, ctx: Any) -> Tuple[List[Step], Any]:
    """Methods applied to a root expression, first applied first, and the root (a call of an
    imported function such as ``tf.data.TFRecordDataset(files)`` is a root)."""
    steps: List[Step] = []
    while (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)
           and ctx.qualname(expr.func) is None):
        steps.insert(0, (expr.func.attr.value, expr))
        expr = expr.func.value
    return steps, expr


def _assigns(node: Any, name: str) -> bool:
    """Whether ``name`` is (re)bound anywhere inside ``node``."""
    found = False

    class Finder(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            nonlocal found
            if n.value == name:
                found = True

        def visit_Assign(self, n: cst.Assign) -> bool:
            for t in n.targets:
                t.target.visit(self)
            return False

        def visit_AugAssign(self, n: cst.AugAssign) -> bool:
            n.target.visit(self)
            return False

        def visit_AnnAssign(self, n: cst.AnnAssign) -> bool:
            n.target.visit(self)
            return False

        def visit_For(self, n: cst.For) -> bool:
            n.target.visit(self)
            n.body.visit(self)
            if n.orelse:
                n.orelse.visit(self)
            return False

        def visit_WithItem(self, n: cst.WithItem) -> bool:
            if n.asname is not None:
                n.asname.visit(self)
            return False

        def visit_Call(self, n: cst.Call) -> bool:
            return False

        def visit_Expr(self, n: cst.Expr) -> bool:
            return False

        def visit_If(self, n: cst.If) -> bool:
            n.body.visit(self)
            if n.orelse:
                n.orelse.visit(self)
            return False

        def visit_While(self, n: cst.While) -> bool:
            n.body.visit(self)
            return False

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            return False

        def visit_ClassDef(self, n: cst.ClassDef) -> bool:
            return False

    node.visit(Finder())
    return found


class TfdataShuffleAfterBatch(Rule):
    """tf.data pipeline that shuffles after batching: only whole batches are permuted.

    Finds `.shuffle(...)` applied to a `tf.data.Dataset` that was already grouped with
    `.batch(...)`, `.padded_batch(...)` or `.ragged_batch(...)`: in one method chain
    (`ds.batch(32).shuffle(1000)`) or across statements of the same block
    (`ds = ds.batch(32)` ... `ds = ds.shuffle(1000)`, following the name back through its
    assignments in that block, or its single assignment).  The chain must start at a
    `tf.data` / `tensorflow_datasets` call, or at a name whose origin is unknown in a file that
    imports TensorFlow.

    Why it is a bug: after `batch`, every element of the dataset is a batch, so `shuffle` moves
    whole batches around; the examples inside each batch stay together, in the same batch, in
    every epoch (measured with TF 2.21: `range(12).batch(3).shuffle(4)` yields the same four
    sets {0,1,2}, {3,4,5}, ... each epoch in a new order, while `shuffle(12).batch(3)` mixes
    them).  Gradient steps see the same correlated groups every epoch, and with sorted data
    (by class, by file) each batch holds one class: training degrades silently.  The buffer
    also counts batches, not examples, so it is much larger than intended.

    How to fix: shuffle the examples first: `ds.shuffle(buffer, reshuffle_each_iteration=True)
    .batch(32)`.  The suggested (unsafe) fix swaps adjacent `.batch(b).shuffle(s)` into
    `.shuffle(s).batch(b)`; revisit the buffer size, which now counts examples.

    Stays silent when the examples were already shuffled before the batching step (a second,
    batch-level shuffle is then deliberate), when the pipeline buckets by length
    (`bucket_by_sequence_length`, `group_by_window`) or splits the batches again (`unbatch`,
    `rebatch`), when the dataset's name (or the name it is assigned to) marks a validation /
    test pipeline (shuffling does not matter there), and when the name's history in the block
    is unclear (assigned inside an `if` / loop between the two steps).  Not covered (catalogue
    items left for later): tiny shuffle buffers, `reshuffle_each_iteration=False`,
    `repeat()` before `shuffle()` and `cache()` after a random `map()`.
    """

    code = "DL407"
    name = "tfdata-shuffle-after-batch"
    family = "silent"
    message = (
        "shuffle() after batch() only permutes whole batches (examples within a batch never mix); "
        "shuffle before batching"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(d) silent bugs in deep learning frameworks (Keras/TF), 'Wrong parameter setting' effect",
        category="tf.data input pipeline order (silent-bug #29558 family)",
        links=(
            "https://github.com/tensorflow/tensorflow/issues/29558",
            "https://www.tensorflow.org/api_docs/python/tf/data/Dataset#shuffle",
            "https://www.tensorflow.org/guide/data#randomly_shuffling_input_data",
        ),
    )
    triggers = ("shuffle",)
    frameworks = ("tensorflow", "tensorflow_datasets")

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(10_000).batch(32)
            """), "shuffle before batch"),
        Valid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).batch(32).shuffle(10)
            """), "examples already shuffled; the batch-level shuffle is extra"),
        Valid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices(x).batch(64).shuffle(100).unbatch().batch(32)
            """), "block shuffle, then unbatched and rebatched"),
        Valid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices(x)
            ds = ds.bucket_by_sequence_length(len, [10, 20], [32, 32, 32]).shuffle(100)
            """), "bucketed batches shuffled on purpose"),
        Valid(dedent("""
            import tensorflow as tf
            val_ds = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(32).shuffle(8)
            """), "validation pipeline: order irrelevant"),
        Valid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
            if augment:
                ds = ds.map(aug).unbatch().shuffle(1000).batch(32)
            ds = ds.shuffle(100)
            """), "name reassigned inside an if in between: history unclear"),
        Valid(dedent("""
            import torch
            loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True)
            """), "not tf.data"),
        Valid(dedent("""
            import tensorflow as tf
            ds = tf.data.Dataset.range(100).shuffle(100).batch(10)
            ds = ds.shuffle(4)
            """), "examples shuffled before the batch, across statements"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import tensorflow as tf
                ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).shuffle(1000)
                model.fit(ds, epochs=5)
                """),
            fixed=dedent("""
                import tensorflow as tf
                ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).batch(32)
                model.fit(ds, epochs=5)
                """),
            unsafe=True,
            note="one chain",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                train_ds = tf.data.TFRecordDataset(files).map(parse)
                train_ds = train_ds.padded_batch(16)
                train_ds = train_ds.prefetch(2)
                train_ds = train_ds.shuffle(buffer_size=512)
                """),
            note="across statements, padded_batch; no fix (not adjacent)",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def make(ds):
                    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(8).shuffle(64).prefetch(1)
                """),
            fixed=dedent("""
                import tensorflow as tf
                def make(ds):
                    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).shuffle(64).batch(8).prefetch(1)
                """),
            unsafe=True,
            note="dataset of unknown origin in a TensorFlow file",
        ),
        Invalid(
            dedent("""
                import tensorflow_datasets as tfds
                ds = tfds.load("mnist", split="train", as_supervised=True)
                ds = ds.batch(128, drop_remainder=True)
                ds = ds.shuffle(100).repeat()
                """),
            note="tfds pipeline across statements (the fix only swaps adjacent calls in one chain)",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "shuffle"):
            return
        steps, root = self._full_chain(node)
        if steps is None:
            return
        names = [s[0] for s in steps]
        if not names or names[-1] != "shuffle":
            return
        before = names[:-1]
        batch_index = max((i for i, n in enumerate(before) if n in BATCHING), default=None)
        if batch_index is None:
            return
        if "shuffle" in before[:batch_index]:
            return
        if any(n in DELIBERATE for n in before):
            return
        if self._deliberate_after(node):
            return
        if not self._is_tf_data(root):
            return
        if self._looks_like_eval(node, root):
            return
        self.report(node, fix=self._fix(node))

    # -- chain following ------------------------------------------------------------------

    def _full_chain(self, node: cst.Call) -> Tuple[Optional[List[Step]], Any]:
        steps, root = _chain(node, self.ctx)
        seen = 0
        statement_index = self._statement_position()
        while isinstance(root, cst.Name) and seen < 8:
            seen += 1
            value = self._previous_value(root.value, statement_index)
            if value is False:
                return None, root
            if value is None:
                break
            earlier, root = _chain(value, self.ctx)
            steps = earlier + steps
            # further names are looked up before the statement that defined this one
            statement_index = self._index_of_value(value, statement_index)
            if statement_index is None:
                break
        return steps, root

    def _statement_position(self) -> Optional[Tuple[Any, int]]:
        stack = self.ctx.stack
        for i in range(len(stack) - 1, -1, -1):
            block = stack[i]
            if isinstance(block, (cst.IndentedBlock, cst.Module)) and i + 1 < len(stack):
                statement = stack[i + 1]
                for j, s in enumerate(block.body):
                    if s is statement:
                        return block, j
                return None
        return None

    def _index_of_value(self, value: Any, position: Optional[Tuple[Any, int]]) -> Optional[Tuple[Any, int]]:
        if position is None:
            return None
        block, index = position
        for j in range(index - 1, -1, -1):
            if _contains(block.body[j], value):
                return block, j
        return None

    def _previous_value(self, name: str, position: Optional[Tuple[Any, int]]) -> Any:
        """The value last assigned to ``name`` before ``position`` in the same block; None when
        there is none there (then the single assignment anywhere, if any); False when unclear."""
        if position is not None:
            block, index = position
            for j in range(index - 1, -1, -1):
                statement = block.body[j]
                if isinstance(statement, cst.SimpleStatementLine):
                    for small in reversed(statement.body):
                        if isinstance(small, cst.Assign) and len(small.targets) == 1:
                            target = small.targets[0].target
                            if isinstance(target, cst.Name) and target.value == name:
                                return small.value
                            if _assigns(small, name):
                                return False
                        elif isinstance(small, (cst.AugAssign, cst.AnnAssign)) and _assigns(small, name):
                            return False
                elif _assigns(statement, name):
                    return False
            if isinstance(block, cst.Module) or self.ctx.lookup(name) is None:
                return None
        value = self.ctx.assigned_value(cst.Name(name))
        return value

    # -- guards -----------------------------------------------------------------------------

    def _deliberate_after(self, node: cst.Call) -> bool:
        """``...shuffle(k).unbatch()``: the chain continues with a method that splits batches."""
        for ancestor in reversed(self.ctx.stack):
            if isinstance(ancestor, cst.Attribute):
                if ancestor.attr.value in DELIBERATE:
                    return True
                continue
            if isinstance(ancestor, cst.Call):
                continue
            break
        return False

    def _is_tf_data(self, root: Any) -> bool:
        if isinstance(root, cst.Call):
            name = self.ctx.call_name(root)
            if name is None:
                inner = root.func
                while isinstance(inner, cst.Attribute):
                    inner = inner.value
                name = self.ctx.qualname(inner) if isinstance(inner, (cst.Name, cst.Attribute)) else None
            if name is None:
                return self.ctx.imports("tensorflow")
            return name.startswith(TF_DATA_PREFIXES)
        if isinstance(root, (cst.Name, cst.Attribute)):
            qualified = self.ctx.qualname(root)
            if qualified is not None:
                return qualified.startswith(TF_DATA_PREFIXES)
            return self.ctx.imports("tensorflow")
        return False

    def _looks_like_eval(self, node: cst.Call, root: Any) -> bool:
        words: List[str] = []
        inner = node
        while isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute):
            inner = inner.func.value
        if isinstance(inner, cst.Name):
            words.append(inner.value)
        if isinstance(root, cst.Name):
            words.append(root.value)
        for ancestor in reversed(self.ctx.stack):
            if isinstance(ancestor, cst.Assign):
                for t in ancestor.targets:
                    if isinstance(t.target, cst.Name):
                        words.append(t.target.value)
                break
            if isinstance(ancestor, cst.FunctionDef):
                break
        for word in words:
            parts = word.lower().replace("-", "_").split("_")
            if any(p in EVAL_WORDS or p.startswith(("val", "test", "eval")) for p in parts):
                return True
        return False

    # -- fix ---------------------------------------------------------------------------------

    def _fix(self, node: cst.Call) -> Optional[Fix]:
        receiver = node.func.value  # type: ignore[union-attr]
        if not (isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute)
                and receiver.func.attr.value in BATCHING):
            return None
        base = receiver.func.value
        shuffled = cst.Call(func=cst.Attribute(value=base, attr=cst.Name("shuffle")), args=node.args)
        new = cst.Call(func=cst.Attribute(value=shuffled, attr=receiver.func.attr), args=receiver.args)
        return Fix("shuffle the examples before batching (revisit the buffer size: it now counts examples)",
                   [(node, new)], FixKind.UNSAFE)


def _contains(tree: Any, target: Any) -> bool:
    if tree is target:
        return True
    found = False

    class Finder(cst.CSTVisitor):
        def on_visit(self, n: cst.CSTNode) -> bool:
            nonlocal found
            if n is target:
                found = True
            return not found

    tree.visit(Finder())
    return found
