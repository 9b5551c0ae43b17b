"""DL508: from_pretrained returns the model in eval mode, so dropout is off until model.train().

A tiny BERT classifier with dropout 0.1 is saved with save_pretrained and loaded back:
``training`` is False on the model and every submodule, two forward passes of the same batch
give identical logits, and a gradient step taken in that state trains without dropout.  After
``model.train()`` two passes differ (dropout is active).
"""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture()
def loaded(tmp_path):
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_labels=2,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)
    return transformers.BertForSequenceClassification.from_pretrained(tmp_path)


def _batch():
    generator = torch.Generator().manual_seed(1)
    return {
        "input_ids": torch.randint(5, 100, (4, 16), generator=generator),
        "labels": torch.tensor([0, 1, 0, 1]),
    }


def test_from_pretrained_returns_eval_mode(loaded):
    assert loaded.training is False
    assert not any(module.training for module in loaded.modules())


def test_dropout_is_off_until_train(loaded):
    batch = _batch()
    first = loaded(**batch).logits
    second = loaded(**batch).logits
    assert torch.equal(first, second)  # eval mode: no dropout, the same output twice

    loaded.train()
    third = loaded(**batch).logits
    fourth = loaded(**batch).logits
    assert not torch.equal(third, fourth)  # dropout active
    assert not torch.allclose(third, first)


def test_a_manual_step_without_train_runs_without_dropout(loaded):
    optimizer = torch.optim.SGD(loaded.parameters(), lr=0.1)
    batch = _batch()
    loss_a = loaded(**batch).loss
    loss_b = loaded(**batch).loss
    assert torch.equal(loss_a, loss_b)  # the loss the loop backpropagates has no dropout noise
    loss_a.backward()
    optimizer.step()
    assert loaded.training is False  # backward/step do not switch the mode
