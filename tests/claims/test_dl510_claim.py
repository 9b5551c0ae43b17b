"""DL510: the transformers 4 spellings that transformers 5 removed or ignores, measured on the
installed transformers 5 with a tiny tokenizer and model built locally (no downloads).

Measured (transformers 5.23, torch 2.13 CPU):
- a tokenizer has no ``encode_plus`` / ``batch_encode_plus`` (AttributeError "BertTokenizer has no
  attribute encode_plus");
- ``tok(["hello", "hello world the cat"], pad_to_max_length=True, max_length=10)`` gives ids of
  lengths 3 and 6 (no padding, no warning); ``padding="max_length"`` gives 10 and 10;
- ``Trainer(model=m, tokenizer=t)`` and ``Seq2SeqTrainer(...)`` raise "TypeError: ...__init__() got
  an unexpected keyword argument 'tokenizer'"; ``processing_class=t`` binds;
- ``from_pretrained(..., torch_dtype=torch.float16)`` still loads in float16 (silently mapped to
  ``dtype``); ``from_config(..., torch_dtype=...)`` logs "`torch_dtype` is deprecated! Use `dtype`
  instead!"; ``dtype=`` loads the same weights in the same dtype.
"""

import inspect
import logging
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

if int(transformers.__version__.split(".")[0]) < 5:  # pragma: no cover - the claims are about v5
    pytest.skip("these claims are about transformers 5", allow_module_level=True)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "cat"]


@pytest.fixture
def tokenizer(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return transformers.BertTokenizerFast(str(path))


@pytest.fixture
def model():
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    return transformers.BertForSequenceClassification(config)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def logs():
    handler = _Records()
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_encode_plus_and_batch_encode_plus_are_gone(tokenizer):
    for method in ("encode_plus", "batch_encode_plus"):
        assert not hasattr(tokenizer, method)
        with pytest.raises(AttributeError, match=method):
            getattr(tokenizer, method)("hello world")
    # the replacement: call the tokenizer
    assert tokenizer("hello world")["input_ids"] == [2, 5, 6, 3]
    assert tokenizer(["hello", "hello world"])["input_ids"] == [[2, 5, 3], [2, 5, 6, 3]]


def test_pad_to_max_length_is_ignored_silently(tokenizer, logs):
    texts = ["hello", "hello world the cat"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bad = tokenizer(texts, pad_to_max_length=True, max_length=10)["input_ids"]
    assert [len(ids) for ids in bad] == [3, 6]  # nothing padded
    assert not [w for w in caught if "pad_to_max_length" in str(w.message)]
    assert not [m for m in logs if "pad_to_max_length" in m]
    # unequal rows cannot become one tensor
    with pytest.raises(ValueError):
        tokenizer(texts, pad_to_max_length=True, max_length=10, return_tensors="pt")

    good = tokenizer(texts, padding="max_length", truncation=True, max_length=10)["input_ids"]
    assert [len(ids) for ids in good] == [10, 10]
    assert good[0] == [2, 5, 3] + [0] * 7
    # with max_length and no padding= the call truncates (what the suggested truncation=True keeps)
    long = tokenizer(["hello world the cat a cat"], pad_to_max_length=True, max_length=4)["input_ids"]
    assert long == [[2, 5, 6, 3]]


@pytest.mark.parametrize("trainer_class", ["Trainer", "Seq2SeqTrainer"])
def test_trainer_tokenizer_keyword_raises_type_error(trainer_class, tokenizer, model):
    cls = getattr(transformers, trainer_class)
    with pytest.raises(TypeError, match="unexpected keyword argument 'tokenizer'"):
        cls(model=model, tokenizer=tokenizer)
    # processing_class is the transformers 5 name
    bound = inspect.signature(cls.__init__).bind(None, model=model, processing_class=tokenizer)
    assert bound.arguments["processing_class"] is tokenizer


def test_trainer_with_processing_class_builds(tmp_path, tokenizer, model):
    pytest.importorskip("accelerate")  # Trainer needs it to set up devices
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True)
    trainer = transformers.Trainer(model=model, args=args, processing_class=tokenizer)
    assert trainer.processing_class is tokenizer


def test_torch_dtype_still_works_under_its_new_name(tmp_path, model, logs):
    model.save_pretrained(str(tmp_path / "m"))
    cls = transformers.BertForSequenceClassification
    old = cls.from_pretrained(str(tmp_path / "m"), torch_dtype=torch.float16)
    new = cls.from_pretrained(str(tmp_path / "m"), dtype=torch.float16)
    assert old.dtype == new.dtype == torch.float16  # from_pretrained maps it silently
    for a, b in zip(old.state_dict().values(), new.state_dict().values()):
        assert torch.equal(a, b)
    # from_config logs the deprecation
    built = transformers.AutoModelForSequenceClassification.from_config(model.config, torch_dtype=torch.float16)
    assert built.dtype == torch.float16
    assert any("torch_dtype" in m and "deprecated" in m for m in logs)
