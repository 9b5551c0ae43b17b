from __future__ import annotations

from typing import Any, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._amp import CLIP_FUNCTIONS, calls_in, is_grad_scaler, method_receiver

class AmpClipWithoutUnscale(Rule):
    """Gradient clipping between a GradScaler's scaled backward and ``scaler.step`` without
    ``scaler.unscale_(optimizer)`` first.

    Finds `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_` / `clip_grads_with_norm_`
    called after `scaler.scale(loss).backward()` and before `scaler.step(optimizer)` (in the
    same block, or in a nested block such as `if args.clip:` whose enclosing block then calls
    `scaler.step`), where `scaler` is a `torch.amp.GradScaler`, `torch.cuda.amp.GradScaler`
    (deprecated) or `torch.GradScaler`, found through a name or a `self.scaler` attribute
    assigned once (or a parameter annotated with the class), and no `scaler.unscale_(...)` came
    earlier in the function.

    Why it is a bug: after `scaler.scale(loss).backward()` every gradient is multiplied by the
    loss scale (65536 at the start, changing over training). `clip_grad_norm_(params, 1.0)`
    then compares the scaled norm with 1.0 and shrinks the gradients by roughly the scale
    factor, so the update after `scaler.step` (which divides by the scale) is tiny, and the
    effective clipping threshold drifts as the scale changes; `clip_grad_value_` clips at a
    value thousands of times too small. The PyTorch AMP examples ("Working with Unscaled
    Gradients") call `scaler.unscale_(optimizer)` before clipping; `scaler.step` then knows the
    gradients are unscaled and does not divide again.

    How to fix: call `scaler.unscale_(optimizer)` right before the clip call (once per optimizer
    and step).

    Fix: safe when the optimizer passed to `scaler.step(...)` is a simple name, the clip call is
    a statement of its own, no loop lies between it and the `scaler.step` call, the step is a
    plain statement of its block (not under a condition of its own), and nothing between the
    clip and the step calls `unscale_` or may leave the block (`continue`, `break`, `return`,
    `raise`): a second `unscale_` before `update()` raises an error. The fix inserts
    `scaler.unscale_(<optimizer>)` before the clip statement. With an attribute
    as the optimizer (`self.optimizer`) the same insertion is offered as an unsafe fix. When
    several clip calls precede one step, only the first gets the insertion.

    Stays silent when the scaler was built with `enabled=False`, when `max_norm` is infinite (a
    norm read-out, not a clip), when the scaler cannot be resolved (a parameter without an
    annotation, a value assigned twice), for wrapper methods that unscale internally
    (`accelerator.clip_grad_norm_`, `fabric.clip_gradients`, FSDP's `model.clip_grad_norm_`),
    and when the scaled backward is not in the same function while the file calls `unscale_`
    somewhere.
    """

    code = "DL112"
    name = "amp-clip-without-unscale"
    family = "numerical"
    message = (
        "gradients are clipped while still scaled by GradScaler; call scaler.unscale_(optimizer) before clip_grad_*"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs (mixed precision)",
        category="gradient clipping applied to loss-scaled gradients",
        links=(
            "https://pytorch.org/docs/stable/notes/amp_examples.html#working-with-unscaled-gradients",
            "https://github.com/milesial/Pytorch-UNet/pull/470",
        ),
    )
    triggers = ("clip_grad",)

    VALID = (
        Valid(dedent("""
            import torch
            scaler = torch.amp.GradScaler("cuda")
            for x, y in loader:
                optimizer.zero_grad()
                with torch.autocast("cuda"):
                    loss = criterion(model(x), y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
            """), "unscaled before clipping, as the AMP examples do"),
        Valid(dedent("""
            import torch
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            """), "no GradScaler: the gradients are not scaled"),
        Valid(dedent("""
            import torch
            scaler = torch.cuda.amp.GradScaler(enabled=False)
            for x, y in loader:
                scaler.scale(criterion(model(x), y)).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
            """), "a disabled scaler does not scale"),
        Valid(dedent("""
            from accelerate import Accelerator
            accelerator = Accelerator(mixed_precision="fp16")
            for batch in loader:
                accelerator.backward(model(**batch).loss)
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            """), "Accelerate's clip_grad_norm_ unscales internally"),
        Valid(dedent("""
            import torch
            scaler = torch.amp.GradScaler()
            def step(scaler, loss):
                scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
            """), "an unannotated parameter shadows the module's scaler: not resolved"),
        Valid(dedent("""
            import math
            import torch
            scaler = torch.amp.GradScaler("cuda")
            scaler.scale(loss).backward()
            total = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
            scaler.step(optimizer)
            scaler.update()
            """), "an infinite max_norm only reads the norm"),
        Valid(dedent("""
            import torch
            class Trainer:
                def __init__(self):
                    self.scaler = torch.amp.GradScaler("cuda")
                def backward(self, loss):
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                def step(self):
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
            """), "the scaled backward and unscale_ live in another method"),
        Valid(dedent("""
            import torch
            scaler = torch.amp.GradScaler("cuda")
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            """), "no scaler.step after the clip"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                scaler = torch.amp.GradScaler("cuda")
                for x, y in loader:
                    optimizer.zero_grad()
                    with torch.autocast("cuda"):
                        loss = criterion(model(x), y)
                    scaler.scale(loss).backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                """),
            fixed=(dedent("""
                import torch
                scaler = torch.amp.GradScaler("cuda")
                for x, y in loader:
                    optimizer.zero_grad()
                    with torch.autocast("cuda"):
                        loss = criterion(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                """)),
        ),
        Invalid(
            dedent("""
                from torch.cuda.amp import GradScaler, autocast
                from torch.nn.utils import clip_grad_value_

                def train(model, loader, opt):
                    scaler = GradScaler()
                    for x, y in loader:
                        with autocast():
                            loss = model(x, y)
                        scaler.scale(loss).backward()
                        # keep the updates bounded
                        clip_grad_value_(model.parameters(), 0.5)
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad()
                """),
            fixed=(dedent("""
                from torch.cuda.amp import GradScaler, autocast
                from torch.nn.utils import clip_grad_value_

                def train(model, loader, opt):
                    scaler = GradScaler()
                    for x, y in loader:
                        with autocast():
                            loss = model(x, y)
                        scaler.scale(loss).backward()
                        # keep the updates bounded
                        scaler.unscale_(opt)
                        clip_grad_value_(model.parameters(), 0.5)
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad()
                """)),
            note="deprecated torch.cuda.amp spelling, a from-import of the clip function",
        ),
        Invalid(
            dedent("""
                import torch
                class Trainer:
                    def __init__(self, model, optimizer, use_amp):
                        self.model = model
                        self.optimizer = optimizer
                        if use_amp:
                            self.scaler = torch.amp.GradScaler("cuda")
                    def run_batch(self, x, y):
                        loss = self.model(x, y)
                        self.scaler.scale(loss).backward()
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                """),
            fixed=(dedent("""
                import torch
                class Trainer:
                    def __init__(self, model, optimizer, use_amp):
                        self.model = model
                        self.optimizer = optimizer
                        if use_amp:
                            self.scaler = torch.amp.GradScaler("cuda")
                    def run_batch(self, x, y):
                        loss = self.model(x, y)
                        self.scaler.scale(loss).backward()
                        self.scaler.unscale_(self.optimizer)
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                """)),
            unsafe=True,
            note="self attributes (pytorch/examples minGPT-ddp trainer shape): an unsafe fix",
        ),
        Invalid(
            dedent("""
                import torch
                scaler = torch.GradScaler("cuda")
                for i, (x, y) in enumerate(loader):
                    loss = criterion(model(x), y) / accum
                    scaler.scale(loss).backward()
                    if (i + 1) % accum == 0:
                        if max_norm:
                            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                        scaler.step(optimizer)
                        scaler.update()
                        optimizer.zero_grad()
                """),
            fixed=(dedent("""
                import torch
                scaler = torch.GradScaler("cuda")
                for i, (x, y) in enumerate(loader):
                    loss = criterion(model(x), y) / accum
                    scaler.scale(loss).backward()
                    if (i + 1) % accum == 0:
                        if max_norm:
                            scaler.unscale_(optimizer)
                            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                        scaler.step(optimizer)
                        scaler.update()
                        optimizer.zero_grad()
                """)),
            note="gradient accumulation; the clip in a nested if, scaler.step in the enclosing block",
        ),
        Invalid(
            dedent("""
                import torch
                scaler = torch.amp.GradScaler("cuda")
                scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
                torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                """),
            fixed=(dedent("""
                import torch
                scaler = torch.amp.GradScaler("cuda")
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
                torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                """)),
            count=2,
            note="two clips before one step: one unscale_ before the first",
        ),
        Invalid(
            dedent("""
                import torch
                scaler = torch.amp.GradScaler("cuda")
                scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.unscale_(optimizer)
                scaler.step(optimizer)
                scaler.update()
                """),
            note="unscale_ after the clip is too late; inserting another would call it twice: no fix",
        ),
        Invalid(
            dedent("""
                import torch
                scaler = torch.amp.GradScaler("cuda")
                for group in (g_params, d_params):
                    scaler.scale(loss).backward()
                    for params in group:
                        torch.nn.utils.clip_grad_norm_(params, 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                """),
            note="the clip is in a loop: an unscale_ there would run several times per step, no fix",
        ),
        Invalid(
            dedent("""
                import torch
                scaler = torch.amp.GradScaler("cuda")
                for i, (x, y) in enumerate(loader):
                    scaler.scale(criterion(model(x), y)).backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    if (i + 1) % accum == 0:
                        scaler.step(optimizer)
                        scaler.update()
                """),
            note="the step runs on some iterations only: an unscale_ on every one would fail, no fix",
        ),
        Invalid(
            dedent("""
                import math
                import torch
                scaler = torch.amp.GradScaler("cuda")
                for x, y in loader:
                    scaler.scale(criterion(model(x), y)).backward()
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    if not math.isfinite(norm):
                        optimizer.zero_grad()
                        continue
                    scaler.step(optimizer)
                    scaler.update()
                """),
            note="a continue between the clip and the step would skip update() after unscale_: no fix",
        ),
    )

    def __init__(self, ctx: Any, sink: List[Any]) -> None:
        super().__init__(ctx, sink)
        #: functions (id, 0 for the top level) where a ``.scale(...)`` / ``.unscale_(...)`` call
        #: was seen so far, on any receiver (an alias of the scaler counts too)
        self._scaled: Set[int] = set()
        self._unscaled: Set[int] = set()
        #: step calls that already got an unscale_ insertion from an earlier clip
        self._fixed_steps: Set[int] = set()

    def _function_key(self) -> int:
        function = self.ctx.function()
        return id(function) if function is not None else 0

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("scale", "unscale_"):
            (self._scaled if func.attr.value == "scale" else self._unscaled).add(self._function_key())
            return
        if self.ctx.qualname(func) in CLIP_FUNCTIONS:
            self._check_clip(node)

    def _check_clip(self, clip: cst.Call) -> None:
        ctx = self.ctx
        if _infinite(ctx, ctx.argument(clip, 1, "max_norm")):
            return
        found = self._following_step(clip)
        if found is None:
            return
        step, between, step_direct, statement, crossed_loop = found
        scaler = method_receiver(step, "step")
        function = self._function_key()
        if dotted_name(scaler) is None or function in self._unscaled:
            return
        if function not in self._scaled and "unscale_" in ctx.source:
            return
        optimizer = ctx.argument(step, 0, "optimizer")
        if optimizer is None:
            return
        fix = None
        if (
            statement is not None
            and step_direct
            and not crossed_loop
            and id(step) not in self._fixed_steps
            and dotted_name(optimizer) is not None
            and not _unscales_or_exits(between)
        ):
            fix = self._fix(statement, scaler, optimizer)
            self._fixed_steps.add(id(step))
        self.report(clip, fix=fix)

    def _following_step(self, clip: cst.Call) -> Optional[Tuple[cst.Call, List[Any], bool, Any, bool]]:
        """The ``scaler.step(...)`` call in a statement after the clip's statement, in the
        clip's block or an enclosing block of the same function; the statements that run between
        the clip's statement and the step's; whether the step is a statement of that block
        itself (so it runs whenever the clip did, unless a statement between leaves); the clip's
        own statement line when the clip call is its whole value; and whether a loop lies
        between the clip and the block of the step."""
        ctx = self.ctx
        stack = ctx.stack
        line = stack[-2] if len(stack) >= 2 else None
        if not (isinstance(line, cst.SimpleStatementLine) and _is_whole_statement(line, clip)):
            line = None
        child: Any = clip
        crossed_loop = False
        passed: List[Any] = []
        for index in range(len(stack) - 1, -1, -1):
            ancestor = stack[index]
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return None
            if isinstance(ancestor, (cst.For, cst.While)) and child is ancestor.body:
                crossed_loop = True
            if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
                body = ancestor.body
                position = next((i for i, s in enumerate(body) if s is child), None)
                if position is None:
                    return None
                after = body[position + 1:]
                for offset, statement in enumerate(after):
                    for call in calls_in(statement):
                        receiver = method_receiver(call, "step")
                        if receiver is not None and is_grad_scaler(ctx, receiver):
                            direct = isinstance(statement, cst.SimpleStatementLine) and any(
                                call is small.value for small in statement.body if isinstance(small, cst.Expr)
                            )
                            return call, passed + list(after[:offset]), direct, line, crossed_loop
                passed.extend(after)
            child = ancestor
        return None

    def _fix(self, statement: cst.SimpleStatementLine, scaler: Any, optimizer: Any) -> Fix:
        unscale = cst.SimpleStatementLine(
            body=[
                cst.Expr(
                    cst.Call(
                        func=cst.Attribute(value=scaler.deep_clone(), attr=cst.Name("unscale_")),
                        args=[cst.Arg(optimizer.deep_clone())],
                    )
                )
            ],
            leading_lines=statement.leading_lines,
        )
        replacement = cst.FlattenSentinel([unscale, statement.with_changes(leading_lines=())])
        applicability = FixKind.SAFE if isinstance(optimizer, cst.Name) else FixKind.UNSAFE
        return Fix("Call scaler.unscale_(optimizer) before clipping", [(statement, replacement)], applicability)


def _unscales_or_exits(statements: List[Any]) -> bool:
    """Whether any of ``statements`` calls ``unscale_`` (a second call before ``update()``
    raises) or may leave the block (``continue`` / ``break`` / ``return`` / ``raise``: the
    inserted ``unscale_`` would then run without a step and fail on the next iteration)."""
    todo = list(statements)
    while todo:
        node = todo.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(node, (cst.Continue, cst.Break, cst.Return, cst.Raise)):
            return True
        if method_receiver(node, "unscale_") is not None:
            return True
        todo.extend(children(node))
    return False


def _is_whole_statement(line: cst.SimpleStatementLine, call: cst.Call) -> bool:
    """The line holds one statement whose value is the call: ``clip(...)`` or ``n = clip(...)``."""
    if len(line.body) != 1:
        return False
    small = line.body[0]
    if isinstance(small, cst.Expr):
        return small.value is call
    if isinstance(small, (cst.Assign, cst.AnnAssign)):
        return small.value is call
    return False


def _infinite(ctx: Any, node: Any) -> bool:
    """``float("inf")``, ``math.inf``, ``torch.inf``, ``np.inf``."""
    if node is None:
        return False
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "float" and node.args:
        value = node.args[0].value
        if isinstance(value, cst.SimpleString):
            text = value.evaluated_value
            return isinstance(text, str) and text.strip().lower() in ("inf", "infinity", "+inf")
    name = ctx.qualname(node)
    if name is not None:
        return name.rsplit(".", 1)[-1] == "inf" and name.split(".")[0] in ("math", "torch", "numpy")
    return False

