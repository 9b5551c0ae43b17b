"""What the DL5xx rules know about transformers objects in a file.

The questions the rules share, answered from the Context (reaching assignments, ``self.<attr>``
of a class, one-return helpers) and from one lazy scan of the module per file:

- ``checkpoint(ctx, expr)``: the checkpoint id an expression holds: a string literal, a module
  constant, a function parameter's default, an f-string's literal stem, an argparse ``default=`` or
  a dataclass field default read as ``args.<name>``, ``a or b`` when ``a`` defaults to None.
- ``load_of(ctx, expr)``: the transformers object a name, ``self.<attr>`` or call holds: a tokenizer,
  a model, a pipeline, a Trainer or TrainingArguments, with the call that made it and its checkpoint.
- ``encoding_of(ctx, expr)``: the tokenizer call whose ids an expression carries (``enc``,
  ``enc["input_ids"]``, ``enc.input_ids.to(device)``, ``{k: v.to(d) for k, v in enc.items()}``).
- ``settings(ctx, receiver)``: what the file does to a tokenizer or model after it is made: pad token
  set, padding side, tokens added, embeddings resized, mode switched, matched by the receiver's
  spelling anywhere in the file (a generous match: precision first).

An unknown answer is None: rules stay silent on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rules.nlp._checkpoints import (
    Family,
    SELF_RETURNING,
    family_of_checkpoint,
    family_of_class,
    is_model_class,
    is_tokenizer_class,
    strip_self_returning,
)

UNKNOWN: Any = object()

#: Tokenizer methods that encode text (encode_plus / batch_encode_plus: transformers 4 only).
ENCODE_METHODS = frozenset({"__call__", "encode", "encode_plus", "batch_encode_plus", "apply_chat_template"})

#: Trainer classes (transformers and trl) that drive the training step themselves.
TRAINER_CLASSES = frozenset(
    {
        "transformers.Trainer",
        "transformers.Seq2SeqTrainer",
        "transformers.trainer_seq2seq.Seq2SeqTrainer",
        "transformers.trainer.Trainer",
        "trl.SFTTrainer",
        "trl.DPOTrainer",
        "trl.RewardTrainer",
        "trl.PPOTrainer",
        "trl.GRPOTrainer",
        "trl.ORPOTrainer",
        "trl.KTOTrainer",
    }
)

TRAINING_ARGUMENT_CLASSES = frozenset(
    {
        "transformers.TrainingArguments",
        "transformers.Seq2SeqTrainingArguments",
        "transformers.training_args.TrainingArguments",
        "trl.SFTConfig",
        "trl.DPOConfig",
        "trl.GRPOConfig",
    }
)

PIPELINE_FUNCTIONS = frozenset({"transformers.pipeline", "transformers.pipelines.pipeline"})

#: Tensor methods between a tokenizer's output and the model that keep the ids as they are.
PASS_THROUGH_METHODS = frozenset({"to", "cuda", "cpu", "long", "int", "unsqueeze"})


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint id; ``exact`` is False for the literal stem of an f-string."""

    text: str
    exact: bool = True

    @property
    def family(self) -> Optional[Family]:
        return family_of_checkpoint(self.text)


@dataclass(frozen=True)
class Load:
    """A transformers object made by a call: ``kind`` is "tokenizer", "model", "pipeline",
    "trainer", "training_args", "config" or "other"."""

    node: cst.Call
    kind: str
    cls: str  # class name (``AutoModelForCausalLM``), "pipeline", or the trainer's qualified name
    checkpoint: Optional[Checkpoint]
    pretrained: bool  # made by from_pretrained (weights from a checkpoint)

    @property
    def family(self) -> Optional[Family]:
        """The family by the checkpoint, else by a concrete class name."""
        family = self.checkpoint.family if self.checkpoint is not None else None
        if family is None and self.kind in ("tokenizer", "model"):
            family = family_of_class(self.cls)
        return family


# ---------------------------------------------------------------------- literals


