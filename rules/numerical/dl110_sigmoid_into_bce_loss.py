from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._losses import (
    LossCall,
    LossModelSummaries,
    callee,
    loss_call,
    producer_input,
    sigmoid_kind,
    strip_parens,
    value_origin,
)


class SigmoidIntoBceLoss(LossModelSummaries, Rule):
    """A sigmoid output passed to BCELoss / binary_cross_entropy.

    Finds `nn.BCELoss()(torch.sigmoid(x), y)`, `F.binary_cross_entropy(torch.sigmoid(x), y)` and
    `criterion(p, y)` where `criterion` is a name or `self` attribute bound once to
    `nn.BCELoss(...)` and `p` comes from a sigmoid (`torch.sigmoid`, `F.sigmoid`, `x.sigmoid()`,
    `nn.Sigmoid()`), followed through names assigned once, `self` attributes, shape-only
    methods (`.view`, `.squeeze`, `[...]`), one-return helpers, and models defined in the same
    file whose `forward` has a single return ending in a sigmoid, or an `nn.Sequential` whose
    last layer is `nn.Sigmoid()` (the usual GAN discriminator).  Tuple-returning models are
    followed through unpacking (`validity, label = D(x)`).

    Why it is a bug: the sigmoid rounds to exactly 0 or 1 in float32 once |x| is large
    (1 - sigmoid(x) is 0 from x of about 17), `BCELoss` then clamps its log at -100 and the
    gradient is exactly 0: a confidently wrong prediction stops learning (measured, torch 2.13:
    BCE(sigmoid(-200), 1) is 100 with gradient 0, where the logits form gives 200 with gradient
    -1).  The PyTorch docs for `BCEWithLogitsLoss` say it is "more numerically stable than using a
    plain Sigmoid followed by a BCELoss" (log-sum-exp trick).  CUDA autocast refuses
    `binary_cross_entropy` outright as unsafe.

    How to fix: drop the sigmoid and use `BCEWithLogitsLoss` / `binary_cross_entropy_with_logits`
    on the logits; keep the sigmoid for reporting probabilities.

    Fix: safe for direct nesting: `F.binary_cross_entropy(torch.sigmoid(x), y, **kw)` becomes
    `F.binary_cross_entropy_with_logits(x, y, **kw)` and `nn.BCELoss(**kw)(torch.sigmoid(x), y)`
    becomes `nn.BCEWithLogitsLoss(**kw)(x, y)` (`weight`, `reduction` and the legacy arguments
    have the same names and positions).  No automatic fix when the criterion is bound elsewhere
    or the sigmoid comes through a name or a model.

    Stays silent on `BCEWithLogitsLoss`, on inputs that are not traced to a sigmoid (a parameter,
    a model defined in another file, a name assigned twice), and on models whose `forward` has
    several returns.
    """

    code = "DL110"
    name = "sigmoid-into-bce-loss"
    family = "numerical"
    message = (
        "sigmoid followed by BCELoss is numerically unstable; use BCEWithLogitsLoss / "
        "binary_cross_entropy_with_logits on logits"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; GRIST benchmark",
        category="sigmoid then BCE: log of a saturated sigmoid",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html",
            "https://pytorch.org/docs/stable/generated/torch.nn.BCELoss.html",
        ),
    )
    triggers = ("sigmoid", "Sigmoid", "expit")

    VALID = (
        Valid(dedent("""
            import torch.nn.functional as F
            loss = F.binary_cross_entropy_with_logits(logits, y)
            probs = torch.sigmoid(logits)
            """), "already on logits; the sigmoid is for reporting"),
        Valid(dedent("""
            import torch
            from torch import nn
            loss = nn.BCEWithLogitsLoss()(torch.sigmoid(x), y)
            """), "not BCELoss (a different bug: sigmoid applied twice)"),
        Valid(dedent("""
            import torch.nn.functional as F
            def vae_loss(recon_x, x):
                return F.binary_cross_entropy(recon_x, x, reduction="sum")
            """), "input is a parameter: its origin is unknown"),
        Valid(dedent("""
            import torch
            from torch import nn
            criterion = nn.BCELoss()
            p = torch.sigmoid(x)
            p = p * mask
            loss = criterion(p, y)
            """), "the name has two assignments"),
        Valid(dedent("""
            import torch
            from torch import nn
            class D(nn.Module):
                def forward(self, x):
                    h = self.net(x)
                    if self.logits:
                        return h
                    return torch.sigmoid(h)
            d = D()
            loss = nn.BCELoss()(d(x), y)
            """), "forward has two returns"),
        Valid(dedent("""
            from torch import nn
            from mylib import MLP
            net = MLP(64, 32, 1, activation="sigmoid")
            loss = nn.BCELoss()(net(x), y)
            """), "an activation keyword of an unknown layer may apply to hidden layers only"),
        Valid(dedent("""
            import torch.nn.functional as F
            import torch
            loss = F.binary_cross_entropy(p, torch.sigmoid(teacher_logits))
            """), "a sigmoid in the target (second) argument"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                loss = F.binary_cross_entropy(torch.sigmoid(x), y, reduction="sum")
                """),
            fixed=dedent("""
                import torch
                import torch.nn.functional as F
                loss = F.binary_cross_entropy_with_logits(x, y, reduction="sum")
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                loss = nn.BCELoss(weight=w)(torch.sigmoid(model(x)), y)
                """),
            fixed=dedent("""
                import torch
                from torch import nn
                loss = nn.BCEWithLogitsLoss(weight=w)(model(x), y)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                adversarial_loss = torch.nn.BCELoss()
                class Discriminator(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.model = torch.nn.Sequential(torch.nn.Linear(784, 1), torch.nn.Sigmoid())
                    def forward(self, img):
                        validity = self.model(img.view(img.size(0), -1))
                        return validity
                discriminator = Discriminator()
                real_loss = adversarial_loss(discriminator(real_imgs), valid)
                """),
            note="GAN discriminator ending in nn.Sigmoid, criterion bound at module level",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(4, 1)
                        self.sigmoid = nn.Sigmoid()
                        self.criterion = nn.BCELoss()
                    def forward(self, x):
                        return self.sigmoid(self.fc(x))
                    def step(self, x, y):
                        out = self.forward(x)
                        return self.criterion(out.squeeze(1), y)
                """),
            note="a criterion attribute set in __init__, a one-return helper method",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.nn.functional import binary_cross_entropy
                p = x.sigmoid()
                loss = binary_cross_entropy(p, y)
                """),
            note="method sigmoid through a name: reported, no fix",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class D(nn.Module):
                    def forward(self, x):
                        h = self.body(x)
                        return torch.sigmoid(self.adv(h)), self.aux(h)
                d = D()
                validity, label = d(imgs)
                loss = nn.BCELoss()(validity, valid)
                """),
            note="a tuple-returning model, unpacked",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        loss = loss_call(ctx, node)
        if loss is None or loss.family != "bce" or loss.prediction is None:
            return
        origin = value_origin(ctx, loss.prediction, self.summaries)
        if origin is None or origin.kind != "sigmoid":
            return
        self.report(node, fix=self._fix(loss) if origin.direct else None)

    def _fix(self, loss: LossCall) -> Optional[Fix]:
        ctx = self.ctx
        node = loss.call
        direct = strip_parens(loss.prediction)
        kind = sigmoid_kind(ctx, direct)
        if kind is None or loss.how == "bound":
            return None
        inner: Any = producer_input(ctx, direct, kind)
        if inner is None or (kind == "function" and (len(direct.args) != 1 or direct.args[0].keyword is not None
                                                     and direct.args[0].keyword.value != "input")):
            return None
        args = [a.with_changes(value=inner) if a.value is loss.prediction else a for a in node.args]
        imports: tuple = ()
        if loss.how == "function":
            new_func, imports = callee(ctx, node.func, "torch.nn.functional.binary_cross_entropy_with_logits")
            new = node.with_changes(func=new_func, args=args)
        else:
            constructor = node.func
            assert isinstance(constructor, cst.Call)
            target = (loss.name or "torch.nn.BCELoss").replace("BCELoss", "BCEWithLogitsLoss")
            new_cls, imports = callee(ctx, constructor.func, target)
            new = node.with_changes(func=constructor.with_changes(func=new_cls), args=args)
        return Fix("Use the logits form of the loss", [(node, new)], imports=imports)
