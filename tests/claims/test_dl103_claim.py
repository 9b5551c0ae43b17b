"""DL103: a hand-written cross-entropy over softmax/sigmoid outputs gives inf/NaN; the fused losses do not."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_categorical_cross_entropy_zero_times_log_zero():
    logits = torch.tensor([[0.0, -200.0, 5.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 1.0]])
    probs = F.softmax(logits, dim=1)
    bad = -(target * torch.log(probs)).sum(dim=1).mean()
    assert torch.isnan(bad)  # 0 * log(0) = 0 * -inf = NaN, although the target is 0 there

    good = F.cross_entropy(logits, target)
    assert torch.isfinite(good)
    good.backward()
    assert torch.isfinite(logits.grad).all()
    # xlogy removes the 0 * log(0) NaN only
    assert torch.isfinite(-(torch.xlogy(target, probs)).sum(dim=1).mean())


def test_binary_cross_entropy_on_a_saturated_sigmoid():
    z = torch.tensor([20.0, -3.0], requires_grad=True)
    y = torch.tensor([0.0, 1.0])
    p = torch.sigmoid(z)
    bad = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert torch.isinf(bad)

    good = F.binary_cross_entropy_with_logits(z, y)
    assert torch.isfinite(good)
    good.backward()
    assert torch.isfinite(z.grad).all()


def test_entropy_of_an_underflowing_softmax():
    logits = torch.tensor([[0.0, -200.0]])
    p = torch.softmax(logits, -1)
    assert torch.isnan(-(p * p.log()).sum(-1)).all()
    assert torch.isfinite(torch.special.entr(p).sum(-1)).all()
