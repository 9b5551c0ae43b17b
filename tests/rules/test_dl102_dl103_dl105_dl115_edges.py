"""Edge cases of the log rules (DL102 log-of-sigmoid, DL103 handwritten-cross-entropy,
DL105 log-one-plus-exp-or-sum-exp, DL115 unclamped-exp-of-log-variance) beyond their examples:
which rule reports which node, origins through several assignments, and the fix layouts."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())
LOGS = {"DL101", "DL102", "DL103", "DL105", "DL115"}


def _lint(code: str, rules=LOGS):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "case.py", RULESET, enabled=set(rules))
    found = [f for f in result.findings if f.code in rules]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _where(code: str, rules=LOGS):
    return sorted((f.code, f.line, f.col) for f in _lint(code, rules)[2])


def _fixed(code: str, rule: str) -> str:
    _, result, found = _lint(code, {rule})
    return fixes.apply(result.module, fixes.fixable(found, True)).code


def test_grist_shape_reports_log_and_reduction_at_different_nodes():
    found = _where("""
        import tensorflow as tf
        y = tf.nn.softmax(tf.matmul(x, W) + b)
        cross_entropy = -tf.reduce_sum(y_ * tf.log(y))
        """)
    assert [c for c, _, _ in found] == ["DL101", "DL103"]
    assert len({(line, col) for _, line, col in found}) == 2  # never the same node


def test_direct_nesting_is_reported_once_at_the_log():
    found = _where("""
        import torch
        import torch.nn.functional as F
        loss = -(t * torch.log(F.softmax(z, dim=1))).sum(1).mean()
        bce = -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z))).mean()
        """)
    assert [c for c, _, _ in found] == ["DL101", "DL102", "DL102"]


def test_sigmoid_through_a_name_reports_both_logs_and_the_loss():
    found = _where("""
        import torch
        p = torch.sigmoid(z)
        bce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
        """)
    assert sorted(c for c, _, _ in found) == ["DL102", "DL102", "DL103"]


@pytest.mark.parametrize(
    "body",
    [
        "p = torch.sigmoid(z)\nif cond:\n    p = p * 0.5\nq = torch.log(p)",
        "for p in probs:\n    q = torch.log(p)",
        "p = torch.sigmoid(z)\np += 1\nq = torch.log(p)",
        "p = torch.sigmoid(z)\np = torch.clamp(p, 1e-6, 1 - 1e-6)\nq = torch.log(1 - p)",
    ],
    ids=["branch-rebinding", "loop-variable", "augmented", "clamped-last"],
)
def test_unknown_or_guarded_origins_stay_silent(body):
    assert _where("import torch\n" + body + "\n", {"DL102", "DL103"}) == []


def test_branch_assignments_that_all_agree():
    found = _where("""
        import torch
        if training:
            p = torch.sigmoid(a)
        else:
            p = torch.sigmoid(b)
        q = torch.log(1 - p)
        """, {"DL102"})
    assert found == [("DL102", 6, 5)]


def test_keras_dense_sigmoid_and_a_helper_return():
    found = _where("""
        import tensorflow as tf
        def head(h):
            return tf.nn.sigmoid(tf.matmul(h, w))
        out = tf.keras.layers.Dense(1, activation="sigmoid")(h)
        a = tf.math.log(out)
        b = tf.math.log(1 - head(h))
        """, {"DL102"})
    assert [line for _, line, _ in found] == [5, 6]


def test_layer_attribute_of_a_module():
    found = _where("""
        import torch
        from torch import nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.act = nn.Sigmoid()
            def forward(self, x):
                return torch.log(self.act(x))
        """, {"DL102"})
    assert [line for _, line, _ in found] == [8]


def test_negated_operands_in_the_one_minus_fix():
    code = """
        import torch
        import torch.nn.functional as F
        a = torch.log(1 - torch.sigmoid(-z))
        b = torch.log(1 - torch.sigmoid(x + y))
        c = torch.log((1 - torch.sigmoid(w)))
        """
    fixed = _fixed(code, "DL102")
    assert "a = F.logsigmoid(z)" in fixed
    assert "b = F.logsigmoid(-(x + y))" in fixed
    assert "c = F.logsigmoid(-w)" in fixed


def test_no_fix_across_frameworks():
    code = """
        import numpy as np
        import torch
        a = np.log(torch.sigmoid(z))
        """
    assert _fixed(code, "DL102") == textwrap.dedent(code).lstrip("\n")
    assert len(_lint(code, {"DL102"})[2]) == 1


def test_logsumexp_fix_needs_dim_and_keeps_keepdim():
    fixed = _fixed("""
        import torch
        a = torch.log(torch.sum(torch.exp(x), 1, True))
        b = torch.log(torch.sum(torch.exp(x), dtype=torch.float64))
        c = x.exp().sum(dim=-1).log()
        """, "DL105")
    assert "a = torch.logsumexp(x, 1, True)" in fixed
    assert "b = torch.log(torch.sum(torch.exp(x), dtype=torch.float64))" in fixed
    assert "c = torch.logsumexp(x, dim=-1)" in fixed


def test_stabilised_exponents_stay_silent():
    assert _where("""
        import torch
        m = torch.amax(x, dim=1, keepdim=True)
        a = m + torch.log(torch.exp(x - m).sum(1, keepdim=True))
        b = torch.log(1 + torch.exp(-x ** 2))
        c = torch.log1p(torch.exp(-x.abs()))
        """, {"DL105"}) == []


def test_dl115_is_off_by_default():
    from dllint.rules.numerical.dl115_unclamped_exp_of_log_variance import UnclampedExpOfLogVariance

    assert UnclampedExpOfLogVariance.default_enabled is False
