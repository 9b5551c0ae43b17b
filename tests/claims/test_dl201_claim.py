"""DL201: eager post-training fusion needs eval mode.

torch.ao.quantization.fuse_modules folds BatchNorm into the convolution with its running
statistics; on a model still in train mode (every freshly built nn.Module is) torch 2.13 raises
``AssertionError: Fusion only for eval!``.  After model.eval() the same call works and the fused
model matches the float one.  prepare_qat, the QAT entry point, wants the opposite mode.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class ConvBnReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def test_fuse_modules_in_train_mode_raises():
    model = ConvBnReLU()
    assert model.training  # a fresh module starts in train mode
    with pytest.raises(AssertionError, match="Fusion only for eval"):
        torch.ao.quantization.fuse_modules(model, [["conv", "bn", "relu"]])


def test_fuse_modules_after_eval_works_and_keeps_the_numbers():
    torch.manual_seed(0)
    model = ConvBnReLU()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model(torch.randn(16, 3, 10, 10))
    model.eval()
    fused = torch.ao.quantization.fuse_modules(model, [["conv", "bn", "relu"]])
    assert isinstance(fused.bn, nn.Identity)
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5)


def test_prepare_qat_on_eval_model_raises():
    model = ConvBnReLU().eval()
    model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AssertionError, match="prepare_qat only works on models in training mode"):
            torch.ao.quantization.prepare_qat(model)
        model.train()
        torch.ao.quantization.prepare_qat(model)  # fine in train mode
