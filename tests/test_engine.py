"""The engine and Context: name resolution against libcst's own provider, robustness, laziness."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, QualifiedNameProvider, QualifiedNameSource

from dllint.context import Context, compute_positions
from dllint.engine import RuleSet, lint_text
from dllint.registry import RegistryError, all_rules, check_unique
from dllint.rule import Evidence, Invalid, Rule, Valid
from dllint.walk import walk

SAMPLE = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    import tensorflow as tf
    from tensorflow.math import log
    from torch import nn, softmax as sm
    import numpy as np, scipy.special

    def f(x, F2):
        a = F.softmax(x, dim=-1)
        b = tf.math.log(a)
        c = log(b)
        d = sm(x, 1)
        e = nn.Softmax(dim=1)
        g = np.log(scipy.special.softmax(x))
        h = F2.relu(x)
        return torch.log(a)

    class M(nn.Module):
        def forward(self, x):
            import torch.special as S
            return S.softmax(x, -1) + torch.nn.functional.gelu(x)
    """
)


def _ours(module):
    ctx = Context(module, module.code)
    seen = {}

    def on_call(node):
        seen[id(node)] = ctx.qualname(node.func)

    visit = {}
    leave = {}
    for attr in dir(Context):
        if attr.startswith(("visit_", "leave_")):
            cls = getattr(cst, attr[6:])
            (visit if attr.startswith("visit_") else leave).setdefault(cls, []).append(getattr(ctx, attr))
    visit.setdefault(cst.Call, []).append(on_call)

    def fail(handler, exc):
        raise exc

    walk(module, visit, leave, ctx.stack, fail)
    return seen


def test_qualified_names_match_libcst_provider():
    module = cst.parse_module(SAMPLE)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    names = wrapper.resolve(QualifiedNameProvider)
    ours = _ours(module)
    compared = 0
    for node in _calls(module):
        found = names.get(node.func, ())
        found = found() if callable(found) else found
        reference = {q.name for q in found if q.source == QualifiedNameSource.IMPORT}
        if reference:
            compared += 1
            assert ours[id(node)] in reference, (module.code_for_node(node), ours[id(node)], reference)
        else:
            assert ours[id(node)] is None, module.code_for_node(node)
    assert compared >= 9


def _calls(module):
    out = []

    class V(cst.CSTVisitor):
        def visit_Call(self, node):
            out.append(node)

    module.visit(V())
    return out


def test_positions_match_libcst_provider():
    from libcst.metadata import PositionProvider

    module = cst.parse_module(SAMPLE)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    reference = wrapper.resolve(PositionProvider)
    ours = compute_positions(module)
    for node in _calls(module):
        ref = reference[node]
        assert ours[id(node)] == (ref.start.line, ref.start.column, ref.end.line, ref.end.column)


class Broken(Rule):
    """Raises on every call (a test double for a buggy rule)."""

    code = "DL999"
    name = "broken-rule"
    family = "test"
    message = "never"
    evidence = Evidence("test", "test", ("https://example.invalid",))
    triggers = ("torch",)
    VALID = (Valid("x = 1\n"),)
    INVALID = (Invalid("torch.log(x)\n"),)

    def visit_Call(self, node):
        raise ValueError("boom")


def test_a_raising_rule_is_one_internal_error_and_others_still_run():
    rules = list(all_rules()) + [Broken]
    ruleset = RuleSet(rules)
    text = "import torch\nimport torch.nn.functional as F\ny = torch.log(F.softmax(x, dim=1))\n"
    result = lint_text(text, "a.py", ruleset, {}, ruleset.codes)
    codes = sorted(f.code for f in result.findings)
    assert codes == ["DL101", "DL999"]
    broken = [f for f in result.findings if f.code == "DL999"][0]
    assert "internal error" in broken.message and "boom" in broken.message


def test_duplicate_codes_and_names_fail_loudly():
    class Twin(Broken):
        name = "other-name"

    class SameName(Broken):
        code = "DL998"

    with pytest.raises(RegistryError, match="duplicate rule code 'DL999'"):
        check_unique([Broken, Twin])
    with pytest.raises(RegistryError, match="duplicate rule name 'broken-rule'"):
        check_unique([Broken, SameName])


def test_astroid_is_not_imported_unless_a_rule_asks(tmp_path):
    (tmp_path / "a.py").write_text("import torch\nimport torch.nn.functional as F\ny = torch.log(F.softmax(x, 1))\n")
    code = (
        "import sys\n"
        "from dllint.cli import main\n"
        f"rc = main(['--no-cache', '-q', '--jobs', '1', {str(tmp_path / 'a.py')!r}])\n"
        "assert 'astroid' not in sys.modules, 'astroid was imported'\n"
        "assert rc == 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_astroid_inference_on_demand():
    text = "import torch\nk = 3\nx = torch.zeros(k)\n"
    module = cst.parse_module(text)
    ctx = Context(module, text, "a.py")
    assign = module.body[2].body[0]
    inferred = ctx.infer(assign.value.args[0].value)
    assert [getattr(v, "value", None) for v in inferred] == [3]
    # astroid failures degrade to "unknown"
    assert Context(module, "def (:", "b.py").infer(assign.value) == []


def test_local_rebinding_shadows_imports():
    text = textwrap.dedent(
        """
        import torch
        import torch.nn.functional as F
        def f(torch):
            return torch.log(F.softmax(x, 1))
        def g():
            F = make()
            return torch.log(F.softmax(x, 1))
        """
    )
    ruleset = RuleSet(all_rules())
    result = lint_text(text, "a.py", ruleset, {}, frozenset({"DL101"}))
    assert result.findings == []


def test_parent_is_the_direct_parent_in_visit_and_leave():
    module = cst.parse_module("y = f(g(x))\n")
    ctx = Context(module, module.code)
    seen = []

    def visit_call(node):
        seen.append(("visit", module.code_for_node(node), type(ctx.parent()).__name__))

    def leave_call(node):
        seen.append(("leave", module.code_for_node(node), type(ctx.parent()).__name__))

    walk(module, {cst.Call: [visit_call]}, {cst.Call: [leave_call]}, ctx.stack, lambda h, e: (_ for _ in ()).throw(e))
    assert seen == [
        ("visit", "f(g(x))", "Assign"),
        ("visit", "g(x)", "Arg"),
        ("leave", "g(x)", "Arg"),
        ("leave", "f(g(x))", "Assign"),
    ]


def test_imported_roots_reads_absolute_imports_only():
    from dllint.engine import imported_roots

    text = (
        "import os, transformers as t\n"
        "from torch.ao import quantization\n"
        "from .utils import helper\n"
        "try:\n"
        "    import tensorflow.lite\n"
        "except ImportError:\n"
        "    pass\n"
        "import a.b as c, d\n"
    )
    assert imported_roots(text) == {"os", "transformers", "torch", "tensorflow", "a", "d"}


def test_rules_naming_frameworks_run_only_where_one_is_imported():
    from dllint.engine import RuleSet
    from dllint.registry import rule_by_code

    rule = rule_by_code("DL509")
    assert rule.frameworks == ("transformers",)
    ruleset = RuleSet([rule])
    call = "m = AutoModel.from_pretrained('org/m', trust_remote_code=True)\n"
    assert ruleset.active_for("from transformers import AutoModel\n" + call) == [rule]
    # the library's own source imports itself relatively: the rule does not wake up
    assert ruleset.active_for("from ..auto import AutoModel\n" + call) == []
