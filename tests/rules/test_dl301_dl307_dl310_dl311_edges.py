"""Edge cases beyond the examples: DL301 (trace-in-train-mode), DL307 (export-under-autocast),
DL310 (deprecated-torchscript) and DL311 (legacy-onnx-exporter)."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes, versions
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules
from dllint.rule import FixKind

RULESET = RuleSet(all_rules())


@pytest.fixture(autouse=True)
def _fresh_version_cache():
    versions._cache.clear()
    yield
    versions._cache.clear()


def _lint(code: str, rule: str, target=None):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "<string>", RULESET, enabled={rule}, target_versions=target)
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _lines(code: str, rule: str, target=None):
    return [f.line for f in _lint(code, rule, target)[2]]


def _fixed(code: str, rule: str, unsafe: bool = False) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, unsafe)).code


# ---------------------------------------------------------------------- DL301

DROPOUT_NET = """
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.drop(self.fc(x))

"""


@pytest.mark.parametrize(
    "call",
    [
        "torch.jit.trace(model, x)",
        "torch.jit.trace_module(model, {'forward': x})",
        "torch.export.export(model, (x,))",
        "torch.onnx.export(model, (x,), 'm.onnx')",
        "torch.onnx.export(model, (x,), 'm.onnx', dynamo=True)",
        "torch.onnx.export(model, (x,), 'm.onnx', dynamo=False, training=torch.onnx.TrainingMode.PRESERVE)",
        "torch.onnx.export(model, (x,), 'm.onnx', dynamo=False, training=torch.onnx.TrainingMode.TRAINING)",
    ],
)
def test_dl301_entry_points_in_train_mode(call):
    assert _lines(DROPOUT_NET + f"model = Net()\n{call}\n", "DL301") == [14]


@pytest.mark.parametrize(
    "call",
    [
        "torch.onnx.export(model, (x,), 'm.onnx', dynamo=False)",
        "torch.onnx.export(model, (x,), 'm.onnx', dynamo=False, training=torch.onnx.TrainingMode.EVAL)",
        "torch.jit.script(model)",
        "torch.export.export_for_training(model, (x,))",
        "torch.onnx.export(model, (x,), 'm.onnx', dynamo=use_dynamo)",
    ],
)
def test_dl301_entry_points_that_do_not_record_the_mode(call):
    assert _lines(DROPOUT_NET + f"model = Net()\n{call}\n", "DL301") == []


@pytest.mark.parametrize(
    "setup",
    [
        "model = Net()\nmodel.eval()",
        "model = Net().eval()",
        "model = Net()\nmodel.train(False)",
        "model = Net()\nmodel.train()\nmodel.eval()",
        "model = Net()\nsetup_for_export(model)",
        "model = torch.load('m.pt', weights_only=False)",
    ],
)
def test_dl301_mode_eval_or_unknown(setup):
    assert _lines(DROPOUT_NET + setup + "\ntorch.jit.trace(model, x)\n", "DL301") == []


def test_dl301_explicit_train_after_eval():
    code = DROPOUT_NET + "model = Net().eval()\nmodel.train()\ntorch.export.export(model, (x,))\n"
    assert _lines(code, "DL301") == [15]


def test_dl301_legacy_target_torch_is_silent_for_default_onnx_export():
    code = DROPOUT_NET + "model = Net()\ntorch.onnx.export(model, (x,), 'm.onnx')\n"
    assert _lines(code, "DL301", {"torch": "2.8"}) == []
    assert _lines(code, "DL301", {"torch": "2.9"}) == [14]


@pytest.mark.parametrize(
    "body, expected",
    [
        ("self.fc = nn.Linear(4, 4)", False),
        ("self.fc = nn.Linear(4, 4)\n        self.bn = nn.BatchNorm1d(4)", True),
        ("self.block = Block()", True),  # Block (below) holds a Dropout
        ("self.encoder = ImportedEncoder()", True),  # unknown submodule: warned
        ("self.fc = nn.Sequential(nn.Linear(4, 4), nn.ReLU())", False),
    ],
)
def test_dl301_reads_the_class(body, expected):
    code = f"""
import torch
import torch.nn as nn
from elsewhere import ImportedEncoder

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        {body}

    def forward(self, x):
        return x

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

def main(x):
    model = Net()
    return torch.jit.trace(model, x)
