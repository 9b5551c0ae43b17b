"""The Context's value origins and guards, and the numerical family's shared predicates."""

from __future__ import annotations

import textwrap

import libcst as cst

from dllint.context import Context
from dllint.rules.numerical._values import is_python_number, is_safe_argument
from dllint.walk import walk


def probe(code: str, marker: str = "probe"):
    """Walk ``code``; at every call ``probe(expr)`` yield (ctx, expr) for questions."""
    module = cst.parse_module(textwrap.dedent(code))
    ctx = Context(module, module.code)
    answers = []
    questions = {}

    def on_call(node):
        if isinstance(node.func, cst.Name) and node.func.value == marker:
            answers.append(questions["ask"](ctx, node.args[0].value))

    visit, leave = {cst.Call: [on_call]}, {}
    for attr in dir(Context):
        if attr.startswith(("visit_", "leave_")):
            cls = getattr(cst, attr[6:])
            table = visit if attr.startswith("visit_") else leave
            if attr.startswith("visit_"):
                table.setdefault(cls, []).insert(0, getattr(ctx, attr))
            else:
                table.setdefault(cls, []).append(getattr(ctx, attr))

    def run(ask):
        questions["ask"] = ask
        walk(module, visit, leave, ctx.stack, lambda h, e: (_ for _ in ()).throw(e))
        return answers

    return module, run


def origin_text(code):
    module, run = probe(code)
    return [module.code_for_node(ctx_resolved) if ctx_resolved is not None else None
            for ctx_resolved in run(lambda ctx, expr: ctx.resolve(expr))]


def test_origin_through_names_unpacking_self_and_helpers():
    assert origin_text("""
        import torch.nn.functional as F
        def predict(x):
            return F.softmax(x, dim=-1)
        class M:
            def __init__(self):
                self.act = F.sigmoid
            def forward(self, x):
                self.probs = F.softmax(x, 1)
                probe(self.probs)
                return self.probs
        a, b = F.softmax(z, 1), 3
        probe(a)
        p = predict(z)
        probe(p)
        q = p
        probe(q)
        c, d = f(z)
        probe(c)
        """) == ["F.softmax(x, 1)", "F.softmax(z, 1)", "F.softmax(x, dim=-1)", "F.softmax(x, dim=-1)", "c"]


def test_two_assignments_are_not_followed():
    assert origin_text("""
        p = softmax(x)
        p = p + 1
        probe(p)
        for i in range(3):
            probe(i)
        """) == ["p", "i"]


def test_guards_and_no_grad():
    module, run = probe("""
        import torch
        def f(a, d, n):
            if d == 0:
                return a
            probe(d)
            probe(n)
            assert n > 0
            probe(n)
            y = a / d if d else a
            probe(d) if d > 0 else 0
            with torch.no_grad():
                probe(a)
        """)
    answers = run(lambda ctx, expr: (ctx.is_guarded(expr), ctx.in_no_grad()))
    assert answers == [(True, False), (False, False), (True, False), (True, False), (False, True)]


def test_safe_argument_predicate():
    module, run = probe("""
        import torch
        eps = 1e-8
        q = p.clamp(min=1e-6)
        probe(p + 1e-8)
        probe(1e-8 + p)
        probe(p + eps)
        probe(p + self.eps)
        probe(torch.clamp(p, min=1e-6))
        probe(torch.clamp(p, 0, 1))
        probe(p.clamp_min(1e-12))
        probe(torch.exp(z))
        probe(q)
        probe(p)
        probe(p - 1)
        probe(2.0)
        probe(max(n, 1))
        """)
    assert run(lambda ctx, expr: is_safe_argument(ctx, expr)) == [
        True, True, True, True, True, False, True, True, True, False, False, True, True]


def test_fp16_makes_tiny_eps_unsafe():
    module, run = probe("""
        import torch
        model = model.half()
        probe(p + 1e-10)
        probe(p + 1e-4)
        """)
    assert run(lambda ctx, expr: is_safe_argument(ctx, expr)) == [False, True]


def test_python_numbers():
    module, run = probe("""
        n = len(batch)
        probe(n)
        probe(x.size(0))
        probe(x.shape[1])
        probe(x.numel())
        probe(3)
        probe(x.sum())
        probe(x.size())
        probe(n * 2)
        """)
    assert run(lambda ctx, expr: is_python_number(ctx, expr)) == [True, True, True, True, True, False, False, True]


def test_object_events_in_evaluation_order():
    from dllint.context import Context
    from dllint.engine import parse

    text = (
        "import torch\n"
        "from torch.ao.quantization import prepare, convert, get_default_qconfig\n"
        "def main(model, loader):\n"
        "    model.eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n"
        "    prepared = prepare(model)\n"
        "    for x, _ in loader:\n"
        "        prepared(x)\n"
        "    q = convert(prepared.cpu())\n"
        "    def inner():\n"
        "        model.train()\n"
        "    return q\n"
    )
    module = parse(text)
    ctx = Context(module, text)
    function = module.body[2]
    events = ctx.object_events(function)
    kinds = [(e.kind, e.name) for e in events["model"]]
    assert kinds == [
        ("method", "eval"),
        ("setattr", "qconfig"),
        ("argument", "torch.ao.quantization.prepare"),
    ]  # the nested function's model.train() is not this function's
    prepared = [(e.kind, e.name) for e in events["prepared"]]
    assert prepared == [("assign", None), ("called", None), ("method", "cpu")]
    assert events["prepared"][1].loop is not None and events["prepared"][0].loop is None
    assert events["prepared"][1].order < events["prepared"][2].order < events["q"][0].order
    assert events["model"][2].order < events["prepared"][0].order
