"""DL206: quantize_dynamic silently leaves module types outside its mapping in float.

quantize_dynamic(model, {nn.Conv2d, nn.Linear}) returns a model whose Linear is a dynamic
quantised Linear and whose Conv2d is still the float nn.Conv2d, with no warning about it; the same
holds for the other float-only classes DL206 lists (nn.RNN, the norms, nn.Bilinear).
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


def _dynamic(model, spec):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantised = torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
    skipped = [w for w in caught if "Conv" in str(w.message) or "not quantized" in str(w.message).lower()]
    return quantised, skipped


def test_conv2d_in_the_spec_stays_float():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    quantised, skipped = _dynamic(model, {nn.Conv2d, nn.Linear})
    assert type(quantised[0]) is nn.Conv2d
    assert quantised[0].weight.dtype == torch.float32
    assert type(quantised[2]) is torch.ao.nn.quantized.dynamic.Linear
    assert skipped == []  # nothing tells the user


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.RNN(4, 4),
        lambda: nn.LayerNorm(4),
        lambda: nn.GroupNorm(2, 4),
        lambda: nn.InstanceNorm1d(4, affine=True),
        lambda: nn.BatchNorm2d(4),
        lambda: nn.ConvTranspose2d(4, 4, 3),
        lambda: nn.Bilinear(4, 4, 4),
    ],
)
def test_other_float_only_classes_stay_float(make):
    layer = make()
    quantised, _ = _dynamic(nn.Sequential(layer), {type(layer)})
    assert type(quantised[0]) is type(layer)


def test_multihead_attention_is_partly_quantised():
    # why DL206 leaves containers alone: the spec's qconfig reaches their Linear children
    quantised, _ = _dynamic(nn.Sequential(nn.MultiheadAttention(4, 2)), {nn.MultiheadAttention})
    assert type(quantised[0].out_proj) is torch.ao.nn.quantized.dynamic.Linear
