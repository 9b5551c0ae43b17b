"""Checkpoint families of transformers models, as data, shared by the DL5xx rules.

A hub id such as ``"bert-base-uncased"``, ``"FacebookAI/roberta-large"`` or
``"cardiffnlp/twitter-roberta-base-sentiment"`` is mapped to a family by the words of its last path
segment (split on ``-``, ``_`` and ``.``, lower case); a concrete class such as
``BertForSequenceClassification`` or ``TFGPT2LMHeadModel`` by its leading family prefix.  A family
either has a hard limit on the sequence length (learned absolute position embeddings: a longer input
crashes) or is exempt: relative or rotary positions (no table to index past), or long-context models
the catalogue exempts.  Each entry names the checkpoint config its number comes from.

When an id or a class matches no entry, the family is unknown and rules must stay silent on any
question that needs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Optional

import libcst as cst


@dataclass(frozen=True)
class Family:
    """A model family: its display name, its position limit, and why it is exempt (if it is)."""

    name: str
    #: Longest token sequence the position embeddings accept; None when there is no hard limit.
    max_positions: Optional[int]
    #: Why length rules leave it alone ("relative positions", "rotary positions", "long-context").
    exempt: Optional[str] = None


BERT = Family("BERT", 512)
ROBERTA = Family("RoBERTa", 512)
DISTILBERT = Family("DistilBERT", 512)
ELECTRA = Family("ELECTRA", 512)
ALBERT = Family("ALBERT", 512)
CAMEMBERT = Family("CamemBERT", 512)
GPT2 = Family("GPT-2", 1024)
BART = Family("BART", 1024)
T5 = Family("T5", None, "relative positions")
DEBERTA = Family("DeBERTa", None, "relative positions")
XLNET = Family("XLNet", None, "relative positions")
LONGFORMER = Family("Longformer", 4096, "long-context")
BIGBIRD = Family("BigBird", 4096, "long-context")
LED = Family("LED", 16384, "long-context")
ROTARY = Family("rotary-position decoder", None, "rotary positions")

#: Word of a checkpoint id -> family.  Exempt families are listed first: an id that names both
#: (``google/bigbird-roberta-base``) is the exempt one.
CHECKPOINT_WORDS: Dict[str, Family] = {
    # allenai/longformer-base-4096 config.json: "max_position_embeddings": 4098 (4096 + padding offset)
    "longformer": LONGFORMER,
    # google/bigbird-roberta-base config.json: "max_position_embeddings": 4096
    "bigbird": BIGBIRD,
    # allenai/led-base-16384 config.json: "max_encoder_position_embeddings": 16384
    "led": LED,
    # t5-base config.json: "relative_attention_num_buckets": 32, no absolute position table
    # (T5 model doc: "T5 uses relative scalar embeddings"); same for mT5, Flan-T5, ByT5, LongT5
    "t5": T5,
    "mt5": T5,
    "byt5": T5,
    "umt5": T5,
    # microsoft/deberta-v3-base and microsoft/deberta-base config.json: "position_biased_input": false
    # (disentangled relative attention, no absolute positions added to the input)
    "deberta": DEBERTA,
    # xlnet-base-cased config.json: "attn_type": "bi", relative positional encodings, no position table
    "xlnet": XLNET,
    # rotary position embeddings, no position table to index past (config.json of each:
    # meta-llama/Llama-2-7b-hf, mistralai/Mistral-7B-v0.1, Qwen/Qwen2-7B, google/gemma-2b,
    # microsoft/phi-2, EleutherAI/pythia-160m, EleutherAI/gpt-neox-20b: "rope_theta" / "rotary_pct")
    "llama": ROTARY,
    "mistral": ROTARY,
    "mixtral": ROTARY,
    "qwen": ROTARY,
    "qwen2": ROTARY,
    "qwen3": ROTARY,
    "gemma": ROTARY,
    "phi": ROTARY,
    "pythia": ROTARY,
    "neox": ROTARY,
    # bert-base-uncased config.json: "max_position_embeddings": 512
    "bert": BERT,
    # roberta-base config.json: "max_position_embeddings": 514 (512 tokens + padding offset);
    # xlm-roberta-base has the same 514
    "roberta": ROBERTA,
    # distilbert-base-uncased config.json: "max_position_embeddings": 512
    "distilbert": DISTILBERT,
    # google/electra-base-discriminator config.json: "max_position_embeddings": 512
    "electra": ELECTRA,
    # albert-base-v2 config.json: "max_position_embeddings": 512
    "albert": ALBERT,
    # camembert-base config.json: "max_position_embeddings": 514 (512 tokens + padding offset)
    "camembert": CAMEMBERT,
    # gpt2 config.json: "n_positions": 1024 (also gpt2-medium / -large / -xl)
    "gpt2": GPT2,
    # distilgpt2 config.json: "n_positions": 1024
    "distilgpt2": GPT2,
    # facebook/bart-large config.json: "max_position_embeddings": 1024
    "bart": BART,
}

#: Leading part of a concrete transformers class name (after an optional TF / Flax prefix) -> family.
#: The numbers are those of the checkpoint configs cited above.
CLASS_PREFIXES: Dict[str, Family] = {
    "Longformer": LONGFORMER,
    "BigBird": BIGBIRD,
    "LED": LED,
    "T5": T5,
    "MT5": T5,
    "UMT5": T5,
    "LongT5": T5,
    "Deberta": DEBERTA,
    "DebertaV2": DEBERTA,
    "XLNet": XLNET,
    "Llama": ROTARY,
    "Mistral": ROTARY,
    "Mixtral": ROTARY,
    "Qwen2": ROTARY,
    "Qwen3": ROTARY,
    "Gemma": ROTARY,
    "Phi": ROTARY,
    "GPTNeoX": ROTARY,
    "Bert": BERT,
    "Roberta": ROBERTA,
    "XLMRoberta": ROBERTA,
    "DistilBert": DISTILBERT,
    "Electra": ELECTRA,
    "Albert": ALBERT,
    "Camembert": CAMEMBERT,
    "GPT2": GPT2,
    "Bart": BART,
}

_WORD_SPLIT = re.compile(r"[-_.\s]+")


def family_of_checkpoint(checkpoint: str) -> Optional[Family]:
    """The family a hub id (or a local path) names, or None when no word of its last segment is known."""
    last = checkpoint.rstrip("/").rsplit("/", 1)[-1].lower()
    words = {w for w in _WORD_SPLIT.split(last) if w}
    for word, family in CHECKPOINT_WORDS.items():
        if word in words:
            return family
    return None


def family_of_class(class_name: str) -> Optional[Family]:
    """The family of a concrete class name (``BertForMaskedLM``, ``TFGPT2LMHeadModel``), or None."""
    for prefix in ("TF", "Flax"):
        if class_name.startswith(prefix) and class_name[len(prefix):][:1].isupper():
            class_name = class_name[len(prefix):]
            break
    best: Optional[str] = None
    for prefix in CLASS_PREFIXES:
        if class_name.startswith(prefix):
            rest = class_name[len(prefix):]
            # the prefix must end at a word boundary: "Bert" + "ForMaskedLM", not "Bertweet"
            if (not rest or rest[0].isupper()) and (best is None or len(prefix) > len(best)):
                best = prefix
    return CLASS_PREFIXES[best] if best is not None else None


def string_value(ctx: Any, node: Any, depth: int = 3) -> Optional[str]:
    """The value of a plain string literal, directly or through a name assigned once to one."""
    node = ctx.resolve(node, depth) if isinstance(node, cst.Name) else node
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def checkpoint_of(ctx: Any, load: cst.Call) -> Optional[str]:
    """The checkpoint string of a ``X.from_pretrained(...)`` call, when it is known."""
    return string_value(ctx, ctx.argument(load, 0, "pretrained_model_name_or_path"))


def pretrained_class(ctx: Any, node: Any) -> Optional[str]:
    """For ``transformers.<Class>.from_pretrained(...)`` (any import spelling), the class name."""
    if not (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "from_pretrained"
    ):
        return None
    owner = ctx.qualname(node.func.value)
    if owner is None or not owner.startswith("transformers."):
        return None
    return owner.rsplit(".", 1)[1]


_MODEL_CLASS = re.compile(r"^[A-Z][A-Za-z0-9]*(Model|For[A-Z])")
_NOT_MODEL = ("Tokenizer", "Config", "Processor", "FeatureExtractor", "Pipeline")


def is_model_class(class_name: str) -> bool:
    """``AutoModel``, ``AutoModelForCausalLM``, ``BertForSequenceClassification``, ``GPT2LMHeadModel``..."""
    return bool(_MODEL_CLASS.match(class_name)) and not any(w in class_name for w in _NOT_MODEL)


def is_tokenizer_class(class_name: str) -> bool:
    """``AutoTokenizer``, ``BertTokenizer``, ``GPT2TokenizerFast``, ``PreTrainedTokenizerFast``; not
    the TF in-graph tokenizer layers (``TFBertTokenizer``), which take other arguments."""
    return "Tokenizer" in class_name and not class_name.startswith("TF")


#: Methods that return the model they are called on (``from_pretrained(...).to(device).eval()``).
SELF_RETURNING = frozenset(
    {"to", "eval", "train", "cuda", "cpu", "half", "float", "bfloat16", "double", "requires_grad_"}
)


def strip_self_returning(node: Any) -> Any:
    """``X.from_pretrained(...).to(dev).eval()`` -> the ``from_pretrained`` call."""
    while (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in SELF_RETURNING
    ):
        node = node.func.value
    return node
