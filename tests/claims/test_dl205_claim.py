"""DL205: `x + y` between quantised activations inside a converted eager model fails.

After convert, the activations between QuantStub and DeQuantStub are quantised tensors and
`aten::add` has no QuantizedCPU kernel: NotImplementedError "Could not run 'aten::add.out' with
arguments from the 'QuantizedCPU' backend".  The same residual through a FloatFunctional attribute
(swapped for QFunctional by convert) runs.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
tq = torch.ao.quantization


class Residual(nn.Module):
    def __init__(self, use_float_functional):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.skip_add = torch.ao.nn.quantized.FloatFunctional()
        self.dequant = tq.DeQuantStub()
        self.use_float_functional = use_float_functional

    def forward(self, x):
        x = self.quant(x)
        y = self.conv(x)
        out = self.skip_add.add(x, y) if self.use_float_functional else x + y
        return self.dequant(out)


def _convert(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.eval()
        model.qconfig = tq.get_default_qconfig("x86")
        prepared = tq.prepare(model)
        prepared(torch.randn(2, 4, 8, 8))  # calibration (float: observers only)
        return tq.convert(prepared)


def test_plain_add_on_quantised_tensors_fails():
    torch.manual_seed(0)
    quantised = _convert(Residual(use_float_functional=False))
    with pytest.raises(NotImplementedError, match=r"aten::add.*QuantizedCPU"):
        quantised(torch.randn(1, 4, 8, 8))


def test_float_functional_add_runs():
    torch.manual_seed(0)
    model = Residual(use_float_functional=True)
    reference = model.eval()(torch.randn(1, 4, 8, 8)).shape
    quantised = _convert(model)
    x = torch.randn(1, 4, 8, 8)
    out = quantised(x)
    assert out.shape == reference
    assert type(quantised.skip_add).__name__ == "QFunctional"


def test_cat_runs_on_quantised_tensors():
    # why DL205 leaves torch.cat alone (torch 2.13)
    a = torch.quantize_per_tensor(torch.randn(2, 3), 0.1, 0, torch.quint8)
    assert torch.cat([a, a]).is_quantized
