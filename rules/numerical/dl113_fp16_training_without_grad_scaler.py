from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._amp import (
    AUTOCAST_CUDA,
    AUTOCAST_DEVICE,
    FLOAT16,
    HALF_TENSOR_TYPES,
    is_false,
    scales_elsewhere,
    string_value,
)


class _Scope:
    """What one function (or the module's top level) did so far, in source order."""

    __slots__ = ("sites", "trained_sites", "backward", "step", "scaled")

    def __init__(self) -> None:
        self.sites: List[cst.CSTNode] = []  # float16 casts / autocasts not yet followed by a backward
        self.trained_sites: List[cst.CSTNode] = []  # those a backward came after
        self.backward = False
        self.step = False
        self.scaled = False  # a hand-scaled backward: ``(loss * 1024).backward()``


class Fp16TrainingWithoutGradScaler(Rule):
    """Float16 training (a `.half()` model or CUDA float16 autocast) with no gradient scaling.

    Finds, in one function (or at the top level of a script) that both runs a backward pass
    (`loss.backward()`) and an optimizer step (`optimizer.step()`), a float16 setup that comes
    before the backward:

    - a model cast to float16: `model.half()`, `model.to(torch.float16)`,
      `model = Net().cuda().half()` (the assigned name must have its `.parameters()` used in the
      file, so casts of tensors do not count), `model.type(torch.cuda.HalfTensor)`;
    - `torch.autocast("cuda")` / `torch.amp.autocast(device_type="cuda")` without `dtype`
      (float16 is the CUDA default), any `torch.autocast(..., dtype=torch.float16)`, or the
      deprecated `torch.cuda.amp.autocast()` (float16 unless told otherwise).

    The finding is at the cast or autocast call.

    Why it is a bug: float16 cannot represent magnitudes below about 6e-8 (and loses
    precision below 6e-5), so small gradients flush to zero in the backward pass and the
    affected weights stop learning, silently. The PyTorch AMP docs: "Gradient scaling improves
    convergence for networks with float16 gradients by minimizing gradient underflow". bfloat16
    has float32's exponent range and needs no scaling.

    How to fix: create `scaler = torch.amp.GradScaler("cuda")` and use
    `scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()`, or autocast to
    `dtype=torch.bfloat16` where the hardware supports it. A model cast whole with `.half()`
    cannot use GradScaler (it refuses float16 parameters); keep the parameters in float32 and
    use autocast instead.

    Fix: none (the scaler changes three statements and the hardware decides between float16
    and bfloat16).

    Stays silent for bfloat16 (`dtype=torch.bfloat16`), CPU autocast (bfloat16 by default),
    `enabled=False`, a device or dtype it cannot resolve, when the file mentions a GradScaler
    or another loss-scaling mechanism anywhere (apex `amp.scale_loss`, a `loss_scale`, fp32
    master parameters, a `scaler.scale(...)` call on a scaler built elsewhere), when it
    imports a framework that scales the loss itself (Lightning, Lightning Fabric, Accelerate,
    DeepSpeed, apex, fairseq, mmcv/mmengine, Colossal-AI, Composer, or the Hugging Face
    `Trainer`), for casts after the last backward (export, inference), for models frozen with
    `requires_grad_(False)` or cast back with `.float()`, and when the backward of the function
    is scaled by hand (`(loss * 1024).backward()`).
    """

    code = "DL113"
    name = "fp16-training-without-grad-scaler"
    family = "numerical"
    message = "float16 training without GradScaler risks gradient underflow; use torch.amp.GradScaler or bfloat16"
    fix = FixKind.NONE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs (precision)",
        category="float16 gradient underflow without loss scaling",
        links=("https://pytorch.org/docs/stable/notes/amp_examples.html",),
    )
    triggers = ("autocast", ".half(", "float16", "HalfTensor")

    VALID = (
        Valid(dedent("""
            import torch
            scaler = torch.amp.GradScaler("cuda")
            for x, y in loader:
                with torch.autocast("cuda"):
                    loss = criterion(model(x), y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
            """), "a GradScaler scales the loss"),
        Valid(dedent("""
            import torch
            for x, y in loader:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """), "bfloat16 needs no scaler"),
        Valid(dedent("""
            import torch
            for x, y in loader:
                with torch.autocast(device_type="cpu"):
                    loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """), "CPU autocast runs in bfloat16"),
        Valid(dedent("""
            import torch
            model = Net().cuda().half().eval()
            with torch.no_grad():
                for x in loader:
                    print(model(x.half()).argmax(-1))
            """), "float16 inference: no backward, no optimizer step"),
        Valid(dedent("""
            import torch
            from accelerate import Accelerator
            accelerator = Accelerator(mixed_precision="fp16")
            for x, y in loader:
                with torch.autocast("cuda"):
                    loss = criterion(model(x), y)
                accelerator.backward(loss)
                optimizer.step()
            """), "Accelerate scales the loss"),
        Valid(dedent("""
            import torch
            def train(model, loader, optimizer):
                for x, y in loader:
                    loss = criterion(model(x), y)
                    loss.backward()
                    optimizer.step()
            def export(model):
                model.half()
                torch.save(model.state_dict(), "model_fp16.pt")
            """), "the float16 cast is in another function than the training loop"),
        Valid(dedent("""
            import torch
            for x, y in loader:
                with torch.cuda.amp.autocast(enabled=False):
                    loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """), "autocast disabled"),
        Valid(dedent("""
            import torch
            def train_step(model, x, y, optimizer, amp_dtype):
                with torch.autocast("cuda", dtype=amp_dtype):
                    loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """), "the dtype is a parameter: unknown"),
        Valid(dedent("""
            import torch
            def train(unet, vae, loader, optimizer):
                vae.half()
                vae.requires_grad_(False)
                for x in loader:
                    loss = unet(vae.encode(x.half()).float())
                    loss.backward()
                    optimizer.step()
            """), "the float16 model is frozen; the trained one is float32"),
        Valid(dedent("""
            import torch
            from apex import amp
            model, optimizer = amp.initialize(model.half(), optimizer, opt_level="O2")
            for x, y in loader:
                loss = criterion(model(x), y)
                with amp.scale_loss(loss, optimizer) as scaled:
                    scaled.backward()
                optimizer.step()
            """), "apex scales the loss"),
        Valid(dedent("""
            import torch
            model = model.half()
            for x, y in loader:
                loss = criterion(model(x.half()), y)
                (loss * 1024.0).backward()
                for p in model.parameters():
                    p.grad.div_(1024.0)
                optimizer.step()
            """), "a hand-scaled loss"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            for x, y in loader:
                optimizer.zero_grad()
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """)),
        Invalid(dedent("""
            import torch
            def train(model, loader, optimizer):
                model.train()
                for x, y in loader:
                    with torch.cuda.amp.autocast():
                        out = model(x)
                        loss = criterion(out, y)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
            """), note="deprecated torch.cuda.amp.autocast: float16 by default"),
        Invalid(dedent("""
            import torch
            model = Net().cuda().half()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            for x, y in loader:
                loss = criterion(model(x.cuda().half()), y.cuda())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """), note="a model cast whole to float16"),
        Invalid(dedent("""
            from torch import autocast
            def fit(self, loader):
                for batch in loader:
                    with autocast(device_type="cuda"):
                        loss = self.model(**batch).loss
                    loss.backward()
                    self.optimizer.step()
            """), note="CUDA autocast without dtype is float16"),
        Invalid(dedent("""
            import torch
            class Trainer:
                def train(self):
                    self.model.to(dtype=torch.float16)
                    for x, y in self.loader:
                        loss = self.criterion(self.model(x), y)
                        loss.backward()
                        self.opt.step()
            """), note="an in-place module cast with .to(dtype=torch.float16)"),
    )

    def __init__(self, ctx: Any, sink: List[Any]) -> None:
        super().__init__(ctx, sink)
        self._scopes: Dict[int, _Scope] = {}
        self._disabled: Optional[bool] = None

    # -- scopes ------------------------------------------------------------------------

    def _scope(self) -> _Scope:
        function = self.ctx.function()
        key = id(function) if function is not None else 0
        scope = self._scopes.get(key)
        if scope is None:
            scope = self._scopes[key] = _Scope()
        return scope

    def _off(self) -> bool:
        if self._disabled is None:
            self._disabled = not self.ctx.imports("torch") or scales_elsewhere(self.ctx)
        return self._disabled

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._finish(self._scopes.pop(id(node), None))

    def leave_Module(self, node: cst.Module) -> None:
        self._finish(self._scopes.pop(0, None))

    def _finish(self, scope: Optional[_Scope]) -> None:
        if scope is None or not scope.step or scope.scaled:
            return
        for site in scope.trained_sites:
            self.report(site)

    # -- events ------------------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        if self._off():
            return
        func = node.func
        method = func.attr.value if isinstance(func, cst.Attribute) else None
        if method == "backward":
            scope = self._scope()
            if _hand_scaled(func.value):
                scope.scaled = True
            scope.backward = True
            scope.trained_sites.extend(scope.sites)
            scope.sites.clear()
            return
        if method == "step" and self._is_optimizer(func.value):
            self._scope().step = True
            return
        if self._float16_autocast(node) or self._float16_model_cast(node):
            self._scope().sites.append(node)

    def _is_optimizer(self, receiver: Any) -> bool:
        name = dotted_name(receiver)
        if name is None:
            return False
        last = name.rsplit(".", 1)[-1].lower()
        if "sched" in last:
            return False
        if "opt" in last:
            return True
        value = self.ctx.assigned_value(receiver)
        qualified = self.ctx.qualname(value.func) if isinstance(value, cst.Call) else None
        return bool(qualified and qualified.startswith("torch.optim."))

    # -- float16 setups ----------------------------------------------------------------

    def _float16_autocast(self, call: cst.Call) -> bool:
        ctx = self.ctx
        name = ctx.qualname(call.func)
        if name in AUTOCAST_DEVICE:
            device = ctx.argument(call, 0, "device_type")
            dtype = ctx.argument(call, 1, "dtype")
            enabled = ctx.argument(call, 2, "enabled")
            device_name = string_value(device)
            if device_name is not None and device_name.split(":")[0] == "cpu":
                return False
            if enabled is not None and is_false(enabled):
                return False
            if dtype is None:
                return device_name is not None and device_name.split(":")[0] == "cuda"
            return self._is_float16(dtype)
        if name in AUTOCAST_CUDA:
            enabled = ctx.argument(call, 0, "enabled")
            dtype = ctx.argument(call, 1, "dtype")
            if enabled is not None and is_false(enabled):
                return False
            return dtype is None or self._is_float16(dtype)
        return False

    def _is_float16(self, node: Any) -> bool:
        ctx = self.ctx
        if ctx.qualname(node) in FLOAT16:
            return True
        value = ctx.resolve(node)
        return value is not node and ctx.qualname(value) in FLOAT16

    def _float16_model_cast(self, call: cst.Call) -> bool:
        """A float16 cast of a module: the statement ``m.half()`` / ``m.to(torch.float16)``
        (module casts work in place; a bare tensor cast would be a no-op), or ``m = <chain with
        a float16 cast>`` where ``m.parameters()`` is used in the file."""
        func = call.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in ("half", "to", "type"):
            return False
        if not self._casts_to_float16(call):
            return False
        ctx = self.ctx
        stack = ctx.stack
        # climb the method chain ``X.cuda().half().train()`` to the statement holding it
        outer: Any = call
        index = len(stack) - 1
        while index >= 1 and isinstance(stack[index], cst.Attribute) and isinstance(stack[index - 1], cst.Call) \
                and stack[index - 1].func is stack[index] and stack[index].value is outer:
            outer = stack[index - 1]
            index -= 2
        holder = stack[index] if index >= 0 else None
        root = _chain_root(call)
        if isinstance(holder, cst.Expr) and holder.value is outer:
            target = root
        elif isinstance(holder, cst.Assign) and holder.value is outer and len(holder.targets) == 1:
            target = holder.targets[0].target
        else:
            return False
        name = dotted_name(target)
        if name is None:
            return False
        source = ctx.source
        escaped = r"(?<![\w.])" + re.escape(name)
        if re.search(escaped + r"\s*\.\s*requires_grad_\(\s*(?:False|requires_grad\s*=\s*False)\s*\)", source):
            return False  # a frozen float16 module (an encoder feeding a float32 model)
        if re.search(escaped + r"\s*\.\s*float\(\s*\)", source):
            return False  # cast back to float32 somewhere: the order is not tracked, stay silent
        if isinstance(holder, cst.Assign):
            return re.search(escaped + r"\s*\.\s*(?:named_)?parameters\s*\(", source) is not None
        return True

    def _casts_to_float16(self, call: cst.Call) -> bool:
        func = call.func
        assert isinstance(func, cst.Attribute)
        method = func.attr.value
        if method == "half":
            return not call.args and self.ctx.imports("torch")
        if method == "to":
            for arg in call.args:
                if arg.keyword is None or arg.keyword.value == "dtype":
                    if self.ctx.qualname(arg.value) in FLOAT16:
                        return True
            return False
        if method == "type":
            dtype = self.ctx.argument(call, 0, "dtype")
            if dtype is None:
                return False
            text = string_value(dtype)
            if text is not None:
                return text in HALF_TENSOR_TYPES
            return self.ctx.qualname(dtype) in FLOAT16 | HALF_TENSOR_TYPES
        return False


def _chain_root(call: cst.Call) -> Any:
    """``model`` for ``model.cuda().half()``."""
    node: Any = call
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        node = node.func.value
    return node


def _hand_scaled(receiver: Any) -> bool:
    """``(loss * 1024).backward()`` / ``(loss * scale).backward()``: a loss multiplied before
    the backward (division, as in gradient accumulation, does not count)."""
    return isinstance(receiver, cst.BinaryOperation) and isinstance(receiver.operator, cst.Multiply)
