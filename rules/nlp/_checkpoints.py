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
from typing import Any, Dict, Optional, Set, Tuple

import libcst as cst


@dataclass(frozen=True)
class Family:
    """A model family and what the DL5xx rules need to know of it.  Every field is taken from the
    configuration / tokenizer files or the model documentation named in ``source``."""

    name: str
    #: Longest token sequence the position embeddings accept; None when there is no hard limit.
    max_positions: Optional[int]
    #: Why length rules leave it alone ("relative positions", "rotary positions", "long-context").
    exempt: Optional[str] = None
    #: "encoder", "decoder" (decoder-only, generates left to right) or "encoder-decoder".
    architecture: Optional[str] = None
    #: Whether the family's tokenizer defines a pad token; None when it differs between checkpoints.
    pad_token: Optional[bool] = None
    #: Activations known to overflow float16 (inf, then NaN).
    fp16_overflow: bool = False
    #: Families with the same ``vocab`` share a token vocabulary (a tokenizer of one fits a model
    #: of the other); None when the vocabulary differs between checkpoints of the family.
    vocab: Optional[str] = None
    #: Where the facts come from.
    source: str = ""


_GPT2 = Family(
    "GPT-2", 1024, None, "decoder", False, vocab="gpt2-bpe",
    source="gpt2 config.json: n_positions 1024 (also -medium/-large/-xl); special_tokens_map.json: bos, eos, "
    "unk only (measured, transformers 5.24: pad_token is None)")

