from __future__ import annotations

from typing import Set

import libcst as cst

from dllint.rule import Evidence, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._forward import exports_by_class, forward_facts, note_export


class RandomOpInExportedForward(Rule):
    """A random op in the forward of a module exported to ONNX.

    Finds, in the `forward` of a class defined in the file and passed to `torch.onnx.export`
    (either exporter) or `torch.onnx.dynamo_export` (and in the `self.<method>(...)` helpers and
    module-level functions forward calls with tensors, one level): `torch.rand` / `randn` /
    `randint` / `*_like` / `normal` / `bernoulli` / `multinomial` / `poisson` / `randperm`, the
    in-place samplers `Tensor.normal_` / `uniform_` / `bernoulli_` / `exponential_` / `random_`,
    and `F.dropout`-family calls without `training=` (it defaults to True) or with `training=True`.

    Why it breaks: both torch 2.13 exporters emit ONNX `RandomNormalLike` / `RandomUniform(Like)`
    with no seed, and onnxruntime 1.32 replays the same sequence in every new session (measured:
    the first run of two sessions of an exported `x + torch.randn_like(x)` is identical; runs
    within one session differ), so each deployed process draws the same "random" noise. `F.dropout(x, p)` is a
    live Dropout in eager eval mode as well as in the graph.

    How to fix: gate the noise on `self.training` and export in eval mode, pass the noise in as an
    explicit input, or give `F.dropout` `training=self.training`.

    Limits: ops under `if self.training:` (or a ternary on it), `torch.jit.is_tracing()` /
    `torch.onnx.is_in_onnx_export()` guards are not reported. `torch.jit.trace` and
    `torch.export.export` keep sampling per call and are not reported. TensorFlow functions given
    to tf2onnx / the TFLite converter are not read.
    """

    code = "DL306"
    name = "random-op-in-exported-forward"
    family = "conversion"
    message = (
        "random op inside an exported forward; the converted model does not reproduce the source's sampling "
        "(onnxruntime replays the same samples in every new session of a torch export)"
    )
    fix = FixKind.NONE
    evidence = Evidence(
        study="(c) Jajal et al., interoperability failures of DL model converters (torch.onnx, tf2onnx)",
        category="Wrong model: random operators",
        links=(
            "https://github.com/pytorch/pytorch/issues/77845",
            "https://github.com/pytorch/pytorch/issues/83647",
            "https://github.com/onnx/tensorflow-onnx/issues/793",
            "https://onnx.ai/onnx/operators/onnx__RandomNormalLike.html",
        ),
    )
    triggers = ("export",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            class Noisy(torch.nn.Module):
                def forward(self, x):
                    if self.training:
                        x = x + 0.01 * torch.randn_like(x)
                    return x
            torch.onnx.export(Noisy().eval(), torch.randn(2, 3), "n.onnx")
            """), "noise only in training"),
        Valid(dedent("""
            import torch
            import torch.nn.functional as F
            class Net(torch.nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.1, training=self.training)
            torch.onnx.export(Net().eval(), torch.randn(2, 3), "n.onnx")
            """), "dropout follows the module mode"),
        Valid(dedent("""
            import torch
            class Noisy(torch.nn.Module):
                def forward(self, x, noise):
                    return x + 0.01 * noise
            torch.onnx.export(Noisy().eval(), (torch.randn(2, 3), torch.randn(2, 3)), "n.onnx")
            """), "noise passed in as an input"),
        Valid(dedent("""
            import torch
            class Noisy(torch.nn.Module):
                def forward(self, x):
                    return x + torch.randn_like(x)
            traced = torch.jit.trace(Noisy().eval(), torch.randn(2, 3))
            """), "a TorchScript trace keeps sampling"),
        Valid(dedent("""
            import torch
            class Noisy(torch.nn.Module):
                def forward(self, x):
                    return x + torch.randn_like(x) if self.training else x
            torch.onnx.export(Noisy().eval(), torch.randn(2, 3), "n.onnx", dynamo=False)
            """), "a training-only ternary"),
        Valid(dedent("""
            import torch
            class Plain(torch.nn.Module):
                def forward(self, x):
                    return x * 2
            class Noisy(torch.nn.Module):
                def forward(self, x):
                    return x + torch.randn_like(x)
            torch.onnx.export(Plain().eval(), torch.randn(2, 3), "p.onnx")
            """), "the class with noise is not the exported one"),
    )

    INVALID = (
        Invalid(dedent("""
            import torch
            class Noisy(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = torch.nn.Linear(3, 3)
                def forward(self, x):
                    return self.net(x + 0.01 * torch.randn_like(x))
            torch.onnx.export(Noisy().eval(), torch.randn(2, 3), "n.onnx")
            """), note="the catalogue's Bad example, dynamo exporter"),
        Invalid(dedent("""
            import torch
            import torch.nn.functional as F
            class Net(torch.nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.2)
            torch.onnx.export(Net().eval(), torch.randn(2, 3), "n.onnx", dynamo=False)
            """), note="F.dropout defaults to training=True; legacy exporter"),
        Invalid(dedent("""
            import torch
            class Vae(torch.nn.Module):
                def forward(self, mu, logvar):
                    return self.sample(mu, logvar)
                def sample(self, mu, logvar):
                    eps = torch.empty_like(mu).normal_()
                    return mu + eps * torch.exp(0.5 * logvar)
            model = Vae()
            model.eval()
            torch.onnx.export(model, (torch.zeros(1, 4), torch.zeros(1, 4)), "vae.onnx")
            """), note="an in-place sampler in a helper method"),
        Invalid(dedent("""
            import torch
            from torch import randn
            class Gen(torch.nn.Module):
                def forward(self, x):
                    z = randn(x.shape[0], 8)
                    return torch.cat([x, z], dim=1)
            torch.onnx.dynamo_export(Gen().eval(), torch.randn(2, 3))
            """), note="a from-import, dynamo_export"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        note_export(self.ctx, node)

    def leave_Module(self, node: cst.Module) -> None:
        done: Set[int] = set()
        for cls, found in exports_by_class(self.ctx):
            if not any(e.call.kind in ("onnx", "onnx-dynamo") for e in found):
                continue
            facts = forward_facts(self.ctx, cls)
            if facts is None:
                continue
            for fact in facts.facts:
                if fact.kind == "random" and not fact.guarded and id(fact.node) not in done:
                    done.add(id(fact.node))
                    self.report(fact.node)
