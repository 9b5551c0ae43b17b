from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children, dotted_name
from dllint.fixes import append_keyword
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import Family, is_model_class, is_tokenizer_class, strip_self_returning
from dllint.rules.nlp._hf import (
    PASS_THROUGH_METHODS,
    Encoding,
    Load,
    checkpoint,
    is_key,
    keyword_value,
    literal,
    load_of,
    padding_side,
    settings,
    tokenizer_call,
)

#: Functions that wrap a list of ids into a tensor (the padding is kept).
TENSOR_CONSTRUCTORS = frozenset(
    {
        "torch.tensor",
        "torch.LongTensor",
        "torch.as_tensor",
        "torch.stack",
        "tensorflow.constant",
        "tensorflow.convert_to_tensor",
        "numpy.array",
        "numpy.asarray",
    }
)

PAD_SEQUENCE = frozenset({"torch.nn.utils.rnn.pad_sequence"})
FUNCTIONAL_PAD = frozenset({"torch.nn.functional.pad"})

#: Keyword arguments of a model call that carry the token ids.
ID_KEYWORDS = ("input_ids", "inputs")

#: The id of the pad token per shared vocabulary (tokenizer files of the checkpoints named in
#: _checkpoints): used only to read a literal ``ids + [0, 0, 0]`` as padding.
PAD_ID_BY_VOCAB = {
    "bert-wordpiece": 0,  # bert-base-uncased vocab.txt: [PAD] is line 0
    "albert": 0,  # albert-base-v2 spiece: <pad> 0
    "t5": 0,  # t5-base: <pad> 0
    "roberta-bpe": 1,  # roberta-base vocab.json: <pad> 1
    "xlm-roberta": 1,  # xlm-roberta-base: <pad> 1
    "camembert": 1,  # camembert-base: <pad> 1
}


# ---------------------------------------------------------------------- helpers shared by DL502/DL506


def star_imports_transformers(ctx: Any) -> bool:
    """``from transformers import *`` at the top of the module."""

    def compute(ctx: Any) -> bool:
        for stmt in ctx.module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if (
                        isinstance(small, cst.ImportFrom)
                        and isinstance(small.names, cst.ImportStar)
                        and not small.relative
                        and small.module is not None
                        and dotted_name(small.module) == "transformers"
                    ):
                        return True
        return False

    return ctx.memo("dl502.star_import", compute)


def value_of(ctx: Any, name: Any, skip: int = 0) -> Optional[Any]:
    """The value a name holds here: its single assignment, else the last plain assignment
    before this point in straight-line code of the same function (``x = a`` ... ``x = b`` ...
    ``use(x)`` gives ``b``); None when a branch, loop or other binding may have changed it.
    ``skip`` passes over that many of the latest assignments (``x = x.to(dev)`` read inside its
    own value refers to the assignment before it)."""
    if not isinstance(name, cst.Name):
        return ctx.assigned_value(name)
    if skip == 0:
        value = ctx.assigned_value(name)
        if value is not None:
            return value
    bindings = ctx.lookup(name.value)
    if not bindings or len(bindings) < 2 or skip >= len(bindings):
        return None
    return _straight_line_value(ctx, name.value, skip)


def _straight_line_value(ctx: Any, name: str, skip: int = 0) -> Optional[Any]:
    stack = list(ctx.stack)
    for i in range(len(stack) - 1, 0, -1):
        statement, block = stack[i], stack[i - 1]
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return None
        if isinstance(block, (cst.For, cst.While)) and _binds(block, name):
            return None  # a later iteration may see another value
        if not isinstance(block, (cst.Module, cst.IndentedBlock)):
            continue
        body = list(block.body)
        index = next((k for k, s in enumerate(body) if s is statement), None)
        if index is None:
            return None
        for previous in reversed(body[:index]):
            if isinstance(previous, cst.SimpleStatementLine):
                for small in reversed(previous.body):
                    if isinstance(small, cst.Assign):
                        targets = [t.target for t in small.targets]
                        if any(isinstance(t, cst.Name) and t.value == name for t in targets):
                            if skip == 0:
                                return small.value
                            skip -= 1
                            continue
                        if any(_binds(t, name) for t in targets):
                            return None
                    elif isinstance(small, (cst.AugAssign, cst.AnnAssign)) and _binds(small.target, name):
                        return small.value if isinstance(small, cst.AnnAssign) else None
                    elif isinstance(small, (cst.Global, cst.Nonlocal)):
                        return None
            elif _binds(previous, name):
                return None
        if isinstance(block, cst.IndentedBlock) and isinstance(stack[i - 2] if i >= 2 else None, cst.FunctionDef):
            return None
    return None