# One entry per family.  ``words``: words of a checkpoint id (all of a tuple must appear) that name
# the family; ``classes``: leading parts of concrete class names.  More specific entries first: an
# id that names two families (``google/bigbird-roberta-base``) takes the first.
_TABLE = (
    (("longformer",), ("Longformer",), Family(
        "Longformer", 4096, "long-context", "encoder", True, vocab="roberta-bpe",
        source="allenai/longformer-base-4096 config.json: max_position_embeddings 4098 (4096 + padding offset); "
        "tokenizer is RoBERTa's")),
    (("bigbird",), ("BigBird",), Family(
        "BigBird", 4096, "long-context", "encoder", True, vocab=None,
        source="google/bigbird-roberta-base config.json: max_position_embeddings 4096")),
    (("led",), ("LED",), Family(
        "LED", 16384, "long-context", "encoder-decoder", True, vocab="roberta-bpe",
        source="allenai/led-base-16384 config.json: max_encoder_position_embeddings 16384; tokenizer is BART's")),
    (("mt5",), ("MT5",), Family(
        "mT5", None, "relative positions", "encoder-decoder", True, fp16_overflow=True, vocab="mt5",
        source="google/mt5-base config.json: relative_attention_num_buckets 32; fp16 overflow: transformers#10830 "
        "and the T5 entry")),
    (("umt5",), ("UMT5",), Family(
        "UMT5", None, "relative positions", "encoder-decoder", True, fp16_overflow=True, vocab=None,
        source="google/umt5-base config.json: relative attention; T5 architecture (T5 entry)")),
    (("byt5",), (), Family(
        "ByT5", None, "relative positions", "encoder-decoder", True, fp16_overflow=True, vocab="bytes",
        source="google/byt5-small config.json: T5 architecture on bytes (vocab_size 384)")),
    (("t5",), ("T5", "LongT5"), Family(
        "T5", None, "relative positions", "encoder-decoder", True, fp16_overflow=True, vocab="t5",
        source="t5-base config.json: relative_attention_num_buckets 32, no absolute position table (T5 docs: "
        "relative scalar embeddings); fp16 overflow: transformers#4586, #11461, #23918, PR #10956; "
        "google/flan-t5 and google/t5-v1_1 share the architecture and the 32k sentencepiece vocabulary")),
    (("deberta",), ("DebertaV2", "Deberta"), Family(
        "DeBERTa", None, "relative positions", "encoder", True, vocab=None,
        source="microsoft/deberta-v3-base config.json: position_biased_input false (relative attention); "
        "v1 and v3 use different vocabularies")),
    (("xlnet",), ("XLNet",), Family(
        "XLNet", None, "relative positions", "decoder", True, vocab="xlnet",
        source="xlnet-base-cased config.json: attn_type bi, relative positional encodings; tokenizer has <pad>")),
    (("gpt", "neox"), ("GPTNeoX",), Family(
        "GPT-NeoX", None, "rotary positions", "decoder", False, vocab="neox",
        source="EleutherAI/gpt-neox-20b config.json: rotary_pct 0.25; special_tokens_map.json has no pad_token")),
    (("pythia",), (), Family(
        "Pythia", None, "rotary positions", "decoder", False, vocab="neox",
        source="EleutherAI/pythia-160m config.json: GPTNeoXForCausalLM, rotary_pct 0.25; tokenizer has no pad_token")),
    (("gpt", "neo"), ("GPTNeo",), Family(
        "GPT-Neo", 2048, None, "decoder", False, vocab="gpt2-bpe",
        source="EleutherAI/gpt-neo-125m config.json: max_position_embeddings 2048, vocab_size 50257, "
        "tokenizer_class GPT2Tokenizer (GPT-2's vocabulary, no pad token)")),
    (("gpt", "j"), ("GPTJ",), Family(
        "GPT-J", None, "rotary positions", "decoder", False, vocab="gpt2-bpe",
        source="EleutherAI/gpt-j-6b config.json: rotary_dim 64, tokenizer_class GPT2Tokenizer (no pad token)")),
    (("openai", "gpt"), ("OpenAIGPT",), Family(
        "OpenAI GPT", 512, None, "decoder", False, vocab="openai-gpt",
        source="openai-community/openai-gpt config.json: n_positions 512; tokenizer defines no pad token")),
    (("distilgpt2",), (), _GPT2),
    (("gpt2",), ("GPT2",), _GPT2),
    (("opt",), ("OPT",), Family(
        "OPT", 2048, None, "decoder", True, vocab=None,
        source="facebook/opt-125m config.json: max_position_embeddings 2048; special_tokens_map.json has "
        "pad_token <pad>")),
    (("bloom",), ("Bloom",), Family(
        "BLOOM", None, "ALiBi positions", "decoder", True, vocab="bloom",
        source="bigscience/bloom-560m config.json: ALiBi (no position table); tokenizer has <pad>")),
    (("falcon",), ("Falcon",), Family(
        "Falcon", None, "rotary positions", "decoder", False, vocab=None,
        source="tiiuae/falcon-7b config.json: rotary; special_tokens_map.json: eos only")),
    (("codellama",), (), Family(
        "Llama", None, "rotary positions", "decoder", False, vocab=None,
        source="codellama/CodeLlama-7b-hf: LlamaForCausalLM, tokenizer without pad_token")),
    (("llama",), ("Llama",), Family(
        "Llama", None, "rotary positions", "decoder", False, vocab=None,
        source="meta-llama/Llama-2-7b-hf config.json: rope_theta; special_tokens_map.json: bos, eos, unk (no pad); "
        "Llama 2 and Llama 3 use different vocabularies")),
    (("mixtral",), ("Mixtral",), Family(
        "Mixtral", None, "rotary positions", "decoder", False, vocab=None,
        source="mistralai/Mixtral-8x7B-v0.1 config.json: rope_theta; tokenizer without pad_token")),
    (("mistral",), ("Mistral",), Family(
        "Mistral", None, "rotary positions", "decoder", False, vocab=None,
        source="mistralai/Mistral-7B-v0.1 config.json: rope_theta; special_tokens_map.json: bos, eos, unk (no pad)")),
    (("qwen",), ("Qwen2", "Qwen3"), Family(
        "Qwen", None, "rotary positions", "decoder", None, vocab=None,
        source="Qwen/Qwen2-7B config.json: rope_theta")),
    (("qwen2",), (), Family("Qwen", None, "rotary positions", "decoder", None, vocab=None,
        source="Qwen/Qwen2-7B config.json: rope_theta")),
    (("qwen3",), (), Family("Qwen", None, "rotary positions", "decoder", None, vocab=None,
        source="Qwen/Qwen3-8B config.json: rope_theta")),
    (("gemma",), ("Gemma",), Family(
        "Gemma", None, "rotary positions", "decoder", True, vocab=None,
        source="google/gemma-2b config.json: rope_theta; tokenizer has <pad>")),
    (("phi",), ("Phi",), Family(
        "Phi", None, "rotary positions", "decoder", None, vocab=None,
        source="microsoft/phi-2 config.json: partial_rotary_factor 0.4")),
    (("bertweet",), ("Bertweet",), Family(
        "BERTweet", 128, None, "encoder", True, vocab="bertweet",
        source="vinai/bertweet-base config.json: max_position_embeddings 130 (128 + padding offset)")),
    (("minilm",), (), Family(
        "MiniLM", 512, None, "encoder", True, vocab=None,
        source="sentence-transformers/all-MiniLM-L6-v2 and microsoft/MiniLM-L12-H384-uncased config.json: "
        "BertModel, max_position_embeddings 512")),
    (("xlm", "roberta"), ("XLMRoberta",), Family(
        "XLM-RoBERTa", 512, None, "encoder", True, vocab="xlm-roberta",
        source="xlm-roberta-base config.json: max_position_embeddings 514 (512 + padding offset), "
        "vocab_size 250002 (sentencepiece)")),
    (("distilroberta",), (), Family(
        "RoBERTa", 512, None, "encoder", True, vocab="roberta-bpe",
        source="distilroberta-base config.json: max_position_embeddings 514, RoBERTa tokenizer")),
    (("roberta",), ("Roberta",), Family(
        "RoBERTa", 512, None, "encoder", True, vocab="roberta-bpe",
        source="roberta-base config.json: max_position_embeddings 514 (512 tokens + padding offset), "
        "vocab_size 50265")),
    (("distilbert",), ("DistilBert",), Family(
        "DistilBERT", 512, None, "encoder", True, vocab="bert-wordpiece",
        source="distilbert-base-uncased config.json: max_position_embeddings 512, vocab_size 30522 "
        "(BERT's WordPiece vocabulary)")),
    (("electra",), ("Electra",), Family(
        "ELECTRA", 512, None, "encoder", True, vocab="bert-wordpiece",
        source="google/electra-base-discriminator config.json: max_position_embeddings 512, vocab_size 30522 "
        "(BERT's uncased WordPiece vocabulary)")),
    (("albert",), ("Albert",), Family(
        "ALBERT", 512, None, "encoder", True, vocab="albert",
        source="albert-base-v2 config.json: max_position_embeddings 512, vocab_size 30000 (sentencepiece)")),
    (("camembert",), ("Camembert",), Family(
        "CamemBERT", 512, None, "encoder", True, vocab="camembert",
        source="camembert-base config.json: max_position_embeddings 514 (512 + padding offset), vocab_size 32005")),
    (("bart",), ("Bart",), Family(
        "BART", 1024, None, "encoder-decoder", True, vocab="roberta-bpe",
        source="facebook/bart-large config.json: max_position_embeddings 1024, vocab_size 50265 (RoBERTa's BPE)")),
    (("bert",), ("Bert",), Family(
        "BERT", 512, None, "encoder", True, vocab="bert-wordpiece",
        source="bert-base-uncased config.json: max_position_embeddings 512, vocab_size 30522 "
        "(bert-base-cased: 28996, a different vocabulary)")),
)

