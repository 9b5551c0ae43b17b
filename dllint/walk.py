"""One plain walk of a libcst tree, dispatching each node type to the handlers registered for it.

libcst's own visitor machinery (and its batched visitor) pays a dispatch cost per visitor per
node; walking the nodes' dataclass fields directly with a dict from node class to handlers is
several times cheaper, so the engine runs the Context and every rule in this single pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import libcst as cst

Handler = Callable[[Any], Any]

# Fields that never hold nodes a rule looks at (whitespace, punctuation, comments' carriers).
_SKIP_FIELDS = frozenset(
    {
        "lpar",
        "rpar",
        "comma",
        "semicolon",
        "leading_lines",
        "lines_after_decorators",
        "header",
        "footer",
        "trailing_whitespace",
        "newline",
        "dot",
        "colon",
        "equal",
        "star",
        "asynchronous",
        "first_line",
        "empty_lines",
        "relative",
        "lbracket",
        "rbracket",
        "lbrace",
        "rbrace",
        "whitespace",
        "semicolon",
        "star_tok",
        "operator",
        "arrow",
    }
)

_CHILD_FIELDS: Dict[type, Tuple[str, ...]] = {}


def child_fields(node_type: type) -> Tuple[str, ...]:
    fields = _CHILD_FIELDS.get(node_type)
    if fields is None:
        fields = tuple(
            f.name
            for f in dataclasses.fields(node_type)
            if f.name not in _SKIP_FIELDS and not f.name.startswith("whitespace")
        )
        _CHILD_FIELDS[node_type] = fields
    return fields


#: node class -> whether it is a libcst node (a dict lookup is cheaper than an ABC isinstance)
_IS_NODE: Dict[type, bool] = {}


def _learn(value_type: type) -> bool:
    known = isinstance(value_type, type) and issubclass(value_type, cst.CSTNode)
    _IS_NODE[value_type] = known
    return known


def node_class(name: str) -> Optional[type]:
    cls = getattr(cst, name, None)
    if isinstance(cls, type) and issubclass(cls, cst.CSTNode):
        return cls
    return None


def walk(
    root: cst.CSTNode,
    visit: Dict[type, List[Handler]],
    leave: Dict[type, List[Handler]],
    stack: List[cst.CSTNode],
    on_error: Callable[[Handler, BaseException], None],
) -> None:
    """Depth-first, in source order.  ``visit`` handlers of a node run before its children,
    ``leave`` handlers after them.  ``stack`` holds the ancestors of the current node (the node
    itself is on it while its children are walked).  A handler that raises is passed to
    ``on_error`` and the walk goes on."""
    is_node = _IS_NODE
    todo: List[Tuple[Any, bool]] = [(root, False)]
    pop = todo.pop
    push = todo.append
    while todo:
        node, leaving = pop()
        node_type = type(node)
        if leaving:
            stack.pop()
            handlers = leave.get(node_type)
            if handlers:
                for handler in handlers:
                    try:
                        handler(node)
                    except Exception as exc:  # a broken rule must not stop the others
                        on_error(handler, exc)
            continue
        handlers = visit.get(node_type)
        if handlers:
            for handler in handlers:
                try:
                    handler(node)
                except Exception as exc:
                    on_error(handler, exc)
        stack.append(node)
        push((node, True))
        fields = _CHILD_FIELDS.get(node_type) or child_fields(node_type)
        children: List[Any] = []
        for name in fields:
            value = getattr(node, name)
            value_type = value.__class__
            if value_type is tuple or value_type is list:
                for item in value:
                    known = is_node.get(item.__class__)
                    if known is None:
                        known = _learn(item.__class__)
                    if known:
                        children.append(item)
            else:
                known = is_node.get(value_type)
                if known is None:
                    known = _learn(value_type)
                if known:
                    children.append(value)
        for child in reversed(children):
            push((child, False))
