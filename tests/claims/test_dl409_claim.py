"""DL409: layers kept in a plain Python list are not registered by nn.Module.

They are missing from parameters() (never trained) and state_dict() (never saved);
nn.ModuleList registers them.
"""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class PlainList(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [nn.Linear(4, 4), nn.Linear(4, 4)]


class Registered(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])


def test_plain_list_is_invisible():
    model = PlainList()
    assert sum(p.numel() for p in model.parameters()) == 0
    assert list(model.state_dict()) == []
    model.eval()
    assert all(block.training for block in model.blocks)  # eval() did not reach them


def test_module_list_registers():
    model = Registered()
    assert sum(p.numel() for p in model.parameters()) == 40
    assert len(model.state_dict()) == 4
    model.eval()
    assert not any(block.training for block in model.blocks)
