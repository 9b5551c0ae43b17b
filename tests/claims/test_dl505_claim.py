"""DL505: a GPT-2 style tokenizer has no pad token; padding raises the ValueError (for one text, a
batch and in a padding collator); setting pad_token = eos_token first works."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["<|endoftext|>", "the", "cat", "sat", "on", "mat", "a", "dog"]


def _gpt2_style_tokenizer():
    model = tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<|endoftext|>")
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    # GPT-2's special tokens: bos = eos = unk = <|endoftext|>, no pad token
    return transformers.GPT2TokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )


@pytest.mark.parametrize(
    "pad",
    [
        lambda tok: tok(["the cat sat on the mat", "a dog"], padding=True, return_tensors="pt"),
        lambda tok: tok("a dog", padding=True),
        lambda tok: tok(["a dog"], padding="max_length", max_length=8),
        lambda tok: transformers.DataCollatorWithPadding(tok)([tok("a dog"), tok("the cat sat")]),
        lambda tok: transformers.DataCollatorForLanguageModeling(tok, mlm=False)([tok("a dog"), tok("the cat")]),
    ],
    ids=["batch", "one-text", "max_length", "DataCollatorWithPadding", "DataCollatorForLanguageModeling"],
)
def test_padding_without_pad_token_raises(pad):
    tok = _gpt2_style_tokenizer()
    assert tok.pad_token is None
    with pytest.raises(ValueError, match="Asking to pad but the tokenizer does not have a padding token"):
        pad(tok)
    tok.pad_token = tok.eos_token  # the suggested fix
    pad(tok)


def test_fixed_batch_pads_with_eos():
    tok = _gpt2_style_tokenizer()
    tok.pad_token = tok.eos_token
    enc = tok(["the cat sat on the mat", "a dog"], padding=True, return_tensors="pt")
    assert enc["input_ids"].shape == (2, 6)
    assert enc["input_ids"][1, 2:].tolist() == [tok.eos_token_id] * 4
    assert enc["attention_mask"][1].tolist() == [1, 1, 0, 0, 0, 0]
