"""DL111: nll_loss on softmax probabilities is -p[target] (negative, no gradient); on log_softmax it is the NLL."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_nll_of_probabilities_is_the_wrong_objective():
    logits = torch.tensor([[10.0, -10.0]], requires_grad=True)
    target = torch.tensor([1])
    bad = F.nll_loss(F.softmax(logits, dim=1), target)
    bad.backward()
    assert -1.0 <= bad.item() <= 0.0  # a negative "negative log-likelihood"
    assert logits.grad.abs().max().item() < 1e-8  # about 2e-9

    logits.grad = None
    good = F.nll_loss(F.log_softmax(logits, dim=1), target)  # the fixed code
    good.backward()
    assert good.item() == pytest.approx(20.0)
    assert logits.grad.abs().max().item() == pytest.approx(1.0)
    assert good.item() == pytest.approx(F.cross_entropy(logits.detach(), target).item())
