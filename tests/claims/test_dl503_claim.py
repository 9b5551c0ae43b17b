"""DL503: a BERT with a 16-position table crashes on 32 tokens when the tokenizer (or a pipeline
built on it) does not truncate, and runs once truncation is on.

Measured on transformers 5.23 / torch 2.13 CPU: the forward pass raises "RuntimeError: The size of
tensor a (32) must match the size of tensor b (16) at non-singleton dimension 1" (older releases
raise an IndexError from the position embedding); with ``truncation=True, max_length=16`` the ids
are (1, 16) and the logits (1, 2).  The text-classification, feature-extraction and fill-mask
pipelines hand the text to the tokenizer without truncation and crash the same way;
token-classification truncates to ``model_max_length`` by itself and runs."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

POSITIONS = 16
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]
#: 30 words + [CLS] + [SEP] = 32 tokens, twice the position table
LONG_TEXT = " ".join(f"w{i % 40}" for i in range(30))


@pytest.fixture
def tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(vocab), model_max_length=POSITIONS)


def _config():
    return transformers.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=POSITIONS,
    )


def _classifier():
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(_config()).eval()


def test_untruncated_long_input_crashes(tokenizer):
    model = _classifier()
    enc = tokenizer(LONG_TEXT, return_tensors="pt")
    assert enc["input_ids"].shape == (1, 32)
    with torch.no_grad(), pytest.raises((IndexError, RuntimeError)):
        model(**enc)


def test_truncated_input_runs(tokenizer):
    model = _classifier()
    enc = tokenizer(LONG_TEXT, truncation=True, max_length=POSITIONS, return_tensors="pt")
    assert enc["input_ids"].shape == (1, POSITIONS)
    with torch.no_grad():
        assert model(**enc).logits.shape == (1, 2)


def test_max_length_with_padding_does_not_truncate(tokenizer):
    # padding="max_length" with max_length but no truncation pads short texts and keeps long ones whole
    enc = tokenizer(LONG_TEXT, padding="max_length", max_length=POSITIONS)
    assert len(enc["input_ids"]) == 32
    # max_length alone turns truncation on
    assert len(tokenizer(LONG_TEXT, max_length=POSITIONS)["input_ids"]) == POSITIONS


def test_text_classification_pipeline_crashes_until_truncation(tokenizer):
    clf = transformers.pipeline("text-classification", model=_classifier(), tokenizer=tokenizer)
    with pytest.raises((IndexError, RuntimeError)):
        clf(LONG_TEXT)
    assert len(clf(LONG_TEXT, truncation=True)) == 1
    truncating = transformers.pipeline(
        "text-classification", model=_classifier(), tokenizer=tokenizer, truncation=True
    )
    assert len(truncating(LONG_TEXT)) == 1


def test_feature_extraction_and_fill_mask_pipelines_crash(tokenizer):
    features = transformers.pipeline("feature-extraction", model=transformers.BertModel(_config()).eval(),
                                     tokenizer=tokenizer)
    with pytest.raises((IndexError, RuntimeError)):
        features(LONG_TEXT)
    assert len(features(LONG_TEXT, truncation=True)[0]) == POSITIONS
    masked = transformers.pipeline("fill-mask", model=transformers.BertForMaskedLM(_config()).eval(),
                                   tokenizer=tokenizer)
    with pytest.raises((IndexError, RuntimeError)):
        masked("[MASK] " + LONG_TEXT)
    assert masked("[MASK] " + LONG_TEXT, tokenizer_kwargs={"truncation": True})
    with pytest.raises(TypeError):  # fill-mask takes no truncation= keyword: tokenizer_kwargs only
        masked("[MASK] " + LONG_TEXT, truncation=True)


def test_token_classification_pipeline_truncates_by_itself(tokenizer):
    tagger = transformers.pipeline(
        "token-classification", model=transformers.BertForTokenClassification(_config()).eval(), tokenizer=tokenizer
    )
    tagger(LONG_TEXT)  # no crash: the pipeline passes truncation=True when model_max_length is set
