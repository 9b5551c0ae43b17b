"""DL215: torch.quantize_per_tensor / quantize_per_channel warn that they are deprecated (torch 2.13).

The UserWarning (pytorch/pytorch#184982) is emitted on the call (once per process unless
torch.set_warn_always(True)); the text is in the 2.13.0 wheel and not in 2.12.0.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")

TEXT = (
    "quantized tensor creation functions that produce tensors with dtype torch.quint8, torch.qint8, "
    "and torch.qint32 are deprecated and will be removed in a future PyTorch release"
)


def _version():
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


pytestmark = pytest.mark.skipif(_version() < (2, 13), reason="the warning appears in torch 2.13")


def _warnings(fn):
    # the C++ side warns once per process; warn_always makes every call warn
    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn()
    finally:
        torch.set_warn_always(before)
    return result, [w for w in caught if issubclass(w.category, UserWarning)]


def test_quantize_per_tensor_warns():
    q, caught = _warnings(lambda: torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.quint8))
    assert q.dtype == torch.quint8
    assert any(TEXT in str(w.message) for w in caught)


def test_quantize_per_channel_warns():
    x = torch.randn(2, 3)
    q, caught = _warnings(
        lambda: torch.quantize_per_channel(x, torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), 0, torch.qint8)
    )
    assert q.dtype == torch.qint8
    assert any(TEXT in str(w.message) for w in caught)
