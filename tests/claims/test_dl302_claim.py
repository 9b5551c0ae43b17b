"""DL302: a value-dependent branch in a traced forward is specialised to the example input.

torch.jit.trace records the branch the example took; another input then runs the same branch
(measured with torch 2.13: traced 8.0 where eager gives 2.0). The clamp rewrite is branch-free and
traces correctly; torch.export refuses the branch at export time.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")


class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.abs().max() > 1:
            x = x / x.abs().max()
        return x * 8


class Clamped(torch.nn.Module):
    def forward(self, x):
        scale = torch.clamp(x.abs().max(), min=1.0)
        return x / scale * 8


def _trace(module, example):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module.eval(), example)


def test_trace_specialises_the_branch():
    traced = _trace(Branchy(), torch.tensor([0.5]))  # the example skips the division
    x = torch.tensor([2.0])
    eager = Branchy()(x)
    assert eager.item() == pytest.approx(8.0)
    assert traced(x).item() == pytest.approx(16.0)  # the traced graph never divides
    assert not torch.allclose(traced(x), eager)


def test_clamp_rewrite_matches():
    traced = _trace(Clamped(), torch.tensor([0.5]))
    for value in (0.5, 2.0, -3.0):
        x = torch.tensor([value])
        assert torch.allclose(traced(x), Clamped()(x))
        assert torch.allclose(traced(x), Branchy()(x))


def test_torch_export_refuses_the_branch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            torch.export.export(Branchy().eval(), (torch.tensor([0.5]),))
    assert "data" in str(info.value).lower() or "guard" in str(info.value).lower()