"""
    assert _lines(code, "DL301") == ([20 + body.count("\n")] if expected else [])


def test_dl301_training_flag_in_forward_counts():
    code = """
import torch

class Net(torch.nn.Module):
    def forward(self, x):
        if self.training:
            x = x + torch.randn_like(x)
        return x

net = Net()
torch.export.export(net, (x,))
"""
    assert _lines(code, "DL301") == [10]


@pytest.mark.parametrize(
    "setup, expected",
    [
        ("model = torchvision.models.resnet18()", [4]),
        ("model = torch.nn.Linear(4, 4)", []),
        ("model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.2))", [4]),
        ("model = torch.nn.Sequential(*list(base.children())[:-1])", [4]),  # unknown content
        ("model = timm.create_model('resnet50')", [4]),
    ],
)
def test_dl301_library_constructors(setup, expected):
    code = f"import torch\nimport torchvision\nimport timm\n{setup}\ntorch.jit.trace(model, x)\n"
    assert [line + 1 for line in expected] == _lines(code, "DL301")


def test_dl301_fix_safe_only_when_nothing_follows():
    code = "import torch\nimport torchvision\nmodel = torchvision.models.resnet18()\nts = torch.jit.trace(model, x)\n"
    _, _, found = _lint(code, "DL301")
    assert found[0].fix.applicability is FixKind.SAFE
    assert _fixed(code, "DL301") == code.replace("ts =", "model.eval()\nts =")
    later = code + "loss = model(x).sum()\n"
    _, _, found = _lint(later, "DL301")
    assert found[0].fix.applicability is FixKind.UNSAFE
    assert _fixed(later, "DL301") == later  # not applied without --unsafe-fixes


def test_dl301_fix_unsafe_inside_a_loop_or_when_returned():
    looped = """
import torch
import torchvision

def main(loader):
    model = torchvision.models.resnet18()
    for epoch in range(3):
        torch.jit.trace(model, x).save(f"m{epoch}.pt")
"""
    assert _lint(looped, "DL301")[2][0].fix.applicability is FixKind.UNSAFE
    returned = """
import torch
import torchvision

def build():
    model = torchvision.models.resnet18()
    ep = torch.export.export(model, (x,))
    return model, ep
"""
    assert _lint(returned, "DL301")[2][0].fix.applicability is FixKind.UNSAFE


def test_dl301_no_fix_for_attribute_or_training_mode_training():
    attr = """
import torch
import torchvision

class Exporter:
    def run(self):
        self.model = torchvision.models.resnet18()
        torch.jit.trace(self.model, x)
"""
    found = _lint(attr, "DL301")[2]
    assert len(found) == 1 and found[0].fix is None and "self.model" in found[0].message
    training = DROPOUT_NET + (
        "model = Net()\ntorch.onnx.export(model, (x,), 'm.onnx', dynamo=False, "
        "training=torch.onnx.TrainingMode.TRAINING)\n"
    )
    found = _lint(training, "DL301")[2]
    assert len(found) == 1 and found[0].fix is None


# ---------------------------------------------------------------------- DL307


@pytest.mark.parametrize(
    "manager",
    [
        'torch.autocast("cuda")',
        'torch.autocast(device_type="cpu", dtype=torch.bfloat16)',
        "torch.cuda.amp.autocast()",
        "torch.cpu.amp.autocast()",
        'torch.amp.autocast("cuda", enabled=True)',
        "torch.cuda.amp.autocast(True)",
    ],
)
def test_dl307_autocast_spellings(manager):
    code = f"import torch\nwith {manager}:\n    torch.onnx.export(model, (x,), 'm.onnx')\n"
    assert _lines(code, "DL307") == [3]


@pytest.mark.parametrize(
    "manager",
    [
        'torch.autocast("cuda", enabled=False)',
        "torch.cuda.amp.autocast(False)",
        "torch.cuda.amp.autocast(enabled=args.amp)",
        "torch.no_grad()",
        "amp_context",
    ],
)
def test_dl307_disabled_or_unknown_autocast(manager):
    code = f"import torch\nwith {manager}:\n    torch.jit.trace(model, x)\n"
    assert _lines(code, "DL307") == []


def test_dl307_export_kinds():
    code = """
