"""DL115: exp of an unbounded log-variance overflows; a clamp keeps it finite."""

import pytest

torch = pytest.importorskip("torch")


def test_exp_of_large_logvar_overflows_and_clamp_does_not():
    mu = torch.zeros(2)
    logvar = torch.tensor([0.0, 200.0], requires_grad=True)
    std = torch.exp(0.5 * logvar)
    assert torch.isinf(std).any()
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    assert torch.isinf(kl)

    safe = torch.exp(0.5 * logvar.clamp(-30, 20))
    assert torch.isfinite(safe).all()
    (mu + safe * torch.randn(2)).sum().backward()
    assert torch.isfinite(logvar.grad).all()
