"""DL114: a reduction without keepdim broadcasts against the wrong axis.

For x of shape (N, C), x.sum(1) has shape (N,), which broadcasting aligns with the last axis
(C): x / x.sum(1) divides column j by the sum of row j.  With a square x no error is raised
and the rows do not sum to 1; with keepdim=True they do.  A non-square x fails outright.
"""

import pytest

torch = pytest.importorskip("torch")


def test_square_tensor_is_silently_wrong():
    x = torch.tensor([[1.0, 3.0], [2.0, 6.0]])  # row sums 4 and 8
    bad = x / x.sum(1)
    good = x / x.sum(1, keepdim=True)
    assert torch.allclose(good, torch.tensor([[0.25, 0.75], [0.25, 0.75]]))
    assert torch.allclose(good.sum(1), torch.ones(2))
    # column j was divided by the sum of row j
    assert torch.allclose(bad, torch.tensor([[1 / 4, 3 / 8], [2 / 4, 6 / 8]]))
    assert torch.allclose(bad.sum(1), torch.tensor([0.625, 1.25]))


def test_centering_on_a_square_tensor_is_silently_wrong():
    x = torch.tensor([[0.0, 2.0], [10.0, 14.0]])  # row means 1 and 12
    bad = x - x.mean(1)
    good = x - x.mean(1, keepdim=True)
    assert torch.allclose(good.mean(1), torch.zeros(2))
    assert torch.allclose(bad, torch.tensor([[-1.0, -10.0], [9.0, 2.0]]))


def test_non_square_tensor_fails():
    x = torch.ones(3, 2)
    with pytest.raises(RuntimeError):
        _ = x / x.sum(1)
    assert torch.allclose(x / x.sum(1, keepdim=True), torch.full((3, 2), 0.5))
