"""DL204: eager static quantisation of a model without QuantStub crashes at the first quantised layer.

After prepare + convert, the Conv2d is a quantised conv that only accepts quantised tensors; a
float input reaches it and torch raises NotImplementedError "Could not run 'quantized::conv2d...'
with arguments from the 'CPU' backend".  Wrapped in QuantWrapper (QuantStub before, DeQuantStub
after), the same network runs.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


def _quantise(model):
    tq = torch.ao.quantization
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.eval()
        model.qconfig = tq.get_default_qconfig("x86")
        prepared = tq.prepare(model)
        prepared(torch.randn(2, 3, 8, 8))  # calibration
        return tq.convert(prepared)


def test_without_quantstub_the_converted_model_rejects_float_input():
    torch.manual_seed(0)
    quantised = _quantise(Net())
    with pytest.raises(NotImplementedError, match=r"Could not run 'quantized::conv2d"):
        quantised(torch.randn(1, 3, 8, 8))


def test_with_quantwrapper_the_converted_model_runs():
    torch.manual_seed(0)
    quantised = _quantise(torch.ao.quantization.QuantWrapper(Net()))
    out = quantised(torch.randn(1, 3, 8, 8))
    assert out.shape == (1, 4, 6, 6)
    assert not out.is_quantized  # the DeQuantStub returns float
