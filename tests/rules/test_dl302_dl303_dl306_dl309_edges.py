"""Edge cases of DL302, DL303, DL306 and DL309 (facts about an exported forward, rules/conversion/_forward.py)."""

from __future__ import annotations

import textwrap

from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _lines(code: str, rule: str):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "case.py", RULESET, enabled={rule})
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return [f.line for f in found]


CORPUS_SHAPE = """
import torch
def sequence_mask(sequence_length, max_len=None):
    if max_len is None:
        max_len = int(sequence_length.max())
    seq_range = torch.arange(max_len, dtype=sequence_length.dtype)
    return seq_range.unsqueeze(0) < sequence_length.unsqueeze(1)
class LengthRegulator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(64, 32)
        self.dur = torch.nn.Linear(32, 1)
    def forward(self, tokens):
        h = self.emb(tokens)
        durations = torch.clamp(torch.round(torch.exp(self.dur(h)).squeeze(-1)), min=1).long()
        y_lengths = durations.sum(dim=1)
        return sequence_mask(y_lengths).unsqueeze(1).float()
model = LengthRegulator().eval()
torch.onnx.export(model, torch.randint(0, 64, (1, 100)), "m.onnx", input_names=["input"],
                  dynamic_axes={"input": {0: "batch", 1: "phonemes"}}{extra})
"""


def test_corpus_shape_module_helper_found():
    # the default exporter (dynamo, torch >= 2.9) keeps the value symbolic: only legacy freezes it
    assert _lines(CORPUS_SHAPE.replace("{extra}", ""), "DL303") == []
    assert _lines(CORPUS_SHAPE.replace("{extra}", ", dynamo=False"), "DL303") == [4]


def test_corpus_shape_silent_with_explicit_dynamo():
    # the dynamo exporter keeps int(t.max()) symbolic (measured: correct (2, 9) mask)
    assert _lines(CORPUS_SHAPE.replace("{extra}", ", dynamo=True"), "DL303") == []


def test_fixed_corpus_shape_clean():
    fixed = CORPUS_SHAPE.replace("int(sequence_length.max())", "sequence_length.max()").replace("{extra}", "")
    assert _lines(fixed, "DL303") == []


def test_self_export_method():
    code = """
    import torch
    class Net(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x
        def export(self, path):
            torch.jit.trace(self, torch.randn(2))
    """
    assert _lines(code, "DL302") == [4]


def test_class_not_exported_is_silent():
    code = """
    import torch
    class Net(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x + torch.randn_like(x)
            return -x
    model = Net()
    out = model(torch.randn(2))
    """
    assert _lines(code, "DL302") == []
    assert _lines(code, "DL306") == []


def test_shape_branch_is_not_dl302():
    code = """
    import torch
    class Net(torch.nn.Module):
        def forward(self, x):
            b = x.size(0)
            if b > 1 and x.ndim == 2:
                x = x[:1]
            return x
    torch.jit.trace(Net().eval(), torch.randn(2, 3))
    """
    assert _lines(code, "DL302") == []


def test_value_in_branch_reported_once():
    code = """
    import torch
    class Net(torch.nn.Module):
        def forward(self, x):
            if x.max().item() > 0:
                x = x * 2
            return x
    torch.jit.trace(Net().eval(), torch.randn(3))
    """
    assert _lines(code, "DL302") == [4]
    assert _lines(code, "DL303") == []  # the branch is DL302's


def test_optional_mask_truthiness_is_a_none_test():
    code = """
    import torch
    class Net(torch.nn.Module):
        def forward(self, x, mask=None):
            if mask:
                x = x * mask
            return x
    torch.jit.trace(Net().eval(), torch.randn(3))
    """
    assert _lines(code, "DL302") == []


def test_registered_buffer_flag():
    code = """
    import torch
    class ActNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("initialized", torch.tensor(0))
        def forward(self, x):
            if not self.initialized:
                self.initialized.fill_(1)
            return x
    torch.jit.trace(ActNorm().eval(), torch.randn(3))
    """
    assert _lines(code, "DL302") == [7]


def test_len_fix_and_static_onnx_silence():
    traced = """
    import torch
    class Net(torch.nn.Module):
        def forward(self, x):
            return x.view(len(x), -1)
    torch.jit.trace(Net().eval(), torch.randn(2, 3, 4))
    """
    assert _lines(traced, "DL303") == [4]
    static = traced.replace("torch.jit.trace(Net().eval(), torch.randn(2, 3, 4))",
                            'torch.onnx.export(Net().eval(), torch.randn(2, 3, 4), "m.onnx")')
    assert _lines(static, "DL303") == []


def test_dropout_with_training_false_or_zero_p():
    code = """
    import torch
    import torch.nn.functional as F
    class Net(torch.nn.Module):
        def forward(self, x):
            x = F.dropout(x, 0.0)
            x = F.dropout(x, p=0.3, training=False)
            return F.dropout(x, 0.3)
    torch.onnx.export(Net().eval(), torch.randn(2, 3), "n.onnx")
    """
    assert _lines(code, "DL306") == [7]


def test_dl309_default_off_and_python_index():
    from dllint.rules.conversion.dl309_masked_inplace_assign_in_exported_forward import (
        MaskedInplaceAssignInExportedForward,
    )

    assert MaskedInplaceAssignInExportedForward.default_enabled is False
    code = """
    import torch
    class Net(torch.nn.Module):
        def forward(self, x):
            y = x.clone()
            for i in range(3):
                y[i] = 0
            y[y > 1] = 1
            return y
    torch.onnx.export(Net().eval(), torch.randn(4, 3), "n.onnx")
    """
    assert _lines(code, "DL309") == [7]
