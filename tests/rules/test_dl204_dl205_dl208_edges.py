"""Edge cases of DL204 (eager-quant-missing-quantstub), DL205 (eager-quant-float-arithmetic),
DL208 (prune-reparam-not-removed) and the DL206 module table, beyond the examples the rules carry."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _found(code: str, rule: str):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "case.py", RULESET, enabled={rule})
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _lines(code: str, rule: str):
    return [f.line for f in _found(code, rule)[2]]


def _fixed(code: str, rule: str) -> str:
    _, result, found = _found(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, True)).code


NET = """
import torch
import torch.nn as nn
import torchvision
from torch.ao.quantization import QuantStub, DeQuantStub, QuantWrapper, prepare, convert, get_default_qconfig

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x)

class Stubbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.body = Net()
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(self.body(self.quant(x)))
"""

# ---------------------------------------------------------------------- DL204


@pytest.mark.parametrize(
    "use",
    [
        "model = Net()\nmodel.eval()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model, inplace=True)",
        "model = Net().eval().to('cpu')\nmodel.qconfig = get_default_qconfig('x86')\np = prepare(model)",
        "def main():\n    m = Net()\n    m = m.eval()\n    m.qconfig = get_default_qconfig('x86')\n    p = prepare(m)",
        "model = torchvision.models.resnet18()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model, inplace=True)",
        "def build():\n    return Net()\nmodel = build()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model, inplace=True)",
        "model = Net()\nmodel.qconfig = get_default_qconfig('x86')\nq = torch.quantization.prepare_qat(model.train())",
    ],
)
def test_dl204_flags_models_without_stubs(use):
    assert len(_lines(NET + use, "DL204")) == 1


@pytest.mark.parametrize(
    "use",
    [
        "model = Stubbed().eval()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model, inplace=True)",
        "model = QuantWrapper(Net())\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model, inplace=True)",
        "model = Net()\nwrapped = QuantWrapper(model)\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model, inplace=True)",
        "model = nn.Sequential(QuantStub(), Net(), DeQuantStub())\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model)",
        "model = Net() if a else Stubbed()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model)",
        "model = Net()\nif flag:\n    model = Stubbed()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model)",
        "model = torchvision.models.quantization.resnet18()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model)",
        "model = Net()\nprepare(model, inplace=True)",  # "qconfig" nowhere: prepare is a no-op
        "def run(model):\n    model.qconfig = get_default_qconfig('x86')\n    prepare(model, inplace=True)",
        "model = load_from_hub()\nmodel.qconfig = get_default_qconfig('x86')\nprepare(model, inplace=True)",
    ],
)
def test_dl204_silent(use):
    assert _lines(NET + use, "DL204") == []


def test_dl204_unknown_base_class_is_silent():
    code = """
    import torch
    import torchvision
    class Mine(torchvision.models.ResNet):
        pass
    model = Mine()
    model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    torch.ao.quantization.prepare(model, inplace=True)
    """
    assert _lines(code, "DL204") == []


def test_dl204_child_class_with_stub_counts():
    code = NET + """
class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Stubbed()

    def forward(self, x):
        return self.inner(x)

model = Outer()
model.qconfig = get_default_qconfig('x86')
prepare(model, inplace=True)
"""
    assert _lines(code, "DL204") == []


def test_dl204_fix_uses_the_call_spelling():
    code = NET + "model = Net()\nmodel.qconfig = get_default_qconfig('x86')\nprepared = prepare(model)\n"
    fixed = _fixed(code, "DL204")
    assert "prepared = prepare(QuantWrapper(model))" in fixed


def test_dl204_no_fix_when_inplace_by_position():
    code = NET + "model = Net()\nmodel.qconfig = get_default_qconfig('x86')\nprepared = prepare(model, True)\n"
    _, _, found = _found(code, "DL204")
    assert len(found) == 1 and found[0].fix is None


def test_dl204_unused_stub_reported_and_used_elsewhere_silent():
    unused = """
    import torch.nn as nn
    import torch.quantization as tq
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = tq.QuantStub()
            self.fc = nn.Linear(2, 2)
        def forward(self, x):
            return self.fc(x)
    """
    assert _lines(unused, "DL204") == [6]
    used = unused + "\nm = M()\ny = m.fc(m.q(x))\n"
    assert _lines(used, "DL204") == []


# ---------------------------------------------------------------------- DL205

STUBS = """
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import QuantStub, DeQuantStub

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)
        self.ff = torch.ao.nn.quantized.FloatFunctional()
        self.dequant = DeQuantStub()

    def forward(self, x, scale: float = 1.0):
