from __future__ import annotations

from typing import Any, List, Optional, Tuple

import libcst as cst

from dllint.context import children
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import Family, strip_self_returning
from dllint.rules.nlp._hf import Load, literal, load_call, load_of

#: Qualified names of torch's float16 dtype.
FLOAT16 = frozenset({"torch.float16", "torch.half"})

#: Autocast context managers; the value is the device their default dtype depends on
#: (None: the device_type argument decides).
AUTOCAST = {
    "torch.autocast": None,
    "torch.amp.autocast": None,
    "torch.amp.autocast_mode.autocast": None,
    "torch.cuda.amp.autocast": "cuda",
    "torch.cuda.amp.autocast_mode.autocast": "cuda",
}

#: Lightning trainers and the precision values that mean float16 mixed precision.
LIGHTNING_TRAINERS = frozenset(
    {"pytorch_lightning.Trainer", "lightning.Trainer", "lightning.pytorch.Trainer", "lightning.pytorch.trainer.Trainer"}
)
LIGHTNING_FP16 = (16, "16", "16-mixed", "16-true")

ACCELERATORS = frozenset({"accelerate.Accelerator", "accelerate.accelerator.Accelerator"})

#: Model methods that run the network.
FORWARD_METHODS = frozenset({"forward", "generate", "__call__"})

INFO_MESSAGE = (
    "(info) T5-family model loaded in float16: transformers keeps the feed-forward `wo` weights in float32 and "
    "clamps inf activations for such loads, which lessens but does not remove the float16 overflow "
    "(NaN loss/outputs are still reported); prefer bfloat16 or float32"
)


