"""DL303: Python numbers taken from tensors are frozen by the tracer.

jit.trace of ``int(x.size(0))`` and of ``.item()`` records the example's number: another input size
or value gives a different output from eager (torch 2.13). ``x.shape[0]`` stays dynamic. The legacy
ONNX export of ``int(lengths.max())`` (the coqui-ai-TTS sequence_mask) keeps the example's length;
the dynamo exporter keeps ``.item()`` symbolic.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")


class SizeToInt(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(int(x.size(0))) + 1


class LenOf(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x)) + 1


class ShapeKept(torch.nn.Module):
    def forward(self, x):
        return x.new_zeros(x.shape[0]) + 1


class ItemOf(torch.nn.Module):
    def forward(self, x):
        return x * x.max().item()


def sequence_mask(lengths):
    max_len = int(lengths.max())
    return torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)


class Mask(torch.nn.Module):
    def forward(self, lengths):
        return sequence_mask(lengths).float()


def _trace(module, example):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module.eval(), example)


def test_int_of_size_and_len_freeze_the_example_size():
    for cls in (SizeToInt, LenOf):
        traced = _trace(cls(), torch.ones(4, 3))
        x = torch.ones(7, 3)
        assert cls()(x).shape == (7,)
        assert traced(x).shape == (4,)  # frozen at the example's 4


def test_shape_expression_stays_dynamic():
    traced = _trace(ShapeKept(), torch.ones(4, 3))
    assert traced(torch.ones(7, 3)).shape == (7,)


def test_item_freezes_the_example_value():
    traced = _trace(ItemOf(), torch.tensor([1.0, 2.0]))
    x = torch.tensor([1.0, 5.0])
    assert ItemOf()(x).tolist() == [5.0, 25.0]
    assert traced(x).tolist() == [2.0, 10.0]  # multiplied by the example's max, 2


def test_legacy_onnx_export_freezes_the_length(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = str(tmp_path / "mask.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Mask().eval(), (torch.tensor([5, 3]),), path, input_names=["l"], output_names=["y"],
                          dynamic_axes={"l": {0: "b"}, "y": {0: "b", 1: "t"}}, dynamo=False)
    lengths = torch.tensor([9, 2])
    got = ort.InferenceSession(path).run(None, {"l": lengths.numpy()})[0]
    assert Mask()(lengths).shape == (2, 9)
    assert got.shape == (2, 5)  # the dummy input's max length
