"""DL214: torch.ao.quantization's entry points are deprecated, and its PT2E modules are gone.

In the torch 2.13 wheel prepare, convert, quantize, quantize_dynamic, prepare_qat, quantize_qat,
prepare_fx, prepare_qat_fx and convert_fx carry ``@typing_extensions.deprecated`` (visible as
``__deprecated__``) and emit a DeprecationWarning "torch.ao.quantization is deprecated and will be
removed in 2.10" with the torchao migration; fuse_modules and fuse_fx do not.  The legacy
torch.quantization names are the same objects.  ``torch.ao.quantization.quantize_pt2e`` no longer
exists (ModuleNotFoundError; present in 2.10.0, absent from 2.11.0 per the wheels).
"""

import importlib
import warnings

import pytest

torch = pytest.importorskip("torch")

DEPRECATED = ["prepare", "convert", "quantize", "quantize_dynamic", "prepare_qat", "quantize_qat"]
DEPRECATED_FX = ["prepare_fx", "prepare_qat_fx", "convert_fx"]


def _version():
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


pytestmark = pytest.mark.skipif(_version() < (2, 11), reason="measured on torch >= 2.11")


def test_entry_points_carry_the_deprecation():
    import torch.ao.quantization as tq
    import torch.ao.quantization.quantize_fx as fx

    for name in DEPRECATED:
        message = getattr(tq, name).__deprecated__
        assert "torch.ao.quantization is deprecated and will be removed in 2.10" in message
        assert "quantize_ API" in message and "prepare_pt2e" in message
        assert getattr(torch.quantization, name) is getattr(tq, name)  # the legacy spelling
    for name in DEPRECATED_FX:
        assert "deprecated" in getattr(fx, name).__deprecated__
    assert not hasattr(tq.fuse_modules, "__deprecated__")
    assert not hasattr(fx.fuse_fx, "__deprecated__")


def test_calling_one_emits_the_deprecation_warning():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4)).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any("torch.ao.quantization is deprecated" in str(w.message) for w in deprecations)


@pytest.mark.parametrize(
    "module",
    ["torch.ao.quantization.quantize_pt2e", "torch.ao.quantization.quantizer", "torch.ao.quantization.pt2e"],
)
def test_pt2e_modules_were_removed(module):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(module)
