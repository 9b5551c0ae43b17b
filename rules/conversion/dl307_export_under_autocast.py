from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import export_call

#: autocast context managers / decorators, and the position of their ``enabled`` argument.
AUTOCAST = {
    "torch.autocast": 2,
    "torch.amp.autocast": 2,
    "torch.amp.autocast_mode.autocast": 2,
    "torch.cuda.amp.autocast": 0,
    "torch.cuda.amp.autocast_mode.autocast": 0,
    "torch.cpu.amp.autocast": 0,
    "torch.cpu.amp.autocast_mode.autocast": 0,
}

#: Export kinds that autocast changes (measured in torch 2.13, CPU bfloat16 autocast):
#: torch.jit.trace fails, both ONNX exporters bake Cast nodes and a bfloat16 output into the graph.
#: torch.jit.script compiles without running the model and torch.export.export records no casts:
#: both are left alone.
AFFECTED = ("trace", "onnx")

#: Intel's extension, whose documented CPU / XPU inference recipe traces under autocast.
IPEX = "intel_extension_for_pytorch"


def _imports_ipex(ctx: Any) -> bool:
    return any(m == IPEX or m.startswith(IPEX + ".") for m in ctx.imported_modules)


class ExportUnderAutocast(Rule):
    """torch.jit.trace / torch.onnx.export called inside an autocast region.

    Finds `torch.jit.trace(...)`, `torch.jit.trace_module(...)` and `torch.onnx.export(...)` (either
    exporter, and `torch.onnx.utils.export`) called in the body of `with torch.autocast(...)`,
    `with torch.amp.autocast(...)`, `with torch.cuda.amp.autocast()` / `torch.cpu.amp.autocast()`
    (deprecated spellings, any import or alias), or in a function decorated with one of them.

    Why: autocast changes the dtype of the ops the tracer records. Measured with torch 2.13 on CPU
    (a Conv2d-ReLU-Linear model in eval mode, `torch.autocast("cpu", dtype=torch.bfloat16)`):
    `torch.jit.trace` fails with "RuntimeError: Cannot insert a Tensor that requires grad as a
    constant" (also under `torch.no_grad()`; pytorch#84092 is the CUDA report of the same
    failure, cited by the converter study as a tracing-class algorithmic error); both ONNX
    exporters succeed but bake `Cast` nodes into the graph and declare a bfloat16 output, so the
    ONNX model is no longer the float model the code meant to export and its consumers get another
    output type.

    How to fix: export outside the autocast region and choose the precision explicitly
    (`model.half()` with half inputs, or export float32 and convert the ONNX model afterwards).
    No autofix: moving the call out of the block may change what the code after it sees.

    Limits: an autocast with `enabled=False`, or an `enabled=` that is not a literal, is left alone;
    so is `torch.jit.trace` under an autocast with `cache_enabled=False` (PyTorch's documented way
    to trace an autocast model: measured, the trace then succeeds and returns bfloat16 outputs on
    purpose) or in a file that imports intel_extension_for_pytorch (its bfloat16 inference recipe);
    so is a context manager bound to a name first (`ctx = torch.autocast(...); with ctx:`).
    `torch.jit.script` (compiles the source, does not run it) and `torch.export.export` (measured:
    no casts recorded) are not reported. A CUDA autocast around the export of a CPU model changes
    nothing, but the device is rarely known statically; such findings are possible.
    """

    code = "DL307"
    name = "export-under-autocast"
    family = "conversion"
    message = (
        "exporting/tracing under autocast is unsupported or records autocast casts; export outside autocast and "
        "set precision explicitly"
    )
    evidence = Evidence(
        study="(c) converter failures: torch.onnx tracing-class algorithmic errors",
        category="export under mixed-precision autocast",
        links=(
            "https://github.com/pytorch/pytorch/issues/84092",
            "https://docs.pytorch.org/docs/stable/amp.html",
        ),
    )
    triggers = ("autocast",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            with torch.autocast("cuda"):
                out = model(x)
            torch.onnx.export(model, (x,), "m.onnx")
            """), "export after the autocast block"),
        Valid(dedent("""
            import torch
            with torch.autocast("cuda", enabled=False):
                torch.onnx.export(model, (x,), "m.onnx")
            """), "autocast disabled"),
        Valid(dedent("""
            import torch
            with torch.autocast("cuda", enabled=use_amp):
                ts = torch.jit.trace(model, x)
            """), "enabled unknown"),
        Valid(dedent("""
            import torch
            with torch.autocast("cuda"):
                scripted = torch.jit.script(model)
            """), "scripting does not run the model"),
        Valid(dedent("""
            import torch
            with torch.autocast("cuda"):
                def export(model, x):
                    torch.onnx.export(model, (x,), "m.onnx")
            export(model, x)
            """), "a function defined, not run, in the block"),
        Valid(dedent("""
            import torch
            with torch.no_grad():
                ts = torch.jit.trace(model.half(), x.half())
            """), "explicit half precision, no autocast"),
        Valid(dedent("""
            import torch
            with torch.no_grad(), torch.cpu.amp.autocast(cache_enabled=False):
                ts = torch.jit.trace(model, x)
                ts = torch.jit.freeze(ts)
            """), "the documented autocast-tracing recipe (weight cache off)"),
        Valid(dedent("""
            import torch
            import intel_extension_for_pytorch as ipex
            model = ipex.optimize(model.eval(), dtype=torch.bfloat16)
            with torch.no_grad(), torch.cpu.amp.autocast():
                model = torch.jit.trace(model, data)
            """), "IPEX's bfloat16 inference recipe"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                with torch.autocast("cuda"):
                    torch.onnx.export(model, x, "m.onnx")
                """),
            note="the catalogue's Bad example (dynamo exporter by default)",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.cuda.amp import autocast
                with torch.no_grad(), autocast():
                    traced = torch.jit.trace(model, example)
                """),
            note="deprecated torch.cuda.amp spelling, jit.trace",
        ),
        Invalid(
            dedent("""
                import torch

                @torch.autocast(device_type="cuda", dtype=torch.float16)
                def export(model, x):
                    torch.onnx.export(model, (x,), "m.onnx", dynamo=False)
                """),
            note="decorated function, legacy exporter",
        ),
        Invalid(
            dedent("""
                import torch
                with torch.amp.autocast("cpu", dtype=torch.bfloat16, enabled=True):
                    if args.trace:
                        ts = torch.jit.trace_module(model, {"forward": x})
                """),
            note="torch.amp spelling, trace_module, nested block",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        export = export_call(self.ctx, node)
        if export is None or export.kind not in AFFECTED:
            return
        autocast = self._autocast_around()
        if autocast is None:
            return
        if export.kind == "trace" and (self._cache_disabled(autocast) or _imports_ipex(self.ctx)):
            return  # the documented recipe for an autocast TorchScript model
        self.report(node)

    def _cache_disabled(self, autocast: cst.Call) -> bool:
        found = self.ctx.keyword(autocast, "cache_enabled")
        return found is not None and isinstance(found.value, cst.Name) and found.value.value == "False"

    def _autocast_around(self) -> Optional[Any]:
        """The enabled autocast call whose with-block (or decorator) encloses the current node."""
        ctx = self.ctx
        for ancestor in reversed(ctx.stack):
            if isinstance(ancestor, cst.With):
                for item in ancestor.items:
                    if self._enabled_autocast(item.item):
                        return item.item
            elif isinstance(ancestor, cst.FunctionDef):
                for decorator in ancestor.decorators:
                    if self._enabled_autocast(decorator.decorator):
                        return decorator.decorator
                return None
            elif isinstance(ancestor, (cst.ClassDef, cst.Lambda)):
                return None
        return None

    def _enabled_autocast(self, expr: Any) -> bool:
        if not isinstance(expr, cst.Call):
            return False
        name = self.ctx.call_name(expr)
        if name not in AUTOCAST:
            return False
        enabled = self.ctx.argument(expr, AUTOCAST[name], "enabled")
        if enabled is None:
            return True
        return isinstance(enabled, cst.Name) and enabled.value == "True"
