from __future__ import annotations

from typing import Any, List, Set

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import (
    GPT2,
    checkpoint_of,
    family_of_class,
    pretrained_class,
    strip_self_returning,
)
from dllint.rules.optimization._quant import DYNAMIC_UNSUPPORTED as _CATALOGUE_TABLE
from dllint.rules.optimization._quant import QUANTIZE_DYNAMIC, _torch_nn

#: Module classes quantize_dynamic leaves float whatever the spec says, checked against the default
#: dynamic mapping of torch 2.13 (torch/ao/quantization/quantization_mappings.py,
#: DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS: Linear, NonDynamicallyQuantizableLinear, the dynamic QAT
#: Linear, LinearReLU, LSTM, GRU, LSTMCell, RNNCell, GRUCell, Embedding, EmbeddingBag; the dynamic
#: Conv / ConvTranspose entries are commented out there).  Leaf modules only: a container such as
#: nn.MultiheadAttention or nn.TransformerEncoderLayer has Linear children that the spec's qconfig
#: reaches, so it is partly quantised and not listed.  Qualified name -> the name a message shows.
DYNAMIC_UNSUPPORTED = {
    **_CATALOGUE_TABLE,
    **_torch_nn("LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
                "LazyConvTranspose3d", module="conv"),
    **_torch_nn("LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "SyncBatchNorm", module="batchnorm"),
    **_torch_nn("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", module="instancenorm"),
    **_torch_nn("LayerNorm", "GroupNorm", module="normalization"),
    **_torch_nn("RNN", module="rnn"),
    **_torch_nn("Bilinear", module="linear"),
}

#: Hub ids of the GPT-2 checkpoints (every one is a GPT2LMHeadModel built from Conv1D layers).
GPT2_CHECKPOINTS = frozenset(
    prefix + name
    for prefix in ("", "openai-community/")
    for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
) | {"distilgpt2", "distilbert/distilgpt2"}

#: Uses of a GPT-2 model name before quantize_dynamic that cannot have swapped its Conv1D layers.
HARMLESS_METHODS = frozenset({"eval", "train", "to", "cpu", "cuda", "float", "generate", "forward", "save_pretrained"})

#: Builtins that turn an iterable into the collection passed as qconfig_spec.
COLLECTION_BUILTINS = frozenset({"set", "frozenset", "list", "tuple"})

CONV1D_DISPLAY = "transformers Conv1D"


class QuantizeDynamicUnsupportedModule(Rule):
    """quantize_dynamic asked to quantise Conv, ConvTranspose, BatchNorm, other float-only or GPT-2 Conv1D modules.

    Finds `torch.ao.quantization.quantize_dynamic(model, qconfig_spec, ...)` (also the legacy
    `torch.quantization.quantize_dynamic`, under any import or alias) whose `qconfig_spec`, a
    set, list, tuple or dict literal given directly or through a name assigned once, names
    `nn.Conv1d/2d/3d`, `nn.ConvTranspose1d/2d/3d`, `nn.BatchNorm1d/2d/3d` (any spelling:
    `torch.nn.Conv2d`, `torch.nn.modules.conv.Conv2d`, `from torch import nn`,
    `from torch.nn import Conv2d`), their `Lazy*` forms, `nn.SyncBatchNorm`, `nn.InstanceNorm1d/2d/3d`,
    `nn.LayerNorm`, `nn.GroupNorm`, `nn.RNN` (only LSTM, GRU and the three cells are in the
    mapping), `nn.Bilinear` or transformers' `Conv1D`: every leaf module class of `torch.nn` with
    weights that the default dynamic mapping of torch 2.13 lacks. Containers such as
    `nn.MultiheadAttention` are not reported: the spec's qconfig reaches their Linear children. One finding per such element, at the element. Also finds `quantize_dynamic` applied
    to a model loaded from a GPT-2 checkpoint (`GPT2LMHeadModel.from_pretrained(...)`, or an
    `AutoModel*` class with the `"gpt2"`, `"gpt2-medium"`... or `"distilgpt2"` hub id), at the
    model argument, whatever the spec: GPT-2 builds its attention and MLP projections from
    `Conv1D`, which no qconfig makes dynamic.

    Why it is a bug: dynamic quantisation only swaps the module types of its mapping
    (`DEFAULT_DYNAMIC_QUANT_MODULE_MAPPINGS`): Linear (and LinearReLU), LSTM, GRU, LSTMCell,
    RNNCell, GRUCell, Embedding and EmbeddingBag. Every other module named in the spec is skipped without a word, so
    the returned model still runs those layers in float32 while the user believes it is quantised
    (no size or speed gain, and accuracy measurements of "the int8 model" are of a float one).
    Measured with torch 2.13 (CPU wheel): `quantize_dynamic(m, {nn.Conv2d, nn.Linear,
    nn.BatchNorm2d, nn.ConvTranspose2d, nn.Conv1d}, dtype=torch.qint8)` returns a model whose
    Conv2d, BatchNorm2d, ConvTranspose2d and Conv1d are the original float32 modules and whose
    Linear is `torch.ao.nn.quantized.dynamic.Linear`; on a GPT-2 built with transformers 5.23
    the four `Conv1D` of each block stay `transformers.pytorch_utils.Conv1D` with the default spec
    and with `{nn.Linear}`, and only `lm_head` is quantised. Each of nn.RNN, nn.LayerNorm,
    nn.GroupNorm, nn.InstanceNorm1d, nn.SyncBatchNorm, nn.LazyConv2d and nn.Bilinear, named alone
    in the spec, also stays float, while nn.MultiheadAttention's `out_proj` is quantised. torch
    2.13 prints deprecation warnings only (a DeprecationWarning "torch.ao.quantization is
    deprecated and will be removed in 2.10" that points to torchao's `quantize_`, and a
    UserWarning that the quantized tensor creation functions are deprecated), nothing about the
    skipped modules.

    How to fix: keep only supported types in the spec (`{nn.Linear}`) and quantise convolutions
    and batch norms with static post-training quantisation or QAT (after fusing Conv+BN), or with
    torchao. For GPT-2, replace each `Conv1D` by an `nn.Linear` holding its transposed weight
    before `quantize_dynamic`, or use a quantiser that knows `Conv1D`.

    Stays silent when a custom `mapping=` is passed (it may map the type to a dynamic module),
    when the call passes `*args` / `**kwargs`, for spec entries given as module-name strings, for
    specs built by code, and for a GPT-2 model name that was used, before the call, in any way
    that could have replaced its layers (passed to a function, its attributes read or assigned),
    or that has more than one assignment.
    """

    code = "DL206"
    name = "quantize-dynamic-unsupported-module"
    family = "optimization"
    message = (
        "quantize_dynamic does not quantise Conv/BatchNorm modules; they stay float (silent). "
        "Use static quantisation for them"
    )
    evidence = Evidence(
        study="(a) Guan et al., real-world bugs in ML model optimisation (MOBs)",
        category="quantisation API misuse: quantize_dynamic asked to quantise unsupported modules (silent no-op)",
        links=(
            "https://github.com/IntelLabs/distiller/issues/462",
            "https://github.com/pytorch/tutorials/issues/899",
            "https://github.com/pytorch/tutorials/issues/1401",
            "https://github.com/pytorch/pytorch/issues/33433",
            "https://github.com/pytorch/pytorch/pull/71110",
            "https://github.com/pytorch/pytorch/pull/63270",
        ),
    )
    triggers = ("quantize_dynamic",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import torch
            import torch.nn as nn
            qm = torch.ao.quantization.quantize_dynamic(cnn, {nn.Linear}, dtype=torch.qint8)
            """), "only Linear"),
        Valid(dedent("""
            import torch
            from torch import nn
            qm = torch.quantization.quantize_dynamic(rnn, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
            """), "RNN family and Linear are supported"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            from torch.ao.nn.quantized.dynamic import Conv2d as DynamicConv2d
            qm = torch.ao.quantization.quantize_dynamic(
                cnn, {nn.Conv2d}, mapping={nn.Conv2d: DynamicConv2d}
            )
            """), "a custom mapping supplies the dynamic module"),
        Valid(dedent("""
            import torch
            from torch.ao.quantization import quantize_dynamic, default_dynamic_qconfig
            qm = quantize_dynamic(net, {"features.0": default_dynamic_qconfig, "classifier": default_dynamic_qconfig})
            """), "module names, types unknown"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            qm = torch.ao.quantization.quantize_dynamic(net, **settings)
            """), "the spec comes from **kwargs"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            spec = {nn.Linear}
            if use_conv:
                spec = {nn.Linear, nn.Conv2d}
            qm = torch.ao.quantization.quantize_dynamic(net, spec)
            """), "spec name assigned twice: not followed"),
        Valid(dedent("""
            import torch
            from transformers import BertForSequenceClassification
            model = BertForSequenceClassification.from_pretrained("bert-base-uncased")
            qm = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            """), "BERT is built from nn.Linear"),
        Valid(dedent("""
            import torch
            from transformers import GPT2LMHeadModel
            model = GPT2LMHeadModel.from_pretrained("gpt2")
            replace_conv1d_with_linear(model)
            qm = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            """), "the model went through a helper that may have swapped Conv1D for Linear"),
        Valid(dedent("""
            import torch
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained("./gpt2-finetuned")
            qm = torch.ao.quantization.quantize_dynamic(model)
            """), "a local checkpoint: the architecture is not known"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            qm = torch.ao.quantization.quantize_dynamic(model, {nn.MultiheadAttention, nn.LSTM}, dtype=torch.qint8)
            """), "MultiheadAttention's out_proj is quantised through the spec"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                qm = torch.ao.quantization.quantize_dynamic(
                    model, {nn.RNN, nn.LayerNorm, torch.nn.modules.conv.ConvTranspose2d, nn.Linear}
                )
                """),
            count=3,
            note="plain RNN, LayerNorm and a ConvTranspose in its module spelling",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                net_int8 = torch.quantization.quantize_dynamic(
                    net, {nn.Linear, nn.Conv2d}, dtype=torch.qint8
                )
                """),
            note="legacy torch.quantization spelling",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                from torch.ao.quantization import quantize_dynamic as qd
                layers = [nn.Conv1d, nn.BatchNorm1d, nn.Linear, nn.ConvTranspose1d]
                qm = qd(model, qconfig_spec=layers, dtype=torch.qint8)
                """),
            count=3,
            note="through an alias and a name; one finding per unsupported element",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.ao.quantization as tq
                from torch.nn import Conv3d, Linear
                qconfig = tq.default_dynamic_qconfig
                qm = tq.quantize_dynamic(model, {Conv3d: qconfig, Linear: qconfig})
                """),
            note="dict spec, class imported from torch.nn",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers.pytorch_utils import Conv1D
                qm = torch.ao.quantization.quantize_dynamic(gpt, {torch.nn.Linear, Conv1D}, dtype=torch.qint8)
                """),
            note="transformers Conv1D in the spec",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import AutoModelForCausalLM
                model = AutoModelForCausalLM.from_pretrained("distilgpt2").eval()
                model.eval()
                quantized = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
                """),
            note="a GPT-2 checkpoint: its Conv1D layers stay float",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import GPT2LMHeadModel
                qm = torch.ao.quantization.quantize_dynamic(GPT2LMHeadModel.from_pretrained(path))
                """),
            note="GPT-2 by its class, default spec",
        ),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        self._reported: Set[int] = set()
        #: Names assigned from a GPT-2 load, and the loads whose name escaped before quantize_dynamic.
        self._gpt2_names: Set[str] = set()
        self._escaped: Set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if ctx.call_name(node) not in QUANTIZE_DYNAMIC or ctx.has_star_args(node):
            return
        mapping = ctx.argument(node, 3, "mapping")
        if mapping is not None and not (isinstance(mapping, cst.Name) and mapping.value == "None"):
            return
        conv1d_reported = False
        for element in self._spec_elements(ctx.argument(node, 1, "qconfig_spec")):
            display = DYNAMIC_UNSUPPORTED.get(ctx.qualname(element) or "")
            if display is None:
                continue
            if display == CONV1D_DISPLAY:
                conv1d_reported = True
            if id(element) in self._reported:
                continue
            self._reported.add(id(element))
            self.report(element, _element_message(display))
        model = ctx.argument(node, 0, "model")
        if not conv1d_reported and model is not None and self._is_gpt2(model):
            self.report(
                model,
                "quantize_dynamic leaves GPT-2's transformers Conv1D layers (attention and MLP projections) "
                "float; only nn.Linear modules such as lm_head are quantised (silent). Swap Conv1D for "
                "nn.Linear first or use another quantisation flow",
            )

    def _spec_elements(self, spec: Any) -> List[Any]:
        """The module-type entries of a literal qconfig_spec (set/list/tuple elements, dict keys)."""
        ctx = self.ctx
        if isinstance(spec, cst.Name):
            spec = ctx.assigned_value(spec)
        if (
            isinstance(spec, cst.Call)
            and isinstance(spec.func, cst.Name)
            and spec.func.value in COLLECTION_BUILTINS
            and ctx.lookup(spec.func.value) is None
            and len(spec.args) == 1
            and not spec.args[0].star
        ):
            spec = spec.args[0].value
        if isinstance(spec, (cst.Set, cst.List, cst.Tuple)):
            return [e.value for e in spec.elements if isinstance(e, cst.Element)]
        if isinstance(spec, cst.Dict):
            return [e.key for e in spec.elements if isinstance(e, cst.DictElement)]
        return []

    # ------------------------------------------------------------------ GPT-2 models

    def _gpt2_load(self, value: Any) -> bool:
        """Whether ``value`` loads a PyTorch GPT-2 model (``.eval()`` / ``.to()`` allowed after it)."""
        ctx = self.ctx
        load = strip_self_returning(value)
        cls = pretrained_class(ctx, load)
        if cls is None or cls.startswith(("TF", "Flax")):
            return False
        if family_of_class(cls) is GPT2:
            return "Tokenizer" not in cls and "Config" not in cls
        if cls.startswith("AutoModel"):
            return checkpoint_of(ctx, load) in GPT2_CHECKPOINTS
        return False

    def _is_gpt2(self, model: Any) -> bool:
        if isinstance(model, cst.Name):
            value = self.ctx.assigned_value(model)
            return value is not None and id(value) not in self._escaped and self._gpt2_load(value)
        return self._gpt2_load(model)

    def leave_Assign(self, node: cst.Assign) -> None:
        # runs before the Context records the assignment; only the names are noted here
        if self._gpt2_load(node.value):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    self._gpt2_names.add(target.target.value)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value not in self._gpt2_names:
            return
        parent = self.ctx.parent()
        grandparent = self.ctx.parent(2)
        if isinstance(parent, cst.Attribute) and parent.attr is node:
            return  # ``x.model``: an attribute name, not this variable
        if isinstance(parent, cst.AssignTarget):
            return  # a rebinding: the name then has two assignments and is not followed
        value = self.ctx.assigned_value(node)
        if value is None:
            return
        if isinstance(parent, cst.Call) and parent.func is node:
            return  # model(...): a forward pass
        if (
            isinstance(parent, cst.Attribute)
            and parent.attr.value in HARMLESS_METHODS
            and isinstance(grandparent, cst.Call)
            and grandparent.func is parent
        ):
            return  # model.eval(), model.to(device)...
        if isinstance(parent, cst.Arg) and isinstance(grandparent, cst.Call):
            callee = self.ctx.call_name(grandparent)
            if callee in QUANTIZE_DYNAMIC or (
                isinstance(grandparent.func, cst.Name)
                and grandparent.func.value == "print"
                and self.ctx.lookup("print") is None
            ):
                return
        self._escaped.add(id(value))


def _element_message(display: str) -> str:
    if display == CONV1D_DISPLAY:
        return (
            "quantize_dynamic does not quantise transformers Conv1D modules (GPT-2's projections); they stay "
            "float (silent). Swap them for nn.Linear first or use another quantisation flow"
        )
    if display == "RNN":
        return (
            "quantize_dynamic does not quantise nn.RNN modules (its mapping holds LSTM, GRU and the "
            "RNNCell / LSTMCell / GRUCell cells only); they stay float (silent). Use nn.LSTM or nn.GRU, "
            "or leave the RNN float knowingly"
        )
    if display == "Bilinear":
        return (
            "quantize_dynamic does not quantise nn.Bilinear modules (there is no quantised Bilinear); they "
            "stay float (silent)"
        )
    return (
        f"quantize_dynamic does not quantise {display} modules; they stay float (silent). "
        "Use static quantisation for them"
    )