def literal(node: Any) -> Any:
    """The value of a True/False/None, int, float or plain-string literal, else UNKNOWN."""
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, cst.Integer):
        return int(node.value.replace("_", ""), 0)
    if isinstance(node, cst.SimpleString):
        return node.evaluated_value
    if isinstance(node, cst.ConcatenatedString):
        value = node.evaluated_value
        return value if isinstance(value, str) else UNKNOWN
    return UNKNOWN


def keyword_value(ctx: Any, call: cst.Call, name: str, default: Any = None) -> Any:
    """The literal value of keyword ``name`` of ``call`` (through a name assigned once); ``default``
    when the keyword is absent, UNKNOWN when it is not a literal."""
    arg = ctx.keyword(call, name)
    if arg is None:
        return UNKNOWN if ctx.has_star_args(call) else default
    value = literal(arg.value)
    if value is UNKNOWN and isinstance(arg.value, cst.Name):
        value = literal(ctx.resolve(arg.value))
    return value


# ---------------------------------------------------------------------- checkpoints


def _argument_defaults(ctx: Any) -> Dict[str, Any]:
    """``dest -> default literal`` for every ``add_argument(...)`` and every dataclass-style class
    field (``name: str = field(default=...)`` / ``name: str = "..."``) of the module; a name given
    two different defaults maps to UNKNOWN."""

    def compute(ctx: Any) -> Dict[str, Any]:
        found: Dict[str, Any] = {}

        def note(name: str, value: Any) -> None:
            if name in found and found[name] != value:
                found[name] = UNKNOWN
            else:
                found[name] = value

        todo: List[Any] = [ctx.module]
        while todo:
            node = todo.pop()
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "add_argument":
                dest = None
                for arg in node.args:
                    if arg.keyword is None and isinstance(arg.value, cst.SimpleString):
                        option = arg.value.evaluated_value
                        if isinstance(option, str) and (dest is None or option.startswith("--")):
                            dest = option.lstrip("-").replace("-", "_")
                    elif arg.keyword is not None and arg.keyword.value == "dest":
                        value = literal(arg.value)
                        if isinstance(value, str):
                            dest = value
                            break
                if dest:
                    default = ctx.keyword(node, "default")
                    note(dest, literal(default.value) if default is not None else None)
            elif isinstance(node, cst.ClassDef):
                for stmt in node.body.body:
                    if not isinstance(stmt, cst.SimpleStatementLine):
                        continue
                    for small in stmt.body:
                        if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and small.value is not None:
                            value = small.value
                            if isinstance(value, cst.Call) and dotted_name(value.func) in ("field", "dataclasses.field"):
                                default = ctx.keyword(value, "default")
                                value = default.value if default is not None else None
                            note(small.target.value, literal(value) if value is not None else UNKNOWN)
            todo.extend(children(node))
        return found

    return ctx.memo("dl5.argument_defaults", compute)


def argument_default(ctx: Any, name: str) -> Any:
    """The argparse / dataclass-field default of ``args.<name>`` in this file (UNKNOWN when there
    is none or several disagree)."""
    return _argument_defaults(ctx).get(name, UNKNOWN)


def checkpoint(ctx: Any, node: Any, _depth: int = 0) -> Optional[Checkpoint]:
    """The checkpoint id ``node`` holds, when it can be told; else None."""
    if node is None or _depth > 6:
        return None
    value = literal(node)
    if isinstance(value, str):
        return Checkpoint(value)
    if value is not UNKNOWN:
        return None
    if isinstance(node, cst.FormattedString):
        stem = ""
        for part in node.parts:
            if not isinstance(part, cst.FormattedStringText):
                break
            stem += part.value
        return Checkpoint(stem, exact=False) if stem.strip("/. ") else None
    if isinstance(node, cst.Name):
        bindings = ctx.lookup(node.value)
        if not bindings or len(bindings) != 1:
            return None
        binding = bindings[0]
        if binding.kind == "param":
            default = binding.value.default
            return checkpoint(ctx, default, _depth + 1) if default is not None else None
        expr = binding.expression()
        return checkpoint(ctx, expr, _depth + 1) if expr is not None else None
    if isinstance(node, cst.Attribute):
        owner = ctx.assigned_value(node) if isinstance(node.value, cst.Name) and node.value.value == "self" else None
        if owner is not None:
            return checkpoint(ctx, owner, _depth + 1)
        default = _argument_defaults(ctx).get(node.attr.value, UNKNOWN)
        return Checkpoint(default) if isinstance(default, str) else None
    if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, cst.Or):
        # args.tokenizer_name or args.model_name_or_path: the left one defaults to None
        left = node.left
        if isinstance(left, cst.Attribute) and _argument_defaults(ctx).get(left.attr.value, UNKNOWN) is None:
            return checkpoint(ctx, node.right, _depth + 1)
        return None
    return None


