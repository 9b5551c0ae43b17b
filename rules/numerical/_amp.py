"""Name tables and helpers shared by the mixed-precision rules (DL112, DL113)."""

from __future__ import annotations

import re
from typing import Any, Iterator, Optional

import libcst as cst

from dllint.context import children, dotted_name

#: Gradient scalers: constructing one of these makes ``scale`` / ``unscale_`` / ``step`` calls
#: on the result loss-scaling calls.
GRAD_SCALERS = frozenset(
    {
        "torch.amp.GradScaler",
        "torch.amp.grad_scaler.GradScaler",
        "torch.GradScaler",
        "torch.cuda.amp.GradScaler",
        "torch.cuda.amp.grad_scaler.GradScaler",
        "torch.cpu.amp.GradScaler",
        "torch.cpu.amp.grad_scaler.GradScaler",
        # the FSDP subclass scales and unscales the same way
        "torch.distributed.fsdp.sharded_grad_scaler.ShardedGradScaler",
    }
)

#: Gradient clipping in place (the functions that change ``.grad``).
CLIP_FUNCTIONS = frozenset(
    {
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_norm",
        "torch.nn.utils.clip_grad_value_",
        "torch.nn.utils.clip_grads_with_norm_",
        "torch.nn.utils.clip_grad.clip_grad_norm_",
        "torch.nn.utils.clip_grad.clip_grad_norm",
        "torch.nn.utils.clip_grad.clip_grad_value_",
        "torch.nn.utils.clip_grad.clip_grads_with_norm_",
    }
)

#: ``torch.autocast(device_type, dtype=None, enabled=True)`` and its aliases: the dtype
#: defaults to the device's autocast dtype (float16 on CUDA, bfloat16 on CPU).
AUTOCAST_DEVICE = frozenset({"torch.autocast", "torch.amp.autocast", "torch.amp.autocast_mode.autocast"})
#: ``torch.cuda.amp.autocast(enabled=True, dtype=torch.float16)``: float16 unless told otherwise.
AUTOCAST_CUDA = frozenset({"torch.cuda.amp.autocast", "torch.cuda.amp.autocast_mode.autocast"})

FLOAT16 = frozenset({"torch.float16", "torch.half"})
HALF_TENSOR_TYPES = frozenset({"torch.cuda.HalfTensor", "torch.HalfTensor"})


def is_false(node: Any) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def string_value(node: Any) -> Optional[str]:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def grad_scaler_call(ctx: Any, value: Any) -> bool:
    """``value`` constructs an enabled GradScaler (``GradScaler(enabled=False)`` is a no-op
    scaler); ``GradScaler(...) if amp else None`` counts too."""
    if isinstance(value, cst.IfExp):
        sides = (value.body, value.orelse)
        return any(grad_scaler_call(ctx, s) for s in sides) and any(
            isinstance(s, cst.Name) and s.value == "None" for s in sides
        )
    if not isinstance(value, cst.Call) or ctx.qualname(value.func) not in GRAD_SCALERS:
        return False
    enabled = ctx.keyword(value, "enabled")
    return enabled is None or not is_false(enabled.value)


def is_grad_scaler(ctx: Any, node: Any) -> bool:
    """``node`` (a name or ``self.x``) holds a GradScaler: its single reaching assignment
    constructs one, or it is a parameter annotated with a GradScaler class."""
    if dotted_name(node) is None:
        return False
    value = ctx.assigned_value(node)
    if value is not None:
        return grad_scaler_call(ctx, value)
    if isinstance(node, cst.Name):
        bindings = ctx.lookup(node.value)
        if bindings and len(bindings) == 1 and bindings[0].kind == "param":
            annotation = getattr(bindings[0].value, "annotation", None)
            if annotation is not None:
                return ctx.qualname(annotation.annotation) in GRAD_SCALERS
    return False


def method_receiver(node: Any, method: str) -> Optional[Any]:
    """``x`` for a call ``x.<method>(...)``, else None."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == method:
        return node.func.value
    return None


def calls_in(node: Any) -> Iterator[cst.Call]:
    """Every call inside ``node`` (itself included), not entering nested functions, classes
    or lambdas; roughly in source order."""
    todo = [node]
    while todo:
        current = todo.pop()
        if current is not node and isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(current, cst.Call):
            yield current
        todo.extend(reversed(children(current)))


# ---------------------------------------------------------------------- float16 training

#: Words that show the file scales the loss by other means (apex, hand-written loss scaling,
#: fp32 master weights), so a missing GradScaler is no evidence of unscaled fp16 gradients.
_SCALING_WORDS = re.compile(
    r"GradScaler|LossScaler|loss_scal|scale_loss|lossscale|FP16_Optimizer|FP16Optimizer|master_param"
    r"|scaler\w*\s*\.\s*(?:scale|unscale_|step)\s*\(",
    re.IGNORECASE,
)

#: Frameworks whose training loops scale the loss themselves (Lightning precision="16-mixed",
#: Accelerate mixed_precision="fp16", DeepSpeed fp16, apex amp, fairseq / mmengine fp16
#: optimizers...).
WRAPPER_PACKAGES = frozenset(
    {
        "lightning",
        "pytorch_lightning",
        "lightning_fabric",
        "accelerate",
        "deepspeed",
        "apex",
        "fairseq",
        "mmcv",
        "mmengine",
        "colossalai",
        "composer",
    }
)


def scales_elsewhere(ctx: Any) -> bool:
    """The file mentions a GradScaler or another loss-scaling mechanism, or uses a training
    framework that scales the loss for the user."""
    if _SCALING_WORDS.search(ctx.source):
        return True
    tops = {name.split(".")[0] for name in ctx.imported_modules}
    if tops & WRAPPER_PACKAGES:
        return True
    return "transformers" in tops and re.search(r"\b\w*Trainer\b|TrainingArguments", ctx.source) is not None
