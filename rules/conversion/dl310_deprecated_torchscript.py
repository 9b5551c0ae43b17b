from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._pins import version as pinned_version

#: TorchScript entry points that warn, and the first torch release known to warn for each.
#: torch.jit.trace / script / script_method / save / load (and trace_module, which warns as
#: "torch.jit.trace_method") warn from 2.10 on: projects saw the warnings on torch 2.10.0 (DeepSpeed
#: #7840, lance #5762, fickling #254); freeze / optimize_for_inference are only measured in 2.13.
DEPRECATED: Dict[str, Tuple[int, int]] = {
    "torch.jit.trace": (2, 10),
    "torch.jit.trace_module": (2, 10),
    "torch.jit.script": (2, 10),
    "torch.jit.script_method": (2, 10),
    "torch.jit.save": (2, 10),
    "torch.jit.load": (2, 10),
    "torch.jit.freeze": (2, 13),
    "torch.jit.optimize_for_inference": (2, 13),
}

#: What each API is replaced by.
REPLACEMENT = {
    "save": "torch.export (torch.export.save)",
    "load": "torch.export (torch.export.load)",
    "freeze": "torch.compile",
    "optimize_for_inference": "torch.compile",
}


def _at_least(version: Optional[Tuple[int, ...]], since: Tuple[int, ...]) -> bool:
    return version is None or tuple(version[:2]) >= since


