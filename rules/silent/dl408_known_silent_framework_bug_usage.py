from __future__ import annotations

from typing import Any, Dict, Optional, Set, Tuple

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._tfmot import walk
from dllint.rules.silent._known_bugs import KNOWN_BUGS, KnownBug
from dllint.versions import INF

_BY_KIND: Dict[str, KnownBug] = {bug.kind: bug for bug in KNOWN_BUGS}

_TF_KERAS = "tensorflow.keras."


def _show(version: Tuple[int, ...]) -> str:
    return ".".join("x" if part >= INF else str(part) for part in version)


class KnownSilentFrameworkBugUsage(Rule):
    """An API with a known silent bug in the TensorFlow release the project pins.

    Finds, when the project's TensorFlow version is known (config `target-versions`, pin files,
    Dockerfiles, the file's own `pip install`) and falls in an affected range of the table in
    `rules/silent/_known_bugs.py`:

    - `tf.keras.optimizers.<Optimizer>(..., clipvalue=... / clipnorm=...)` on TF 1.15 to 2.1
      (tensorflow#33929: clipping ignored);
    - `compile(loss="<string>")` in a file that passes `sample_weight=` to `fit`, on TF 1.13
      (tensorflow#29965: string and function losses weight samples differently);
    - `compile(optimizer="adagrad")` with `tf.keras` on TF 2.1 (tensorflow#37229:
      `initial_accumulator_value` 0.0 instead of 0.1);
    - `tf.keras.layers.Embedding(..., trainable=False)` in a file that saves or loads whole
      models, on TF 2.4 (tensorflow#46329: reloaded as trainable);
    - `tf.keras.layers.Bidirectional(...)` in a file that calls `.reset_states()`, on TF 2.0 and
      2.1 (tensorflow#34055: the states are not reset).

    Why: each is a reproducible framework bug from the silent-bug study: the program runs and
    gives wrong numbers without an error on the affected releases.

    How to fix: upgrade TensorFlow to the fixing release named in the message, or apply the
    workaround (clip gradients yourself, pass the loss / optimizer object instead of its string,
    set `trainable=False` again after loading, reset the wrapped layers' states).

    Limits: never fires when the TensorFlow version is unknown (no pin): None means unknown
    here, not newest. Rows of the catalogue whose affected releases are only pre-releases, or
    whose fixing release is not known, are not in the table (a pinned `2.2.0` cannot tell the
    release candidate from the final release). Only the `tf.keras` spellings are matched (the
    bugs are in TensorFlow's Keras, not in the standalone `keras` package).
    """

    code = "DL408"
    name = "known-silent-framework-bug-usage"
    family = "silent"
    message = (
        "<api> is affected by a known silent bug in <framework> <version> (<issue url>): <effect>. "
        "Upgrade to ≥ <fixed> or apply the workaround"
    )
    evidence = Evidence(
        study="(d) silent bugs in TensorFlow/Keras",
        category="framework bugs with wrong results and no error (Wrong calculation, Wrong parameter setting, "
        "Wrong save/reload)",
        links=tuple(bug.issue for bug in KNOWN_BUGS),
    )
    triggers = ("clipvalue", "clipnorm", "sample_weight", "adagrad", "Adagrad", "ADAGRAD", "Embedding", "Bidirectional")
    frameworks = ("tensorflow",)

    VALID = (
        Valid(dedent("""
            import tensorflow as tf
            opt = tf.keras.optimizers.Adam(1e-3, clipnorm=1.0)
            """), "no pinned version: unknown, never fires"),
        Valid(dedent("""
            # pip install tensorflow==2.4.1
            import tensorflow as tf
            opt = tf.keras.optimizers.Adam(1e-3, clipnorm=1.0)
            """), "a comment is not an install command"),
        Valid(dedent("""
            import os
            os.system("pip install tensorflow==2.3.0")
            import tensorflow as tf
            opt = tf.keras.optimizers.Adam(1e-3, clipnorm=1.0)
            """), "fixed release"),
        Valid(dedent("""
            import os
            os.system("pip install tensorflow==2.1.0")
            import tensorflow as tf
            opt = tf.keras.optimizers.Adam(1e-3)
            model.compile(optimizer=tf.keras.optimizers.Adagrad(), loss="mse")
            """), "no clipping; Adagrad as an object"),
        Valid(dedent("""
            import os
            os.system("pip install tensorflow==2.1.0")
            import tensorflow as tf
            emb = tf.keras.layers.Embedding(100, 8, trainable=False)
            model.save("m.h5")
            """), "the Embedding reload bug is 2.4 only"),
        Valid(dedent("""
            import os
            os.system("pip install tensorflow==2.4.0")
            import tensorflow as tf
            emb = tf.keras.layers.Embedding(100, 8, trainable=False)
            model.save_weights("w.h5")
            """), "weights only: nothing reloads the layer config"),
        Valid(dedent("""
            import os
            os.system("pip install tensorflow==2.1.0")
            import tensorflow as tf
            model = tf.keras.Sequential([tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(4))])
            model.fit(x, y)
            """), "Bidirectional without reset_states"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import os
                os.system("pip install tensorflow-gpu==2.1.0")
                import tensorflow as tf
                opt = tf.keras.optimizers.SGD(0.1, clipvalue=0.5)
                """),
            note="clipping ignored on TF 2.1",
        ),
        Invalid(
            dedent("""
                import os
                os.system("pip install tensorflow==2.1.0")
                import tensorflow as tf
                model.compile(optimizer="adagrad", loss="mse")
                """),
            note="adagrad by its string on TF 2.1",
        ),
        Invalid(
            dedent("""
                import os
                os.system("pip install tensorflow==2.4.1")
                from tensorflow.keras.layers import Embedding
                from tensorflow import keras
                emb = Embedding(1000, 64, trainable=False)
                model = keras.models.load_model("model")
                """),
            note="frozen Embedding and a reload on TF 2.4",
        ),
        Invalid(
            dedent("""
                import os
                os.system("pip install tensorflow==2.0.0")
                import tensorflow as tf
                layer = tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(4, stateful=True))
                model.reset_states()
                """),
            note="Bidirectional states not reset on TF 2.0",
        ),
        Invalid(
            dedent("""
                import os
                os.system("pip install tensorflow==1.13.1")
                import tensorflow as tf
                model.compile(optimizer="adam", loss="mean_squared_error")
                model.fit(x, y, sample_weight=w)
                """),
            note="string loss with sample weights on TF 1.13",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        qualified = ctx.qualname(func) or ""
        if qualified.startswith(_TF_KERAS + "optimizers."):
            bug = _BY_KIND["optimizer-clipping"]
            if qualified in bug.apis and (ctx.keyword(node, "clipvalue") or ctx.keyword(node, "clipnorm")):
                self._emit(node, bug, f"tf.keras.optimizers.{qualified.rsplit('.', 1)[-1]}(clipvalue/clipnorm)")
            return
        if qualified in ("tensorflow.keras.layers.Embedding", "tensorflow.keras.layers.embeddings.Embedding"):
            trainable = ctx.keyword(node, "trainable")
            if (
                trainable is not None
                and isinstance(trainable.value, cst.Name)
                and trainable.value.value == "False"
                and self._facts()["reloads"]
            ):
                self._emit(node, _BY_KIND["frozen-embedding-reload"], "tf.keras.layers.Embedding(trainable=False)")
            return
        if qualified in ("tensorflow.keras.layers.Bidirectional", "tensorflow.keras.layers.wrappers.Bidirectional"):
            if self._facts()["reset_states"]:
                api = "tf.keras.layers.Bidirectional + reset_states()"
                self._emit(node, _BY_KIND["bidirectional-reset-states"], api)
            return
        if isinstance(func, cst.Attribute) and func.attr.value == "compile" and not qualified.startswith(
            ("torch.", "re.", "numpy.")
        ):
            facts = self._facts()
            if not facts["tf_keras_only"]:
                return
            optimizer = ctx.argument(node, 0, "optimizer")
            if _string(optimizer) is not None and _string(optimizer).lower() == "adagrad":
                self._emit(optimizer, _BY_KIND["adagrad-string"], "compile(optimizer='adagrad')")
            loss = ctx.keyword(node, "loss")
            if loss is not None and _string(loss.value) is not None and facts["sample_weight"]:
                api = "compile(loss='<string>') with sample_weight"
                self._emit(loss.value, _BY_KIND["string-loss-sample-weight"], api)

    # ------------------------------------------------------------------ helpers

    def _emit(self, node: Any, bug: KnownBug, api: str) -> None:
        version = self.ctx.target_version(bug.framework)
        if version is None or not bug.affects(version):
            return
        self.report(
            node,
            f"{api} is affected by a known silent bug in {bug.framework} {_show(version)} ({bug.issue}): "
            f"{bug.effect}. Upgrade to ≥ {_show(bug.fixed)} or apply the workaround",
        )

    def _facts(self) -> Dict[str, Any]:
        return self.ctx.memo("dl408.file", _file_facts)


def _string(node: Any) -> Optional[str]:
    if isinstance(node, cst.SimpleString) and isinstance(node.evaluated_value, str):
        return node.evaluated_value
    return None


def _file_facts(ctx: Any) -> Dict[str, Any]:
    reloads = reset_states = sample_weight = False
    for node in walk(ctx.module, enter_functions=True):
        if not isinstance(node, cst.Call):
            continue
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else (
            func.value if isinstance(func, cst.Name) else ""
        )
        if name in ("load_model", "save_model", "model_from_json", "model_from_config"):
            reloads = True
        elif name == "save" and isinstance(func, cst.Attribute):
            qualified = ctx.qualname(func) or ""
            if not qualified.startswith(("numpy.", "torch.", "PIL.", "tensorflow.train.")):
                reloads = True
        elif name == "reset_states":
            reset_states = True
        elif name in ("fit", "fit_generator", "train_on_batch") and ctx.keyword(node, "sample_weight") is not None:
            sample_weight = True
    modules: Set[str] = {m.split(".")[0] for m in ctx.imported_modules}
    return {
        "reloads": reloads,
        "reset_states": reset_states,
        "sample_weight": sample_weight,
        # compile() strings go to tf.keras only when the file does not use the standalone keras
        "tf_keras_only": "tensorflow" in modules and "keras" not in modules,
    }
