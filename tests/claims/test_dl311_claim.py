"""DL311: torch.onnx.export(..., dynamo=False) runs the deprecated TorchScript-based exporter.

Measured in torch 2.13: dynamo=False emits a DeprecationWarning "You are using the legacy
TorchScript-based ONNX export. Starting in PyTorch 2.9, the new torch.export-based ONNX exporter
has become the default. ..."; the default call (dynamo=True) does not.
"""

import io
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def _version():
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


pytestmark = pytest.mark.skipif(_version() < (2, 9), reason="the dynamo exporter is the default from torch 2.9")

LEGACY = "You are using the legacy TorchScript-based ONNX export"


def _export(**kwargs):
    model = torch.nn.Linear(4, 2).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = torch.onnx.export(model, (torch.randn(1, 4),), **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def test_dynamo_false_emits_the_legacy_exporter_deprecation():
    buffer = io.BytesIO()
    _, messages = _export(f=buffer, dynamo=False)
    assert any(LEGACY in m and "Starting in PyTorch 2.9" in m for m in messages)
    assert buffer.getvalue()  # the legacy exporter still writes a model


def test_default_exporter_does_not():
    pytest.importorskip("onnxscript")
    program, messages = _export()
    assert program is not None
    assert not any(LEGACY in m for m in messages)
