"""DL410: F.dropout without training=self.training stays active after eval()."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class Always(nn.Module):
    def forward(self, x):
        return F.dropout(x, p=0.5)


class FollowsMode(nn.Module):
    def forward(self, x):
        return F.dropout(x, p=0.5, training=self.training)


def test_default_training_true_ignores_eval():
    torch.manual_seed(0)
    model = Always().eval()
    x = torch.ones(10000)
    a, b = model(x), model(x)
    assert not torch.equal(a, b)
    zeros = (a == 0).float().mean().item()
    assert 0.45 < zeros < 0.55  # about half the activations dropped in eval mode


def test_training_flag_follows_eval():
    model = FollowsMode().eval()
    x = torch.ones(10000)
    assert torch.equal(model(x), model(x))
    assert torch.equal(model(x), x)
