"""DL507: T5 in float16.

What can be shown on a CPU with a tiny random T5 (no NaN is claimed here):

- float16 tops out at 65504: larger activations become inf; bfloat16 keeps them finite.
- ``from_pretrained(..., dtype=torch.float16)`` keeps the feed-forward ``wo`` weights in float32
  (``T5ForConditionalGeneration._keep_in_fp32_modules == ["wo"]``), while ``.half()`` makes them
  float16: the load-time case is partly mitigated, the cast is not.
- With feed-forward weights scaled up so that the activations pass 65504 (about 2e5, as large
  T5 checkpoints reach), the feed-forward output of a ``.half()`` model is inf; the float16 load
  and bfloat16 keep it finite.  T5 clamps inf hidden states in float16, so the encoder output
  stays finite here, but it is far from the float32 result (measured, transformers 5.23 /
  torch 2.13 CPU: max abs error 2.19 for .half(), 0.0016 for the float16 load, 0.021 for bfloat16).
"""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SCALE = 300.0  # multiplies wi and wo of every encoder feed-forward block


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    config = transformers.T5Config(
        vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        decoder_start_token_id=0, pad_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for block in model.encoder.block:
            block.layer[1].DenseReluDense.wi.weight.mul_(SCALE)
            block.layer[1].DenseReluDense.wo.weight.mul_(SCALE)
    path = tmp_path_factory.mktemp("tiny-t5")
    model.save_pretrained(path)
    return model, str(path)


def _run(model):
    """(feed-forward outputs of the encoder blocks, encoder output) for a fixed input."""
    torch.manual_seed(1)
    ids = torch.randint(1, 100, (1, 12))
    outputs = []
    hooks = [
        block.layer[1].DenseReluDense.register_forward_hook(lambda mod, inp, out: outputs.append(out))
        for block in model.encoder.block
    ]
    try:
        with torch.no_grad():
            out = model(input_ids=ids, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long))
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, out.encoder_last_hidden_state.float()


def test_float16_range():
    assert torch.isfinite(torch.tensor(65504.0).half())
    assert torch.isinf(torch.tensor(66246.0).half())  # the T5DenseReluDense overflow value quoted in the reports
    assert torch.isfinite(torch.tensor(66246.0).bfloat16())


def test_half_makes_wo_float16_but_an_fp16_load_keeps_it_float32(saved):
    _, path = saved
    assert transformers.T5ForConditionalGeneration._keep_in_fp32_modules == ["wo"]
    halved = transformers.T5ForConditionalGeneration.from_pretrained(path).half()
    loaded = transformers.T5ForConditionalGeneration.from_pretrained(path, dtype=torch.float16)
    ff_halved = halved.encoder.block[0].layer[1].DenseReluDense
    ff_loaded = loaded.encoder.block[0].layer[1].DenseReluDense
    assert ff_halved.wo.weight.dtype == torch.float16
    assert ff_loaded.wo.weight.dtype == torch.float32
    assert ff_loaded.wi.weight.dtype == torch.float16  # the rest is float16


def test_feed_forward_overflows_after_half_only(saved):
    reference, path = saved
    ff32, out32 = _run(reference)
    assert max(o.abs().max().item() for o in ff32) > 65504  # activations beyond the float16 range
    assert all(torch.isfinite(o).all() for o in ff32)

    halved = transformers.T5ForConditionalGeneration.from_pretrained(path).half().eval()
    ff_half, out_half = _run(halved)
    assert any(torch.isinf(o).any() for o in ff_half)

    loaded = transformers.T5ForConditionalGeneration.from_pretrained(path, dtype=torch.float16).eval()
    ff_load, out_load = _run(loaded)
    assert all(torch.isfinite(o).all() for o in ff_load)

    bf16 = transformers.T5ForConditionalGeneration.from_pretrained(path).to(torch.bfloat16).eval()
    ff_bf16, out_bf16 = _run(bf16)
    assert all(torch.isfinite(o).all() for o in ff_bf16)

    err_half = (out_half - out32).abs().max().item()
    err_load = (out_load - out32).abs().max().item()
    err_bf16 = (out_bf16 - out32).abs().max().item()
    assert err_half > 0.5
    assert err_load < 0.05 and err_bf16 < 0.2
    assert err_half > 10 * err_bf16
