"""DL112: clipping gradients that GradScaler still scales clips by the wrong amount.

scaler.scale(loss).backward() leaves every gradient multiplied by the loss scale (65536 at
the start); clip_grad_norm_(params, 1.0) then compares the scaled norm with 1.0, and the
update scaler.step() makes after unscaling is about 65536 times too small.  With
scaler.unscale_(optimizer) first, the clip sees the true gradients.
"""

import pytest

torch = pytest.importorskip("torch")


def _step(unscale_first, clip):
    w = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.SGD([w], lr=1.0)
    scaler = torch.amp.GradScaler("cpu")
    loss = (3.0 * w).sum()  # gradient 3 per element, norm 6
    scaler.scale(loss).backward()
    if unscale_first:
        scaler.unscale_(optimizer)
    result = clip([w])
    scaler.step(optimizer)
    scaler.update()
    return (1.0 - w.detach()), result  # the update each element received


def test_clip_grad_norm_on_scaled_gradients_clips_the_wrong_amount():
    clip = lambda params: torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    update_bad, norm_bad = _step(False, clip)
    update_good, norm_good = _step(True, clip)
    # fixed: the true norm (6) is clipped to 1: each of the 4 elements moves by 0.5
    assert torch.allclose(norm_good, torch.tensor(6.0))
    assert torch.allclose(update_good, torch.full((4,), 0.5))
    # bad: the clip saw the scaled norm 6 * 65536 and the step moved 65536 times too little
    assert torch.allclose(norm_bad, torch.tensor(6.0 * 65536))
    assert torch.allclose(update_bad, torch.full((4,), 0.5 / 65536))
    assert (update_good / update_bad).min() > 60000


def test_clip_grad_value_on_scaled_gradients_clips_the_wrong_amount():
    clip = lambda params: torch.nn.utils.clip_grad_value_(params, clip_value=1.0)
    update_bad, _ = _step(False, clip)
    update_good, _ = _step(True, clip)
    assert torch.allclose(update_good, torch.ones(4))  # 3 clipped to 1
    assert torch.allclose(update_bad, torch.full((4,), 1.0 / 65536))  # 3 * 65536 clipped to 1, then unscaled
