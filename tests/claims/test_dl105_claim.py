"""DL105: log(1 + exp(x)) and log(sum(exp(x))) overflow; softplus and logsumexp do not."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_log_one_plus_exp_overflows():
    x = torch.tensor([100.0], requires_grad=True)
    bad = torch.log(1 + torch.exp(x))
    assert torch.isinf(bad).all()
    bad.sum().backward()
    assert not torch.isfinite(x.grad).all()

    x.grad = None
    good = F.softplus(x)
    assert good.item() == 100.0
    good.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_where_guard_keeps_the_value_but_not_the_gradient():
    g = torch.tensor([10.0, 100.0], requires_grad=True)
    y = torch.where(g > 20.0, g, torch.log(1.0 + torch.exp(g)))
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isnan(g.grad[1])


def test_log_sum_exp_overflows():
    x = torch.tensor([[100.0, 100.0]])
    assert torch.isinf(torch.log(torch.sum(torch.exp(x), dim=1))).all()
    good = torch.logsumexp(x, dim=1)
    assert torch.isfinite(good).all() and abs(good.item() - (100.0 + 0.6931472)) < 1e-4


def test_fixes_keep_the_values():
    x = torch.linspace(-30, 30, 61)
    assert torch.allclose(torch.log(1 + torch.exp(x)), F.softplus(x), rtol=1e-6, atol=1e-6)
    m = torch.randn(4, 5)
    assert torch.allclose(torch.log(torch.sum(torch.exp(m), dim=1)), torch.logsumexp(m, dim=1), atol=1e-6)
