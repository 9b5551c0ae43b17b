from __future__ import annotations

from typing import Any, List, Optional

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._hf import Load, UNKNOWN, keyword_value, sets_pad_token
from dllint.rules.nlp.dl502_padded_input_without_attention_mask import (
    encoding_call,
    object_load,
    receiver_of,
    spellings,
)

#: Collators that pad through ``tokenizer.pad`` (which raises without a pad token, even when the
#: examples have the same length: measured, transformers 5.23).
PADDING_COLLATORS = frozenset(
    prefix + name
    for prefix in ("transformers.", "transformers.data.data_collator.", "transformers.data.")
    for name in (
        "DataCollatorWithPadding",
        "DataCollatorForSeq2Seq",
        "DataCollatorForTokenClassification",
        "DataCollatorForLanguageModeling",
    )
)

NO_PADDING = (False, None, "do_not_pad")


class MissingPadTokenForPadding(Rule):
    """Padding with a tokenizer whose checkpoint family has no pad token, and none is set.

    Finds, for a tokenizer loaded with `from_pretrained` from a checkpoint (or a concrete class)
    of a family whose tokenizer defines no pad token (GPT-2, DistilGPT-2, GPT-Neo, GPT-J,
    GPT-NeoX / Pythia, OpenAI GPT, Llama / CodeLlama, Mistral, Mixtral, Falcon: the family table
    in `_checkpoints`), a call that pads with it:
    `tok(texts, padding=True | "longest" | "max_length")` (also `encode`, `encode_plus`,
    `batch_encode_plus`), `tok.pad(...)`, or a padding collator made with it
    (`DataCollatorWithPadding`, `DataCollatorForSeq2Seq`, `DataCollatorForTokenClassification`,
    `DataCollatorForLanguageModeling(..., mlm=False)`), when the file never gives that tokenizer a
    pad token: no `pad_token=` at load, no `tok.pad_token = ...` / `tok.pad_token_id = ...`, no
    `tok.add_special_tokens({"pad_token": ...})` under any of the tokenizer's spellings, and the
    tokenizer is not handed to a call that mentions `pad_token` (a helper such as
    `smart_tokenizer_and_embedding_resize(special_tokens_dict=dict(pad_token=...), tokenizer=tok)`)
    or to a function of the file that mentions `pad_token`, or to a trl trainer (`SFTTrainer`,
    `DPOTrainer`, `GRPOTrainer`... set `pad_token = eos_token` on a tokenizer that has none, before
    any collator runs).

    Why it is a bug: transformers raises `ValueError: Asking to pad but the tokenizer does not
    have a padding token. Please select a token to use as pad_token ...` as soon as anything is
    padded: for `padding=True` even on a single text, and in `tokenizer.pad` (and so in the
    collators) even when all examples have the same length (measured, transformers 5.23, a GPT-2
    style tokenizer without a pad token).

    How to fix: set a pad token before padding: `tok.pad_token = tok.eos_token` is fine for
    inference (and pass the attention mask, DL502); for training, prefer a dedicated pad token
    (`tok.add_special_tokens({"pad_token": "[PAD]"})` and `model.resize_token_embeddings(len(tok))`,
    DL504), since with pad = EOS `DataCollatorForLanguageModeling` sets the genuine EOS labels to
    -100 and the model never learns to stop.

    Fix: suggested (unsafe): inserts `tok.pad_token = tok.eos_token` right after the statement that
    loads the tokenizer, when the load is a plain `name = X.from_pretrained(...)` statement.

    Limits: silent when the checkpoint family is unknown (a path or id from a variable that cannot
    be read), when the family's checkpoints differ (Qwen, Phi), and when the tokenizer's pad token
    may be set elsewhere (another module, a helper under another spelling that the file does not
    call with it). Checkpoints of a no-pad family that ship a pad token of their own are reported.
    """

    code = "DL505"
    name = "missing-pad-token-for-padding"
    family = "nlp"
    message = "<checkpoint> tokenizer has no pad token; set tokenizer.pad_token (e.g. = eos_token) before padding"
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(e) Pretrained NLP model reuse (984 bugs, 11 models)",
        category="lack of input validation",
        links=(
            "https://github.com/huggingface/transformers/issues/3859",
            "https://github.com/huggingface/transformers/issues/12594",
            "https://github.com/huggingface/transformers/issues/4122",
            "https://github.com/huggingface/trl/issues/466",
            "https://github.com/stanford-crfm/BioMedLM/issues/4",
        ),
    )
    triggers = ("pad", "DataCollator")
    frameworks = ("transformers",)

    VALID = (
        Valid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("gpt2")
                tok.pad_token = tok.eos_token
                batch = tok(texts, padding=True, return_tensors="pt")
                """),
            note="pad token set before padding",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                batch = tok(texts, padding=True, return_tensors="pt")
                """),
            note="BERT's tokenizer has [PAD]",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained(model_path)
                batch = tok(texts, padding=True, return_tensors="pt")
                """),
            note="unknown checkpoint family",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("gpt2")
                ids = tok(texts, truncation=True)
                """),
            note="no padding",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, DataCollatorForLanguageModeling
                tokenizer = AutoTokenizer.from_pretrained("meta-llama/Llama-2-7b-hf")
                smart_tokenizer_and_embedding_resize(special_tokens_dict=dict(pad_token="[PAD]"), tokenizer=tokenizer, model=model)
                collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
                """),
            note="a helper given the tokenizer and a pad token",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer
                def load():
                    t = AutoTokenizer.from_pretrained("mistralai/Mistral-7B-v0.1")
                    t.add_special_tokens({"pad_token": "<pad>"})
                    return t
                tok = load()
                batch = tok(texts, padding="longest")
                """),
            note="the pad token is set where the tokenizer is made",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, DataCollatorWithPadding
                tok = AutoTokenizer.from_pretrained("gpt2", pad_token="<|endoftext|>")
                collator = DataCollatorWithPadding(tok)
                """),
            note="pad token passed at load",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("gpt2")
                batch = tok(texts, padding=False)
                """),
            note="padding switched off",
        ),
    )

    INVALID = (
        Invalid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("gpt2")
                batch = tok(texts, padding=True, return_tensors="pt")
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("gpt2")
                tok.pad_token = tok.eos_token
                batch = tok(texts, padding=True, return_tensors="pt")
                """),
            unsafe=True,
            note="the catalogue's example",
        ),
        Invalid(
            dedent("""
                from transformers import GPT2TokenizerFast, DataCollatorWithPadding
                tokenizer = GPT2TokenizerFast.from_pretrained(args.model_name_or_path)
                collator = DataCollatorWithPadding(tokenizer=tokenizer)
                """),
            fixed=dedent("""
                from transformers import GPT2TokenizerFast, DataCollatorWithPadding
                tokenizer = GPT2TokenizerFast.from_pretrained(args.model_name_or_path)
                tokenizer.pad_token = tokenizer.eos_token
                collator = DataCollatorWithPadding(tokenizer=tokenizer)
                """),
            unsafe=True,
            note="family from the concrete class; a padding collator",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, DataCollatorForLanguageModeling
                MODEL = "meta-llama/Llama-2-7b-hf"
                class Data:
                    def __init__(self):
                        self.tokenizer = AutoTokenizer.from_pretrained(MODEL)
                        self.collator = DataCollatorForLanguageModeling(self.tokenizer, mlm=False)
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, DataCollatorForLanguageModeling
                MODEL = "meta-llama/Llama-2-7b-hf"
                class Data:
                    def __init__(self):
                        self.tokenizer = AutoTokenizer.from_pretrained(MODEL)
                        self.tokenizer.pad_token = self.tokenizer.eos_token
                        self.collator = DataCollatorForLanguageModeling(self.tokenizer, mlm=False)
                """),
            unsafe=True,
            note="a module constant checkpoint; causal-LM collator (pads with tokenizer.pad)",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("EleutherAI/gpt-neo-125m")
                def preprocess(examples):
                    return tok(examples["text"], padding="max_length", max_length=256, truncation=True)
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("EleutherAI/gpt-neo-125m")
                tok.pad_token = tok.eos_token
                def preprocess(examples):
                    return tok(examples["text"], padding="max_length", max_length=256, truncation=True)
                """),
            unsafe=True,
            note="padding inside a datasets.map function",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained(
                    "mistralai/Mistral-7B-v0.1", use_fast=True,
                )
                batch = tok.pad(features, return_tensors="pt")
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained(
                    "mistralai/Mistral-7B-v0.1", use_fast=True,
                )
                tok.pad_token = tok.eos_token
                batch = tok.pad(features, return_tensors="pt")
                """),
            unsafe=True,
            note="tokenizer.pad",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if not ctx.imports("transformers"):
            return
        found = self._padding_use(node)
        if found is None:
            return
        tok, receiver = found
        family = tok.family
        if family is None or family.pad_token is not False:
            return
        if ctx.has_star_args(tok.node):
            return
        names = spellings(ctx, receiver, tok)
        if not names:
            return
        for name in names:
            if sets_pad_token(ctx, cst.parse_expression(name), tok):
                return
        if _handed_to_pad_setter(ctx, names):
            return
        label = tok.checkpoint.text if tok.checkpoint is not None and tok.checkpoint.exact else family.name
        message = self.message.replace("<checkpoint>", label)
        self.report(node, message, fix=self._fix(tok))

    def _padding_use(self, node: cst.Call) -> Optional[tuple]:
        """(tokenizer load, receiver expression) when ``node`` pads with a known tokenizer."""
        ctx = self.ctx
        encoding = encoding_call(ctx, node)
        if encoding is not None:
            if encoding.padding in (True, "longest", "max_length"):
                return encoding.tokenizer, receiver_of(node)
            return None
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "pad":
            tok = object_load(ctx, func.value)
            if tok is not None and tok.kind == "tokenizer":
                if keyword_value(ctx, node, "padding", True) in NO_PADDING:
                    return None
                return tok, func.value
            return None
        name = ctx.call_name(node)
        if name in PADDING_COLLATORS:
            if name.endswith("DataCollatorForLanguageModeling") and keyword_value(ctx, node, "mlm", True) is not False:
                return None  # masked LM needs a mask token first (another error)
            value = keyword_value(ctx, node, "padding", True)
            if value in NO_PADDING or value is UNKNOWN:
                return None
            arg = ctx.argument(node, 0, "tokenizer")
            if arg is None:
                return None
            tok = object_load(ctx, arg)
            if tok is not None and tok.kind == "tokenizer":
                return tok, arg
        return None

    def _fix(self, tok: Load) -> Optional[Fix]:
        """Insert ``<name>.pad_token = <name>.eos_token`` after the load statement."""
        statement = _statement_of(self.ctx, tok.node)
        if statement is None:
            return None
        line, small = statement
        if len(line.body) != 1 or not isinstance(small, cst.Assign) or len(small.targets) != 1:
            return None
        target = dotted_name(small.targets[0].target)
        if target is None or small.value is not tok.node:
            return None
        new = cst.parse_statement(f"{target}.pad_token = {target}.eos_token\n")
        block = cst.FlattenSentinel([line, new])
        return Fix(f"Set {target}.pad_token = {target}.eos_token after loading", [(line, block)], FixKind.UNSAFE)