def _defaults_to_none(ctx: Any, node: Any) -> bool:
    return isinstance(node, cst.Attribute) and _argument_defaults(ctx).get(node.attr.value, UNKNOWN) is None


# ---------------------------------------------------------------------- objects


def load_call(ctx: Any, node: Any) -> Optional[Load]:
    """The Load a call makes, when it makes a transformers object."""
    node = strip_self_returning(node)
    if not isinstance(node, cst.Call):
        return None
    func = node.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("from_pretrained", "from_config"):
        owner = ctx.qualname(func.value)
        if owner is None or not owner.startswith("transformers."):
            return None
        cls = owner.rsplit(".", 1)[1]
        if func.attr.value == "from_pretrained":
            source = ctx.argument(node, 0, "pretrained_model_name_or_path")
            ckpt = checkpoint(ctx, source)
        else:
            ckpt = None
        if is_tokenizer_class(cls):
            kind = "tokenizer"
        elif is_model_class(cls):
            kind = "model"
        elif cls.endswith("Config"):
            kind = "config"
        else:
            kind = "other"
        return Load(node, kind, cls, ckpt, func.attr.value == "from_pretrained")
    name = ctx.call_name(node)
    if name is None:
        return None
    if name in PIPELINE_FUNCTIONS:
        model = ctx.argument(node, 1, "model")
        return Load(node, "pipeline", "pipeline", checkpoint(ctx, model) if model is not None else None, True)
    if name in TRAINER_CLASSES:
        return Load(node, "trainer", name, None, False)
    if name in TRAINING_ARGUMENT_CLASSES:
        return Load(node, "training_args", name, None, False)
    if name.startswith("transformers."):
        cls = name.rsplit(".", 1)[1]
        if is_model_class(cls):
            return Load(node, "model", cls, None, False)
        if is_tokenizer_class(cls):
            return Load(node, "tokenizer", cls, None, False)
    return None


def load_of(ctx: Any, expr: Any, _depth: int = 0) -> Optional[Load]:
    """The transformers object ``expr`` holds: a load call itself, a name whose reaching
    assignments are one load (``model = model.to(device)`` rebindings allowed), a ``self.<attr>``
    assigned once in its class, or a one-return helper's call."""
    if expr is None or _depth > 4:
        return None
    expr = strip_self_returning(expr)
    if isinstance(expr, cst.Call):
        found = load_call(ctx, expr)
        if found is not None:
            return found
        value = ctx.returned_value(expr)
        return load_of(ctx, value, _depth + 1) if value is not None else None
    if isinstance(expr, cst.Name):
        bindings = ctx.lookup(expr.value)
        if not bindings:
            return None
        found = None
        for binding in bindings:
            value = binding.expression()
            if value is None:
                return None
            value = strip_self_returning(value)
            if isinstance(value, cst.Name) and value.value == expr.value:
                continue  # model = model.to(device)
            if found is not None:
                return None
            found = value
        return load_of(ctx, found, _depth + 1) if found is not None else None
    if isinstance(expr, cst.Attribute):
        value = ctx.assigned_value(expr)
        if value is None:
            return None
        value = strip_self_returning(value)
        if isinstance(value, cst.Attribute) and dotted_name(value) == dotted_name(expr):
            return None
        return load_of(ctx, value, _depth + 1)
    return None


# ---------------------------------------------------------------------- encodings


@dataclass(frozen=True)
class Encoding:
    """A tokenizer call and how it was made."""

    call: cst.Call
    method: str
    tokenizer: Load
    #: the literal of padding= (False when absent; UNKNOWN when not a literal)
    padding: Any
    #: whether the text argument is a batch: True (list literal, comprehension, a list of texts by
    #: name), False (one string literal), None (unknown)
    batched: Optional[bool]

    @property
    def pads(self) -> bool:
        """Whether the call pads for sure: ``padding=True | "longest" | "max_length"``."""
        return self.padding in (True, "longest", "max_length")


