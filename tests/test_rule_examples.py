"""Every example of every rule runs as a test: adding a rule needs no test code."""

from __future__ import annotations

import libcst as cst
import pytest

from dllint.engine import RuleSet, filter_noqa, lint_text
from dllint.registry import all_rules
from dllint.runner import Settings, lint_and_fix

RULES = all_rules()
RULESET = RuleSet(RULES)


def _cases(kind: str):
    for rule in RULES:
        for i, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{rule.code}-{kind.lower()}-{i}")


def _own(rule, text):
    result = lint_text(text, "example.py", RULESET, {}, frozenset({rule.code}))
    return [f for f in filter_noqa(result.findings, text) if f.code == rule.code]


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_metadata(rule):
    assert rule.check_metadata() == []


@pytest.mark.parametrize("rule, example", list(_cases("VALID")))
def test_valid_examples_stay_silent(rule, example):
    assert _own(rule, example.code) == []


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")))
def test_invalid_examples_are_flagged(rule, example):
    found = _own(rule, example.code)
    assert len(found) == example.count, [(f.line, f.col, f.message) for f in found]
    for finding in found:
        assert finding.line >= 1 and finding.col >= 1
        assert finding.message


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")))
def test_fixes(rule, example):
    settings = Settings(mode="fix", unsafe=example.unsafe)
    text, left, fixed, notes = lint_and_fix(example.code, "example.py", frozenset({rule.code}), settings)
    assert notes == []
    if example.fixed is None:
        # no fix expected: the code stays as it is
        assert text == example.code
        return
    assert fixed >= 1
    assert text == example.fixed
    cst.parse_module(text)  # the fixed code parses
    again, _, fixed_again, _ = lint_and_fix(text, "example.py", frozenset({rule.code}), settings)
    assert again == text and fixed_again == 0  # a second --fix changes nothing


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")) + list(_cases("VALID")))
def test_examples_survive_every_rule(rule, example):
    """No rule raises on another rule's examples."""
    result = lint_text(example.code, "example.py", RULESET, {}, RULESET.codes)
    assert not [f for f in result.findings if f.message.startswith("internal error")]
