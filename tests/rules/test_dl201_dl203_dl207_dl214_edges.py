"""Edge cases of the quantisation life-cycle and deprecation rules beyond their examples:
DL201 (ptq-prepare-or-fuse-not-in-eval), DL202 (fuse-modules-variant-mismatch), DL203
(ptq-missing-calibration), DL207 (quant-engine-qconfig-mismatch), DL214
(deprecated-torch-ao-quantization) and DL215 (deprecated-quantized-tensor-creation)."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes, versions
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


@pytest.fixture(autouse=True)
def _fresh_version_cache():
    versions._cache.clear()
    yield
    versions._cache.clear()


def _lint(code: str, rule: str, target=None):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "<string>", RULESET, enabled={rule}, target_versions=target)
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _lines(code: str, rule: str, target=None):
    return [f.line for f in _lint(code, rule, target)[2]]


def _fixed(code: str, rule: str, unsafe: bool = False) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, unsafe)).code


# ---------------------------------------------------------------------- DL201


@pytest.mark.parametrize(
    "setup",
    [
        "model = Net()",
        "model = Net(num_classes=10).to(device)",
        "model = Net(args.num_classes)",
        "model = torchvision.models.resnet18(weights=None)",
        "model = torchvision.models.quantization.resnet18(quantize=False)",
        "model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))",
        "model = Net().eval()\nmodel.train()",
        "model = Net()\nmodel.eval()\nmodel.train(True)",
        "base = Net()\nmodel = copy.deepcopy(base)",
        "model = Net()\nmodel.load_state_dict(state)\nprint(model)",
        "model = Net().eval()\nmodel.to(device).train()",
    ],
)
def test_dl201_train_mode_sources(setup):
    code = f"""
        import copy
        import torch
        import torchvision
        from torch import nn

        class Net(nn.Module):
            pass

        def main(args, device, state):
            {textwrap.indent(setup, ' ' * 12).strip()}
            torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
        """
    assert len(_lint(code, "DL201")[2]) == 1


@pytest.mark.parametrize(
    "setup",
    [
        "model = load_model(path)",
        "model = torch.load(path)",
        "model = torchvision.models.quantization.resnet18(quantize=True)",
        "model = Net()\nmodel.train(False)",
        "model = Net()\nif eval_mode:\n    model.eval()",
        "model = Net().eval()\nif finetune:\n    model.train()",
        "model = Net().eval()\nfor _ in range(3):\n    model.train()",
        "model = Net()\ntrain(model)",
        "model = Net()\nmodel.apply(set_bn_eval)",
        "model = Net()\nmodel.train(mode)",
        "model = Wrapper(backbone)",
        "model = Net(backbone)",
        "base = Net()\nbase.eval()\nmodel = copy.deepcopy(base)",
        "model = Net()\nmodel.to(device).eval()",
        "model = Net()\nmodel.cpu().float().train(False)",
    ],
)
def test_dl201_unknown_or_eval_stays_silent(setup):
    code = f"""
        import copy
        import torch
        import torchvision
        from torch import nn

        class Net(nn.Module):
            pass

        def main(path, backbone, eval_mode, finetune, mode, device):
            {textwrap.indent(setup, ' ' * 12).strip()}
            torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
        """
    assert _lines(code, "DL201") == []


def test_dl201_parent_module_mode_covers_submodules():
    base = """
        import torch
        class Net(torch.nn.Module):
            pass
        model = Net()
        {mode}
        torch.quantization.fuse_modules(model.features, [["0", "1", "2"]], inplace=True)
        """
    assert _lines(base.format(mode=""), "DL201") == [6]
    assert _lines(base.format(mode="model.eval()"), "DL201") == []


def test_dl201_one_finding_per_object_and_qat_functions_left_to_dl202():
    code = """
        import torch
        class Net(torch.nn.Module):
            pass
        model = Net()
        torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
        prepared = torch.ao.quantization.prepare(model)
        converted = torch.ao.quantization.convert(prepared)
        """
    assert _lines(code, "DL201") == [5]
    qat = code.replace("prepared = torch.ao.quantization.prepare(model)", "torch.ao.quantization.prepare_qat(model)")
    assert _lines(qat, "DL201") == []


def test_dl201_prepare_then_eval_before_calibration_is_fine_but_not_after():
    code = """
        import torch
        class Net(torch.nn.Module):
            pass
        model = Net()
        prepared = torch.ao.quantization.prepare(model)
        {first}
        {second}
        """
    assert _lines(code.format(first="prepared.eval()", second="prepared(x)"), "DL201") == []
    assert _lines(code.format(first="prepared(x)", second="prepared.eval()"), "DL201") == [5]


def test_dl201_fix_inserts_eval_in_a_nested_block_and_keeps_comments():
    code = """
        import torch
        class Net(torch.nn.Module):
            pass
        def run(flag):
            model = Net()
            if flag:
                # fuse first
                torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
        """
    fixed = _fixed(code, "DL201")
    assert "    if flag:\n        # fuse first\n        model.eval()\n        torch.ao.quantization.fuse_modules(" in fixed


def test_dl201_no_fix_inside_a_lambda_or_one_line_suite():
    code = """
        import torch
        class Net(torch.nn.Module):
            pass
        model = Net()
        if True: torch.ao.quantization.fuse_modules(model, [["conv", "bn"]], inplace=True)
        """
    found = _lint(code, "DL201")[2]
    assert len(found) == 1 and found[0].fix is None


def test_dl201_pt2e_capture_through_names_and_move_to_eval():
    code = """
        import torch
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
        class Net(torch.nn.Module):
            pass
        model = Net()
        program = torch.export.export_for_training(model, (x,))
        captured = program.module()
        {repair}
        prepared = prepare_pt2e(captured, quantizer)
        """
    assert _lines(code.format(repair=""), "DL201") == [6]
    repaired = code.format(repair="torchao.quantization.pt2e.move_exported_model_to_eval(captured)")
    assert _lines("import torchao\n" + textwrap.dedent(repaired), "DL201") == []


def test_dl201_prepare_qat_after_eval_in_function_scope_only():
    code = """
        import torch
        def qat(model):
            model.eval()
            torch.ao.quantization.prepare_qat(model, inplace=True)
        def qat_ok(model):
            torch.ao.quantization.prepare_qat(model, inplace=True)
        """
    assert _lines(code, "DL201") == [4]
    assert "model.train()" in _fixed(code, "DL201", unsafe=True)
    assert "model.train()" not in _fixed(code, "DL201", unsafe=False)


# ---------------------------------------------------------------------- DL202


def test_dl202_legacy_spelling_with_only_a_from_import_gets_no_fix_but_is_reported():
    code = """
        from torch.quantization import fuse_modules, prepare_qat
        fuse_modules(model, [["conv", "bn"]], inplace=True)
        prepare_qat(model, inplace=True)
        """
    found = _lint(code, "DL202")[2]
    assert [f.line for f in found] == [2] and found[0].fix is None


def test_dl202_alias_of_ao_package_is_renamed_in_place():
    code = """
        import torch.ao.quantization as tq
        tq.fuse_modules(model, [["conv", "bn"]], inplace=True)
        tq.prepare_qat(model, inplace=True)
        """
    assert "tq.fuse_modules_qat(model" in _fixed(code, "DL202")


def test_dl202_other_objects_and_prepare_before_fuse_are_ignored():
    code = """
        import torch
        torch.ao.quantization.fuse_modules(a, [["conv", "bn"]], inplace=True)
        torch.ao.quantization.prepare_qat(b, inplace=True)
        """
    assert _lines(code, "DL202") == []


# ---------------------------------------------------------------------- DL203


@pytest.mark.parametrize(
    "between",
    [
        "for x in loader:\n    prepared(x)",
        "with torch.no_grad():\n    prepared(x)",
        "run_calibration(prepared, loader)",
        "evaluate(model=prepared, loader=loader)",
        "trainer.model = prepared\ntrainer.calibrate()",
        "prepared.forward(x)",
        "for x in loader:\n    helper(x)",
        "apply = lambda: prepared(x)\napply()",
        "prepared.load_state_dict(observer_state)",
    ],
)
def test_dl203_anything_that_may_calibrate_silences(between):
    code = "import torch\nmodel.qconfig = torch.ao.quantization.get_default_qconfig(\"x86\")\nprepared = torch.ao.quantization.prepare(model)\n" + between + "\nq = torch.ao.quantization.convert(prepared)\n"
    assert _lines(code, "DL203") == []


@pytest.mark.parametrize(
    "between",
    ["", "prepared.eval()", "print(prepared)", "prepared.to('cpu')", "x = 1"],
)
def test_dl203_inert_steps_between_still_report(between):
    code = "import torch\nmodel.qconfig = torch.ao.quantization.get_default_qconfig(\"x86\")\nprepared = torch.ao.quantization.prepare(model)\n" + between + "\nq = torch.ao.quantization.convert(prepared)\n"
    assert len(_lines(code, "DL203")) == 1


def test_dl203_prepare_and_convert_inside_the_same_loop():
    code = """
        import torch
        for cfg in configs:
            model.qconfig = cfg
            prepared = torch.ao.quantization.prepare(model)
            q = torch.ao.quantization.convert(prepared)
        """
    assert _lines(code, "DL203") == [5]


def test_dl203_prepare_without_inplace_or_assignment_is_not_followed():
    code = """
        import torch
        torch.ao.quantization.prepare(model)
        q = torch.ao.quantization.convert(model)
        """
    assert _lines(code, "DL203") == []


def test_dl203_rebinding_between_is_not_followed_and_qat_is_exempt():
    code = """
        import torch
        prepared = torch.ao.quantization.prepare(model)
        prepared = load_calibrated()
        q = torch.ao.quantization.convert(prepared)
        qat = torch.ao.quantization.prepare_qat(model2)
        q2 = torch.ao.quantization.convert(qat)
        """
    assert _lines(code, "DL203") == []


def test_dl203_weight_only_and_dynamic_flows_are_exempt():
    for qconfig in ("torch.ao.quantization.float_qparams_weight_only_qconfig",
                    "torch.ao.quantization.float16_dynamic_qconfig"):
        code = f"""
            import torch
            model.qconfig = {qconfig}
            torch.ao.quantization.prepare(model, inplace=True)
            torch.ao.quantization.convert(model, inplace=True)
            """
        assert _lines(code, "DL203") == []


def test_dl203_positional_inplace_and_fx_mapping_names():
    code = """
        import torch
        from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
        torch.quantization.prepare(model, True)
        torch.quantization.convert(model, True)
        mapping = torch.ao.quantization.QConfigMapping().set_global(torch.ao.quantization.default_dynamic_qconfig)
        p = prepare_fx(net, mapping, example)
        q = convert_fx(p)
        """
    assert _lines(code, "DL203") == [4]


# ---------------------------------------------------------------------- DL207


@pytest.mark.parametrize(
    "qconfig, engine, flagged",
    [
        ('"qnnpack"', '"x86"', True),
        ('"onednn"', '"fbgemm"', True),
        ('"fbgemm"', '"qnnpack"', True),
        ('"x86"', '"fbgemm"', False),
        ('"qnnpack"', '"onednn"', False),
        ('"QNNPACK"', '"qnnpack"', False),
        ("backend", '"qnnpack"', False),
        ('"qnnpack"', "engine", False),
    ],
)
def test_dl207_families(qconfig, engine, flagged):
    code = f"""
        import torch
        def f(model, backend, engine):
            model.qconfig = torch.ao.quantization.get_default_qconfig({qconfig})
            torch.backends.quantized.engine = {engine}
        """
    assert bool(_lines(code, "DL207")) is flagged


def test_dl207_name_bound_once_and_message_names_both():
    code = """
        import torch
        BACKEND = "qnnpack"
        torch.backends.quantized.engine = "x86"
        q = torch.quantization.get_default_qat_qconfig_mapping(BACKEND)
        """
    found = _lint(code, "DL207")[2]
    assert len(found) == 1
    assert "(qnnpack)" in found[0].message and "engine (x86)" in found[0].message
    assert found[0].fix is None  # the string is not written in the call


def test_dl207_nested_function_scopes_are_separate():
    code = """
        import torch
        def outer(model):
            torch.backends.quantized.engine = "qnnpack"
            def inner(m):
                m.qconfig = torch.ao.quantization.get_default_qconfig("x86")
            model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
        """
    assert _lines(code, "DL207") == [6]


# ---------------------------------------------------------------------- DL214 / DL215 versions


@pytest.mark.parametrize(
    "target, expected",
    [(None, 1), ({"torch": "2.7"}, 0), ({"torch": "2.7.1"}, 0), ({"torch": "2.8"}, 1), ({"torch": "2.13"}, 1)],
)
def test_dl214_deprecation_gate(target, expected):
    code = "import torch\nq = torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear})\n"
    assert len(_lines(code, "DL214", target)) == expected


@pytest.mark.parametrize(
    "target, expected",
    [(None, 1), ({"torch": "2.10"}, 0), ({"torch": "2.11"}, 1)],
)
def test_dl214_removed_import_gate(target, expected):
    code = "from torch.ao.quantization.quantizer.xnnpack_quantizer import XNNPACKQuantizer\n"
    assert len(_lines(code, "DL214", target)) == expected


def test_dl214_messages_name_spelling_flow_and_release():
    code = """
        import torch.quantization as tq
        from torch.quantization import quantize_fx
        tq.prepare(m)
        quantize_fx.convert_fx(m)
        """
    messages = [f.message for f in _lint(code, "DL214")[2]]
    assert messages[0].startswith("torch.quantization.prepare is deprecated (since torch 2.8")
    assert "eager: quantize_" in messages[0]
    assert messages[1].startswith("torch.quantization.quantize_fx.convert_fx is deprecated")
    assert "FX: prepare_pt2e/convert_pt2e" in messages[1]


def test_dl214_mixed_import_is_reported_without_a_fix():
    code = "from torch.ao.quantization import quantize_pt2e, get_default_qconfig\n"
    found = _lint(code, "DL214")[2]
    assert len(found) == 1 and found[0].fix is None


@pytest.mark.parametrize("target, expected", [(None, 1), ({"torch": "2.12"}, 0), ({"torch": "2.13"}, 1)])
def test_dl215_gate(target, expected):
    code = "import torch\nq = torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)\n"
    assert len(_lines(code, "DL215", target)) == expected