def _binds(node: Any, name: str) -> bool:
    """Whether ``name`` is (re)bound anywhere under ``node`` (assignment targets, loop targets,
    ``with ... as``, walrus, ``del``, imports, nested definitions)."""
    todo = [node]
    while todo:
        current = todo.pop()
        targets: List[Any] = []
        if isinstance(current, cst.Assign):
            targets = [t.target for t in current.targets]
        elif isinstance(current, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr, cst.Del)):
            targets = [current.target]
        elif isinstance(current, cst.AsName):
            targets = [current.name]
        elif isinstance(current, (cst.FunctionDef, cst.ClassDef)):
            targets = [current.name]
        elif isinstance(current, cst.ImportAlias) and current.asname is None:
            targets = [current.name]
        if any(_target_binds(t, name) for t in targets):
            return True
        if isinstance(current, cst.CSTNode):
            todo.extend(children(current))
    return False


def _target_binds(target: Any, name: str) -> bool:
    if isinstance(target, cst.Name):
        return target.value == name
    if isinstance(target, (cst.Tuple, cst.List)):
        return any(_target_binds(e.value, name) for e in target.elements)
    if isinstance(target, (cst.StarredElement, cst.Element)):
        return _target_binds(target.value, name)
    return False


def star_load(ctx: Any, expr: Any) -> Optional[Load]:
    """``BertModel.from_pretrained(...)`` under ``from transformers import *`` (the class name is
    bound by nothing else in the file), through names assigned once."""
    if not star_imports_transformers(ctx):
        return None
    for _ in range(4):
        if isinstance(expr, cst.Name):
            expr = value_of(ctx, expr)
        elif isinstance(expr, cst.Attribute):
            expr = ctx.assigned_value(expr)
        else:
            break
        expr = strip_self_returning(expr)
    if not (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value == "from_pretrained"
        and isinstance(expr.func.value, cst.Name)
        and not ctx.lookup(expr.func.value.value)
    ):
        return None
    cls = expr.func.value.value
    kind = "tokenizer" if is_tokenizer_class(cls) else "model" if is_model_class(cls) else None
    if kind is None:
        return None
    source = ctx.argument(expr, 0, "pretrained_model_name_or_path")
    return Load(expr, kind, cls, checkpoint(ctx, source), True)


def class_attribute_load(ctx: Any, expr: Any) -> Optional[Load]:
    """``self.<attr>`` whose assignments in the methods of the enclosing class are one load plus
    rebindings of itself (``self.model = self.model.to(device)``)."""
    if not (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)):
        return None
    cls = ctx.enclosing_class()
    if cls is None or ctx.function() is None:
        return None
    values = ctx.memo(f"dl502.class_attributes:{id(cls)}", lambda ctx: _class_attributes(cls)).get(
        expr.attr.value, []
    )
    if len(values) != 1:
        return None
    return load_of(ctx, values[0])


def _class_attributes(cls: cst.ClassDef) -> Dict[str, Any]:
    """attribute -> the values assigned to ``self.<attribute>`` in the methods of ``cls``, leaving
    out self-rebindings; None for an attribute also assigned by unpacking or augmented assignment."""
    found: Dict[str, Any] = {}
    spoiled: Set[str] = set()
    for stmt in cls.body.body:
        if not isinstance(stmt, cst.FunctionDef) or not stmt.params.params:
            continue
        owner = stmt.params.params[0].name.value
        todo: List[Any] = [stmt.body]
        while todo:
            node = todo.pop()
            if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for target in targets:
                    subs = [target] + (list(e.value for e in target.elements) if isinstance(target, (cst.Tuple, cst.List)) else [])
                    for sub in subs:
                        if not (isinstance(sub, cst.Attribute) and isinstance(sub.value, cst.Name) and sub.value.value == owner):
                            continue
                        attr = sub.attr.value
                        if isinstance(node, cst.AugAssign) or sub is not target:
                            spoiled.add(attr)
                            continue
                        value = strip_self_returning(node.value)
                        if dotted_name(value) != f"{owner}.{attr}":
                            found.setdefault(attr, []).append(value)
            todo.extend(children(node))
    for attr in spoiled:
        found[attr] = []
    return found


