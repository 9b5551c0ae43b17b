"""DL113: float16 gradients underflow to exactly zero without loss scaling.

A weight whose gradient is 1e-8 (below float16's smallest subnormal, about 6e-8) gets a zero
gradient when the backward runs in float16, so it never learns; a GradScaler multiplies the
loss by 65536 first, keeping the float16 gradient representable, and unscales in float32.
"""

import pytest

torch = pytest.importorskip("torch")


def _loss(w):
    # the forward in float16 (as under CUDA autocast or a .half() model), the loss in float32
    activation = w.half() * torch.tensor(1e-4, dtype=torch.float16)
    return activation.float().sum() * 1e-4  # d loss / d w = 1e-8


def test_float16_gradient_underflows_without_scaler():
    w = torch.nn.Parameter(torch.ones(3))
    _loss(w).backward()
    assert torch.equal(w.grad, torch.zeros(3))  # every gradient flushed to 0


def test_grad_scaler_keeps_the_gradient():
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([w], lr=1.0)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(_loss(w)).backward()
    scaler.unscale_(optimizer)
    assert (w.grad > 0).all()
    assert torch.allclose(w.grad, torch.full((3,), 1e-8), rtol=0.05)