def _statement_of(ctx: Any, call: cst.Call) -> Optional[tuple]:
    """(SimpleStatementLine, small statement) holding ``call`` as the value of an assignment."""

    def compute(ctx: Any) -> dict:
        table: dict = {}
        todo: List[Any] = [ctx.module]
        while todo:
            node = todo.pop()
            if isinstance(node, cst.SimpleStatementLine):
                for small in node.body:
                    if isinstance(small, cst.Assign):
                        table[id(small.value)] = (node, small)
            todo.extend(children(node))
        return table

    return ctx.memo("dl505.statements", compute).get(id(call))


def _handed_to_pad_setter(ctx: Any, names: List[str]) -> bool:
    """Whether a tokenizer spelling is passed to a call that mentions ``pad_token`` (in its
    arguments, or in the body of a function of this file it calls)."""

    def compute(ctx: Any) -> dict:
        functions: dict = {}
        calls: List[cst.Call] = []
        todo: List[Any] = [ctx.module]
        while todo:
            node = todo.pop()
            if isinstance(node, cst.FunctionDef):
                functions.setdefault(node.name.value, []).append(node)
            elif isinstance(node, cst.Call):
                calls.append(node)
            todo.extend(children(node))
        return {"functions": functions, "calls": calls}

    table = ctx.memo("dl505.calls", compute)
    wanted = set(names)
    for call in table["calls"]:
        passed = [dotted_name(arg.value) for arg in call.args]
        if not wanted.intersection(n for n in passed if n):
            continue
        if any(_mentions_pad_token(ctx, arg) for arg in call.args):
            return True
        if (ctx.call_name(call) or "").startswith("trl."):
            return True  # trl's trainers set pad_token = eos_token when it is missing
        func = call.func
        callee = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else None
        for definition in table["functions"].get(callee, []):
            if _mentions_pad_token(ctx, definition):
                return True
    return False


def _mentions_pad_token(ctx: Any, node: Any) -> bool:
    todo = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, cst.Name) and current.value in ("pad_token", "pad_token_id"):
            return True
        if isinstance(current, cst.SimpleString) and "pad_token" in current.value:
            return True
        if isinstance(current, cst.CSTNode):
            todo.extend(children(current))
    return False
