from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import checkpoint_words
from dllint.rules.nlp._hf import PIPELINE_FUNCTIONS, UNKNOWN, literal, load_call, load_of

#: transformers' own Trainer classes: their ``__init__`` takes ``processing_class`` and, in
#: transformers 5, no ``tokenizer`` (and no ``**kwargs``).
TRAINERS = frozenset(
    {
        "transformers.Trainer",
        "transformers.Seq2SeqTrainer",
        "transformers.trainer.Trainer",
        "transformers.trainer_seq2seq.Seq2SeqTrainer",
    }
)

#: Tokenizer methods that transformers 5 removed from the tokenizer base class.
REMOVED_METHODS = frozenset({"encode_plus", "batch_encode_plus"})

#: Tokenizer methods that take the padding arguments.
ENCODING_METHODS = frozenset({"__call__", "encode", "encode_plus", "batch_encode_plus"})

#: Tokenizers that still define their own encode_plus / batch_encode_plus in transformers 5
#: (class-name prefixes and checkpoint words).
#: (measured: ``def encode_plus`` / ``def batch_encode_plus`` in transformers 5.23's model folders).
OWN_ENCODE_PLUS = ("LayoutLMv2", "LayoutLMv3", "LayoutXLM", "MarkupLM", "Tapas", "RoCBert", "Pop2Piano")
OWN_ENCODE_PLUS_WORDS = ("layoutlmv2", "layoutlmv3", "layoutxlm", "markuplm", "tapas", "pop2piano", "roc")
#: Words that, anywhere in the file's text, suggest one of those tokenizers.
OWN_ENCODE_PLUS_TEXT = (
    "layoutlmv2", "layoutlmv3", "layoutxlm", "markuplm", "tapas", "pop2piano", "rocbert", "roc-bert", "roc_bert"
)

#: A receiver spelled like a tokenizer: ``tokenizer``, ``tok``, ``self.tokenizer``, ``src_tokenizer``.
TOKENIZER_NAME = re.compile(r"^(?:[a-z0-9]+_)*(?:tok|tokenizer)(?:_[a-z0-9]+)*$", re.IGNORECASE)


