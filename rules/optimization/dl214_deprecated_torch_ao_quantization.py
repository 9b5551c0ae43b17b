from __future__ import annotations

from typing import Optional

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import (
    DEPRECATED_ENTRY_POINTS,
    DEPRECATED_SINCE,
    PT2E_REMOVED_IN,
    REMOVED_PT2E_MODULES,
    version_at_least,
)

MIGRATION = {
    "eager": "eager: quantize_ with a config",
    "fx": "FX: prepare_pt2e/convert_pt2e",
}


def _release(version: tuple) -> str:
    return ".".join(str(part) for part in version)


def _removed(module: str) -> Optional[str]:
    """The torchao module replacing a removed ``torch.ao.quantization`` PT2E module, if ``module`` is one."""
    for old, new in REMOVED_PT2E_MODULES.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old):]
    return None


class DeprecatedTorchAoQuantization(Rule):
    """A deprecated torch.ao.quantization entry point, or an import of its removed PT2E modules.

    Finds calls of `prepare`, `convert`, `quantize`, `quantize_dynamic`, `prepare_qat`,
    `quantize_qat` (eager) and `prepare_fx`, `prepare_qat_fx`, `convert_fx` (FX) from
    `torch.ao.quantization` or the legacy `torch.quantization` (any import or alias; `fuse_modules`
    and `fuse_fx` carry no deprecation and are not reported), when the target torch release
    (`target-versions`, else the project's pins) is 2.8 or newer or is unknown. Also imports of
    `torch.ao.quantization.quantize_pt2e`, `.quantizer` and `.pt2e` (and calls through them),
    which no longer exist from torch 2.11 on, when the target is 2.11 or newer or unknown.

    Why: from torch 2.8 (checked in the wheels: the 2.7.0 wheel has no decorator, 2.8.0 to 2.13.0
    have it) these functions are marked `@typing_extensions.deprecated` with "torch.ao.quantization
    is deprecated and will be removed in 2.10" and a migration path: eager users to torchao's
    `quantize_(model, <Config>)`, FX users to torchao's PT2E flow (`prepare_pt2e` /
    `convert_pt2e` on a `torch.export`-ed model). The warning is a DeprecationWarning, hidden
    unless raised from `__main__`, so most users never see it; code built on these functions gets
    no fixes and breaks on the release that removes them. The PT2E modules are already gone:
    present in the 2.10.0 wheel, absent from 2.11.0, so `import torch.ao.quantization.quantize_pt2e`
    raises ModuleNotFoundError in torch 2.11 to 2.13.

    How to fix: migrate to torchao (`from torchao.quantization import quantize_,
    Int8DynamicActivationInt8WeightConfig; quantize_(model, Int8DynamicActivationInt8WeightConfig())`
    for eager; `torchao.quantization.pt2e.quantize_pt2e.prepare_pt2e` / `convert_pt2e` for
    graph mode). For the removed imports the suggested fix rewrites the module path to
    `torchao.quantization.pt2e` (check the submodule exists there: the XNNPACK quantizer moved to
    ExecuTorch).

    Limits: projects that must run on torch before 2.8 should say so in `target-versions` (or pin
    torch) and the rule stays silent. Severity is informational in spirit; it is on by default
    because the removal breaks code.
    """

    code = "DL214"
    name = "deprecated-torch-ao-quantization"
    family = "optimization"
    message = (
        "torch.ao.quantization.<api> is deprecated (slated for removal); migrate to torchao: "
        "<eager: quantize_ with a config | FX: prepare_pt2e/convert_pt2e>"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="PyTorch deprecation of torch.ao.quantization (torch 2.8 to 2.13 wheels, measured)",
        category="deprecated / removed framework API: quantisation moved to torchao",
        links=(
            "https://github.com/pytorch/ao/issues/2259",
            "https://github.com/pytorch/ao/tree/main/torchao/quantization/pt2e",
            "https://docs.pytorch.org/ao/stable/quick_start.html",
        ),
    )
    triggers = ("quantiz",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
            """), "fuse_modules carries no deprecation"),
        Valid(dedent("""
            from torchao.quantization import quantize_, Int8DynamicActivationInt8WeightConfig
            quantize_(model, Int8DynamicActivationInt8WeightConfig())
            """), "torchao"),
        Valid(dedent("""
            from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, convert_pt2e
            prepared = prepare_pt2e(exported, quantizer)
            """), "torchao PT2E"),
        Valid(dedent("""
            import torch
            qconfig = torch.ao.quantization.get_default_qconfig("x86")
            """), "qconfig helpers are not decorated"),
        Valid(dedent("""
            def prepare(model):
                return model
            prepared = prepare(model)
            """), "a local function named prepare"),
        Valid(dedent("""
            from torch.ao.quantization.quantize_fx import fuse_fx
            fused = fuse_fx(model)
            """), "fuse_fx carries no deprecation"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
                """),
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                import torch
                torch.quantization.prepare(model, inplace=True)
                calibrate(model)
                torch.quantization.convert(model, inplace=True)
                """),
            count=2,
            note="legacy spelling",
        ),
        Invalid(
            dedent("""
                from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
                prepared = prepare_fx(model, mapping, example_inputs)
                quantized = convert_fx(prepared)
                """),
            count=2,
            note="FX",
        ),
        Invalid(
            dedent("""
                from torch.ao.quantization.quantize_pt2e import prepare_pt2e, convert_pt2e
                """),
            fixed=dedent("""
                from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, convert_pt2e
                """),
            unsafe=True,
            note="removed PT2E module",
        ),
        Invalid(
            dedent("""
                import torch.ao.quantization.quantizer.x86_inductor_quantizer as xiq
                from torch.ao.quantization import quantize_pt2e
                """),
            fixed=dedent("""
                import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
                from torchao.quantization.pt2e import quantize_pt2e
                """),
            count=2,
            unsafe=True,
            note="removed modules, import forms",
        ),
        Invalid(
            dedent("""
                import torch.quantization as tq
                qm = tq.quantize_qat(model, train_fn, [loader])
                """),
            note="alias",
        ),
        Invalid(
            dedent("""
                import torch
                m = torch.ao.quantization.quantize_pt2e.prepare_pt2e(exported, quantizer)
                """),
            note="a call through the removed module",
        ),
        Invalid(
            dedent("""
                from torch.ao.quantization.quantize_pt2e import prepare_pt2e
                m = prepare_pt2e(exported, quantizer)
                """),
            fixed=dedent("""
                from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
                m = prepare_pt2e(exported, quantizer)
                """),
            unsafe=True,
            note="reported once, at the import",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        callee = ctx.call_name(node)
        if callee is None:
            return
        entry = DEPRECATED_ENTRY_POINTS.get(callee)
        if entry is not None:
            if not version_at_least(ctx.target_version("torch"), DEPRECATED_SINCE):
                return
            kind, api = entry
            package = "torch.quantization" if callee.startswith("torch.quantization.") else "torch.ao.quantization"
            shown = f"{package}.quantize_fx.{api}" if kind == "fx" else f"{package}.{api}"
            self.report(
                node,
                f"{shown} is deprecated (since torch {_release(DEPRECATED_SINCE)}; slated for removal); "
                f"migrate to torchao: {MIGRATION[kind]}",
            )
            return
        module = callee.rsplit(".", 1)[0]
        if _removed(module) is None or not version_at_least(ctx.target_version("torch"), PT2E_REMOVED_IN):
            return
        base = node.func
        while isinstance(base, cst.Attribute):
            base = base.value
        bound = ctx.qualname(base) or ""
        if _removed(bound) is not None or _removed(bound.rsplit(".", 1)[0]) is not None:
            return  # reached through an import of the removed module, reported at the import
        self.report(node, self._removed_message(module))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = dotted_name(node.module) or ""
        if not version_at_least(self.ctx.target_version("torch"), PT2E_REMOVED_IN):
            return
        new = _removed(module)
        if new is not None:
            fix = Fix(f"Import from {new}", [(node.module, cst.parse_expression(new))], FixKind.UNSAFE)
            self.report(node, self._removed_message(module), fix)
            return
        if module != "torch.ao.quantization" or isinstance(node.names, cst.ImportStar):
            return
        names = [dotted_name(alias.name) or "" for alias in node.names]
        gone = [n for n in names if _removed(f"{module}.{n}") is not None]
        if not gone:
            return
        fix = None
        if len(gone) == len(names):
            fix = Fix(
                "Import from torchao.quantization.pt2e",
                [(node.module, cst.parse_expression("torchao.quantization.pt2e"))],
                FixKind.UNSAFE,
            )
        self.report(node, self._removed_message(f"{module}.{gone[0]}"), fix)

    def visit_Import(self, node: cst.Import) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            module = dotted_name(alias.name) or ""
            new = _removed(module)
            if new is None or not version_at_least(self.ctx.target_version("torch"), PT2E_REMOVED_IN):
                continue
            fix = None
            if alias.asname is not None:
                fix = Fix(f"Import {new}", [(alias.name, cst.parse_expression(new))], FixKind.UNSAFE)
            self.report(alias, self._removed_message(module), fix)

    @staticmethod
    def _removed_message(module: str) -> str:
        top = ".".join(module.split(".")[:4])
        return (
            f"{top} no longer exists (removed in torch {_release(PT2E_REMOVED_IN)}; ModuleNotFoundError in "
            f"2.11 to 2.13); import from torchao.quantization.pt2e"
        )
