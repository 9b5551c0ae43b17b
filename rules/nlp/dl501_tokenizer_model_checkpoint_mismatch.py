from __future__ import annotations

import re
from typing import Any, Optional, Set, Tuple

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import CHECKPOINT_WORDS, Family, checkpoint_words, family_of_class
from dllint.rules.nlp._hf import (
    PIPELINE_FUNCTIONS,
    TRAINER_CLASSES,
    Checkpoint,
    Load,
    checkpoint,
    encoding_of,
    load_call,
    load_of,
)

#: Hub organisations that publish the reference checkpoints of the families in the table: under
#: them a family word in the id means the family's own vocabulary.  Community ids that name a
#: family often ship another vocabulary (``klue/roberta-base`` and ``hfl/chinese-roberta-wwm-ext``
#: use BERT WordPiece vocabularies), so they are not compared by family.
OFFICIAL_ORGS = frozenset(
    org.lower()
    for org in (
        "google-bert",
        "FacebookAI",
        "openai-community",
        "distilbert",
        "albert",
        "EleutherAI",
        "facebook",
        "google",
        "google-t5",
        "allenai",
        "xlnet",
        "almanach",
        "bigscience",
    )
)

#: Words besides family words that the reference ids without an organisation use
#: (``bert-large-uncased-whole-word-masking-finetuned-squad``, ``gpt2-medium``, ``t5-small``).
REFERENCE_WORDS = frozenset(
    {
        "base", "large", "small", "medium", "xl", "xxl", "tiny", "mini", "cased", "uncased",
        "multilingual", "chinese", "german", "whole", "word", "masking", "finetuned", "squad", "mnli",
        "sst", "english", "v1", "v2", "discriminator", "generator", "detector", "openai", "cnn",
    }
)

#: A hub id: ``name`` or ``org/name`` (no local path syntax).
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")

#: Tokenizer classes that read the checkpoint's own vocabulary file whatever family it is of:
#: ``T5Tokenizer`` is the documented tokenizer of mT5 (``MT5Tokenizer`` is an alias of it).
SAME_ALGORITHM = ({"T5", "mT5", "UMT5"},)

#: Words that name a family in the checkpoint table.
FAMILY_WORDS = frozenset(word for words in CHECKPOINT_WORDS for word in words)

#: Model methods that take token ids.
MODEL_METHODS = frozenset({"forward", "generate"})


