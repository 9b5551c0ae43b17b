"""DL101: log(softmax(x)) is -inf where softmax underflows; log_softmax stays finite."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_log_of_softmax_underflows_and_log_softmax_does_not():
    logits = torch.tensor([[0.0, -200.0, 5.0]], requires_grad=True)
    bad = torch.log(F.softmax(logits, dim=-1))
    assert torch.isinf(bad).any()
    bad.sum().backward()
    assert torch.isnan(logits.grad).any() or torch.isinf(logits.grad).any()

    logits.grad = None
    good = F.log_softmax(logits, dim=-1)
    assert torch.isfinite(good).all()
    good.sum().backward()
    assert torch.isfinite(logits.grad).all()
    # the fix computes the same values where the bad form is finite
    mild = torch.tensor([[0.5, -1.0, 2.0]])
    assert torch.allclose(torch.log(F.softmax(mild, dim=-1)), F.log_softmax(mild, dim=-1))