def tokenizer_call(ctx: Any, call: Any) -> Optional[Encoding]:
    """The Encoding when ``call`` encodes text with a known transformers tokenizer."""
    if not isinstance(call, cst.Call):
        return None
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in ENCODE_METHODS:
        method, receiver = func.attr.value, func.value
    else:
        method, receiver = "__call__", func
    if isinstance(receiver, cst.Call):
        return None
    tok = load_of(ctx, receiver)
    if tok is None or tok.kind != "tokenizer":
        return None
    padding = keyword_value(ctx, call, "padding", False)
    if padding is False and keyword_value(ctx, call, "pad_to_max_length", False) is True:
        padding = "pad_to_max_length"  # transformers 4 only: ignored by transformers 5
    text = ctx.argument(call, 0, "text" if method != "batch_encode_plus" else "batch_text_or_text_pairs")
    return Encoding(call, method, tok, padding, _batched(ctx, text, method))


def _batched(ctx: Any, text: Any, method: str) -> Optional[bool]:
    if method == "batch_encode_plus":
        return True
    if method in ("encode", "encode_plus"):
        return False
    if text is None:
        return None
    value = ctx.resolve(text) if isinstance(text, cst.Name) else text
    if isinstance(value, (cst.List, cst.ListComp, cst.Tuple)):
        if isinstance(value, (cst.List, cst.Tuple)) and len(value.elements) == 1 and not isinstance(
            value.elements[0], cst.StarredElement
        ):
            return False
        return True
    if isinstance(value, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
        return False
    return None


def is_key(node: cst.Subscript, key: str) -> bool:
    if len(node.slice) != 1:
        return False
    index = node.slice[0].slice
    return isinstance(index, cst.Index) and literal(index.value) == key


def items_source(node: cst.DictComp) -> Any:
    """For ``{k: v.to(device) for k, v in enc.items()}``, ``enc``; None for any other comprehension."""
    loop = node.for_in
    it = loop.iter
    if (
        loop.inner_for_in is not None
        or loop.ifs
        or not isinstance(it, cst.Call)
        or it.args
        or not isinstance(it.func, cst.Attribute)
        or it.func.attr.value != "items"
    ):
        return None
    return it.func.value


def encoding_of(ctx: Any, expr: Any, key: Optional[str] = None, names: Optional[List[str]] = None) -> Optional[Encoding]:
    """The tokenizer call whose output ``expr`` carries; with ``key`` ("input_ids"), ``expr`` may
    also be that one entry of it (``enc["input_ids"]``, ``enc.input_ids``).  Names passed through
    are appended to ``names``."""
    for _ in range(10):
        if isinstance(expr, cst.Name):
            if names is not None:
                names.append(expr.value)
            expr = ctx.assigned_value(expr)
            if expr is None:
                return None
        elif isinstance(expr, cst.Subscript):
            if key is None or not is_key(expr, key):
                return None
            key = None
            expr = expr.value
        elif isinstance(expr, cst.Attribute):
            if key is None or expr.attr.value != key:
                value = ctx.assigned_value(expr)
                if value is None:
                    return None
                expr = value
                continue
            key = None
            expr = expr.value
        elif isinstance(expr, cst.Call):
            found = tokenizer_call(ctx, expr)
            if found is not None:
                return found
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value in PASS_THROUGH_METHODS:
                expr = func.value
            else:
                return None
        elif isinstance(expr, cst.DictComp):
            expr = items_source(expr)
            if expr is None:
                return None
        else:
            return None
    return None


# ---------------------------------------------------------------------- what a file does to an object


@dataclass
class Settings:
    """What the file does to objects spelled one way (``tokenizer``, ``self.tok``): attribute
    assignments (attribute -> assigned values) and method calls (method -> calls)."""

    assigned: Dict[str, List[Any]] = field(default_factory=dict)
    calls: Dict[str, List[cst.Call]] = field(default_factory=dict)
    #: the spelling was passed as an argument to a call that is not a method of its own (it may be
    #: set up elsewhere: ``setup_tokenizer(tok)``)
    escapes: bool = False


def _settings_table(ctx: Any) -> Dict[str, Settings]:
    def compute(ctx: Any) -> Dict[str, Settings]:
        table: Dict[str, Settings] = {}

        def entry(receiver: Any) -> Optional[Settings]:
            name = dotted_name(receiver)
            if name is None:
                return None
            return table.setdefault(name, Settings())

        todo: List[Any] = [ctx.module]
        while todo:
            node = todo.pop()
            if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, cst.Attribute):
                        found = entry(target.value)
                        if found is not None:
                            found.assigned.setdefault(target.attr.value, []).append(node.value)
            elif isinstance(node, cst.Call):
                func = node.func
                if isinstance(func, cst.Attribute):
                    found = entry(func.value)
                    if found is not None:
                        found.calls.setdefault(func.attr.value, []).append(node)
                for arg in node.args:
                    name = dotted_name(arg.value)
                    if name is not None and not (
                        isinstance(func, cst.Attribute) and dotted_name(func.value) == name
                    ):
                        table.setdefault(name, Settings()).escapes = True
            todo.extend(children(node))
        return table

    return ctx.memo("dl5.settings", compute)