FAMILIES: Tuple[Family, ...] = tuple(dict.fromkeys(family for _, _, family in _TABLE))

#: Word (or words) of a checkpoint id -> family, in match order.
CHECKPOINT_WORDS: Dict[Tuple[str, ...], Family] = {words: family for words, _, family in _TABLE}

#: Leading part of a concrete transformers class name (after an optional TF / Flax prefix) -> family.
CLASS_PREFIXES: Dict[str, Family] = {p: family for _, prefixes, family in _TABLE for p in prefixes}


BERT = CLASS_PREFIXES["Bert"]
GPT2 = CLASS_PREFIXES["GPT2"]
T5 = CLASS_PREFIXES["T5"]

_WORD_SPLIT = re.compile(r"[-_.\s]+")


def family_of_checkpoint(checkpoint: str) -> Optional[Family]:
    """The family a hub id (or a local path) names, or None when no word of its last segment is known."""
    words = checkpoint_words(checkpoint)
    for key, family in CHECKPOINT_WORDS.items():
        if all(word in words for word in key):
            return family
    return None


def checkpoint_words(checkpoint: str) -> Set[str]:
    """The lower-case words of the last path segment of a hub id or local path."""
    last = checkpoint.rstrip("/").rsplit("/", 1)[-1].lower()
    return {w for w in _WORD_SPLIT.split(last) if w}


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
