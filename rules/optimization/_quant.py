"""Name tables shared by the quantisation (DL2xx) rules.

PyTorch names are given in their ``torch.ao.quantization`` spelling plus the legacy
``torch.quantization`` aliases, which are the same objects (checked in torch 2.13:
``torch.quantization.quantize_dynamic is torch.ao.quantization.quantize_dynamic``).
"""

from __future__ import annotations

from typing import Dict, FrozenSet


def _spellings(*names: str) -> FrozenSet[str]:
    """Every public spelling of functions defined in ``torch.ao.quantization.quantize``."""
    out = set()
    for name in names:
        for package in ("torch.ao.quantization", "torch.quantization"):
            out.add(f"{package}.{name}")
            out.add(f"{package}.quantize.{name}")
    return frozenset(out)


#: ``quantize_dynamic(model, qconfig_spec=None, dtype=torch.qint8, mapping=None, inplace=False)``
QUANTIZE_DYNAMIC = _spellings("quantize_dynamic")


def _torch_nn(*classes: str, module: str) -> Dict[str, str]:
    out = {}
    for cls in classes:
        out[f"torch.nn.{cls}"] = cls
        out[f"torch.nn.modules.{cls}"] = cls
        out[f"torch.nn.modules.{module}.{cls}"] = cls
    return out


#: Module classes that ``quantize_dynamic`` leaves in float whatever the qconfig says: the default
#: dynamic mapping of torch 2.13 holds only Linear (and LinearReLU), the RNN family (LSTM, GRU,
#: RNNCell, LSTMCell, GRUCell) and Embedding / EmbeddingBag; dynamic convolutions were taken out
#: of it (pytorch/pytorch PR #71110).  Qualified name -> the name a message shows.
DYNAMIC_UNSUPPORTED: Dict[str, str] = {
    **_torch_nn("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", module="conv"),
    **_torch_nn("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", module="batchnorm"),
    # GPT-2's projection layer (a Linear with transposed weights), not an nn.Linear subclass
    "transformers.pytorch_utils.Conv1D": "transformers Conv1D",
    "transformers.Conv1D": "transformers Conv1D",
    "transformers.modeling_utils.Conv1D": "transformers Conv1D",  # its place before transformers 4.20
}
