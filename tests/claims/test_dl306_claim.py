"""DL306: onnxruntime replays the same "random" sample.

A module adding ``torch.randn_like`` noise, exported with torch 2.13 (dynamo exporter, the default,
and the legacy one), gives an ONNX RandomNormalLike with no seed. Measured with onnxruntime 1.32:
runs within one session differ, but every new session replays the same sequence (the first run of
two sessions is identical), while eager PyTorch samples anew on every call. (The catalogue's "same
sample on every run" is not what onnxruntime 1.32 does: it is the same sample in every session.)
"""

import warnings

import pytest

torch = pytest.importorskip("torch")


class Noisy(torch.nn.Module):
    def forward(self, x):
        return x + torch.randn_like(x)


def test_eager_resamples():
    x = torch.zeros(2, 4)
    assert not torch.equal(Noisy()(x), Noisy()(x))


@pytest.mark.parametrize("dynamo", [True, False])
def test_onnxruntime_returns_the_same_sample(tmp_path, dynamo):
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    path = str(tmp_path / "noisy.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Noisy().eval(), (torch.zeros(2, 4),), path, input_names=["x"], dynamo=dynamo)
    x = torch.zeros(2, 4).numpy()
    session = ort.InferenceSession(path)
    first = session.run(None, {"x": x})[0]
    second = session.run(None, {"x": x})[0]
    third = ort.InferenceSession(path).run(None, {"x": x})[0]
    assert (first != 0).any()  # it is noise
    assert not (first == second).all()  # a session draws new values per run
    assert (first == third).all()  # but every new session replays the same samples