def object_load(ctx: Any, expr: Any) -> Optional[Load]:
    """The transformers object ``expr`` holds (the shared answer, then ``self.<attr>`` with
    self-rebindings, then ``import *`` spellings)."""
    found = load_of(ctx, expr) or class_attribute_load(ctx, expr)
    if found is None and isinstance(expr, cst.Name) and value_of(ctx, expr) is not None:
        value = value_of(ctx, expr)
        if not (isinstance(value, cst.Name) and value.value == expr.value):
            found = load_of(ctx, value)
    return found or star_load(ctx, expr)


def encoding_call(ctx: Any, call: Any) -> Optional[Encoding]:
    """tokenizer_call, also for a tokenizer made under ``from transformers import *``."""
    found = tokenizer_call(ctx, call)
    if found is not None or not isinstance(call, cst.Call) or not star_imports_transformers(ctx):
        return found
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("__call__", "encode", "encode_plus", "batch_encode_plus"):
        method, receiver = func.attr.value, func.value
    else:
        method, receiver = "__call__", func
    tok = star_load(ctx, receiver)
    if tok is None or tok.kind != "tokenizer":
        return None
    padding = keyword_value(ctx, call, "padding", False)
    batched: Optional[bool] = False if method in ("encode", "encode_plus") else True if method == "batch_encode_plus" else None
    return Encoding(call, method, tok, padding, batched)


def receiver_of(call: cst.Call) -> Any:
    """The tokenizer object a tokenizer call is made on (``tok`` of ``tok.encode(...)``)."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in (
        "__call__", "encode", "encode_plus", "batch_encode_plus", "apply_chat_template", "pad"
    ):
        return func.value
    return func


def assigned_names(ctx: Any, node: Any) -> List[str]:
    """Dotted names the file assigns ``node`` to (``tok = AutoTokenizer.from_pretrained(...)``,
    also through ``.to(...)`` style wrappers)."""

    def compute(ctx: Any) -> dict:
        table: dict = {}
        todo: List[Any] = [ctx.module]
        while todo:
            current = todo.pop()
            if isinstance(current, (cst.Assign, cst.AnnAssign)) and current.value is not None:
                targets = [t.target for t in current.targets] if isinstance(current, cst.Assign) else [current.target]
                value = strip_self_returning(current.value)
                for target in targets:
                    name = dotted_name(target)
                    if name is not None:
                        table.setdefault(id(value), []).append(name)
            todo.extend(children(current))
        return table

    return ctx.memo("dl502.assigned_names", compute).get(id(node), [])


def spellings(ctx: Any, receiver: Any, load: Optional[Load]) -> List[str]:
    """The spellings a tokenizer goes by: the receiver here and the names its load was assigned to."""
    names = []
    name = dotted_name(receiver)
    if name is not None:
        names.append(name)
    if load is not None:
        names.extend(n for n in assigned_names(ctx, load.node) if n not in names)
    return names


def mentions_eos(node: Any) -> bool:
    """Whether an expression names the EOS token (``tok.eos_token``, ``tok.eos_token_id``)."""
    todo = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, cst.Attribute) and "eos" in current.attr.value:
            return True
        if isinstance(current, cst.Name) and "eos" in current.value.lower():
            return True
        if isinstance(current, cst.CSTNode):
            todo.extend(children(current))
    return False


def pad_is_eos(ctx: Any, names: List[str], load: Optional[Load]) -> bool:
    """Whether the file makes the tokenizer's pad token its EOS token."""
    if load is not None:
        arg = ctx.keyword(load.node, "pad_token")
        if arg is not None and mentions_eos(arg.value):
            return True
    for name in names:
        found = settings(ctx, cst.parse_expression(name))
        for attr in ("pad_token", "pad_token_id"):
            if any(value is not None and mentions_eos(value) for value in found.assigned.get(attr, [])):
                return True
    return False


ENCODER_DECODER_MARKERS = ("ForConditionalGeneration", "Seq2SeqLM", "EncoderDecoder")


