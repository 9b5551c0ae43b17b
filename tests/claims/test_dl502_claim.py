"""DL502: padded input_ids without attention_mask change the logits of the padded row of a tiny
BERT (no error, no warning); passing the mask gives the unpadded result back."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "ran"]


def _setup(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64, num_labels=2, initializer_range=0.5,
    )
    model = transformers.BertForSequenceClassification(config).eval()
    return tok, model


def test_missing_mask_changes_padded_row(tmp_path):
    tok, model = _setup(tmp_path)
    texts = ["the cat sat on the mat", "a dog"]
    enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
    assert (enc["input_ids"][1] == tok.pad_token_id).sum() >= 3  # the short row is padded
    alone = tok(texts[1], return_tensors="pt")
    with torch.no_grad():
        reference = model(**alone).logits[0]
        bad = model(enc["input_ids"]).logits[1]  # the flagged call
        fixed = model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits[1]  # the fix
    print("alone", reference.tolist(), "no mask", bad.tolist(), "with mask", fixed.tolist())
    assert (bad - reference).abs().max() > 1e-2
    assert torch.allclose(fixed, reference, atol=1e-5)
    # the unpadded row is the same either way
    with torch.no_grad():
        assert torch.allclose(model(enc["input_ids"]).logits[0], model(**enc).logits[0], atol=1e-5)


def test_hand_built_padding_without_mask(tmp_path):
    tok, model = _setup(tmp_path)
    ids = tok.encode("the cat sat")
    with torch.no_grad():
        out_a = model.bert(torch.tensor([ids]))[0][0]
        out_b = model.bert(torch.tensor([ids + [0, 0, 0]]))[0][0, : len(ids)]
        masked = model.bert(
            torch.tensor([ids + [0, 0, 0]]), attention_mask=torch.tensor([[1] * len(ids) + [0, 0, 0]])
        )[0][0, : len(ids)]
    print("max diff without mask", (out_a - out_b).abs().max().item(), "with mask", (out_a - masked).abs().max().item())
    assert (out_a - out_b).abs().max() > 1e-2
    assert torch.allclose(out_a, masked, atol=1e-5)


def test_causal_model_sees_right_pads_never_left_pads():
    """Why the rule exempts right-padded forward calls of decoder-only models: causal attention
    never looks at the pads after a token, but it does look at pads before it."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64, initializer_range=0.5)
    lm = transformers.GPT2LMHeadModel(config).eval()
    ids = [5, 17, 42, 8]
    pad = 0
    with torch.no_grad():
        alone = lm(torch.tensor([ids])).logits[0]
        right = lm(torch.tensor([ids + [pad] * 3])).logits[0, : len(ids)]
        left = lm(torch.tensor([[pad] * 3 + ids])).logits[0, 3:]
        left_masked = lm(
            torch.tensor([[pad] * 3 + ids]),
            attention_mask=torch.tensor([[0] * 3 + [1] * len(ids)]),
            position_ids=torch.tensor([[0] * 3 + list(range(len(ids)))]),
        ).logits[0, 3:]
    print("right pads", (alone - right).abs().max().item(), "left pads", (alone - left).abs().max().item())
    assert torch.allclose(alone, right, atol=1e-5)
    assert (alone - left).abs().max() > 1e-2
    assert torch.allclose(alone, left_masked, atol=1e-4)


def _gpt2_pair(tmp_path, pad_token):
    tokenizers = pytest.importorskip("tokenizers")
    words = ["<|endoftext|>", "[PAD]"] + "the a cat dog sat on mat hello world my is weather in berlin".split()
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = transformers.GPT2TokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
        pad_token=pad_token, padding_side="left",
    )
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64,
                                     initializer_range=0.5, eos_token_id=0, bos_token_id=0)
    return tok, transformers.GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("pad_token, inferred", [("<|endoftext|>", False), ("[PAD]", True)])
def test_generate_infers_the_mask_only_for_a_distinct_pad_token(tmp_path, pad_token, inferred):
    tok, lm = _gpt2_pair(tmp_path, pad_token)
    enc = tok(["the weather in berlin is", "hello my dog"], padding=True, return_tensors="pt")
    kwargs = dict(do_sample=False, max_new_tokens=5, min_new_tokens=5, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        without = lm.generate(enc["input_ids"], **kwargs)[1].tolist()  # the flagged call when pad == EOS
        with_mask = lm.generate(**enc, **kwargs)[1].tolist()
    print(pad_token, "without mask", without, "with mask", with_mask)
    assert (without == with_mask) is inferred