"""


@pytest.mark.parametrize(
    "body",
    [
        "x = self.quant(x)\n        y = self.a(x)\n        return self.dequant(x + y)",
        "x = self.quant(x)\n        y = F.relu(self.a(x))\n        y += x\n        return self.dequant(y)",
        "x = self.quant(x)\n        return self.dequant(torch.add(self.a(x), self.b(x)))",
        "x = self.quant(x)\n        y = self.a(x).flatten(1)\n        return self.dequant(y * 2)",
        "x = self.quant(x)\n        y = self.a(x)\n        return self.dequant(y.mul(self.b(x)))",
        "x = self.quant(x)\n        h = self.a(x)\n        return self.dequant(h @ h.transpose(1, 2))",
        "x = self.quant(x)\n        y, z = self.a(x), self.b(x)\n        return self.dequant(y - z)",
    ],
)
def test_dl205_flags(body):
    assert len(_lines(STUBS + "        " + body + "\n", "DL205")) == 1


@pytest.mark.parametrize(
    "body",
    [
        "y = x * scale\n        x = self.quant(y)\n        return self.dequant(self.a(x))",
        "x = self.quant(x)\n        y = self.dequant(self.a(x))\n        return y + x.size(0)",
        "x = self.quant(x)\n        return self.dequant(self.ff.add(self.a(x), self.b(x)))",
        "x = self.quant(x)\n        n = x.shape[1] * 2\n        return self.dequant(self.a(x)), n",
        "x = self.quant(x)\n        return self.dequant(torch.cat([self.a(x), self.b(x)], 1))",
        "x = self.quant(x)\n        y = self.dequant(self.a(x))\n        z = self.dequant(self.b(x))\n        return y + z",
    ],
)
def test_dl205_silent(body):
    assert _lines(STUBS + "        " + body + "\n", "DL205") == []


def test_dl205_block_after_dequant_is_not_quantised():
    code = """
    import torch.nn as nn
    from torch.ao.quantization import QuantStub, DeQuantStub

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return x + self.fc(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = QuantStub()
            self.body = nn.Linear(8, 8)
            self.dequant = DeQuantStub()
            self.head = Head()

        def forward(self, x):
            x = self.dequant(self.body(self.quant(x)))
            return self.head(x)
    """
    assert _lines(code, "DL205") == []


def test_dl205_block_inside_the_region_is_flagged():
    code = """
    import torch.nn as nn
    from torch.ao.quantization import QuantStub, DeQuantStub

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x, mask=None):
            return x + self.fc(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = QuantStub()
            self.blocks = nn.ModuleList([Block() for _ in range(2)])
            self.dequant = DeQuantStub()

        def forward(self, x):
            x = self.quant(x)
            for blk in self.blocks:
                x = blk(x)
            return self.dequant(x)
    """
    assert _lines(code, "DL205") == [10]


def test_dl205_tutorial_shape_inverted_residual_is_silent():
    code = """
    import torch.nn as nn
    from torch.quantization import QuantStub, DeQuantStub

    class InvertedResidual(nn.Module):
        def __init__(self, inp, oup, use_res):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(inp, oup, 1))
            self.use_res_connect = use_res
            self.skip_add = nn.quantized.FloatFunctional()

        def forward(self, x):
            if self.use_res_connect:
                return self.skip_add.add(x, self.conv(x))
            else:
                return self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            block = InvertedResidual
            self.features = nn.Sequential(block(8, 8, True))
            self.quant = QuantStub()
            self.dequant = DeQuantStub()
            self.classifier = nn.Linear(8, 10)

        def forward(self, x):
            x = self.quant(x)
            x = self.features(x)
            x = x.mean([2, 3])
            x = self.classifier(x)
            x = self.dequant(x)
            return x
    """
    assert _lines(code, "DL205") == []


# ---------------------------------------------------------------------- DL208


@pytest.mark.parametrize(
    "code",
    [
        "prune.l1_unstructured(model.fc, 'weight', 0.5)\nscripted = torch.jit.script(model)",
        "prune.custom_from_mask(model.fc, name='weight', mask=m)\ntorch.export.export(model, (x,))",
        "def export_onnx(model, x):\n    prune.l1_unstructured(model.fc, 'weight', 0.5)\n    torch.save(model, 'final.pt')",
        "def finalize(model):\n    prune.random_structured(model.conv, 'weight', 0.5, dim=0)\n    torch.save({'sd': model.state_dict()}, 'f.pt')",
    ],
)
def test_dl208_flags(code):
    assert len(_lines("import torch\nimport torch.nn.utils.prune as prune\n" + code + "\n", "DL208")) == 1


@pytest.mark.parametrize(
    "code",
    [
        "prune.l1_unstructured(model.fc, 'weight', 0.5)\ntorch.save(model.state_dict(), 'ckpt.pt')",
        "def train_epoch(model):\n    prune.l1_unstructured(model.fc, 'weight', 0.5)\n    torch.save(model, 'ckpt.pt')",
        "prune.l1_unstructured(model.fc, 'weight', 0.5)\nfor m in model.modules():\n    prune.remove(m, 'weight')\n"
        "torch.onnx.export(model, x, 'm.onnx')",
        "prune.l1_unstructured(model.fc, 'weight', 0.5)\nremove_pruning(model)\ntorch.onnx.export(model, x, 'm.onnx')",
        "prune.l1_unstructured(a.fc, 'weight', 0.5)\ntorch.onnx.export(b, x, 'm.onnx')",
    ],
)
def test_dl208_silent(code):
    assert _lines("import torch\nimport torch.nn.utils.prune as prune\n" + code + "\n", "DL208") == []


# ---------------------------------------------------------------------- DL206 table

@pytest.mark.parametrize(
    "cls",
    ["nn.RNN", "nn.LayerNorm", "nn.GroupNorm", "nn.InstanceNorm2d", "nn.SyncBatchNorm", "nn.LazyConv2d",
     "nn.LazyConvTranspose1d", "nn.LazyBatchNorm1d", "nn.Bilinear", "torch.nn.modules.batchnorm.BatchNorm3d",
     "torch.nn.modules.conv.ConvTranspose3d", "torch.nn.modules.rnn.RNN"],
)
def test_dl206_float_only_classes(cls):
    code = f"import torch\nimport torch.nn as nn\nq = torch.quantization.quantize_dynamic(m, {{{cls}, nn.Linear}})\n"
    assert _lines(code, "DL206") == [3]


@pytest.mark.parametrize(
    "cls",
    ["nn.Linear", "nn.LSTM", "nn.GRU", "nn.RNNCell", "nn.LSTMCell", "nn.GRUCell", "nn.MultiheadAttention",
     "nn.TransformerEncoderLayer", "nn.Embedding", "nn.EmbeddingBag"],
)
def test_dl206_quantised_or_container_classes(cls):
    code = f"import torch\nimport torch.nn as nn\nq = torch.ao.quantization.quantize_dynamic(m, {{{cls}}})\n"
    assert _lines(code, "DL206") == []