def settings(ctx: Any, receiver: Any) -> Settings:
    """What the file does to objects spelled like ``receiver`` (anywhere in the file)."""
    name = dotted_name(receiver)
    if name is None:
        return Settings(escapes=True)
    return _settings_table(ctx).get(name, Settings())


def sets_pad_token(ctx: Any, receiver: Any, load: Optional[Load] = None) -> bool:
    """Whether the tokenizer gets a pad token: ``pad_token=`` at load, ``tok.pad_token = ...``,
    ``tok.pad_token_id = ...``, ``tok.add_special_tokens({"pad_token": ...})`` anywhere in the file."""
    if load is not None and ctx.keyword(load.node, "pad_token") is not None:
        return True
    found = settings(ctx, receiver)
    if any(attr in found.assigned for attr in ("pad_token", "pad_token_id")):
        return True
    for call in found.calls.get("add_special_tokens", []):
        arg = ctx.argument(call, 0, "special_tokens_dict")
        value = ctx.resolve(arg) if isinstance(arg, cst.Name) else arg
        if not isinstance(value, cst.Dict):
            return True  # unknown dict: may hold a pad token
        for element in value.elements:
            if not isinstance(element, cst.DictElement) or literal(element.key) in ("pad_token", UNKNOWN):
                return True
    return False


def padding_side(ctx: Any, receiver: Any, load: Optional[Load]) -> Any:
    """The tokenizer's padding side: the ``padding_side=`` of its load or an assignment anywhere
    in the file; "default" when neither; UNKNOWN when not a literal or set several ways."""
    values: Set[Any] = set()
    if load is not None:
        arg = ctx.keyword(load.node, "padding_side")
        if arg is not None:
            values.add(literal(arg.value))
        elif ctx.has_star_args(load.node):
            values.add(UNKNOWN)
    for value in settings(ctx, receiver).assigned.get("padding_side", []):
        values.add(literal(value) if value is not None else UNKNOWN)
    if not values:
        return "default"
    return values.pop() if len(values) == 1 else UNKNOWN


def mentions(node: Any, name: str) -> bool:
    """Whether the dotted name ``name`` occurs anywhere under ``node``."""
    todo = [node]
    while todo:
        current = todo.pop()
        if dotted_name(current) == name:
            return True
        if isinstance(current, cst.CSTNode):
            todo.extend(children(current))
    return False


__all__ = [
    "Checkpoint",
    "Encoding",
    "Load",
    "PASS_THROUGH_METHODS",
    "SELF_RETURNING",
    "Settings",
    "UNKNOWN",
    "argument_default",
    "checkpoint",
    "encoding_of",
    "is_key",
    "items_source",
    "keyword_value",
    "literal",
    "load_call",
    "load_of",
    "mentions",
    "padding_side",
    "sets_pad_token",
    "settings",
    "tokenizer_call",
]
