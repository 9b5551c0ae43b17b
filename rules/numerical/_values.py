"""Name tables and value-origin helpers shared by the numerical (DL1xx) rules."""

from __future__ import annotations

from typing import Any, Optional

import libcst as cst

#: Element-wise natural log, every spelling the catalogue lists.
LOG_FUNCTIONS = frozenset(
    {
        "torch.log",
        "torch.special.log",
        "tensorflow.log",
        "tensorflow.math.log",
        "tensorflow.compat.v1.log",
        "tensorflow.compat.v1.math.log",
        "tensorflow.keras.backend.log",
        "keras.backend.log",
        "keras.ops.log",
        "tensorflow.keras.ops.log",
        "numpy.log",
        "jax.numpy.log",
    }
)

#: softmax function -> its log_softmax counterpart with the same parameters (None: no such function).
SOFTMAX_FUNCTIONS = {
    "torch.softmax": "torch.log_softmax",
    "torch.nn.functional.softmax": "torch.nn.functional.log_softmax",
    "torch.special.softmax": "torch.special.log_softmax",
    "tensorflow.nn.softmax": "tensorflow.nn.log_softmax",
    "tensorflow.math.softmax": "tensorflow.math.log_softmax",
    "tensorflow.compat.v1.nn.softmax": "tensorflow.compat.v1.nn.log_softmax",
    "tensorflow.keras.activations.softmax": None,
    "tensorflow.keras.backend.softmax": None,
    "keras.activations.softmax": None,
    "keras.backend.softmax": None,
    "tf_keras.activations.softmax": None,
    "keras.ops.softmax": "keras.ops.log_softmax",
    "keras.ops.nn.softmax": "keras.ops.nn.log_softmax",
    "tensorflow.keras.ops.softmax": "tensorflow.keras.ops.log_softmax",
    "scipy.special.softmax": "scipy.special.log_softmax",
    "jax.nn.softmax": "jax.nn.log_softmax",
}

#: softmax layers called on their input: ``nn.Softmax(dim=1)(x)`` -> LogSoftmax layer (None: none).
SOFTMAX_LAYERS = {
    "torch.nn.Softmax": "torch.nn.LogSoftmax",
    "torch.nn.modules.activation.Softmax": "torch.nn.LogSoftmax",
    "tensorflow.keras.layers.Softmax": None,
    "keras.layers.Softmax": None,
    "tf_keras.layers.Softmax": None,
}


def is_method_call(node: Any, method: str) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == method
    )


def softmax_kind(ctx: Any, node: Any) -> Optional[str]:
    """Say how ``node`` computes a softmax: "function", "layer", "method"; None if it does not."""
    if not isinstance(node, cst.Call):
        return None
    name = ctx.qualname(node.func)
    if name in SOFTMAX_FUNCTIONS:
        return "function"
    if isinstance(node.func, cst.Call) and ctx.qualname(node.func.func) in SOFTMAX_LAYERS:
        return "layer"
    positional = [a for a in node.args if a.keyword is None]
    if name is None and is_method_call(node, "softmax") and ctx.imports("torch") and len(positional) <= 1:
        # ``x.softmax(dim)``: a tensor method in PyTorch (a bare ``softmax`` module attribute
        # that resolved through an import was handled above)
        if not isinstance(node.func.value, cst.Name) or ctx.qualname(node.func.value) is None:
            return "method"
    return None
