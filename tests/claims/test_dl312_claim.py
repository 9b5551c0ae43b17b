"""DL312: the dynamo exporter writes <p>.data by default; <p> copied alone does not load in onnxruntime.

torch 2.13 saves through onnx_ir.save with size_threshold_bytes=256: every initializer of more
than 256 bytes goes to the sidecar (a Linear(16, 16) weight is 1024 bytes)."""

from __future__ import annotations

import logging
import os
import shutil
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")


def _export(path, **kwargs):
    model = torch.nn.Linear(16, 16).eval()
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(2, 16),), path, **kwargs)
    finally:
        logging.disable(logging.NOTSET)


def test_default_writes_sidecar_and_copy_alone_fails(tmp_path):
    src = tmp_path / "out"
    dst = tmp_path / "deploy"
    src.mkdir()
    dst.mkdir()
    path = str(src / "m.onnx")
    _export(path)
    assert os.path.getsize(path + ".data") == 16 * 16 * 4
    ort.InferenceSession(path)  # loads beside its sidecar
    shutil.copy(path, dst)
    with pytest.raises(Exception, match="External data path"):
        ort.InferenceSession(str(dst / "m.onnx"))


def test_external_data_false_is_self_contained(tmp_path):
    src = tmp_path / "out"
    dst = tmp_path / "deploy"
    src.mkdir()
    dst.mkdir()
    path = str(src / "m.onnx")
    _export(path, external_data=False)
    assert not os.path.exists(path + ".data")
    shutil.copy(path, dst)
    ort.InferenceSession(str(dst / "m.onnx"))