class T5FamilyInFloat16(Rule):
    """A T5-family model (T5, mT5, UMT5, ByT5, LongT5, Flan-T5) run or trained in float16.

    Finds, for a model whose checkpoint (or concrete class, `T5ForConditionalGeneration`,
    `MT5Model`...) belongs to the T5 family:

    - a cast to float16 of that model: `model.half()`, `model.to(torch.float16)`,
      `model.to(device, torch.half)`, `model.to(dtype=torch.float16)`, also in a chain
      (`T5Model.from_pretrained("t5-base").cuda().half()`);
    - a call of that model (`model(...)`, `model.generate(...)`) inside a float16 autocast:
      `torch.autocast("cuda")` (float16 is the CUDA default), `torch.autocast(..., dtype=torch.float16)`,
      `torch.cuda.amp.autocast()`;
    - in a file whose every transformers model load is T5-family: `TrainingArguments(fp16=True)` /
      `Seq2SeqTrainingArguments(fp16=True)`, `Accelerator(mixed_precision="fp16")`, a Lightning
      `Trainer(precision=16 | "16" | "16-mixed")`;
    - with a lower, informational message: a load in float16,
      `from_pretrained(..., dtype=torch.float16)` (`torch_dtype=` is the transformers 4 spelling,
      still accepted by 5).

    Why it is a bug: T5's feed-forward activations exceed the float16 range (65504), e.g. 66246
    in `T5DenseReluDense`, and become inf, then NaN in the loss or the outputs
    (transformers#4586, #11461, #23918; the T5 authors trained in bfloat16). When a T5, mT5 or
    UMT5 model is *loaded* with an fp16 dtype, transformers keeps the `wo` weights in float32
    (`_keep_in_fp32_modules = ["wo"]`) and clamps inf hidden states, so that case is only
    partly exposed (measured, transformers 5.23: an fp16 load keeps `wo` in float32, `.half()`
    makes it float16); `.half()`, fp16 autocast and fp16 mixed-precision training get no such
    help.

    How to fix: run in bfloat16 (`bf16=True`, `torch.bfloat16`, `precision="bf16-mixed"`) on
    hardware that has it, or in float32.

    Fix: suggested (unsafe), since bfloat16 needs hardware support: `.half()` -> `.bfloat16()`,
    `torch.float16` -> `torch.bfloat16`, `"float16"` -> `"bfloat16"`, `fp16=True` -> `bf16=True`,
    `mixed_precision="fp16"` -> `"bf16"`, Lightning `precision=16` -> `"bf16-mixed"`.

    Stays silent for checkpoints whose name says they were prepared for half precision
    ("fp16", "bf16" in the id), for the original `t5-small` (reported to work in float16), for
    models of unknown family (`AutoModelForSeq2SeqLM.from_pretrained(args.model)`), for
    bfloat16 everywhere, for `fp16=` values that are not the literal True, and for a file that
    also loads a model of another or an unknown family (the mixed-precision setting may be
    meant for that one).

    Limits: the model is followed through names assigned once, `self.<attr>` and one-return
    helpers; a checkpoint saved in float16 and loaded with the transformers 5 default
    `dtype="auto"` is not recognised (the saved dtype is not known statically).
    """

    code = "DL507"
    name = "t5-family-in-float16"
    family = "nlp"
    message = "T5-family models overflow in float16 (NaN loss/outputs); use bfloat16 or float32"
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(e) Pan et al., bugs found while reusing pretrained NLP models",
        category="high resource consumption: T5 activations overflow half precision",
        links=(
            "https://github.com/huggingface/transformers/issues/4586",
            "https://github.com/huggingface/transformers/issues/11461",
            "https://github.com/huggingface/transformers/issues/23918",
            "https://github.com/huggingface/transformers/pull/10956",
            "https://github.com/google-research/text-to-text-transfer-transformer/issues/539",
        ),
    )
    triggers = ("half", "float16", "fp16", "autocast", "precision")
    frameworks = ("transformers",)

    VALID = (
        Valid(dedent("""
            import torch
            from transformers import T5ForConditionalGeneration
            model = T5ForConditionalGeneration.from_pretrained("t5-base").to(torch.bfloat16)
            """), "bfloat16 has float32's range"),
        Valid(dedent("""
            import torch
            from transformers import AutoModel
            model = AutoModel.from_pretrained("bert-base-uncased").half()
            """), "BERT does not overflow float16 this way"),
        Valid(dedent("""
            import torch
            from transformers import AutoModelForSeq2SeqLM
            model = AutoModelForSeq2SeqLM.from_pretrained(args.model_name).half()
            """), "unknown checkpoint behind an Auto class"),
        Valid(dedent("""
            from transformers import T5ForConditionalGeneration
            model = T5ForConditionalGeneration.from_pretrained("someone/t5-large-fp16-fixed").half()
            """), "a checkpoint prepared for float16"),
        Valid(dedent("""
            from transformers import T5ForConditionalGeneration
            model = T5ForConditionalGeneration.from_pretrained("t5-small").half()
            """), "t5-small is reported to work in float16"),
        Valid(dedent("""
            from transformers import T5ForConditionalGeneration, TrainingArguments
            model = T5ForConditionalGeneration.from_pretrained("t5-base")
            args = TrainingArguments("out", bf16=True)
            """), "bf16 training"),
        Valid(dedent("""
            from transformers import T5ForConditionalGeneration, AutoModel, TrainingArguments
            t5 = T5ForConditionalGeneration.from_pretrained("t5-base")
            bert = AutoModel.from_pretrained("bert-base-uncased")
            args = TrainingArguments("out", fp16=True)
            """), "the file also loads another family: the fp16 setting may be meant for it"),
        Valid(dedent("""
            from transformers import T5ForConditionalGeneration, TrainingArguments
            model = T5ForConditionalGeneration.from_pretrained("t5-base")
            args = TrainingArguments("out", fp16=cli.fp16)
            """), "fp16 is not the literal True"),
        Valid(dedent("""
            import torch
            from transformers import T5ForConditionalGeneration
            model = T5ForConditionalGeneration.from_pretrained("google/flan-t5-large")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(**batch)
            """), "bfloat16 autocast"),
        Valid(dedent("""
            import torch
            from transformers import T5ForConditionalGeneration
            model = T5ForConditionalGeneration.from_pretrained("google/flan-t5-large")
            with torch.autocast("cuda"):
                logits = head(features)
            out = model(**batch)
            """), "the model runs outside the autocast block"),
        Valid(dedent("""
            import torch
            from transformers import T5ForConditionalGeneration
            model = T5ForConditionalGeneration.from_pretrained("t5-large")
            x = features.half()
            """), "another tensor is cast, not the model"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                from transformers import T5Tokenizer, T5Model
                model = T5Model.from_pretrained("t5-base").cuda().half().eval()
                """),
            fixed=dedent("""
                import torch
                from transformers import T5Tokenizer, T5Model
                model = T5Model.from_pretrained("t5-base").cuda().bfloat16().eval()
                """),
            unsafe=True,
            note=".half() in the load chain (transformers#4586)",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import AutoModelForSeq2SeqLM
                model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-xl")
                model.to(device, dtype=torch.float16)
                """),
            fixed=dedent("""
                import torch
                from transformers import AutoModelForSeq2SeqLM
                model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-xl")
                model.to(device, dtype=torch.bfloat16)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                from transformers import T5ForConditionalGeneration, Seq2SeqTrainingArguments
                MODEL = "t5-large"
                model = T5ForConditionalGeneration.from_pretrained(MODEL)
                args = Seq2SeqTrainingArguments(output_dir="out", fp16=True, num_train_epochs=3)
                """),
            fixed=dedent("""
                from transformers import T5ForConditionalGeneration, Seq2SeqTrainingArguments
                MODEL = "t5-large"
                model = T5ForConditionalGeneration.from_pretrained(MODEL)
                args = Seq2SeqTrainingArguments(output_dir="out", bf16=True, num_train_epochs=3)
                """),
            unsafe=True,
            note="fp16 mixed-precision training in a file whose model is T5",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import MT5ForConditionalGeneration
                model = MT5ForConditionalGeneration.from_pretrained("google/mt5-base")
                for batch in loader:
                    with torch.cuda.amp.autocast():
                        loss = model(**batch).loss
                """),
            note="CUDA autocast defaults to float16; no automatic fix without a dtype to change",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import T5ForConditionalGeneration
                model = T5ForConditionalGeneration.from_pretrained("google/t5-v1_1-large", torch_dtype=torch.float16)
                """),
            fixed=dedent("""
                import torch
                from transformers import T5ForConditionalGeneration
                model = T5ForConditionalGeneration.from_pretrained("google/t5-v1_1-large", torch_dtype=torch.bfloat16)
                """),
            unsafe=True,
            note="load-time float16: the informational case",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import T5EncoderModel
                class Encoder(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.t5 = T5EncoderModel.from_pretrained("google/t5-v1_1-xxl")
                    def forward(self, ids):
                        with torch.autocast("cuda", dtype=torch.float16):
                            return self.t5(input_ids=ids).last_hidden_state
                """),
            fixed=dedent("""
                import torch
                from transformers import T5EncoderModel
                class Encoder(torch.nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.t5 = T5EncoderModel.from_pretrained("google/t5-v1_1-xxl")
                    def forward(self, ids):
                        with torch.autocast("cuda", dtype=torch.bfloat16):
                            return self.t5(input_ids=ids).last_hidden_state
                """),
            unsafe=True,
            note="self.<attr> model under a float16 autocast",
        ),
    )

    def __init__(self, ctx: Any, sink: List[Any]) -> None:
        super().__init__(ctx, sink)
        #: families of every transformers model load seen (None: unknown family)
        self._model_families: List[Optional[Family]] = []
        self._model_exempt = False
        #: file-level mixed-precision settings: (node to report, fix replacements)
        self._file_level: List[Tuple[Any, List[Tuple[Any, Any]]]] = []
        self._reported: set = set()

    # ------------------------------------------------------------------ handlers

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        load = load_call(ctx, node) if strip_self_returning(node) is node else None
        if load is not None:
            if load.kind == "model":
                family = load.family
                self._model_families.append(family if family is not None and family.fp16_overflow else None)
                if family is not None and family.fp16_overflow and _exempt(load):
                    self._model_exempt = True
                if load.pretrained:
                    self._check_load_dtype(node, load)
            elif load.kind == "training_args":
                self._check_training_args(node)
            return
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("half", "to"):
            self._check_cast(node)
            return
        name = ctx.call_name(node)
        if name in LIGHTNING_TRAINERS:
            arg = ctx.keyword(node, "precision")
            if arg is not None and literal(arg.value) in LIGHTNING_FP16:
                new = cst.SimpleString('"bf16-mixed"')
                self._file_level.append((arg, [(arg.value, new)]))
        elif name in ACCELERATORS:
            arg = ctx.keyword(node, "mixed_precision")
            if arg is not None and literal(arg.value) == "fp16":
                self._file_level.append((arg, [(arg.value, _restring(arg.value, "bf16"))]))

    def visit_With(self, node: cst.With) -> None:
        for item in node.items:
            dtype_node = self._fp16_autocast(item.item)
            if dtype_node is None:
                continue
            model_call = self._t5_call_in(node.body)
            if model_call is None:
                return
            replacements = []
            if isinstance(dtype_node, cst.CSTNode) and _bf16_of(self.ctx, dtype_node) is not None:
                replacements = [(dtype_node, _bf16_of(self.ctx, dtype_node))]
            self.report(
                item.item,
                fix=Fix("Use bfloat16 autocast (needs hardware support)", replacements, FixKind.UNSAFE)
                if replacements
                else None,
            )
            return

    def leave_Module(self, node: cst.Module) -> None:
        families = self._model_families
        if not families or self._model_exempt or not all(f is not None for f in families):
            return
        for where, replacements in self._file_level:
            self.report(where, fix=Fix("Train in bfloat16 (needs hardware support)", replacements, FixKind.UNSAFE))

    # ------------------------------------------------------------------ the cases

    def _t5_model(self, expr: Any) -> Optional[Load]:
        load = load_of(self.ctx, expr)
        if load is None or load.kind != "model":
            return None
        family = load.family
        if family is None or not family.fp16_overflow or _exempt(load):
            return None
        return load

    def _check_cast(self, call: cst.Call) -> None:
        ctx = self.ctx
        func = call.func
        assert isinstance(func, cst.Attribute)
        if func.attr.value == "half":
            if call.args:
                return
            dtype_node: Any = None
        else:
            dtype_node = None
            for arg in call.args:
                if arg.star:
                    return
                if arg.keyword is None or arg.keyword.value == "dtype":
                    if ctx.qualname(arg.value) in FLOAT16:
                        dtype_node = arg.value
            if dtype_node is None:
                return
        if self._t5_model(func.value) is None or id(call) in self._reported:
            return
        self._reported.add(id(call))
        if dtype_node is None:
            new_func = func.with_changes(attr=cst.Name("bfloat16"))
            replacements = [(func, new_func)]
        else:
            new = _bf16_of(ctx, dtype_node)
            replacements = [(dtype_node, new)] if new is not None else []
        fix = Fix("Cast to bfloat16 instead (needs hardware support)", replacements, FixKind.UNSAFE) if replacements else None
        self.report(call, fix=fix)

    def _check_load_dtype(self, call: cst.Call, load: Load) -> None:
        family = load.family
        if family is None or not family.fp16_overflow or _exempt(load):
            return
        for keyword in ("dtype", "torch_dtype"):
            arg = self.ctx.keyword(call, keyword)
            if arg is None:
                continue
            value = arg.value
            resolved = self.ctx.resolve(value) if isinstance(value, cst.Name) else value
            if self.ctx.qualname(resolved) in FLOAT16 or literal(resolved) in ("float16", "half", "fp16"):
                new = _bf16_of(self.ctx, value)
                fix = Fix("Load in bfloat16 (needs hardware support)", [(value, new)], FixKind.UNSAFE) if new is not None else None
                # LongT5 has no float32 `wo` safeguard: the plain warning applies
                message = self.message if load.cls.startswith(("LongT5", "TFLongT5", "FlaxLongT5")) else INFO_MESSAGE
                self.report(arg, message, fix=fix)
                return

    def _check_training_args(self, call: cst.Call) -> None:
        arg = self.ctx.keyword(call, "fp16")
        if arg is None or literal(arg.value) is not True:
            return
        if self.ctx.keyword(call, "bf16") is not None:
            return
        self._file_level.append((arg, [(arg, arg.with_changes(keyword=cst.Name("bf16")))]))

    def _fp16_autocast(self, expr: Any) -> Any:
        """For a float16 autocast context manager, the dtype node to change (True when the dtype
        is float16 by default); None otherwise."""
        ctx = self.ctx
        if not isinstance(expr, cst.Call):
            return None
        name = ctx.call_name(expr)
        if name not in AUTOCAST:
            return None
        if ctx.has_star_args(expr):
            return None
        dtype = ctx.keyword(expr, "dtype")
        if dtype is None and AUTOCAST[name] is None:
            positional = [a for a in expr.args if a.keyword is None]
            if len(positional) >= 2:
                dtype = positional[1]
        enabled = ctx.keyword(expr, "enabled")
        if enabled is not None and literal(enabled.value) is False:
            return None
        if dtype is not None:
            return dtype.value if ctx.qualname(dtype.value) in FLOAT16 else None
        device = AUTOCAST[name]
        if device is None:
            arg = ctx.argument(expr, 0, "device_type")
            device = literal(arg) if arg is not None else None
        return True if device == "cuda" else None

    def _t5_call_in(self, body: Any) -> Optional[cst.Call]:
        """A call of a T5-family model in ``body`` (nested functions and classes excluded)."""
        todo = [body]
        while todo:
            node = todo.pop()
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            if isinstance(node, cst.Call):
                func = node.func
                receiver = None
                if isinstance(func, cst.Attribute) and func.attr.value in FORWARD_METHODS:
                    receiver = func.value
                elif isinstance(func, (cst.Name, cst.Attribute)):
                    receiver = func
                if receiver is not None and self._t5_model(receiver) is not None:
                    return node
            todo.extend(children(node))
        return None


# ---------------------------------------------------------------------- helpers


def _exempt(load: Load) -> bool:
    """Checkpoints prepared for half precision, and the original t5-small."""
    ckpt = load.checkpoint
    if ckpt is None:
        return False
    text = ckpt.text.lower()
    if "fp16" in text or "bf16" in text:
        return True
    last = text.rstrip("/").rsplit("/", 1)[-1]
    return ckpt.exact and last == "t5-small"


def _bf16_of(ctx: Any, node: Any) -> Optional[Any]:
    """``torch.float16`` / ``torch.half`` (any import spelling) -> ``torch.bfloat16``; a
    ``"float16"`` string -> ``"bfloat16"``; None otherwise."""
    if isinstance(node, cst.Attribute) and ctx.qualname(node) in FLOAT16:
        return node.with_changes(attr=cst.Name("bfloat16"))
    if isinstance(node, cst.SimpleString) and literal(node) in ("float16", "half", "fp16"):
        return _restring(node, "bfloat16")
    return None


def _restring(node: Any, text: str) -> Any:
    if isinstance(node, cst.SimpleString):
        quote = node.quote
        return cst.SimpleString(f"{node.prefix}{quote}{text}{quote}")
    return cst.SimpleString(f'"{text}"')


__all__ = ["T5FamilyInFloat16"]