class TransformersV4ApiRemovedInV5(Rule):
    """transformers 4 spellings that transformers 5 removed or ignores, when the project targets 5.

    Runs only when the target transformers release (`target-versions` in the config, else the
    project's pins in requirements / pyproject / setup / environment files) is 5 or later, or
    unknown (read as the newest). Finds:

    - (i) a tokenizer call (`tok(...)`, `tok.encode(...)`, `tok.encode_plus(...)`,
      `tok.batch_encode_plus(...)`) with `pad_to_max_length=True` (or a non-literal value) and no
      `padding=`: transformers 5 takes the keyword and ignores it, so the call does not pad
      (measured, transformers 5.23: `tok(["hello", "hello world the cat"], pad_to_max_length=True,
      max_length=10)` gives ids of lengths 3 and 6, no warning). Batches of unequal length then
      fail to stack into tensors, or a model expecting fixed-length input gets short rows.
      `pad_to_max_length=False` is not reported: ignoring it changes nothing.
    - (ii) `tok.encode_plus(...)` / `tok.batch_encode_plus(...)` on a transformers tokenizer:
      transformers 5 removed both (`AttributeError: BertTokenizer has no attribute encode_plus`).
      The LayoutLMv2, LayoutLMv3, LayoutXLM, MarkupLM, TAPAS, RoCBert and Pop2Piano tokenizers keep
      their own and are left alone (also when the file mentions one of them).
    - (iii) `Trainer(..., tokenizer=...)` / `Seq2SeqTrainer(..., tokenizer=...)`, a class of the
      file that subclasses them without its own `tokenizer` parameter, and
      `super().__init__(..., tokenizer=...)` inside such a subclass: `Trainer.__init__` takes
      `processing_class` and no `tokenizer` (`TypeError: Trainer.__init__() got an unexpected
      keyword argument 'tokenizer'`). trl's trainers are not checked: their signature follows
      trl's releases, not transformers'.
    - (iv) `from_pretrained(..., torch_dtype=...)` / `from_config(...)` of a transformers model and
      `pipeline(..., torch_dtype=...)`: an info-level note. transformers 5 renamed it `dtype`;
      `torch_dtype` still works: `from_pretrained` maps it to `dtype` without a word, `from_config`
      and `pipeline` log "`torch_dtype` is deprecated! Use `dtype` instead!" (measured, 5.23).

    The tokenizer is one the file loads (`AutoTokenizer.from_pretrained(...)`, a concrete
    `*Tokenizer`, a name or `self.<attr>` assigned once from one) or, when the receiver is not known,
    a receiver spelled like a tokenizer (`tokenizer`, `tok`, `self.tokenizer`, `src_tokenizer`) in
    a file that imports transformers and defines no `encode_plus` of its own.

    How to fix: `padding="max_length"` (with `max_length=`), call the tokenizer (`tok(texts, ...)`)
    instead of `encode_plus` / `batch_encode_plus`, `processing_class=tok`, `dtype=`. Or pin the
    project to transformers 4 (`transformers<5`), or set `target-versions = { transformers = "4.46" }`.

    Fixes: safe: `Trainer(tokenizer=...)` -> `Trainer(processing_class=...)` and `torch_dtype=` ->
    `dtype=` (both names exist from transformers 4.46 / 4.56 on and mean the same); not when both
    spellings are passed. Suggested (unsafe): `pad_to_max_length=True` -> what transformers 4 did
    with it: `padding="max_length"` when `max_length=` is given (plus `truncation=True` when no
    `truncation=` is given, since transformers 4 then truncated too), else `padding=True` (transformers
    4 padded to the longest sequence then); `tok.encode_plus(x, ...)` /
    `tok.batch_encode_plus(xs, ...)` -> `tok(x, ...)` / `tok(xs, ...)`: a call treats a list of
    strings as a batch where `encode_plus` took it as one pre-split sequence, so review it.

    Limits: a tokenizer passed in as a parameter with an unrelated name, or reached through a
    container, is not seen; a project pinned to transformers 4 through a file the pin reader does
    not know (a lock file, a Dockerfile) is read as unpinned.
    """

    code = "DL510"
    name = "transformers-v4-api-removed-in-v5"
    family = "nlp"
    message = "a transformers 4 API that transformers 5 removed or ignores silently; use its transformers 5 replacement"
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(e) Pan et al., bugs found while reusing pretrained NLP models",
        category="version-related bugs: APIs removed between major releases",
        links=(
            "https://github.com/huggingface/transformers/releases/tag/v5.0.0",
            "https://huggingface.co/docs/transformers/main/en/main_classes/trainer",
            "https://github.com/huggingface/transformers/pull/32385",
        ),
    )
    triggers = ("pad_to_max_length", "encode_plus", "tokenizer", "torch_dtype")
    frameworks = ("transformers",)

    VALID = (
        Valid(dedent("""
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            enc = tok(texts, padding="max_length", truncation=True, max_length=128)
            """), "the transformers 5 spelling"),
        Valid(dedent("""
            from transformers import Trainer
            trainer = Trainer(model=model, args=args, processing_class=tok)
            """), "processing_class"),
        Valid(dedent("""
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            enc = tok(texts, pad_to_max_length=False)
            """), "pad_to_max_length=False: ignoring it changes nothing"),
        Valid(dedent("""
            from transformers import LayoutLMv3Tokenizer
            tok = LayoutLMv3Tokenizer.from_pretrained("microsoft/layoutlmv3-base")
            enc = tok.encode_plus(words, boxes=boxes)
            """), "LayoutLMv3 keeps its own encode_plus"),
        Valid(dedent("""
            class Codec:
                def encode_plus(self, text):
                    return text
            tokenizer = Codec()
            out = tokenizer.encode_plus("x")
            """), "not a transformers tokenizer"),
        Valid(dedent("""
            from transformers import Trainer
            class MyTrainer(Trainer):
                def __init__(self, *args, tokenizer=None, **kwargs):
                    super().__init__(*args, processing_class=tokenizer, **kwargs)
            trainer = MyTrainer(model=model, tokenizer=tok)
            """), "the subclass takes tokenizer= itself"),
        Valid(dedent("""
            from trl import SFTTrainer
            trainer = SFTTrainer(model=model, tokenizer=tok)
            """), "trl's trainers follow trl's releases"),
        Valid(dedent("""
            import torch
            from diffusers import DiffusionPipeline
            pipe = DiffusionPipeline.from_pretrained("org/model", torch_dtype=torch.float16)
            """), "diffusers still names it torch_dtype"),
        Valid(dedent("""
            import torch
            from transformers import AutoModel
            model = AutoModel.from_pretrained("bert-base-uncased", dtype=torch.float16)
            """), "dtype="),
        Valid(dedent("""
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            enc = tok(texts, padding=True, pad_to_max_length=True)
            """), "padding= given: transformers 4 used it and ignored pad_to_max_length too"),
    )
    INVALID = (
        Invalid(
            dedent("""
                from transformers import Trainer
                trainer = Trainer(model=model, args=args, tokenizer=tok)
                """),
            dedent("""
                from transformers import Trainer
                trainer = Trainer(model=model, args=args, processing_class=tok)
                """),
            note="Trainer(tokenizer=) raises TypeError in v5",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                enc = tok.batch_encode_plus(texts, pad_to_max_length=True, max_length=128)
                """),
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                enc = tok(texts, padding="max_length", truncation=True, max_length=128)
                """),
            unsafe=True,
            note="removed method and ignored keyword, one finding",
        ),
        Invalid(
            dedent("""
                from transformers import BertTokenizer
                tokenizer = BertTokenizer.from_pretrained("bert-base-uncased")
                enc = tokenizer(text, pad_to_max_length=True, return_tensors="pt")
                """),
            dedent("""
                from transformers import BertTokenizer
                tokenizer = BertTokenizer.from_pretrained("bert-base-uncased")
                enc = tokenizer(text, padding=True, return_tensors="pt")
                """),
            unsafe=True,
            note="without max_length transformers 4 padded to the longest",
        ),
        Invalid(
            dedent("""
                import transformers
                def encode(tokenizer, text):
                    return tokenizer.encode_plus(text, add_special_tokens=True, return_tensors="pt")
                """),
            dedent("""
                import transformers
                def encode(tokenizer, text):
                    return tokenizer(text, add_special_tokens=True, return_tensors="pt")
                """),
            unsafe=True,
            note="a parameter named like a tokenizer in a transformers file",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import AutoModelForCausalLM
                model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
                """),
            dedent("""
                import torch
                from transformers import AutoModelForCausalLM
                model = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.bfloat16)
                """),
            note="info: torch_dtype renamed dtype",
        ),
        Invalid(
            dedent("""
                from transformers import Seq2SeqTrainer
                class MyTrainer(Seq2SeqTrainer):
                    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
                        return super().compute_loss(model, inputs, return_outputs, **kwargs)
                trainer = MyTrainer(model=model, args=args, tokenizer=tok, processing_class=tok)
                """),
            note="a subclass without its own __init__; both spellings: no fix",
        ),
        Invalid(
            dedent("""
                from transformers import Trainer
                class MyTrainer(Trainer):
                    def __init__(self, model, args, tok, **kwargs):
                        super().__init__(model=model, args=args, tokenizer=tok, **kwargs)
                """),
            dedent("""
                from transformers import Trainer
                class MyTrainer(Trainer):
                    def __init__(self, model, args, tok, **kwargs):
                        super().__init__(model=model, args=args, processing_class=tok, **kwargs)
                """),
            note="super().__init__ of a Trainer subclass",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        version = self.ctx.target_version("transformers")
        if version is not None and version < (5,):
            return
        if self._trainer_call(node):
            self._check_trainer(node)
            return
        if self._check_torch_dtype(node):
            return
        self._check_tokenizer(node)

    # ------------------------------------------------------------------ (iii) Trainer(tokenizer=)

    def _trainer_call(self, node: cst.Call) -> bool:
        """Whether ``node`` calls an ``__init__`` that hands ``tokenizer=`` to transformers' Trainer."""
        ctx = self.ctx
        if ctx.call_name(node) in TRAINERS:
            return True
        func = node.func
        subclasses = self._subclasses()
        if isinstance(func, cst.Name):
            bindings = ctx.lookup(func.value)
            if bindings and len(bindings) == 1 and id(bindings[0].value) in subclasses:
                return subclasses[id(bindings[0].value)][0]
            return False
        # super().__init__(...) inside the __init__ of a Trainer subclass
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value == "__init__"
            and isinstance(func.value, cst.Call)
            and dotted_name(func.value.func) == "super"
        ):
            cls = ctx.enclosing_class()
            return cls is not None and id(cls) in subclasses and subclasses[id(cls)][1]
        return False

    def _subclasses(self) -> Dict[int, Tuple[bool, bool]]:
        """id(ClassDef) -> (whether ``cls(..., tokenizer=...)`` hands ``tokenizer`` on to Trainer,
        whether its base does) for the classes of the file that subclass transformers' Trainer
        (directly or through each other)."""

        def compute(ctx: Any) -> Dict[int, Tuple[bool, bool]]:
            classes: List[cst.ClassDef] = []

            def collect(node: Any) -> None:  # source order: a base is defined before its subclasses
                # classes are statements: only statement blocks are searched, not expressions
                if isinstance(node, cst.ClassDef):
                    classes.append(node)
                for child in children(node):
                    if isinstance(child, (cst.BaseStatement, cst.BaseSuite, cst.ExceptHandler, cst.Else, cst.Finally)):
                        collect(child)

            collect(ctx.module)
            by_name: Dict[str, cst.ClassDef] = {}
            for cls in classes:
                by_name.setdefault(cls.name.value, cls)
            found: Dict[int, Tuple[bool, bool]] = {}
            for cls in classes:
                inherited: Optional[bool] = None
                for base in cls.bases:
                    if base.keyword is not None:
                        continue
                    name = dotted_name(base.value) or ""
                    parent = by_name.get(name)
                    if ctx.qualname(base.value) in TRAINERS:
                        inherited = True
                    elif parent is not None and id(parent) in found:
                        inherited = found[id(parent)][0]
                    elif (parent is not None and _init_of(parent) is None) or name.endswith("Mixin"):
                        continue  # a mixin before the Trainer base: assumed to leave __init__ alone
                    break  # an unknown base first in the method order may define __init__
                if inherited is not None:
                    found[id(cls)] = (_passes_tokenizer(cls, inherited), inherited)
            return found

        return self.ctx.memo("dl510.trainer_subclasses", compute)

    def _check_trainer(self, node: cst.Call) -> None:
        arg = self.ctx.keyword(node, "tokenizer")
        if arg is None or arg.keyword is None:
            return
        func = node.func
        if isinstance(func, cst.Name):
            name = func.value
        elif isinstance(func, cst.Attribute) and func.attr.value == "__init__":
            name = "super().__init__"
        else:
            name = (self.ctx.call_name(node) or "Trainer").rsplit(".", 1)[-1]
        message = (
            f"{name}(tokenizer=...) is a transformers 4 API that transformers 5 removed "
            "(TypeError: unexpected keyword argument 'tokenizer'); use processing_class="
        )
        fix = None
        if self.ctx.keyword(node, "processing_class") is None:
            fix = Fix("Rename tokenizer= to processing_class=", [(arg.keyword, cst.Name("processing_class"))], FixKind.SAFE)
        self.report(node, message, fix=fix)

    # ------------------------------------------------------------------ (iv) torch_dtype=

    def _check_torch_dtype(self, node: cst.Call) -> bool:
        ctx = self.ctx
        arg = ctx.keyword(node, "torch_dtype")
        if arg is None or arg.keyword is None:
            return False
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("from_pretrained", "from_config"):
            load = load_call(ctx, node)
            if load is None or load.kind != "model":
                return False
            spelling = f"{func.attr.value}(torch_dtype=...)"
        elif ctx.call_name(node) in PIPELINE_FUNCTIONS:
            spelling = "pipeline(torch_dtype=...)"
        else:
            return False
        still = (
            "still accepted for backward compatibility"
            if spelling.startswith("from_pretrained")
            else "still accepted, with a deprecation warning"
        )
        message = f"(info) {spelling} is a transformers 4 spelling that transformers 5 renamed ({still}); use dtype="
        fix = None
        if ctx.keyword(node, "dtype") is None:
            fix = Fix("Rename torch_dtype= to dtype=", [(arg.keyword, cst.Name("dtype"))], FixKind.SAFE)
        self.report(node, message, fix=fix)
        return True

    # ------------------------------------------------------------------ (i) and (ii) tokenizer calls

    def _check_tokenizer(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ENCODING_METHODS:
            method, receiver = func.attr.value, func.value
        else:
            method, receiver = "__call__", func
        if isinstance(receiver, cst.Call) or ctx.has_star_args(node) and method not in REMOVED_METHODS:
            return
        removed = method in REMOVED_METHODS
        pad = self._ignored_padding(node)
        if not removed and pad is None:
            return
        if not self._is_tokenizer(receiver, removed):
            return
        parts = []
        if removed:
            parts.append(
                f"{method}() is a transformers 4 API that transformers 5 removed (AttributeError); "
                "call the tokenizer instead"
            )
        if pad is not None:
            parts.append(
                "pad_to_max_length= is a transformers 4 API that transformers 5 ignores silently "
                "(the call does not pad); use padding=\"max_length\" (with max_length=)"
            )
        message = "; ".join(parts)
        self.report(node, message, fix=self._tokenizer_fix(node, method, receiver, pad))

    def _ignored_padding(self, node: cst.Call) -> Optional[cst.Arg]:
        """The ``pad_to_max_length=`` argument that transformers 5 would ignore to a different
        result: True or not a literal, with no ``padding=``."""
        ctx = self.ctx
        arg = ctx.keyword(node, "pad_to_max_length")
        if arg is None or ctx.keyword(node, "padding") is not None:
            return None
        value = literal(arg.value)
        if value is UNKNOWN and isinstance(arg.value, cst.Name):
            value = literal(ctx.resolve(arg.value))
        if value is not UNKNOWN and not value:
            return None
        return arg

    def _is_tokenizer(self, receiver: Any, removed: bool) -> bool:
        ctx = self.ctx
        load = load_of(ctx, receiver)
        if load is not None:
            if load.kind != "tokenizer":
                return False
            if removed and (
                load.cls.startswith(OWN_ENCODE_PLUS)
                or (load.checkpoint is not None and checkpoint_words(load.checkpoint.text) & set(OWN_ENCODE_PLUS_WORDS))
                or self._mentions_own_encode_plus()
            ):
                return False
            return True
        name = dotted_name(receiver)
        if name is None or not TOKENIZER_NAME.match(name.rsplit(".", 1)[-1]):
            return False
        if not ctx.imports("transformers"):
            return False
        return not (removed and (self._defines_encode_plus() or self._mentions_own_encode_plus()))

    def _defines_encode_plus(self) -> bool:
        def compute(ctx: Any) -> bool:
            todo: List[Any] = [ctx.module]
            while todo:
                current = todo.pop()
                if isinstance(current, cst.FunctionDef) and current.name.value in REMOVED_METHODS:
                    return True
                todo.extend(children(current))
            return False

        return self.ctx.memo("dl510.defines_encode_plus", compute)

    def _mentions_own_encode_plus(self) -> bool:
        source = self.ctx.source.lower()
        return any(word in source for word in OWN_ENCODE_PLUS_TEXT)

    def _tokenizer_fix(self, node: cst.Call, method: str, receiver: Any, pad: Optional[cst.Arg]) -> Fix:
        args = list(node.args)
        if pad is not None:
            index = next(i for i, a in enumerate(args) if a is pad)
            has_max_length = any(
                a.keyword is not None and a.keyword.value == "max_length" and literal(a.value) is not None
                for a in args
            )
            has_truncation = any(a.keyword is not None and a.keyword.value == "truncation" for a in args)
            value = '"max_length"' if has_max_length else "True"
            if literal(pad.value) is not True:
                value = f'({value} if {_code(pad.value)} else False)'
            padding = pad.with_changes(keyword=cst.Name("padding"), value=cst.parse_expression(value))
            if has_max_length and not has_truncation:
                separator = pad.comma.whitespace_after if isinstance(pad.comma, cst.Comma) else cst.SimpleWhitespace(" ")
                truncation = pad.with_changes(keyword=cst.Name("truncation"), value=cst.Name("True"))
                args[index : index + 1] = [
                    padding.with_changes(comma=cst.Comma(whitespace_after=separator), whitespace_after_arg=cst.SimpleWhitespace("")),
                    truncation,
                ]
            else:
                args[index] = padding
        if method == "batch_encode_plus":
            args = [
                a.with_changes(keyword=cst.Name("text"))
                if a.keyword is not None and a.keyword.value == "batch_text_or_text_pairs"
                else a
                for a in args
            ]
        new = node.with_changes(args=args)
        if method in REMOVED_METHODS:
            new = new.with_changes(func=receiver)
            message = f"Call the tokenizer instead of {method}() (a list of strings becomes a batch)"
        else:
            message = "Replace pad_to_max_length= by what transformers 4 did with it"
        if pad is not None and method in REMOVED_METHODS:
            message += "; replace pad_to_max_length= by padding="
        return Fix(message, [(node, new)], FixKind.UNSAFE)


def _init_of(cls: cst.ClassDef) -> Optional[cst.FunctionDef]:
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__init__":
            return stmt
    return None


def _passes_tokenizer(cls: cst.ClassDef, inherited: bool) -> bool:
    """Whether calling ``cls(..., tokenizer=...)`` hands ``tokenizer`` on to Trainer: the class
    defines no ``__init__`` (it inherits), or its ``__init__`` has no ``tokenizer`` parameter but
    takes ``**kwargs``."""
    init = _init_of(cls)
    if init is None:
        return inherited
    params = init.params
    names = {p.name.value for p in list(params.params) + list(params.kwonly_params) + list(params.posonly_params)}
    if "tokenizer" in names:
        return False
    return inherited and isinstance(params.star_kwarg, cst.Param)


def _code(node: Any) -> str:
    return cst.Module(body=[]).code_for_node(node)

