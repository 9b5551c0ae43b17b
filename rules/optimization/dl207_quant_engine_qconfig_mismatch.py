from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.optimization._quant import QCONFIG_GETTERS

#: Backends whose qconfigs use reduce_range (7-bit activations) and those whose qconfigs do not.
#: fbgemm / x86 kernels need reduce_range; a qnnpack / onednn qconfig run there saturates.
REDUCED = frozenset({"fbgemm", "x86"})
FULL = frozenset({"qnnpack", "onednn"})
#: The backend of a qconfig getter called without one (torch >= 2.0: "x86"; "fbgemm" before).
DEFAULT_BACKEND = "x86"

ENGINE = "torch.backends.quantized.engine"
MOBILE_EXPORT = frozenset({"torch.utils.mobile_optimizer.optimize_for_mobile"})


def _family(backend: str) -> Optional[str]:
    if backend in REDUCED:
        return "reduced"
    if backend in FULL:
        return "full"
    return None


class QuantEngineQconfigMismatch(Rule):
    """A qconfig made for one quantised backend while the engine (or a mobile export) is another.

    Finds, in one function (or a module's top-level code), `get_default_qconfig(b)` /
    `get_default_qat_qconfig(b)` / `get_default_qconfig_mapping(b)` /
    `get_default_qat_qconfig_mapping(b)` (both `torch.ao.quantization` and `torch.quantization`
    spellings) whose backend `b` (a string literal or a name bound once to one; no argument means
    "x86") and the string assigned to `torch.backends.quantized.engine` in the same scope fall on
    the two sides of the reduce_range divide: `fbgemm` / `x86` on one side, `qnnpack` / `onednn`
    on the other. Also an fbgemm / x86 qconfig in a scope that exports for mobile
    (`optimize_for_mobile`, `_save_for_lite_interpreter`), where qnnpack runs the model.

    Why it is a bug: fbgemm and x86 qconfigs quantise activations to 7 bits (`reduce_range=True`)
    because their kernels can overflow with full 8-bit ranges; qnnpack / onednn qconfigs use the
    full range. A model calibrated with a qnnpack qconfig and run on the fbgemm / x86 engine
    saturates and returns wrong numbers without an error (maintainer in pytorch/pytorch#70512);
    the other way round, the mobile runtime gets per-channel reduced-range parameters meant for
    another kernel library.

    How to fix: use the same backend string for the qconfig and the engine (`"x86"` on servers,
    `"qnnpack"` on ARM / mobile). The suggested fix rewrites the qconfig's string to the engine's.

    Limits: only literals in the same scope are compared; an engine chosen per deployment in
    another file or from a variable is unknown, and a scope that sets the engine to strings of
    both families is left alone. `fbgemm` vs `x86` and `qnnpack` vs `onednn` are not reported
    (same reduce_range setting). torchao PT2E quantizers are not tied to this engine setting.
    """

    code = "DL207"
    name = "quant-engine-qconfig-mismatch"
    family = "optimization"
    message = (
        "qconfig backend differs from torch.backends.quantized.engine; results can be numerically wrong"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="quantisation API misuse: qconfig and quantised engine for different backends (silent)",
        links=(
            "https://github.com/pytorch/pytorch/issues/70512",
            "https://github.com/pytorch/pytorch/issues/46749",
            "https://github.com/pytorch/pytorch/issues/44939",
        ),
    )
    triggers = ("get_default_q",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            backend = "qnnpack"
            model.qconfig = torch.ao.quantization.get_default_qconfig(backend)
            torch.backends.quantized.engine = backend
            """), "the same backend"),
        Valid(dedent("""
            import torch
            model.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
            torch.backends.quantized.engine = "x86"
            """), "fbgemm and x86 both use reduce_range"),
        Valid(dedent("""
            import torch
            model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
            torch.backends.quantized.engine = engine_for(device)
            """), "engine from a call: unknown"),
        Valid(dedent("""
            import torch
            torch.backends.quantized.engine = "fbgemm"

            def mobile(model):
                model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
            """), "different scopes"),
        Valid(dedent("""
            import torch
            if arm:
                torch.backends.quantized.engine = "qnnpack"
            else:
                torch.backends.quantized.engine = "x86"
            model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
            """), "engines of both families in the scope"),
        Valid(dedent("""
            import torch
            from torch.utils.mobile_optimizer import optimize_for_mobile
            model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
            torch.backends.quantized.engine = "qnnpack"
            optimize_for_mobile(torch.jit.script(model))._save_for_lite_interpreter("m.ptl")
            """), "mobile export with a qnnpack qconfig"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
                torch.backends.quantized.engine = "fbgemm"
                """),
            fixed=dedent("""
                import torch
                model.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
                torch.backends.quantized.engine = "fbgemm"
                """),
            unsafe=True,
            note="the catalogue's Bad example",
        ),
        Invalid(
            dedent("""
                import torch

                def prepare_for_phone(model):
                    torch.backends.quantized.engine = 'qnnpack'
                    model.qconfig = torch.quantization.get_default_qat_qconfig('fbgemm')
                    torch.quantization.prepare_qat(model, inplace=True)
                """),
            fixed=dedent("""
                import torch

                def prepare_for_phone(model):
                    torch.backends.quantized.engine = 'qnnpack'
                    model.qconfig = torch.quantization.get_default_qat_qconfig('qnnpack')
                    torch.quantization.prepare_qat(model, inplace=True)
                """),
            unsafe=True,
            note="legacy spelling, QAT qconfig",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.ao.quantization import get_default_qconfig_mapping
                ENGINE = "qnnpack"
                torch.backends.quantized.engine = ENGINE
                mapping = get_default_qconfig_mapping()
                """),
            note="FX mapping with the default backend (x86)",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.utils.mobile_optimizer import optimize_for_mobile
                model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
                scripted = torch.jit.script(model)
                optimize_for_mobile(scripted)._save_for_lite_interpreter("model.ptl")
                """),
            fixed=dedent("""
                import torch
                from torch.utils.mobile_optimizer import optimize_for_mobile
                model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
                scripted = torch.jit.script(model)
                optimize_for_mobile(scripted)._save_for_lite_interpreter("model.ptl")
                """),
            unsafe=True,
            note="x86 qconfig exported for mobile",
        ),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        #: id(scope node) -> facts: qconfig calls, engine strings, unknown engine, mobile export
        self._scopes: Dict[int, Dict[str, Any]] = {}

    def _facts(self) -> Dict[str, Any]:
        scope = self.ctx.function() or self.ctx.module
        return self._scopes.setdefault(
            id(scope), {"qconfigs": [], "engines": [], "unknown": False, "mobile": False}
        )

    def _string(self, node: Any) -> Optional[Tuple[str, Optional[cst.SimpleString]]]:
        """(value, the literal node when it is written in place) of a string literal or a name
        bound once to one."""
        literal = None
        if isinstance(node, cst.Name):
            node = self.ctx.assigned_value(node)
        else:
            literal = node
        if isinstance(node, cst.SimpleString):
            value = node.evaluated_value
            if isinstance(value, str):
                return value.lower(), literal if isinstance(literal, cst.SimpleString) else None
        return None

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        callee = ctx.call_name(node)
        if callee in QCONFIG_GETTERS:
            backend = ctx.argument(node, 0, "backend")
            if backend is None:
                if not ctx.has_star_args(node) and not node.args:
                    self._facts()["qconfigs"].append((node, DEFAULT_BACKEND, None))
                return
            found = self._string(backend)
            if found is not None:
                self._facts()["qconfigs"].append((node, found[0], found[1]))
        elif callee in MOBILE_EXPORT or (
            isinstance(node.func, cst.Attribute) and node.func.attr.value == "_save_for_lite_interpreter"
        ):
            self._facts()["mobile"] = True

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if self.ctx.qualname(target.target) == ENGINE:
                found = self._string(node.value)
                facts = self._facts()
                if found is None:
                    facts["unknown"] = True
                else:
                    facts["engines"].append(found[0])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._flush(node)

    def leave_Module(self, node: cst.Module) -> None:
        self._flush(node)

    def _flush(self, scope: Any) -> None:
        facts = self._scopes.pop(id(scope), None)
        if not facts or facts["unknown"] or not facts["qconfigs"]:
            return
        engines: List[str] = facts["engines"]
        families = {_family(e) for e in engines}
        if None in families or len(families) > 1:
            return
        if families:
            engine_family = families.pop()
            engine = engines[0]
            where = f"torch.backends.quantized.engine ({engine})"
        elif facts["mobile"]:
            engine_family, engine, where = "full", "qnnpack", "the mobile runtime (qnnpack) this scope exports for"
        else:
            return
        for call, backend, literal in facts["qconfigs"]:
            family = _family(backend)
            if family is None or family == engine_family:
                continue
            fix = None
            if literal is not None:
                quote = literal.prefix + literal.quote
                new = literal.with_changes(value=f"{quote}{engine}{literal.quote}")
                fix = Fix(f'Use the "{engine}" qconfig', [(literal, new)], FixKind.UNSAFE)
            self.report(
                call,
                f"qconfig backend ({backend}) differs from {where}; results can be numerically wrong",
                fix,
            )