import torch
with torch.autocast("cuda"):
    a = torch.jit.trace(model, x)
    b = torch.jit.script(model)
    c = torch.export.export(model, (x,))
    torch.onnx.export(model, (x,), "m.onnx", dynamo=False)
    torch.onnx.utils.export(model, (x,), "m.onnx")
"""
    assert _lines(code, "DL307") == [3, 6, 7]


def test_dl307_cache_disabled_only_excuses_tracing():
    code = """
import torch
with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
    ts = torch.jit.trace(model, x)
    torch.onnx.export(model, (x,), "m.onnx")
"""
    assert _lines(code, "DL307") == [4]


def test_dl307_decorated_method_and_nested_function_boundary():
    code = """
import torch

class Exporter:
    @torch.autocast("cuda")
    def run(self, model, x):
        torch.onnx.export(model, (x,), "m.onnx")

with torch.autocast("cuda"):
    def later(model, x):
        torch.onnx.export(model, (x,), "m.onnx")
"""
    assert _lines(code, "DL307") == [6]


# ---------------------------------------------------------------------- DL310


def test_dl310_version_gate():
    code = "import torch\nts = torch.jit.trace(model, x)\nfrozen = torch.jit.freeze(ts)\n"
    assert _lines(code, "DL310") == [2, 3]
    assert _lines(code, "DL310", {"torch": "2.12"}) == [2]
    assert _lines(code, "DL310", {"torch": "2.10"}) == [2]
    assert _lines(code, "DL310", {"torch": "2.9"}) == []


def test_dl310_python_314_message():
    code = "import torch\nts = torch.jit.script(model)\n"
    found = _lint(code, "DL310", {"python": "3.14"})[2]
    assert "not supported in Python 3.14+" in found[0].message
    found = _lint(code, "DL310", {"python": "3.12"})[2]
    assert "is deprecated" in found[0].message


def test_dl310_save_load_message_names_torch_export():
    code = "import torch\nm = torch.jit.load('m.pt')\n"
    assert "torch.export.load" in _lint(code, "DL310")[2][0].message


def test_dl310_decorator_with_alias_and_local_shadow():
    code = """
import torch.jit as tj

@tj.script
def f(x):
    return x + 1

def g(script):
    return script(f)
"""
    assert _lines(code, "DL310") == [3]


# ---------------------------------------------------------------------- DL311


def test_dl311_version_gate():
    code = "import torch\ntorch.onnx.export(model, (x,), 'm.onnx', dynamo=False)\n"
    assert _lines(code, "DL311") == [2]
    assert _lines(code, "DL311", {"torch": "2.9"}) == [2]
    assert _lines(code, "DL311", {"torch": "2.8"}) == []


def test_dl311_fallback_only_after_a_dynamo_attempt():
    code = """
import torch
try:
    torch.onnx.export(model, (x,), "m.onnx")
except Exception:
    torch.onnx.export(model, (x,), "m.onnx", dynamo=False)
try:
    prepare(model)
except Exception:
    torch.onnx.export(model, (x,), "m.onnx", dynamo=False)
"""
    assert _lines(code, "DL311") == [9]


def test_dl311_only_torch_onnx_export():
    code = """
import torch
torch.onnx.utils.export(model, (x,), "m.onnx")
torch.export.export(model, (x,))
torch.onnx.export(model, (x,), "m.onnx", dynamo=True)
"""
    assert _lines(code, "DL311") == []


def test_dl310_project_dockerfile_pin_below_the_deprecation_is_silent(tmp_path):
    from dllint import versions as _pins

    _pins._cache.clear()
    (tmp_path / ".git").mkdir()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "pytorch.Dockerfile").write_text(
        "FROM nvcr.io/nvidia/cuda:10.2-cudnn8-devel-ubuntu18.04\nRUN pip install torch==1.8.1 torchvision==0.9.1\n"
    )
    script = tmp_path / "cifar.py"
    code = "import torch\nmodel = torch.jit.load(path)\n"
    script.write_text(code)
    result = lint_text(code, str(script), RULESET, enabled={"DL310"})
    assert [f for f in result.findings if f.code == "DL310"] == []
    (tmp_path / "docker" / "pytorch.Dockerfile").write_text("RUN pip install torch>=1.8.1\n")
    _pins._cache.clear()
    result = lint_text(code, str(script), RULESET, enabled={"DL310"})
    assert [f.line for f in result.findings if f.code == "DL310"] == [2]
    _pins._cache.clear()
