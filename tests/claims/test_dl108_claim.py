"""DL108: sqrt of a sum of squares has a NaN gradient at 0; vector_norm has the same value and a 0 gradient."""

import pytest

torch = pytest.importorskip("torch")


def test_sqrt_of_sum_of_squares_nan_gradient_and_vector_norm_is_finite():
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    b = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # first row: a == b, distance 0

    bad = torch.sqrt(((a - b) ** 2).sum(-1))
    assert torch.isfinite(bad).all()  # the forward value is fine
    bad.sum().backward()
    assert torch.isnan(a.grad[0]).all()

    a.grad = None
    good = torch.linalg.vector_norm(a - b, dim=-1)
    assert torch.allclose(good, bad.detach())  # same forward value
    good.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert torch.equal(a.grad[0], torch.zeros(2))

    a.grad = None
    eps = torch.sqrt(((a - b) ** 2).sum(-1) + 1e-12)
    eps.sum().backward()
    assert torch.isfinite(a.grad).all()
