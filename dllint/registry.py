"""Finding the rules: the built-in catalogue by walking ``dllint.rules``, third-party packs
through the ``dllint.rules`` entry-point group.  Duplicate codes or names fail loudly."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import lru_cache
from typing import Dict, List, Tuple, Type

from dllint.rule import Rule


class RegistryError(Exception):
    """The rule set is inconsistent (duplicate code or name, malformed rule)."""


def _rules_in_module(module: object) -> List[Type[Rule]]:
    found = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if issubclass(obj, Rule) and obj is not Rule and obj.__module__ == module.__name__ and obj.code:
            found.append(obj)
    return found


def _builtin_rules() -> List[Type[Rule]]:
    package = importlib.import_module("dllint.rules")
    rules: List[Type[Rule]] = []
    for info in pkgutil.walk_packages(package.__path__, prefix="dllint.rules."):
        module = importlib.import_module(info.name)
        rules.extend(_rules_in_module(module))
    return rules


def _plugin_rules() -> List[Type[Rule]]:
    from importlib.metadata import entry_points

    rules: List[Type[Rule]] = []
    try:
        eps = entry_points(group="dllint.rules")
    except TypeError:  # Python 3.9
        eps = entry_points().get("dllint.rules", [])  # type: ignore[attr-defined]
    for ep in eps:
        loaded = ep.load()
        if inspect.isclass(loaded) and issubclass(loaded, Rule):
            rules.append(loaded)
        elif inspect.ismodule(loaded):
            rules.extend(_rules_in_module(loaded))
        elif isinstance(loaded, (list, tuple)):
            rules.extend(r for r in loaded if inspect.isclass(r) and issubclass(r, Rule))
        else:
            raise RegistryError(f"entry point {ep.name!r} in group dllint.rules is not a rule, module or list of rules")
    return rules


def check_unique(rules: List[Type[Rule]]) -> None:
    codes: Dict[str, Type[Rule]] = {}
    names: Dict[str, Type[Rule]] = {}
    for rule in rules:
        for key, table, what in ((rule.code, codes, "code"), (rule.name, names, "name")):
            other = table.get(key)
            if other is not None and other is not rule:
                raise RegistryError(
                    f"duplicate rule {what} {key!r}: {other.__module__}.{other.__name__} "
                    f"and {rule.__module__}.{rule.__name__}"
                )
            table[key] = rule


@lru_cache(maxsize=1)
def all_rules() -> Tuple[Type[Rule], ...]:
    """Every known rule, sorted by code."""
    rules = _builtin_rules() + _plugin_rules()
    check_unique(rules)
    return tuple(sorted(rules, key=lambda r: r.code))


def rule_by_code(code: str) -> Type[Rule]:
    for rule in all_rules():
        if rule.code == code.upper():
            return rule
    raise KeyError(code)
