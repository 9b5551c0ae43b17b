"""DL208: until prune.remove, a pruned module keeps weight_orig / weight_mask and a pre-hook.

After prune.l1_unstructured the state_dict holds weight_orig and weight_mask instead of weight
and the module has a forward pre-hook, so loading the state_dict into an unpruned model fails;
after prune.remove it holds weight (with the zeros kept) and no hook.
"""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
prune = pytest.importorskip("torch.nn.utils.prune")


def test_pruned_state_dict_has_reparametrisation_until_removed():
    torch.manual_seed(0)
    fc = nn.Linear(8, 4)
    prune.l1_unstructured(fc, "weight", amount=0.5)
    keys = set(fc.state_dict())
    assert keys == {"bias", "weight_orig", "weight_mask"}
    assert len(fc._forward_pre_hooks) == 1
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*\"weight\".*Unexpected key.*weight_orig"):
        nn.Linear(8, 4).load_state_dict(fc.state_dict())

    prune.remove(fc, "weight")
    assert set(fc.state_dict()) == {"bias", "weight"}
    assert len(fc._forward_pre_hooks) == 0
    assert (fc.weight == 0).sum().item() == 16  # the pruning stays
    nn.Linear(8, 4).load_state_dict(fc.state_dict())
