"""DL109: cross_entropy on softmax probabilities squashes the loss and its gradient; on logits it does not."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_double_softmax_vanishing_gradient():
    logits = torch.tensor([[10.0, -10.0]], requires_grad=True)
    target = torch.tensor([1])  # confidently wrong
    bad = F.cross_entropy(F.softmax(logits, dim=1), target)
    bad.backward()
    assert bad.item() < 1.32  # bounded by log(1 + e): the loss cannot express the error
    assert logits.grad.abs().max().item() < 1e-8  # about 3e-9: no learning signal

    logits.grad = None
    good = F.cross_entropy(logits, target)  # the fixed code
    good.backward()
    assert good.item() == pytest.approx(20.0)
    assert logits.grad.abs().max().item() == pytest.approx(1.0)


def test_log_softmax_input_is_harmless():
    # why the rule stays silent on log_softmax inputs: the loss's own log_softmax leaves them unchanged
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.0, 4.0, -1.0]])
    target = torch.tensor([2, 0])
    assert torch.allclose(F.cross_entropy(F.log_softmax(logits, dim=1), target), F.cross_entropy(logits, target))
