"""DL110: BCE on a saturated sigmoid is clamped at 100 with a zero gradient; the logits form is exact."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("logit, target", [(-200.0, 1.0), (20.0, 0.0)])
def test_saturated_sigmoid_bce_has_no_gradient(logit, target):
    x = torch.tensor([logit], requires_grad=True)
    y = torch.tensor([target])
    bad = F.binary_cross_entropy(torch.sigmoid(x), y)
    bad.backward()
    assert bad.item() == pytest.approx(100.0)  # log clamped at -100
    assert x.grad.item() == 0.0

    x.grad = None
    good = F.binary_cross_entropy_with_logits(x, y)  # the fixed code
    good.backward()
    assert good.item() == pytest.approx(abs(logit), rel=1e-6)
    assert abs(x.grad.item()) == pytest.approx(1.0)


def test_fix_is_equal_where_the_sigmoid_does_not_saturate():
    x = torch.tensor([0.3, -2.0, 4.0])
    y = torch.tensor([1.0, 0.0, 1.0])
    w = torch.tensor([1.0, 2.0, 0.5])
    assert torch.allclose(
        torch.nn.BCELoss(weight=w, reduction="sum")(torch.sigmoid(x), y),
        torch.nn.BCEWithLogitsLoss(weight=w, reduction="sum")(x, y),
    )
