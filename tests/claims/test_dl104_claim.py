"""DL104: log of a difference / ratio / count reaches log(0) = -inf; clamping keeps it finite."""

import pytest

torch = pytest.importorskip("torch")


def test_log_of_difference_and_of_count_is_inf_and_clamp_is_not():
    p = torch.tensor([0.5, 1.0], requires_grad=True)  # a saturated probability
    bad = torch.log(1 - p)
    assert torch.isinf(bad).any()
    bad.sum().backward()
    assert not torch.isfinite(p.grad).all()

    p.grad = None
    good = torch.log((1 - p).clamp_min(1e-6))
    assert torch.isfinite(good).all()
    good.sum().backward()
    assert torch.isfinite(p.grad).all()

    mask = torch.zeros(4)  # an all-masked row
    assert torch.isinf(torch.log(mask.sum()))
    assert torch.isfinite(torch.log(mask.sum().clamp_min(1e-6)))
    # a ratio with a zero numerator
    pos, neg = torch.tensor(0.0), torch.tensor(3.0)
    assert torch.isinf(-torch.log(pos / (pos + neg)))
    assert torch.isfinite(-torch.log(pos.clamp_min(1e-6) / (pos + neg).clamp_min(1e-6)))


def test_float16_rounds_a_tiny_eps_to_zero():
    p = torch.tensor([1.0], dtype=torch.float16)
    assert torch.isinf(torch.log(1 - p + 1e-10))
    assert torch.isfinite(torch.log((1 - p).clamp_min(1e-4)))
