"""DL412: softmax without dim picks a deprecated implicit axis: 0 for 0-, 1- and 3-D inputs, else 1.

F.softmax(x) warns "Implicit dimension choice for softmax has been deprecated" and, for a
(B, T, C) input, normalises over the batch axis (dim 0); nn.Softmax() keeps dim=None and does the
same.  Measured with torch 2.13.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def _implicit(fn, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(x)
    return out, [str(w.message) for w in caught]


@pytest.mark.parametrize("shape,expected", [((), 0), ((5,), 0), ((2, 5), 1), ((2, 3, 5), 0), ((2, 3, 4, 5), 1)])
def test_implicit_dim_by_rank(shape, expected):
    torch.manual_seed(0)
    x = torch.randn(shape)
    out, caught = _implicit(F.softmax, x)
    assert any("Implicit dimension choice for softmax has been deprecated" in m for m in caught)
    assert torch.allclose(out, F.softmax(x, dim=expected))


def test_sequence_logits_are_normalised_over_the_batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)  # (B, T, C)
    out, _ = _implicit(F.softmax, logits)
    assert torch.allclose(out.sum(dim=0), torch.ones(3, 5))
    assert not torch.allclose(out.sum(dim=-1), torch.ones(2, 3))
    good = F.softmax(logits, dim=-1)
    assert torch.allclose(good.sum(dim=-1), torch.ones(2, 3))


@pytest.mark.parametrize("module,functional", [(nn.Softmax, F.softmax), (nn.LogSoftmax, F.log_softmax),
                                               (nn.Softmin, F.softmin)])
def test_modules_without_dim_behave_the_same(module, functional):
    m = module()
    assert m.dim is None
    x = torch.randn(2, 3, 5)
    out, caught = _implicit(m, x)
    assert caught
    assert torch.allclose(out, functional(x, dim=0))
