"""Edge cases of DL409 (modules-in-plain-container), DL410 (functional-dropout-ignores-eval) and
DL411 (tensor-attribute-not-registered): module detection, spellings and near-misses."""

from __future__ import annotations

import textwrap

from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _found(code: str, rule: str):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "case.py", RULESET, enabled={rule})
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return found


def test_dl409_list_of_lists_from_corpus_shape():
    code = """
        import torch
        import torch.nn as nn
        class PairClassifier(nn.Module):
            def __init__(self, opts):
                super(PairClassifier, self).__init__()
                self.hidden = []
                for i in range(opts['n']):
                    self.hidden.append([nn.Linear(4, 4), getattr(nn, opts['act'])()])
            def forward(self, x):
                for linear, act in self.hidden:
                    x = act(linear(x))
                return x
        """
    found = _found(code, "DL409")
    assert [f.line for f in found] == [6] and found[0].fix is None


def test_dl409_base_imported_from_elsewhere_counts_when_it_builds_layers():
    code = """
        import torch.nn as nn
        from models import BaseVAE
        class VAE(BaseVAE):
            def __init__(self):
                super().__init__()
                self.enc = nn.Linear(4, 4)
                self.heads = [nn.Linear(4, 2) for _ in range(2)]
            def forward(self, x):
                return [h(self.enc(x)) for h in self.heads]
        """
    assert len(_found(code, "DL409")) == 1


def test_dl409_unknown_base_without_forward_is_silent():
    code = """
        import torch.nn as nn
        from lib import Thing
        class Holder(Thing):
            def __init__(self):
                self.layers = [nn.Linear(4, 4)]
        """
    assert _found(code, "DL409") == []


def test_dl409_len_in_init_does_not_hide_the_finding():
    code = """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = [nn.Linear(4, 4), nn.Linear(4, 4)]
                self.n = len(self.blocks)
        """
    assert len(_found(code, "DL409")) == 1


def test_dl409_dict_with_module_attribute_name_key_has_no_rewrite():
    code = """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads = {"train": nn.Linear(4, 4)}
        """
    found = _found(code, "DL409")
    assert len(found) == 1 and found[0].fix is None


def test_dl410_guard_in_boolean_and_nested_ifexp():
    code = """
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def forward(self, x, use_drop=True):
                x = F.dropout(x, 0.1) if self.training else x
                return self.training and F.dropout(x, 0.1)
        """
    assert _found(code, "DL410") == []


def test_dl410_sdpa_through_a_local_name():
    code = """
        import torch.nn as nn
        import torch.nn.functional as F
        class Attn(nn.Module):
            def forward(self, q, k, v):
                p = self.attn_dropout
                return F.scaled_dot_product_attention(q, k, v, None, p)
        """
    assert len(_found(code, "DL410")) == 1


def test_dl410_sdpa_local_name_conditioned_on_training_is_silent():
    code = """
        import torch.nn as nn
        import torch.nn.functional as F
        class Attn(nn.Module):
            def forward(self, q, k, v):
                p = self.attn_dropout if self.training else 0.0
                return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        """
    assert _found(code, "DL410") == []


def test_dl410_plain_function_is_silent():
    code = """
        import torch
        def f(x):
            return torch.nn.functional.dropout(x, 0.5)
        """
    assert _found(code, "DL410") == []


def test_dl411_tensor_of_a_name_may_be_scalar_and_stays_silent():
    code = """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self, s):
                super().__init__()
                self.s = torch.tensor(s)
            def forward(self, x):
                return x * self.s
        """
    assert _found(code, "DL411") == []


def test_dl411_registered_name_is_silent():
    code = """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("m", None)
                self.m = torch.ones(3, 3)
            def forward(self, x):
                return x @ self.m
        """
    assert _found(code, "DL411") == []


def test_dl411_chain_with_cuda_is_silent():
    code = """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.m = torch.ones(3, 3).cuda()
            def forward(self, x):
                return x @ self.m
        """
    assert _found(code, "DL411") == []
