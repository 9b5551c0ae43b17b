"""DL107: dividing by a zero sum / std / norm gives inf or NaN; eps, clamp and normalize do not."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_constant_feature_std_gives_nan_and_eps_does_not():
    x = torch.tensor([[1.0, 2.0], [1.0, 4.0], [1.0, 6.0]])  # first column is constant
    bad = (x - x.mean(0)) / x.std(0)
    assert torch.isnan(bad[:, 0]).all()
    good = (x - x.mean(0)) / (x.std(0) + 1e-6)
    assert torch.isfinite(good).all()


def test_all_masked_count_gives_nan_and_clamp_does_not():
    loss = torch.tensor([0.3, 0.7])
    mask = torch.zeros(2)
    assert torch.isnan((loss * mask).sum() / mask.sum())
    assert torch.isfinite((loss * mask).sum() / mask.sum().clamp_min(1))


def test_zero_vector_norm_gives_nan_and_normalize_gives_zero():
    v = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    bad = v / v.norm(dim=-1, keepdim=True)
    assert torch.isnan(bad[0]).all()
    good = F.normalize(v, dim=-1)
    assert torch.equal(good[0], torch.zeros(2))
    # the unsafe fix keeps the value wherever the original is finite
    assert torch.allclose(good[1], bad[1])
