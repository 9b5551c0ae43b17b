"""DL304: an ONNX export without dynamic shapes fixes the batch; onnxruntime rejects another batch size.
With dynamic_shapes the same model runs at any batch (torch 2.13 dynamo exporter)."""

from __future__ import annotations

import logging
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")
np = pytest.importorskip("numpy")


def _export(tmp_path, name, **kwargs):
    model = torch.nn.Linear(16, 4).eval()
    path = str(tmp_path / name)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(4, 16),), path, external_data=False, **kwargs)
    finally:
        logging.disable(logging.NOTSET)
    return ort.InferenceSession(path)


def test_static_export_rejects_other_batch(tmp_path):
    sess = _export(tmp_path, "static.onnx")
    assert sess.get_inputs()[0].shape == [4, 16]
    with pytest.raises(Exception, match="invalid dimensions"):
        sess.run(None, {sess.get_inputs()[0].name: np.zeros((2, 16), np.float32)})


def test_dynamic_shapes_export_runs_other_batch(tmp_path):
    sess = _export(tmp_path, "dynamic.onnx", dynamic_shapes={"input": {0: "batch"}})
    assert sess.get_inputs()[0].shape[0] == "batch"
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((2, 16), np.float32)})[0]
    assert out.shape == (2, 4)