class DeprecatedTorchscript(Rule):
    """A TorchScript API (torch.jit.trace / script / save / load ...) that torch deprecates.

    Finds calls of `torch.jit.trace`, `torch.jit.trace_module`, `torch.jit.script` (also as a bare
    decorator `@torch.jit.script`), `torch.jit.script_method`, `torch.jit.save` and `torch.jit.load`
    (any import or alias) when the target torch release (`target-versions`, else the project's
    pins; unknown = newest) is 2.10 or newer, and `torch.jit.freeze` /
    `torch.jit.optimize_for_inference` when it is 2.13 or newer or unknown.

    Why: in the torch 2.13 wheel each of these calls warns on every use
    (`torch/jit/_trace.py`, `_script.py`, `_serialization.py`, `_freeze.py`):
    "`torch.jit.trace` is deprecated. Please switch to `torch.compile` or `torch.export`."
    (`torch.jit.save` / `load`: "Please switch to `torch.export`."; `trace_module` warns as
    "`torch.jit.trace_method` is deprecated"); on Python 3.14+ the text is "`torch.jit.trace` is not
    supported in Python 3.14+ and may break". The warning is a DeprecationWarning, hidden unless
    raised from `__main__` or under a test runner, so most users never see it. The runtime
    warnings appeared with torch 2.10 (projects reported them on 2.10.0: DeepSpeed #7840, lance
    #5762); the docs had marked TorchScript deprecated from 2.9. TorchScript gets no fixes, and
    every TorchScript-based path is affected: tracing (DL301-DL303), the legacy ONNX exporter
    (DL311), the mobile lite-interpreter path.

    How to fix: `torch.export.export(model.eval(), (example,))` (and `torch.export.save` / `load`)
    for a deployable graph, or `torch.compile(model)` where the goal is speed. No autofix: export
    needs example inputs and dynamic-shape specs, and data-dependent control flow must be rewritten
    first (DL302).

    Limits: projects that must run on an older torch should say so in `target-versions` (or pin
    torch) and the rule stays silent. Pins outside the pin files count too (`_pins.py`): the file's
    own `pip install torch==1.8.1` (a notebook cell, an `os.system` line) and a project Dockerfile
    (`Dockerfile`, `docker/*.Dockerfile`) that installs `torch==X` below the release. `torch.jit.load` of an artefact produced elsewhere is still
    reported: the loader itself is deprecated. Helpers that carry no warning
    (`torch.jit.is_scripting`, `ignore`, `unused`, `export`, `annotate`, `script_if_tracing`) are
    not reported. Informational in spirit.
    """

    code = "DL310"
    name = "deprecated-torchscript"
    family = "conversion"
    message = "torch.jit.<api> (TorchScript) is deprecated; switch to torch.export (export) or torch.compile (speed)"
    evidence = Evidence(
        study="PyTorch's own deprecation warnings (torch 2.13 wheel, measured)",
        category="deprecated framework API: TorchScript",
        links=(
            "https://docs.pytorch.org/docs/stable/jit.html",
            "https://github.com/deepspeedai/DeepSpeed/pull/7840",
            "https://github.com/lance-format/lance/issues/5762",
            "https://github.com/trailofbits/fickling/pull/254",
        ),
    )
    triggers = ("jit",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            ep = torch.export.export(model.eval(), (example,))
            torch.export.save(ep, "m.pt2")
            """), "torch.export"),
        Valid(dedent("""
            import torch
            fast = torch.compile(model)
            """), "torch.compile"),
        Valid(dedent("""
            import torch
            if torch.jit.is_scripting():
                pass
            """), "is_scripting carries no warning"),
        Valid(dedent("""
            import torch
            class Net(torch.nn.Module):
                @torch.jit.ignore
                def helper(self, x):
                    return x
                @torch.jit.unused
                def other(self, x):
                    return x
            """), "ignore / unused carry no warning"),
        Valid(dedent("""
            import torch
            state = torch.load("ckpt.pt", weights_only=True)
            torch.save(model.state_dict(), "m.pt")
            """), "torch.load / torch.save are not TorchScript"),
        Valid(dedent("""
            import jit
            m = jit.trace(model, x)
            """), "some other package named jit"),
        Valid(dedent("""
            import os
            import torch
            os.system("pip install torch==1.8.1 torchvision==0.9.1")
            torch.jit.save(torch.jit.script(model), "m.pt")
            """), "the file installs a torch release that predates the deprecation"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                ts = torch.jit.trace(model.eval(), example)
                torch.jit.save(ts, "m.pt")
                """),
            count=2,
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                import torch

                @torch.jit.script
                def gelu(x):
                    return x * 0.5 * (1.0 + torch.erf(x / 1.41421))
                """),
            note="bare decorator",
        ),
        Invalid(
            dedent("""
                from torch import jit
                scripted = jit.script(model)
                loaded = jit.load("m.pt", map_location="cpu")
                """),
            count=2,
            note="through `from torch import jit`",
        ),
        Invalid(
            dedent("""
                import torch
                traced = torch.jit.trace_module(model, {"forward": example})
                frozen = torch.jit.freeze(torch.jit.script(model.eval()))
                """),
            count=3,
            note="trace_module, freeze and script",
        ),
        Invalid(
            dedent("""
                import torch
                class Net(torch.jit.ScriptModule):
                    @torch.jit.script_method
                    def forward(self, x):
                        return x + 1
                """),
            note="script_method decorator",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        if name in DEPRECATED:
            self._check(node, name)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        decorator = node.decorator
        if isinstance(decorator, cst.Call):
            return  # seen by visit_Call
        name = self.ctx.qualname(decorator)
        if name in DEPRECATED:
            self._check(decorator, name)

    def _check(self, node: Any, name: str) -> None:
        if not _at_least(pinned_version(self.ctx, "torch"), DEPRECATED[name]):
            return
        api = name.rsplit(".", 1)[1]
        replacement = REPLACEMENT.get(api, "torch.export (export) or torch.compile (speed)")
        python = self.ctx.target_version("python")
        if python is not None and tuple(python[:2]) >= (3, 14):
            message = (
                f"torch.jit.{api} (TorchScript) is not supported in Python 3.14+ and may break "
                f"(deprecated); switch to {replacement}"
            )
        else:
            message = f"torch.jit.{api} (TorchScript) is deprecated; switch to {replacement}"
        self.report(node, message)