class TokenizerModelCheckpointMismatch(Rule):
    """A tokenizer and a model from checkpoints with different vocabularies used together.

    Finds, in one file, a transformers tokenizer loaded from checkpoint `A` and a transformers model
    loaded from checkpoint `B` that meet in one use:

    - the tokenizer's output reaches the model's call: `model(**tok(text))`, `model(**enc)` /
      `model(enc["input_ids"])` / `model.generate(input_ids=enc.input_ids)` with `enc` from `tok`;
    - `pipeline(task, model=m, tokenizer=t)`, where `m` and `t` are loaded objects or hub ids;
    - `Trainer(model=m, processing_class=t)` (or `tokenizer=t`, the transformers 4 spelling, and the
      trl trainers, whose `model=` may be a hub id);

    when `A` and `B` name families of the checkpoint table whose vocabularies differ
    (`bert-base-uncased` with `roberta-base`, `gpt2` with `xlm-roberta-base`), or name the same
    vocabulary family but one is `cased` and the other `uncased` (`bert-base-cased` with
    `bert-base-uncased`). Also a concrete tokenizer class whose family's vocabulary differs from
    the checkpoint's: `BertTokenizer.from_pretrained("roberta-base")`,
    `RobertaTokenizer.from_pretrained("bert-base-cased")`.

    Why it is a bug: token ids index rows of the model's embedding matrix. Ids from another
    vocabulary select the wrong rows (garbage predictions, no error) or run past the end of the
    matrix (IndexError, CUDA device-side assert). transformers 4 warned when a tokenizer class did
    not match the checkpoint ("The tokenizer class you load from this checkpoint is not the same
    type as the class this function is called from"); transformers 5 dropped that check, and a
    concrete tokenizer class now loads another family's files silently (measured, transformers
    5.23: a `RobertaTokenizerFast` loaded from a saved `BertTokenizerFast` folder gives `[2, 3]`
    for "hello world", where the BERT tokenizer gives `[2, 5, 6, 3]`, with no warning).

    How to fix: load the tokenizer from the same checkpoint as the model (`ckpt = "roberta-base"`
    for both), use `AutoTokenizer`, or save the tokenizer next to the fine-tuned model and load
    both from that folder. No automatic fix.

    Families come from the shared checkpoint table: two families match when their `vocab` is the
    same (GPT-Neo and GPT-J use GPT-2's vocabulary, ELECTRA and DistilBERT BERT's, BART and
    Longformer RoBERTa's: all silent). A family word decides the vocabulary only for reference ids:
    ids without an organisation (`roberta-base`) or under the organisations that publish the
    reference checkpoints (`FacebookAI`, `google-bert`, `google`, `facebook`, `EleutherAI`, ...).
    Ids without an organisation count only in the legacy form (lower case, hyphens, family, size
    and casing words: `bert-large-uncased`, `gpt2-medium`); local folders such as `roberta_wwm` or
    `RoBERTa_zh_Large` are not. Community ids often reuse a family name with another vocabulary
    (`klue/roberta-base` and the Chinese RoBERTa-wwm checkpoints ship BERT WordPiece vocabularies),
    so they are compared only by `cased` / `uncased`.
    `T5Tokenizer` on an mT5 checkpoint is the documented pairing and is not reported.

    Stays silent when a checkpoint is unknown (a variable, a parameter without a default), a
    local path (`./out/checkpoint-500`, `/models/x`), an f-string, a family the table does not know
    or whose vocabulary differs between its checkpoints (Llama, Qwen, OPT, DeBERTa), and when the
    two never meet in one use.

    Limits: a tokenizer saved with a plain `BertTokenizer` configuration and loaded as
    `BertJapaneseTokenizer` from the same local folder (different word segmentation, same
    family) cannot be told apart from a correct load without reading the folder. The flow is
    followed inside one file through names and `self.<attr>` assigned once.
    """

    code = "DL501"
    name = "tokenizer-model-checkpoint-mismatch"
    family = "nlp"
    message = (
        "tokenizer and model come from different checkpoints/families; token ids will not match the "
        "embedding vocabulary"
    )
    evidence = Evidence(
        study="(e) Pan et al., bugs found while reusing pretrained NLP models",
        category="token-related and version-related bugs: tokenizer of another checkpoint",
        links=(
            "https://github.com/huggingface/transformers/issues/6152",
            "https://github.com/pysentimiento/pysentimiento/issues/11",
            "https://github.com/leix28/prompt-universal-vulnerability/issues/3",
            "https://github.com/makcedward/nlpaug/issues/335",
        ),
    )
    triggers = ("Tokenizer", "tokenizer")
    frameworks = ("transformers",)

    VALID = (
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForSequenceClassification
            ckpt = "roberta-base"
            tok = AutoTokenizer.from_pretrained(ckpt)
            model = AutoModelForSequenceClassification.from_pretrained(ckpt)
            logits = model(**tok(texts, truncation=True, return_tensors="pt")).logits
            """), "same checkpoint"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForCausalLM
            tok = AutoTokenizer.from_pretrained("gpt2")
            model = AutoModelForCausalLM.from_pretrained("EleutherAI/gpt-neo-125m")
            out = model.generate(**tok(prompt, return_tensors="pt"))
            """), "GPT-Neo uses GPT-2's vocabulary"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForSequenceClassification
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModelForSequenceClassification.from_pretrained("./out/checkpoint-500")
            logits = model(**tok(texts, truncation=True, return_tensors="pt")).logits
            """), "a fine-tuned local folder with its base tokenizer"),
        Valid(dedent("""
            from transformers import BertTokenizer, RobertaModel
            tok = BertTokenizer.from_pretrained("klue/roberta-base")
            model = RobertaModel.from_pretrained("klue/roberta-base")
            out = model(**tok(text, truncation=True, return_tensors="pt"))
            """), "a community RoBERTa with a BERT vocabulary (documented pairing)"),
        Valid(dedent("""
            from transformers import BertTokenizer, RobertaForTokenClassification
            tok = BertTokenizer.from_pretrained("RoBERTa_zh_Large_PyTorch")
            model = RobertaForTokenClassification.from_pretrained("./RoBERTa_zh_Large_PyTorch/")
            """), "a local folder named after RoBERTa (Chinese RoBERTa uses a BERT vocabulary)"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("google/electra-base-discriminator")
            out = model(**tok(text, truncation=True, return_tensors="pt"))
            """), "ELECTRA uses BERT's uncased vocabulary"),
        Valid(dedent("""
            from transformers import T5Tokenizer, MT5ForConditionalGeneration
            tok = T5Tokenizer.from_pretrained("google/mt5-small")
            model = MT5ForConditionalGeneration.from_pretrained("google/mt5-small")
            """), "T5Tokenizer reads mT5's sentencepiece model"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("roberta-base")
            a = model(**other_tok(text, return_tensors="pt"))
            b = tok(text)
            """), "loaded but never used together"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForCausalLM
            tok = AutoTokenizer.from_pretrained("meta-llama/Llama-2-7b-hf")
            model = AutoModelForCausalLM.from_pretrained("mistralai/Mistral-7B-v0.1")
            out = model.generate(**tok(prompt, return_tensors="pt"))
            """), "families whose vocabulary is not fixed by the table"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained(args.tokenizer)
            model = AutoModel.from_pretrained(args.model)
            out = model(**tok(text, return_tensors="pt"))
            """), "unknown checkpoints"),
        Valid(dedent("""
            from transformers import pipeline
            clf = pipeline("text-classification", model="distilroberta-base", tokenizer="roberta-base")
            """), "DistilRoBERTa uses RoBERTa's vocabulary"),
    )
    INVALID = (
        Invalid(dedent("""
            from transformers import AutoTokenizer, AutoModelForSequenceClassification
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModelForSequenceClassification.from_pretrained("roberta-base")
            logits = model(**tok(texts, truncation=True, return_tensors="pt")).logits
            """), note="the catalogue's bad example"),
        Invalid(dedent("""
            from transformers import BertTokenizer
            tok = BertTokenizer.from_pretrained("roberta-base")
            """), note="a concrete class on another family's checkpoint"),
        Invalid(dedent("""
            from transformers import AutoTokenizer, BertForMaskedLM
            tok = AutoTokenizer.from_pretrained("bert-base-cased")
            model = BertForMaskedLM.from_pretrained("bert-base-uncased")
            enc = tok(text, truncation=True, return_tensors="pt")
            logits = model(enc["input_ids"]).logits
            """), note="cased tokenizer, uncased model"),
        Invalid(dedent("""
            from transformers import pipeline, AutoTokenizer
            tok = AutoTokenizer.from_pretrained("FacebookAI/xlm-roberta-base")
            clf = pipeline("fill-mask", model="google-bert/bert-base-uncased", tokenizer=tok)
            """), note="pipeline with a loaded tokenizer and a hub id"),
        Invalid(dedent("""
            from transformers import AutoTokenizer, AutoModelForSequenceClassification, Trainer
            tok = AutoTokenizer.from_pretrained("distilbert-base-uncased")
            model = AutoModelForSequenceClassification.from_pretrained("roberta-large")
            trainer = Trainer(model=model, args=args, processing_class=tok)
            """), note="Trainer"),
        Invalid(dedent("""
            from transformers import AutoTokenizer, GPT2LMHeadModel
            class Generator:
                def __init__(self):
                    self.tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
                    self.model = GPT2LMHeadModel.from_pretrained("gpt2")
                def run(self, prompt):
                    ids = self.tokenizer.encode(prompt, return_tensors="pt")
                    return self.model.generate(ids, max_new_tokens=20)
            """), note="self attributes assigned once"),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        self._seen: Set[Tuple[int, int]] = set()

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
            load = load_call(ctx, node)
            if load is not None and load.kind == "tokenizer":
                self._check_class(load)
            return
        name = ctx.call_name(node)
        if name in PIPELINE_FUNCTIONS:
            self._check_pair(
                node,
                self._side(ctx.argument(node, 3, "tokenizer"), "tokenizer"),
                self._side(ctx.argument(node, 1, "model"), "model"),
            )
            return
        if name in TRAINER_CLASSES:
            tok = ctx.keyword(node, "processing_class") or ctx.keyword(node, "tokenizer")
            self._check_pair(
                node,
                self._side(tok.value if tok is not None else None, "tokenizer"),
                self._side(ctx.argument(node, 0, "model"), "model"),
            )
            return
        # model(...), model.forward(...), model.generate(...)
        receiver = func.value if isinstance(func, cst.Attribute) and func.attr.value in MODEL_METHODS else func
        if isinstance(receiver, cst.Call):
            return
        model = load_of(ctx, receiver)
        if model is None or model.kind != "model":
            return
        for arg in node.args:
            encoding = encoding_of(ctx, arg.value, key="input_ids")
            if encoding is not None:
                self._check_pair(node, (encoding.tokenizer.node, encoding.tokenizer.checkpoint), (model.node, model.checkpoint))
                return

    # ------------------------------------------------------------------ the two checks

    def _check_class(self, load: Load) -> None:
        """A concrete tokenizer class on a reference checkpoint of another vocabulary."""
        class_family = family_of_class(load.cls)
        held = load.checkpoint
        if class_family is None or held is None or not held.exact or not _reference_id(held.text):
            return
        ckpt_family = held.family
        if ckpt_family is None or not _vocabularies_differ(class_family, ckpt_family):
            return
        if any({class_family.name, ckpt_family.name} <= group for group in SAME_ALGORITHM):
            return
        self.report(
            load.node,
            f"tokenizer class {load.cls} ({class_family.name}) loads checkpoint {held.text!r} "
            f"({ckpt_family.name}); token ids will not match the embedding vocabulary "
            "(transformers 5 loads it without a warning); use AutoTokenizer or the checkpoint's own class",
        )

    def _check_pair(
        self,
        node: cst.Call,
        tokenizer: Optional[Tuple[Any, Optional[Checkpoint]]],
        model: Optional[Tuple[Any, Optional[Checkpoint]]],
    ) -> None:
        if tokenizer is None or model is None:
            return
        (tok_node, tok_ckpt), (model_node, model_ckpt) = tokenizer, model
        if tok_ckpt is None or model_ckpt is None or not tok_ckpt.exact or not model_ckpt.exact:
            return
        a, b = tok_ckpt.text, model_ckpt.text
        if a.strip("/") == b.strip("/") or not (_hub_id(a) and _hub_id(b)):
            return
        fa, fb = tok_ckpt.family, model_ckpt.family
        if fa is None or fb is None:
            return
        if _vocabularies_differ(fa, fb):
            if not (_reference_id(a) and _reference_id(b)):
                return
            why = f"{fa.name} vs {fb.name}"
        elif fa.vocab is not None and fa.vocab == fb.vocab and _case_differs(a, b):
            why = "cased vs uncased"
        else:
            return
        key = (id(tok_node), id(model_node))
        if key in self._seen:
            return
        self._seen.add(key)
        self.report(
            node,
            f"tokenizer ({a}) and model ({b}) come from different checkpoints/families ({why}); "
            "token ids will not match the embedding vocabulary",
        )

    def _side(self, expr: Any, kind: str) -> Optional[Tuple[Any, Optional[Checkpoint]]]:
        """(identity node, checkpoint) of a pipeline / Trainer argument: a hub id, or a loaded
        tokenizer / model."""
        if expr is None:
            return None
        load = load_of(self.ctx, expr)
        if load is not None:
            return (load.node, load.checkpoint) if load.kind == kind else None
        held = checkpoint(self.ctx, expr)
        if held is None:
            return None
        return (expr, held)


# ---------------------------------------------------------------------- helpers


def _vocabularies_differ(a: Family, b: Family) -> bool:
    return a.vocab is not None and b.vocab is not None and a.vocab != b.vocab


def _hub_id(text: str) -> bool:
    return bool(HUB_ID.fullmatch(text.strip()))


def _reference_id(text: str) -> bool:
    """A hub id whose family word names the family's own vocabulary: no organisation, or one of
    the organisations that publish the reference checkpoints."""
    text = text.strip()
    if not _hub_id(text):
        return False
    if "/" in text:
        return text.split("/", 1)[0].lower() in OFFICIAL_ORGS
    # the legacy ids without an organisation are lower case, joined by hyphens, and say nothing but
    # the family, the size and the casing; a folder such as "roberta_wwm" or "RoBERTa_zh_Large"
    # (Chinese RoBERTa with a BERT vocabulary) is not one of them
    if text != text.lower() or "_" in text:
        return False
    return all(word in REFERENCE_WORDS or word in FAMILY_WORDS or word.isdigit() for word in checkpoint_words(text))


def _case_differs(a: str, b: str) -> bool:
    wa, wb = checkpoint_words(a), checkpoint_words(b)
    return ("cased" in wa and "uncased" in wb) or ("uncased" in wa and "cased" in wb)
