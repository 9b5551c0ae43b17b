"""DL501: transformers 5 loads one family's saved tokenizer files into another family's concrete
tokenizer class without any warning, and the token ids change.

Measured (transformers 5.23): a BERT WordPiece tokenizer saved to a folder and loaded as
``RobertaTokenizerFast`` encodes "hello world" as [2, 3] (the BERT tokenizer: [2, 5, 6, 3]); a RoBERTa
byte-level BPE tokenizer loaded as ``BertTokenizerFast`` encodes it as [0, 16, 3, 2] (RoBERTa:
[0, 16, 20, 2]); no Python warning and no transformers log message either way.  (transformers 4
warned "The tokenizer class you load from this checkpoint is not the same type as the class this
function is called from".)
"""

import json
import logging
import warnings

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

if int(transformers.__version__.split(".")[0]) < 5:  # pragma: no cover - the claim is about v5
    pytest.skip("the claim is about transformers 5", allow_module_level=True)

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "cat"]
BPE_VOCAB = {
    "<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "h": 5, "e": 6, "l": 7, "o": 8, "w": 9,
    "r": 10, "d": 11, "\u0120": 12, "he": 13, "ll": 14, "hell": 15, "hello": 16, "\u0120w": 17, "or": 18,
    "\u0120wor": 19, "\u0120world": 20, "ld": 21,
}
BPE_MERGES = ["h e", "l l", "he ll", "hell o", "\u0120 w", "o r", "\u0120w or", "l d", "\u0120wor ld"]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _load_silently(cls, folder):
    """Load ``cls`` from ``folder``; return the tokenizer, Python warnings and transformers log lines."""
    handler = _Records()
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tok = cls.from_pretrained(folder)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    caught = [w for w in caught if not issubclass(w.category, ResourceWarning)]
    return tok, caught, handler.messages


def test_bert_files_load_silently_into_roberta_and_gpt2_classes(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(BERT_VOCAB) + "\n")
    bert = transformers.BertTokenizerFast(str(vocab))
    folder = str(tmp_path / "bert")
    bert.save_pretrained(folder)
    expected = bert("hello world")["input_ids"]
    assert expected == [2, 5, 6, 3]

    for cls in (transformers.RobertaTokenizerFast, transformers.GPT2TokenizerFast):
        tok, caught, logged = _load_silently(cls, folder)
        assert caught == [] and logged == []  # no "not the same type" warning in v5
        ids = tok("hello world")["input_ids"]
        assert ids != expected
        assert ids == [2, 3]  # the words are lost

    # the matching class (or AutoTokenizer) keeps the ids
    assert transformers.AutoTokenizer.from_pretrained(folder)("hello world")["input_ids"] == expected


def test_roberta_files_load_silently_into_the_bert_class(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps(BPE_VOCAB))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(BPE_MERGES) + "\n")
    roberta = transformers.RobertaTokenizerFast(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    folder = str(tmp_path / "roberta")
    roberta.save_pretrained(folder)
    expected = roberta("hello world")["input_ids"]
    assert expected == [0, 16, 20, 2]

    tok, caught, logged = _load_silently(transformers.BertTokenizerFast, folder)
    assert caught == [] and logged == []
    ids = tok("hello world")["input_ids"]
    assert ids == [0, 16, 3, 2]  # " world" became <unk>
    assert ids != expected
