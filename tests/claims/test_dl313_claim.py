"""DL313: exporting to io.BytesIO with the dynamo exporter emits a DeprecationWarning (torch 2.13)."""

from __future__ import annotations

import io
import logging
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")


def _warnings(f):
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(torch.nn.Linear(4, 2).eval(), (torch.randn(2, 4),), f)
    finally:
        logging.disable(logging.NOTSET)
    return [w for w in caught if "BytesIO" in str(w.message)]


def test_bytesio_export_warns(tmp_path):
    buf = io.BytesIO()
    found = _warnings(buf)
    assert found and found[0].category is DeprecationWarning
    assert "Please use a file path instead" in str(found[0].message)
    assert len(buf.getvalue()) > 0


def test_file_path_export_does_not_warn(tmp_path):
    assert _warnings(str(tmp_path / "m.onnx")) == []