def decoder_only(model: Load) -> bool:
    """A decoder-only (causal) model: a ``*ForCausalLM`` / ``*LMHeadModel`` class or a decoder
    family; encoder-decoder classes and families are not."""
    if any(marker in model.cls for marker in ENCODER_DECODER_MARKERS):
        return False
    family = model.family
    if family is not None and family.architecture == "encoder-decoder":
        return False
    if model.cls.endswith(("ForCausalLM", "LMHeadModel")):
        return True
    return family is not None and family.architecture == "decoder" and family.name != "XLNet"


def model_family(model: Optional[Load], tok: Optional[Load]) -> Optional[Family]:
    for load in (model, tok):
        if load is not None and load.family is not None:
            return load.family
    return None


# ---------------------------------------------------------------------- the rule


class PaddedInputWithoutAttentionMask(Rule):
    """Padded token ids fed to a transformers model without their attention mask.

    Finds a forward call of a transformers model (`model(...)`, `model.forward(...)`; the model is
    a name, `self.<attr>` or helper result holding one `*Model*.from_pretrained(...)` /
    `AutoModel*.from_pretrained(...)`) whose token ids come from a padding tokenizer call
    (`padding=True | "longest"` on a batch, or `padding="max_length"`), through `enc["input_ids"]`,
    `enc.input_ids`, `.to(device)` / `.cuda()`, `torch.tensor(...)` and names, and which passes no
    `attention_mask=` (nor a second positional argument, nor `**kwargs`). Hand-built padding counts
    too: `pad_sequence(...)`, `F.pad(ids, ..., value=tok.pad_token_id)` and list concatenations such
    as `ids + [tok.pad_token_id] * n` or `ids + [0, 0, 0]` (a literal only when it is the pad id of
    the model's vocabulary: 0 for BERT, 1 for RoBERTa). A name assigned several times is followed
    to its last assignment in straight-line code (`ids = ids.to(device)` reads the one before).

    Forward calls of decoder-only models (`*ForCausalLM`, `*LMHeadModel`, decoder families) are
    reported only when the pads come first (`padding_side="left"` set on the call, at load or by
    assignment; `[pad] * n + ids`; `pad_sequence(..., padding_side="left")`): causal attention never
    looks at the pads on a token's right, so a right-padded forward pass gives the real tokens the
    same outputs (measured with a tiny GPT-2: identical logits with right pads, a max difference
    of 11.6 with left pads).

    `generate()` calls (on any object, e.g. a quantized wrapper) are reported only where generate
    cannot rebuild the mask itself: it infers the mask from `pad_token_id` only when the pad id
    occurs in the input and differs from EOS. So a generate call is reported when the file makes
    the tokenizer's pad token its EOS token (`tok.pad_token = tok.eos_token`, or
    `generate(pad_token_id=tok.eos_token_id)`), or when the family has no pad token at all (GPT-2,
    GPT-Neo/J, Llama, Mistral, Falcon...) and generate is told no `pad_token_id=` (the model's
    config has none, so generate pads with EOS and masks nothing). Families with their own pad
    token (BERT, T5, BART, OPT) and unknown families are left alone for generate.

    Why it is a bug: without the mask every position attends to the pad tokens, so the hidden
    states, logits and generations of the padded rows differ from the same text run alone, with no
    error and (for a forward call) no warning. Measured with a tiny BERT (transformers 5.23): the
    logits of a padded row change without the mask and match the unpadded run with it.

    How to fix: pass the mask: `model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])`
    or `model(**enc)`; for hand-built padding, build the mask as `(ids != pad_id).long()`.

    Fix: safe, adds `attention_mask=<enc>["attention_mask"]` (same spelling and the same
    `.to(device)` chain as the ids) when the ids are read from a name bound once in the same scope
    to the padding tokenizer call (or to `.to(device)` of it, or a `{k: v.to(d) ...}` copy of it)
    that does not pass `return_attention_mask=False`. Otherwise the finding comes without a fix.

    Limits: the flow is followed inside one file; `padding=` that is not a literal is not read;
    a batch whose size is unknown is taken as a batch. Padding done in a data collator or a
    `datasets.map` function is not traced to the model call.
    """

    code = "DL502"
    name = "padded-input-without-attention-mask"
    family = "nlp"
    message = "padded input_ids passed without attention_mask; the model attends to padding and outputs change silently"
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(e) Pretrained NLP model reuse (984 bugs, 11 models)",
        category="lack of input validation",
        links=(
            "https://github.com/huggingface/transformers/pull/16243",
            "https://github.com/huggingface/transformers/pull/17444",
            "https://github.com/oliverguhr/german-sentiment/issues/11",
            "https://github.com/deepseek-ai/DeepSeek-Coder/issues/112",
            "https://github.com/huggingface/transformers/issues/2860",
            "https://github.com/AutoGPTQ/AutoGPTQ/issues/321",
        ),
    )
    triggers = ("transformers",)
    frameworks = ("transformers",)

    VALID = (
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForSequenceClassification
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
                enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
                logits = model(**enc).logits
                """),
            note="the whole encoding is passed: the mask goes with it",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
                out = model(enc["input_ids"], enc["attention_mask"])
                """),
            note="the mask is passed positionally",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                enc = tok(text, truncation=True, return_tensors="pt")
                out = model(enc["input_ids"])
                """),
            note="no padding: nothing to mask",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                enc = tok("one sentence", padding=True, return_tensors="pt")
                out = model(enc["input_ids"])
                """),
            note="padding=True on one text pads nothing",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, T5ForConditionalGeneration
                tok = AutoTokenizer.from_pretrained("t5-small")
                model = T5ForConditionalGeneration.from_pretrained("t5-small")
                enc = tok(texts, padding=True, return_tensors="pt")
                out = model.generate(enc.input_ids, max_new_tokens=20)
                """),
            note="generate() infers the mask: T5's pad token is in the input and differs from EOS",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2")
                tok.add_special_tokens({"pad_token": "[PAD]"})
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(enc["input_ids"], pad_token_id=tok.pad_token_id)
                """),
            note="a distinct pad token handed to generate: the mask is inferred",
        ),
        Valid(
            dedent("""
                import torch
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                ids = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=tok.pad_token_id)
                out = model(ids, attention_mask=(ids != tok.pad_token_id).long())
                """),
            note="hand-built padding with its own mask",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                enc = tok(texts, padding=True, return_tensors="pt")
                out = encoder(enc["input_ids"])
                """),
            note="the receiver is not a known transformers model",
        ),
        Valid(
            dedent("""
                import torch
                from transformers import BertModel
                model = BertModel.from_pretrained("bert-base-uncased")
                x = torch.tensor([ids + [7, 7]])
                out = model(x)
                """),
            note="appending literal ids that are not BERT's pad id is not padding",
        ),
    )

    INVALID = (
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForSequenceClassification
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
                enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
                logits = model(enc["input_ids"]).logits
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModelForSequenceClassification
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
                enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
                logits = model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
                """),
            note="the catalogue's example",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("roberta-base")
                model = AutoModel.from_pretrained("roberta-base").to(device)
                def embed(batch):
                    enc = tok(batch, padding="max_length", max_length=128, truncation=True, return_tensors="pt")
                    return model(input_ids=enc.input_ids.to(device)).last_hidden_state
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("roberta-base")
                model = AutoModel.from_pretrained("roberta-base").to(device)
                def embed(batch):
                    enc = tok(batch, padding="max_length", max_length=128, truncation=True, return_tensors="pt")
                    return model(input_ids=enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device)).last_hidden_state
                """),
            note="attribute spelling; the mask follows the ids to the device",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2")
                tok.pad_token = tok.eos_token
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(enc["input_ids"], max_new_tokens=20)
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2")
                tok.pad_token = tok.eos_token
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(enc["input_ids"], max_new_tokens=20, attention_mask=enc["attention_mask"])
                """),
            note="pad == EOS: generate cannot infer the mask",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import AutoTokenizer
                from auto_gptq import AutoGPTQForCausalLM
                tokenizer = AutoTokenizer.from_pretrained("TheBloke/Llama-2-7b-Chat-GPTQ")
                model = AutoGPTQForCausalLM.from_quantized("TheBloke/Llama-2-7b-Chat-GPTQ")
                input_ids = tokenizer(question, return_tensors="pt", padding="max_length", max_length=512).input_ids.cuda()
                output_ids = model.generate(input_ids=input_ids, max_new_tokens=200)
                """),
            note="only the ids are kept (no mask to pass): reported without a fix; Llama has no pad token",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import BertModel
                model = BertModel.from_pretrained("bert-base-uncased")
                x = torch.tensor([ids]).to("cuda")
                out_a = model(x)[0]
                x = torch.tensor([ids + [0, 0, 0]]).to("cuda")
                out_b = model(x)[0]
                """),
            note="hand-built padding with BERT's pad id 0; the first run is unpadded",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.nn.utils.rnn import pad_sequence
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                ids = pad_sequence([torch.tensor(tok.encode(t)) for t in texts], batch_first=True, padding_value=tok.pad_token_id)
                out = model(ids)
                """),
            note="pad_sequence with the pad id, no mask",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if not ctx.imports("transformers"):
            return
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("generate", "forward"):
            method, receiver = func.attr.value, func.value
        else:
            method, receiver = "__call__", func
        if ctx.has_star_args(node) or ctx.keyword(node, "attention_mask") is not None:
            return
        positional = [a for a in node.args if a.keyword is None]
        if len(positional) > 1:
            return
        fed = positional[0].value if positional else None
        for name in ID_KEYWORDS:
            arg = ctx.keyword(node, name)
            if arg is not None:
                if fed is not None:
                    return
                fed = arg.value
        if fed is None:
            return
        model = object_load(ctx, receiver) if isinstance(receiver, (cst.Name, cst.Attribute, cst.Call)) else None
        if method != "generate" and (model is None or model.kind != "model"):
            return
        if model is not None and model.kind not in ("model", "pipeline") and method == "generate":
            return
        origin = self._origin(fed, model)
        if origin is None:
            return
        kind, found = origin
        tok: Optional[Load] = found.tokenizer if isinstance(found, Encoding) else self._pad_tokenizer(found)
        if method == "generate":
            if not self._generate_cannot_infer(node, model, tok, found):
                return
        elif model is not None and decoder_only(model) and not self._left_padded(found):
            return  # causal attention: real tokens never see the pads on their right
        fix = None
        if isinstance(found, Encoding):
            mask = self._mask_expression(fed, found)
            if mask is not None:
                fix = Fix(
                    "Pass attention_mask from the same encoding",
                    [(node, append_keyword(node, "attention_mask", mask))],
                    FixKind.SAFE,
                )
        self.report(node, fix=fix)

    # ------------------------------------------------------------------ where the ids come from

    def _origin(self, expr: Any, model: Optional[Load]) -> Optional[Tuple[str, Any]]:
        """("encoding", Encoding) when the ids come from a padding tokenizer call, ("hand", node)
        for hand-built padding; else None."""
        ctx = self.ctx
        keyed = False  # the "input_ids" entry of an encoding was taken
        seen: dict = {}  # name -> how many of its assignments were followed
        for _ in range(12):
            if isinstance(expr, cst.Name):
                name = expr.value
                expr = value_of(ctx, expr, seen.get(name, 0))
                seen[name] = seen.get(name, 0) + 1
                if expr is None:
                    return None
            elif isinstance(expr, cst.Subscript):
                if keyed or not is_key(expr, "input_ids"):
                    return None
                keyed = True
                expr = expr.value
            elif isinstance(expr, cst.Attribute):
                if not keyed and expr.attr.value == "input_ids":
                    keyed = True
                    expr = expr.value
                    continue
                value = ctx.assigned_value(expr)
                if value is None:
                    return None
                expr = value
            elif isinstance(expr, cst.Call):
                encoding = encoding_call(ctx, expr)
                if encoding is not None:
                    if not (keyed or encoding.method == "encode"):
                        return None
                    return ("encoding", encoding) if pads_batch(ctx, encoding) else None
                name = ctx.call_name(expr)
                func = expr.func
                if name in PAD_SEQUENCE:
                    return "hand", expr
                if name in FUNCTIONAL_PAD:
                    value = ctx.argument(expr, 3, "value")
                    return ("hand", expr) if value is not None and self._is_pad_value(value, model) else None
                if isinstance(func, cst.Attribute) and func.attr.value in PASS_THROUGH_METHODS:
                    expr = func.value
                elif name in TENSOR_CONSTRUCTORS:
                    expr = ctx.argument(expr, 0, "data")
                else:
                    return None
            elif isinstance(expr, (cst.List, cst.Tuple)):
                elements = [e for e in expr.elements if isinstance(e, cst.Element)]
                if not elements or len(elements) != len(expr.elements):
                    return None
                for element in elements:
                    if self._is_padded_list(element.value, model):
                        return "hand", element.value
                if len(elements) != 1:
                    return None
                expr = elements[0].value
            elif isinstance(expr, cst.ListComp):
                expr = expr.elt
            elif isinstance(expr, cst.DictComp):
                # {k: v.to(device) for k, v in enc.items()}
                it = expr.for_in.iter
                if (
                    expr.for_in.inner_for_in is not None
                    or expr.for_in.ifs
                    or not isinstance(it, cst.Call)
                    or it.args
                    or not isinstance(it.func, cst.Attribute)
                    or it.func.attr.value != "items"
                ):
                    return None
                expr = it.func.value
            elif isinstance(expr, cst.BinaryOperation):
                return ("hand", expr) if self._is_padded_list(expr, model) else None
            else:
                return None
        return None

    def _is_padded_list(self, expr: Any, model: Optional[Load]) -> bool:
        """``ids + [pad] * n``, ``ids + [0, 0, 0]`` (0 being the pad id), ``[pad] * n + ids``."""
        if not (isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add)):
            return False
        return self._is_pad_list(expr.right, model) or self._is_pad_list(expr.left, model)

    def _is_pad_list(self, expr: Any, model: Optional[Load]) -> bool:
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            return self._is_pad_list(expr.left, model) or self._is_pad_list(expr.right, model)
        if isinstance(expr, cst.List) and expr.elements:
            return all(isinstance(e, cst.Element) and self._is_pad_value(e.value, model) for e in expr.elements)
        return False

    def _is_pad_value(self, expr: Any, model: Optional[Load]) -> bool:
        for _ in range(3):
            name = dotted_name(expr)
            if name is not None and name.split(".")[-1] in ("pad_token_id", "pad_id", "pad_idx", "pad_index"):
                return True
            if isinstance(expr, cst.Name):
                value = value_of(self.ctx, expr)
                if value is None:
                    return False
                expr = value
                continue
            break
        value = literal(expr)
        if isinstance(value, int) and not isinstance(value, bool) and model is not None:
            family = model.family
            return family is not None and PAD_ID_BY_VOCAB.get(family.vocab or "") == value
        return False

    def _pad_tokenizer(self, node: Any) -> Optional[Load]:
        """For ``pad_sequence(..., padding_value=tok.pad_token_id)``: the tokenizer ``tok``."""
        if isinstance(node, cst.Call):
            value = self.ctx.argument(node, 2, "padding_value") or self.ctx.argument(node, 3, "value")
            if isinstance(value, cst.Attribute):
                found = object_load(self.ctx, value.value)
                if found is not None and found.kind == "tokenizer":
                    return found
        return None

    def _left_padded(self, found: Any) -> bool:
        """Whether the pads come before the tokens: ``padding_side="left"`` on the call, at load
        or by assignment; ``[pad] * n + ids``; ``pad_sequence(..., padding_side="left")``."""
        ctx = self.ctx
        if isinstance(found, Encoding):
            arg = ctx.keyword(found.call, "padding_side")
            if arg is not None:
                return literal(arg.value) == "left"
            names = spellings(ctx, receiver_of(found.call), found.tokenizer)
            sides = {padding_side(ctx, cst.parse_expression(name), found.tokenizer) for name in names}
            return sides == {"left"} or sides == {"left", "default"}
        if isinstance(found, cst.BinaryOperation):
            return self._is_pad_list(found.left, None) or (
                isinstance(found.left, (cst.List, cst.BinaryOperation)) and not self._is_pad_list(found.right, None)
            )
        if isinstance(found, cst.Call):
            return keyword_value(ctx, found, "padding_side", "right") == "left"
        return False

    # ------------------------------------------------------------------ generate

    def _generate_cannot_infer(self, call: cst.Call, model: Optional[Load], tok: Optional[Load], found: Any) -> bool:
        """Whether generate() cannot rebuild the mask from the pad token."""
        ctx = self.ctx
        pad_arg = ctx.keyword(call, "pad_token_id")
        if pad_arg is not None and mentions_eos(pad_arg.value):
            return True
        if tok is not None:
            receiver = receiver_of(found.call) if isinstance(found, Encoding) else None
            names = spellings(ctx, receiver, tok) if receiver is not None else assigned_names(ctx, tok.node)
            if pad_is_eos(ctx, names, tok):
                return True
        family = model_family(model, tok)
        if family is None or family.pad_token is not False or pad_arg is not None:
            return False
        return not _config_pad_set(ctx)

    # ------------------------------------------------------------------ the fix

    def _mask_expression(self, fed: Any, encoding: Encoding) -> Optional[Any]:
        """``enc["attention_mask"]`` spelled like the ids (with their ``.to(...)`` chain) when
        ``enc`` is a name bound once in this scope to the padding call; else None."""
        ctx = self.ctx
        if keyword_value(ctx, encoding.call, "return_attention_mask", True) is not True:
            return None
        if encoding.method in ("encode", "apply_chat_template"):
            return None

        def swap(node: Any) -> Optional[Any]:
            if isinstance(node, cst.Call):
                func = node.func
                if isinstance(func, cst.Attribute) and func.attr.value in PASS_THROUGH_METHODS:
                    inner = swap(func.value)
                    return node.with_changes(func=func.with_changes(value=inner)) if inner is not None else None
                return None
            if isinstance(node, cst.Subscript) and is_key(node, "input_ids") and self._bound_here(node.value, encoding):
                index = node.slice[0].slice
                quote = index.value.value[0] if isinstance(index.value, cst.SimpleString) else '"'
                return node.with_changes(
                    slice=[node.slice[0].with_changes(slice=index.with_changes(value=cst.SimpleString(f"{quote}attention_mask{quote}")))]
                )
            if isinstance(node, cst.Attribute) and node.attr.value == "input_ids" and self._bound_here(node.value, encoding):
                return node.with_changes(attr=cst.Name("attention_mask"))
            return None

        return swap(fed)

    def _bound_here(self, node: Any, encoding: Encoding) -> bool:
        if not isinstance(node, cst.Name):
            return False
        bindings = self.ctx.scope.bindings.get(node.value)
        if not bindings or len(bindings) != 1 or bindings[0].kind != "assign":
            return False
        value = bindings[0].value
        for _ in range(4):
            if value is encoding.call:
                return True
            if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in PASS_THROUGH_METHODS:
                value = value.func.value
            elif isinstance(value, cst.DictComp) and isinstance(value.for_in.iter, cst.Call):
                it = value.for_in.iter
                if value.for_in.ifs or value.for_in.inner_for_in is not None or not isinstance(it.func, cst.Attribute):
                    return False
                if it.func.attr.value != "items" or not isinstance(it.func.value, cst.Name):
                    return False
                value = self.ctx.assigned_value(it.func.value)
            else:
                return False
        return False


def pads_batch(ctx: Any, encoding: Encoding) -> bool:
    """Whether the call pads: ``padding="max_length"`` always; ``True`` / ``"longest"`` on a batch
    (a list, a comprehension, ``batch_encode_plus``, or a name that reads as a batch: ``texts``,
    ``batch``, ``prompt_list``; one text with ``padding=True`` pads nothing)."""
    if encoding.padding == "max_length":
        return True
    if encoding.padding not in (True, "longest"):
        return False
    if encoding.batched is not None:
        return encoding.batched
    text = ctx.argument(encoding.call, 0, "text")
    if isinstance(text, cst.Subscript) and len(text.slice) == 1 and isinstance(text.slice[0].slice, cst.Index):
        key = literal(text.slice[0].slice.value)
        text = text.value if not isinstance(key, str) else cst.Name(key.replace(" ", "_") or "x")
    name = (dotted_name(text) or "").rsplit(".", 1)[-1].lower()
    return name.endswith("s") or "batch" in name or "list" in name


def _config_pad_set(ctx: Any) -> bool:
    """``model.config.pad_token_id = ...`` / ``generation_config.pad_token_id = ...`` in the file."""

    def compute(ctx: Any) -> bool:
        todo: List[Any] = [ctx.module]
        while todo:
            node = todo.pop()
            if isinstance(node, (cst.Assign, cst.AnnAssign)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for target in targets:
                    name = dotted_name(target) or ""
                    if name.endswith("config.pad_token_id") and len(name.split(".")) > 2:
                        return True
            todo.extend(children(node))
        return False

    return ctx.memo("dl502.config_pad", compute)
