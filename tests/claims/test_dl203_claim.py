"""DL203: convert() right after prepare() gives a model with default quantisation parameters.

Eager static post-training quantisation of a tiny conv net, once without calibration and once
with a few calibration batches.  Without calibration the observers are empty: torch 2.13 only
warns, the activation scale is 1.0 and the zero point 0, and the converted model's outputs are
far off; with calibration they are close to the float model.  FX graph mode behaves the same.
Measured (torch 2.13 CPU): max error 0.595 without calibration vs 0.012 calibrated (eager), 0.595 vs
0.0095 (FX).
"""

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
tq = torch.ao.quantization

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv = nn.Conv2d(3, 8, 3)
        self.relu = nn.ReLU()
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.relu(self.conv(self.quant(x))))


def _data():
    torch.manual_seed(0)
    model = Net().eval()
    batches = [torch.randn(8, 3, 16, 16) * 0.2 for _ in range(4)]
    test = torch.randn(8, 3, 16, 16) * 0.2
    return model, batches, test


def _quantize_eager(model, batches):
    m = copy.deepcopy(model)
    m.qconfig = tq.get_default_qconfig("x86")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = tq.prepare(m)
        with torch.no_grad():
            for x in batches:
                prepared(x)
        quantized = tq.convert(prepared)
    return quantized, [str(w.message) for w in caught]


def test_eager_convert_without_calibration_uses_default_qparams_and_is_wrong():
    model, batches, test = _data()
    bad, messages = _quantize_eager(model, [])
    good, _ = _quantize_eager(model, batches)
    assert any("must run observer before calling calculate_qparams" in m for m in messages)
    # the input QuantStub became Quantize(scale=1.0, zero_point=0)
    assert float(bad.quant.scale) == 1.0 and int(bad.quant.zero_point) == 0
    assert float(good.quant.scale) < 0.1
    with torch.no_grad():
        ref = model(test)
        err_bad = (bad(test) - ref).abs().max().item()
        err_good = (good(test) - ref).abs().max().item()
    print(f"eager max error: without calibration {err_bad:.4f}, calibrated {err_good:.4f}")
    assert err_good < 0.05
    assert err_bad > 5 * err_good


def test_fx_convert_without_calibration_is_wrong():
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    model, batches, test = _data()
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).eval()
    plain.load_state_dict({"0.weight": model.conv.weight, "0.bias": model.conv.bias})
    mapping = tq.get_default_qconfig_mapping("x86")

    def quantize(calibration):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare_fx(copy.deepcopy(plain), mapping, (test,))
            with torch.no_grad():
                for x in calibration:
                    prepared(x)
            return convert_fx(prepared)

    bad, good = quantize([]), quantize(batches)
    with torch.no_grad():
        ref = plain(test)
        err_bad = (bad(test) - ref).abs().max().item()
        err_good = (good(test) - ref).abs().max().item()
    print(f"FX max error: without calibration {err_bad:.4f}, calibrated {err_good:.4f}")
    assert err_good < 0.05
    assert err_bad > 5 * err_good
