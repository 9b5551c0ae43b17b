"""DL506: batched greedy generation with a tiny GPT-2 and right padding changes the continuation
of the short prompt; left padding gives the same tokens as generating each prompt alone."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["<|endoftext|>"] + "the a cat dog sat on mat hello world my is weather in berlin this morning".split()
PROMPTS = ["the weather in berlin this morning is", "hello my dog"]
NEW = 6


def _setup(padding_side=None):
    model = tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<|endoftext|>")
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    extra = {"padding_side": padding_side} if padding_side else {}
    tok = transformers.GPT2TokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        unk_token="<|endoftext|>", **extra,
    )
    tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64)
    lm = transformers.GPT2LMHeadModel(config).eval()
    return tok, lm


def _generate(tok, lm, prompts):
    enc = tok(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(**enc, do_sample=False, max_new_tokens=NEW, min_new_tokens=NEW, pad_token_id=tok.pad_token_id)
    return out[:, enc["input_ids"].shape[1]:].tolist()


def test_right_padding_changes_batched_generation():
    tok, lm = _setup()
    assert tok.padding_side == "right"  # GPT-2's default
    alone = [_generate(tok, lm, [p])[0] for p in PROMPTS]
    right = _generate(tok, lm, PROMPTS)
    print("alone", alone, "right-padded batch", right)
    assert right[0] == alone[0]  # the longest prompt has no padding
    assert right[1] != alone[1]  # the short one continues after its pad tokens


def test_left_padding_matches_unbatched():
    tok, lm = _setup(padding_side="left")  # the fix: from_pretrained(..., padding_side="left")
    alone = [_generate(tok, lm, [p])[0] for p in PROMPTS]
    left = _generate(tok, lm, PROMPTS)
    print("alone", alone, "left-padded batch", left)
    assert left == alone
