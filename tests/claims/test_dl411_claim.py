"""DL411: a plain tensor attribute is neither a buffer nor moved by .to(); register_buffer fixes it."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.mask = torch.tril(torch.ones(3, 3))


class Buffered(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.tril(torch.ones(3, 3)), persistent=False)


class Saved(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.tril(torch.ones(3, 3)))


def test_plain_attribute_is_not_a_buffer_and_not_cast():
    model = Plain()
    assert "mask" not in model.state_dict()
    assert list(model.buffers()) == []
    model.to(torch.float64)
    assert model.mask.dtype == torch.float32  # .to() did not reach it


def test_register_buffer_follows_to_and_state_dict():
    model = Buffered()
    assert len(list(model.buffers())) == 1
    assert "mask" not in model.state_dict()  # non-persistent: checkpoint keys unchanged
    model.to(torch.float64)
    assert model.mask.dtype == torch.float64
    assert "mask" in Saved().state_dict()
