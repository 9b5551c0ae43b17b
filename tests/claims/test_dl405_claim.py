"""DL405: an element-wise loss between a (N,1) prediction and a (N,) target broadcasts to (N,N).

nn.MSELoss (and F.mse_loss / l1_loss / smooth_l1_loss / huber_loss) only warn "Using a target
size ... that is different to the input size" and return the mean over the (N,N) broadcast, a
different number from the aligned loss; squeezing the prediction (or unsqueezing the target)
gives the right value.  The BCE losses raise instead (loud, not reported by DL405).
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

PRED = [[1.0], [2.0], [3.0], [4.0]]
TARGET = [1.0, 2.0, 3.0, 4.5]


def _loss(fn, pred, target):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(pred, target)
    return value, [str(w.message) for w in caught]


def test_mse_broadcasts_to_n_by_n_with_only_a_warning():
    pred, target = torch.tensor(PRED), torch.tensor(TARGET)
    value, caught = _loss(nn.MSELoss(reduction="none"), pred, target)
    assert value.shape == (4, 4)
    value, caught = _loss(nn.MSELoss(), pred, target)
    assert any("different to the input size" in m for m in caught)
    aligned = ((pred.squeeze(-1) - target) ** 2).mean()
    assert value.item() == pytest.approx(2.9375)  # measured, torch 2.13
    assert aligned.item() == pytest.approx(0.0625)
    assert value.item() != pytest.approx(aligned.item())


def test_squeezing_or_unsqueezing_fixes_it():
    pred, target = torch.tensor(PRED), torch.tensor(TARGET)
    for a, b in ((pred.squeeze(-1), target), (pred, target.unsqueeze(-1))):
        value, caught = _loss(F.mse_loss, a, b)
        assert caught == []
        assert value.item() == pytest.approx(0.0625)


@pytest.mark.parametrize("fn", [F.l1_loss, F.smooth_l1_loss, F.huber_loss])
def test_other_elementwise_losses_broadcast_too(fn):
    pred, target = torch.tensor(PRED), torch.tensor(TARGET)
    value, caught = _loss(lambda p, t: fn(p, t, reduction="none"), pred, target)
    assert value.shape == (4, 4)
    assert any("different to the input size" in m for m in caught)


def test_bce_raises_instead():
    pred, target = torch.tensor(PRED).sigmoid(), torch.tensor(TARGET) / 5
    with pytest.raises(ValueError):
        F.binary_cross_entropy(pred, target)
    with pytest.raises(ValueError):
        F.binary_cross_entropy_with_logits(pred, target)


def test_linear_head_against_a_column_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    x, y = torch.randn(16, 3), torch.randn(16)
    out = model(x)
    assert out.shape == (16, 1)
    wrong, _ = _loss(F.mse_loss, out, y)
    right, _ = _loss(F.mse_loss, out.squeeze(-1), y)
    assert wrong.item() != pytest.approx(right.item())
