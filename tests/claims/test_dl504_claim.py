"""DL504: tokens added to a tokenizer without resizing the model's embeddings index out of range.

A tiny BERT (vocabulary of 100 rows) and a WordPiece tokenizer written to tmp_path with the same
100 entries: after ``add_special_tokens`` the new token gets id 100, one past the last embedding
row, and the forward pass fails with ``IndexError: index out of range in self``.  After
``model.resize_token_embeddings(len(tok))`` the embedding has 101 rows and the same input runs.
"""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _tiny(tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]
    words += [f"w{i}" for i in range(100 - len(words))]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    tok = transformers.BertTokenizerFast.from_pretrained(str(tmp_path))
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    return tok, model


def test_added_token_without_resize_raises_index_error(tmp_path):
    tok, model = _tiny(tmp_path)
    assert len(tok) == 100
    tok.add_special_tokens({"additional_special_tokens": ["<e1>"]})
    enc = tok("hello <e1> world", return_tensors="pt")
    new_id = tok.convert_tokens_to_ids("<e1>")
    assert new_id == 100 and new_id in enc["input_ids"][0].tolist()
    assert model.get_input_embeddings().weight.shape[0] == 100
    with pytest.raises(IndexError, match="index out of range"):
        model(**enc)


def test_resize_token_embeddings_fixes_it(tmp_path):
    tok, model = _tiny(tmp_path)
    tok.add_special_tokens({"additional_special_tokens": ["<e1>"]})
    model.resize_token_embeddings(len(tok))
    assert model.get_input_embeddings().weight.shape[0] == 101
    out = model(**tok("hello <e1> world", return_tensors="pt"))
    assert out.last_hidden_state.shape == (1, 5, 32)
    assert torch.isfinite(out.last_hidden_state).all()


def test_add_tokens_without_resize_raises_too(tmp_path):
    tok, model = _tiny(tmp_path)
    assert tok.add_tokens(["newword"]) == 1
    with pytest.raises(IndexError):
        model(**tok("hello newword", return_tensors="pt"))
