"""The table of known silent framework bugs that DL408 looks for.

Each entry: the framework package whose version decides (as ``Context.target_version`` reads it),
the affected versions as a half-open range [first, fixed), the APIs involved (qualified names),
the bug report, what goes wrong, and the pattern (``kind``) the rule matches.  Only rows of the
catalogue's DL408 table are here, with the version range narrowed to what the catalogue records
and the cited thread confirms; rows whose affected releases are only pre-releases (2.2.0-rc0,
2.0.0-beta0..rc1, 2.2.0-rc2) or whose fixing release is unknown ("nightly") are left out, because
a version number such as ``2.2.0`` cannot tell a release candidate from the final release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

_OPTIMIZERS = ("SGD", "Adam", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl")


@dataclass(frozen=True)
class KnownBug:
    kind: str  # the pattern the rule matches (see dl408)
    framework: str  # package whose version decides
    first: Tuple[int, ...]  # first affected release
    fixed: Tuple[int, ...]  # first release without the bug
    apis: Tuple[str, ...]  # qualified names involved
    issue: str
    effect: str

    def affects(self, version: Tuple[int, ...]) -> bool:
        return self.first <= version < self.fixed


KNOWN_BUGS: Tuple[KnownBug, ...] = (
    KnownBug(
        kind="optimizer-clipping",
        framework="tensorflow",
        first=(1, 15),
        fixed=(2, 2),
        apis=tuple(f"tensorflow.keras.optimizers.{name}" for name in _OPTIMIZERS),
        issue="https://github.com/tensorflow/tensorflow/issues/33929",
        effect="the optimizer's clipvalue/clipnorm are ignored and gradients are not clipped",
    ),
    KnownBug(
        kind="string-loss-sample-weight",
        framework="tensorflow",
        first=(1, 13),
        fixed=(1, 14),
        apis=("tensorflow.keras.Model.compile", "tensorflow.keras.Model.fit"),
        issue="https://github.com/tensorflow/tensorflow/issues/29965",
        effect="a loss given as a string weights sample_weight differently from the same loss given as a function",
    ),
    KnownBug(
        kind="adagrad-string",
        framework="tensorflow",
        first=(2, 1),
        fixed=(2, 2),
        apis=("tensorflow.keras.Model.compile", "tensorflow.keras.optimizers.Adagrad"),
        issue="https://github.com/tensorflow/tensorflow/issues/37229",
        effect="optimizer='adagrad' starts with initial_accumulator_value=0.0 where Adagrad() uses 0.1",
    ),
    KnownBug(
        kind="frozen-embedding-reload",
        framework="tensorflow",
        first=(2, 4),
        fixed=(2, 5),
        apis=("tensorflow.keras.layers.Embedding", "tensorflow.keras.models.load_model"),
        issue="https://github.com/tensorflow/tensorflow/issues/46329",
        effect="an Embedding built with trainable=False is reloaded as trainable",
    ),
    KnownBug(
        kind="bidirectional-reset-states",
        framework="tensorflow",
        first=(2, 0),
        fixed=(2, 2),
        apis=("tensorflow.keras.layers.Bidirectional", "tensorflow.keras.Model.reset_states"),
        issue="https://github.com/tensorflow/tensorflow/issues/34055",
        effect="model.reset_states() does not reset the states of Bidirectional RNN layers",
    ),
)
