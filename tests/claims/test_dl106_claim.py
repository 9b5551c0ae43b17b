"""DL106: exp(z) / exp(z).sum() is NaN once exp overflows (or every exp underflows); softmax is not."""

import pytest

torch = pytest.importorskip("torch")


def test_handwritten_softmax_overflows_and_softmax_does_not():
    z = torch.tensor([[100.0, 0.0, -5.0]], requires_grad=True)
    bad = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
    assert torch.isnan(bad).any()  # exp(100) = inf in float32, inf / inf = NaN
    bad.sum().backward()
    assert torch.isnan(z.grad).all()

    z.grad = None
    good = torch.softmax(z, dim=1)  # the fixed code
    assert torch.isfinite(good).all()
    good.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_handwritten_softmax_underflows_to_zero_over_zero():
    z = torch.tensor([[-120.0, -130.0]])
    assert torch.isnan(torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)).all()
    assert torch.allclose(torch.softmax(z, dim=1).sum(), torch.tensor(1.0))


def test_fix_is_equal_where_the_original_is_finite():
    z = torch.tensor([[0.5, -1.0, 2.0], [3.0, 3.0, -7.0]])
    assert torch.allclose(torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True), torch.softmax(z, dim=1))
