"""DL310: TorchScript's entry points warn that they are deprecated.

Measured in torch 2.13 (Python < 3.14): torch.jit.trace, script, save and load each emit a
DeprecationWarning "`torch.jit.<api>` is deprecated. Please switch to `torch.compile` or
`torch.export`." (save / load: "Please switch to `torch.export`."); trace_module warns as
"`torch.jit.trace_method`".  Projects saw these warnings from torch 2.10.0 on.
"""

import io
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")


def _version():
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


pytestmark = pytest.mark.skipif(_version() < (2, 13), reason="measured on torch 2.13")


def _warned(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def _expected(api, replacement):
    if sys.version_info >= (3, 14):
        return f"`torch.jit.{api}` is not supported in Python 3.14+ and may break"
    return f"`torch.jit.{api}` is deprecated. Please switch to {replacement}"


def test_trace_script_save_load_warn():
    model = torch.nn.Linear(4, 2).eval()
    x = torch.randn(1, 4)
    traced, messages = _warned(lambda: torch.jit.trace(model, x))
    assert any(_expected("trace", "`torch.compile` or `torch.export`") in m for m in messages)
    _, messages = _warned(lambda: torch.jit.script(model))
    assert any(_expected("script", "`torch.compile` or `torch.export`") in m for m in messages)
    buffer = io.BytesIO()
    _, messages = _warned(lambda: torch.jit.save(traced, buffer))
    assert any(_expected("save", "`torch.export`") in m for m in messages)
    buffer.seek(0)
    loaded, messages = _warned(lambda: torch.jit.load(buffer))
    assert any(_expected("load", "`torch.export`") in m for m in messages)
    torch.testing.assert_close(loaded(x), model(x))  # still works: deprecated, not removed


def test_trace_module_warns_as_trace_method():
    model = torch.nn.Linear(4, 2).eval()
    _, messages = _warned(lambda: torch.jit.trace_module(model, {"forward": torch.randn(1, 4)}))
    assert any("`torch.jit.trace_method`" in m for m in messages)


def test_torch_export_does_not_warn():
    model = torch.nn.Linear(4, 2).eval()
    _, messages = _warned(lambda: torch.export.export(model, (torch.randn(1, 4),)))
    assert not any("torch.jit" in m for m in messages)
