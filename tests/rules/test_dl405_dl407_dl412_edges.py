"""Edge cases of DL405 (loss-target-shape-broadcast), DL407 (tfdata-shuffle-after-batch) and
DL412 (softmax-implicit-dim) beyond the examples the rules carry: spellings, scopes, fix layouts
and near-misses."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _lint(code: str, rule: str):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "case.py", RULESET, enabled={rule})
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _lines(code: str, rule: str):
    return [f.line for f in _lint(code, rule)[2]]


def _fixed(code: str, rule: str) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, True)).code


# ---------------------------------------------------------------------- DL412


@pytest.mark.parametrize(
    "call",
    [
        "F.softmax(x)",
        "F.log_softmax(x)",
        "F.softmin(x)",
        "F.softmax(x, None)",
        "F.softmax(input=x)",
        "F.softmax(x, dtype=torch.float32)",
        "torch.nn.functional.log_softmax(x, dim=None)",
        "nn.Softmax()",
        "nn.LogSoftmax(dim=None)",
        "torch.nn.modules.activation.Softmax()",
        "softmax(x)",
    ],
)
def test_dl412_flagged(call):
    code = f"""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.functional import softmax
    y = {call}
    """
    assert _lines(code, "DL412") == [5]


@pytest.mark.parametrize(
    "call",
    [
        "F.softmax(x, 1)",
        "F.softmax(x, dim=-1)",
        "F.softmax(x, *rest)",
        "F.softmax(x, **kw)",
        "nn.Softmax(1)",
        "nn.Softmax(dim=-1)",
        "nn.Softmax2d()",
        "torch.softmax(x, 1)",
        "x.softmax(-1)",
        "F.gumbel_softmax(x)",
        "F.softmax(out.cpu().numpy())",
        "my.softmax(x)",
    ],
)
def test_dl412_silent(call):
    code = f"""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    y = {call}
    """
    assert _lines(code, "DL412") == []


def test_dl412_other_softmax_functions_are_silent():
    code = """
    import torch
    import tensorflow as tf
    from scipy.special import softmax
    a = tf.nn.softmax(logits)
    b = softmax(z)
    """
    assert _lines(code, "DL412") == []


def test_dl412_fix_layouts():
    assert "F.softmax(x, dtype=torch.float32, dim=-1)" in _fixed(
        "import torch\nimport torch.nn.functional as F\ny = F.softmax(x, dtype=torch.float32)\n", "DL412")
    assert "nn.Softmax(dim=-1)" in _fixed("import torch.nn as nn\nm = nn.Softmax(None)\n", "DL412")
    assert "F.softmax(input=x, dim=-1)" in _fixed(
        "import torch.nn.functional as F\ny = F.softmax(input=x)\n", "DL412")


def test_dl412_fix_is_unsafe_only():
    _, result, found = _lint("import torch.nn.functional as F\ny = F.softmax(x)\n", "DL412")
    assert fixes.fixable(found, False) == []


# ---------------------------------------------------------------------- DL407


TF = "import tensorflow as tf\n"


@pytest.mark.parametrize(
    "pipeline",
    [
        "ds = tf.data.Dataset.range(100).batch(10).shuffle(5)",
        "ds = tf.data.Dataset.range(100).padded_batch(10).shuffle(5)",
        "ds = tf.data.Dataset.range(100).batch(10).map(f).prefetch(1).shuffle(5).repeat()",
        "ds = tf.data.Dataset.from_tensor_slices(x)\nds = ds.batch(10)\nds = ds.shuffle(5)",
        "ds = tf.data.TFRecordDataset(files)\nbatched = ds.batch(10)\nout = batched.shuffle(5)",
        "def f(ds):\n    ds = ds.batch(10)\n    return ds.shuffle(5)",
        "ds = tf.compat.v1.data.Dataset.range(9).batch(3).shuffle(3)",
    ],
)
def test_dl407_flagged(pipeline):
    code = TF + pipeline + "\n"
    assert len(_lines(code, "DL407")) == 1


@pytest.mark.parametrize(
    "pipeline",
    [
        "ds = tf.data.Dataset.range(100).shuffle(100).batch(10)",
        "ds = tf.data.Dataset.range(100).shuffle(100).batch(10).shuffle(3)",
        "ds = tf.data.Dataset.range(100).batch(10).shuffle(5).unbatch()",
        "ds = tf.data.Dataset.range(100).batch(10).shuffle(5).rebatch(5)",
        "test_ds = tf.data.Dataset.range(100).batch(10).shuffle(5)",
        "ds = tf.data.Dataset.range(100).batch(10)\nval = ds.shuffle(5)",
        "ds = tf.data.Dataset.range(100)\nfor _ in range(2):\n    ds = ds.unbatch()\nds = ds.shuffle(5)",
        "ds = tf.data.Dataset.range(100).window(4).shuffle(5)",
        "ds = tf.data.Dataset.range(100).shuffle(5)",
        "ds = load()\nds = ds.shuffle(5)",
        "ds = tf.data.Dataset.range(100)\nif big:\n    ds = ds.batch(10)\nds = ds.shuffle(5)",
    ],
)
def test_dl407_silent(pipeline):
    code = TF + pipeline + "\n"
    assert _lines(code, "DL407") == []


def test_dl407_needs_tensorflow():
    code = "import datasets\nds = datasets.load_dataset('x').batch(10).shuffle(5)\n"
    assert _lines(code, "DL407") == []


def test_dl407_fix_keeps_arguments():
    code = TF + "ds = tf.data.Dataset.range(9).batch(3, drop_remainder=True).shuffle(buffer_size=9, seed=1)\n"
    assert "ds = tf.data.Dataset.range(9).shuffle(buffer_size=9, seed=1).batch(3, drop_remainder=True)" in _fixed(
        code, "DL407")


def test_dl407_no_fix_when_not_adjacent():
    code = TF + "ds = tf.data.Dataset.range(9).batch(3).map(f).shuffle(9)\n"
    assert _fixed(code, "DL407") == code


# ---------------------------------------------------------------------- DL405


TORCH = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


@pytest.mark.parametrize(
    "body",
    [
        "loss = F.mse_loss(torch.randn(8, 1), torch.randn(8))",
        "loss = F.l1_loss(input=torch.randn(8), target=torch.randn(8, 1))",
        "loss = F.huber_loss(p.view(-1, 1), q.flatten())",
        "loss = nn.SmoothL1Loss()(p.reshape(-1), q.reshape(-1, 1))",
        "crit = nn.MSELoss(reduction='sum')\nloss = crit(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 2.0]))",
        "y = torch.tensor(df['price'].values, dtype=torch.float32)\nloss = F.mse_loss(torch.randn(8, 1), y)",
        "t = torch.arange(8.0)\nloss = F.mse_loss(t[:, None], t)",
        "t = torch.linspace(0, 1, 8)\nloss = torch.mean(torch.abs(t.unsqueeze(-1) - t))",
        "c = torch.randn(8, 1)\nloss = F.mse_loss(c, c.squeeze())",
        "m = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())\nloss = F.mse_loss(m(x), torch.randn(8))",
        "m = nn.Linear(3, 1)\nloss = (m(x) - torch.randn(8)).pow(2).mean()",
    ],
)
def test_dl405_flagged(body):
    assert len(_lines(TORCH + body + "\n", "DL405")) == 1


@pytest.mark.parametrize(
    "body",
    [
        "loss = F.mse_loss(torch.randn(8, 1), torch.randn(8, 1))",
        "loss = F.mse_loss(torch.randn(8), torch.randn(8))",
        "loss = F.mse_loss(torch.randn(1, 1), torch.randn(8))",
        "loss = F.mse_loss(torch.randn(8, 1), torch.randn(1))",
        "loss = F.binary_cross_entropy(torch.rand(8, 1), torch.rand(8))",
        "loss = F.cross_entropy(torch.randn(8, 1), torch.randn(8))",
        "loss = F.mse_loss(pred, target)",
        "loss = F.mse_loss(p.squeeze(), q)",
        "y = torch.tensor(df[['a']].values)\nloss = F.mse_loss(torch.randn(8, 1), y)",
        "m = nn.Sequential(nn.Linear(3, 4))\nloss = F.mse_loss(m(x), torch.randn(8))",
        "m = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))\nloss = F.mse_loss(m(x), torch.randn(8))",
        "d = torch.randn(8, 1) - torch.randn(8)",
        "loss = (torch.randn(8, 1) - torch.randn(8)) ** 3",
        "loss = F.mse_loss(torch.randn(8, 1), torch.randn(8), *extra)",
        "t = torch.arange(8.0)\nt = t + 1\nloss = F.mse_loss(t.unsqueeze(1), t)",
    ],
)
def test_dl405_silent(body):
    assert _lines(TORCH + body + "\n", "DL405") == []


def test_dl405_class_head_with_wrapper():
    code = TORCH + textwrap.dedent("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 8)
            self.out = nn.Sequential(nn.ReLU(), nn.Linear(8, 1))
        def forward(self, x):
            h = self.fc(x)
            y = torch.sigmoid(self.out(h))
            return y
    net = Net()
    target = torch.tensor([0.0, 1.0, 1.0])
    loss = nn.MSELoss()(net(x), target)
    """)
    assert len(_lines(code, "DL405")) == 1


def test_dl405_class_head_with_branches_is_silent():
    code = TORCH + textwrap.dedent("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(8, 1)
        def forward(self, x):
            if self.training:
                return self.out(x).squeeze(-1)
            return self.out(x)
    net = Net()
    loss = nn.MSELoss()(net(x), torch.tensor([0.0, 1.0, 1.0]))
    """)
    assert _lines(code, "DL405") == []


def test_dl405_message_names_the_order():
    _, _, found = _lint(TORCH + "loss = F.mse_loss(torch.randn(8), torch.randn(8, 1))\n", "DL405")
    assert "((N,) vs (N,1))" in found[0].message


def test_dl405_tf_get_variable_regression():
    code = textwrap.dedent("""
    import tensorflow as tf
    W = tf.get_variable("W", [3, 1])
    y = tf.constant([1.0, 2.0, 3.0])
    loss = tf.reduce_mean(tf.square(tf.matmul(X, W) - y))
    """)
    assert len(_lines(code, "DL405")) == 1
