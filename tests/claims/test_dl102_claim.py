"""DL102: log(sigmoid(z)) and log(1 - sigmoid(z)) are -inf once sigmoid saturates; logsigmoid is not."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_one_minus_sigmoid_saturates_at_17_in_float32():
    z = torch.tensor([17.0], requires_grad=True)
    bad = torch.log(1 - torch.sigmoid(z))
    assert torch.isinf(bad).all()
    bad.sum().backward()
    assert not torch.isfinite(z.grad).all()

    z.grad = None
    good = F.logsigmoid(-z)
    assert torch.isfinite(good).all() and abs(good.item() + 17.0) < 1e-3
    good.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_log_sigmoid_underflows_only_far_below_zero():
    # -20 is still finite (sigmoid(-20) is a normal float32), -104 is not
    assert torch.isfinite(torch.log(torch.sigmoid(torch.tensor([-20.0])))).all()
    z = torch.tensor([-104.0])
    assert torch.isinf(torch.log(torch.sigmoid(z))).all()
    assert torch.isfinite(F.logsigmoid(z)).all()


def test_eps_added_to_one_is_lost_in_float32():
    # GRIST VAE subjects: log(1e-10 + 1 - p) with p = sigmoid(z) saturated at 1
    p = torch.sigmoid(torch.tensor([20.0]))
    assert p.item() == 1.0
    assert torch.isinf(torch.log(1e-10 + 1 - p)).all()
    assert torch.isfinite(torch.log(1 - p + 1e-10)).all()


def test_fix_keeps_the_values():
    z = torch.linspace(-8, 8, 17)
    assert torch.allclose(torch.log(torch.sigmoid(z)), F.logsigmoid(z), atol=1e-6)
    assert torch.allclose(torch.log(1 - torch.sigmoid(z)), F.logsigmoid(-z), atol=1e-5)
