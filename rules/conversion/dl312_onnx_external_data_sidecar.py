from __future__ import annotations

from typing import Any, List, Optional, Set

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import export_call
from dllint.rules.conversion.dl304_onnx_export_static_shapes import add_keyword

#: Calls that copy or move the file named by their first argument, alone.
COPY_CALLS = frozenset({
    "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.move", "os.rename", "os.replace",
})
#: Method / function names that upload or log one file (any receiver).
UPLOAD_NAMES = frozenset({"upload_file", "upload", "log_artifact", "add_file", "put_file"})
#: Calls that write an ONNX model file again (the weights go back inline below 2 GB).
RESAVE_CALLS = frozenset({"onnx.save", "onnx.save_model"})


class OnnxExternalDataSidecar(Rule):
    """ONNX file exported with the default external weights, then copied, moved or uploaded alone.

    Finds `torch.onnx.export(model, args, p, ...)` with the dynamo exporter (the default since
    torch 2.9) and no `external_data=False`, followed later in the same function (or script) by
    `shutil.copy/copy2/copyfile/move(p, ...)`, `os.rename/replace(p, ...)`, or an upload / artifact
    call that takes `p` (`s3.upload_file(p, ...)`, `mlflow.log_artifact(p)`,
    `artifact.add_file(p)`...), where `p` is the same name or the same string literal, and nothing
    in the function handles the weights file: no string containing `.data`, no `copytree`, no
    `onnx.save(...)` writing the model back to `p` after the export.

    Why it breaks at run time: `external_data=True` is the default of `torch.onnx.export`, and
    the dynamo exporter then saves every initializer larger than 256 bytes (the default threshold
    of `onnx_ir.save` used by torch 2.13) to `<p>.data` beside `<p>`: any real model.
    Measured (torch 2.13, onnxruntime 1.32): a Linear(16, 16) exported to `m.onnx` gives
    `m.onnx` plus a 1 KB `m.onnx.data` (a Linear(8, 8), whose 256-byte weight is not over the
    threshold, gives an empty `.data`); copying only `m.onnx` elsewhere makes
    `onnxruntime.InferenceSession` fail with "External data path validation failed for
    initializer: l.weight ... External data path does not exist". Nothing fails at the export
    site; the model breaks where it is deployed.

    How to fix: pass `external_data=False` for models under 2 GB (the suggested fix adds it; it
    must be reviewed because the model size is not known statically), or copy / upload
    `p + ".data"` along with `p` (or the whole directory).

    Limits: a path handed to a helper that copies it is not followed; the legacy exporter
    (`dynamo=False`) writes one file below 2 GB and is not reported.
    """

    code = "DL312"
    name = "onnx-external-data-sidecar"
    family = "conversion"
    message = (
        "torch.onnx.export writes the weights to <p>.data by default (external_data=True); copying only <p> gives "
        "a model onnxruntime cannot load. Pass external_data=False (models under 2 GB) or ship the .data file too"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="torch 2.13 / onnxruntime 1.32 behaviour (measured 2026-11-25)",
        category="deployment: external-data sidecar of the exported ONNX model left behind",
        links=(
            "https://docs.pytorch.org/docs/stable/onnx_export.html",
            "https://onnxruntime.ai/docs/tutorials/web/large-models.html",
        ),
    )
    triggers = ("onnx",)
    frameworks = ("torch",)

    VALID = (
        Valid(dedent("""
            import shutil
            import torch
            torch.onnx.export(model, (x,), "m.onnx", external_data=False)
            shutil.copy("m.onnx", deploy_dir)
            """), "weights inline"),
        Valid(dedent("""
            import shutil
            import torch
            torch.onnx.export(model, (x,), path)
            shutil.copy(path, deploy_dir)
            shutil.copy(path + ".data", deploy_dir)
            """), "the .data file is copied too"),
        Valid(dedent("""
            import shutil
            import torch
            torch.onnx.export(model, (x,), "out/m.onnx")
            shutil.copytree("out", deploy_dir)
            """), "the whole directory"),
        Valid(dedent("""
            import shutil
            import torch
            torch.onnx.export(model, (x,), path, dynamo=False)
            shutil.copy(path, deploy_dir)
            """), "legacy exporter: one file"),
        Valid(dedent("""
            import shutil
            import onnx
            import torch
            torch.onnx.export(model, (x,), f)
            model_onnx = onnx.load(f)
            onnx.save(model_onnx, f)
            shutil.copy(f, deploy_dir)
            """), "re-saved with onnx.save: weights inline again"),
        Valid(dedent("""
            import shutil
            import torch
            shutil.copy(path, backup)
            torch.onnx.export(model, (x,), path)
            """), "the copy happens before the export"),
        Valid(dedent("""
            import shutil
            import torch
            torch.onnx.export(model, (x,), path)
            shutil.copy(other_path, deploy_dir)
            """), "another file"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import shutil
                import torch
                torch.onnx.export(model, (x,), "m.onnx")
                shutil.copy("m.onnx", deploy_dir)
                """),
            fixed=dedent("""
                import shutil
                import torch
                torch.onnx.export(model, (x,), "m.onnx", external_data=False)
                shutil.copy("m.onnx", deploy_dir)
                """),
            unsafe=True,
            note="the catalogue's example",
        ),
        Invalid(
            dedent("""
                import shutil
                import torch
                def publish(model, x, path, dest):
                    torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18)
                    shutil.move(path, dest)
                """),
            fixed=dedent("""
                import shutil
                import torch
                def publish(model, x, path, dest):
                    torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18, external_data=False)
                    shutil.move(path, dest)
                """),
            unsafe=True,
            note="moved inside a function",
        ),
        Invalid(
            dedent("""
                import boto3
                import torch
                s3 = boto3.client("s3")
                onnx_path = "model.onnx"
                torch.onnx.export(model, dummy, onnx_path, input_names=["x"])
                s3.upload_file(onnx_path, bucket, "models/model.onnx")
                """),
            fixed=dedent("""
                import boto3
                import torch
                s3 = boto3.client("s3")
                onnx_path = "model.onnx"
                torch.onnx.export(model, dummy, onnx_path, input_names=["x"], external_data=False)
                s3.upload_file(onnx_path, bucket, "models/model.onnx")
                """),
            unsafe=True,
            note="uploaded alone",
        ),
        Invalid(
            dedent("""
                import mlflow
                import torch
                torch.onnx.export(model, (x,), f=args.out, external_data=True)
                mlflow.log_artifact(args.out)
                """),
            note="explicit external_data=True, logged as one artifact (no fix: the keyword is there)",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        export = export_call(ctx, node)
        if export is None or export.kind != "onnx" or export.exporter != "dynamo":
            return
        external = ctx.keyword(node, "external_data")
        if external is not None and not (isinstance(external.value, cst.Name) and external.value.value == "True"):
            return
        if any(a.star == "**" for a in node.args):
            return
        path = export.argument(ctx, "f")
        keys = self._keys(path)
        if not keys:
            return
        scope = ctx.function() or ctx.module
        calls = _calls_in(scope)
        try:
            start = next(i for i, call in enumerate(calls) if call is node)
        except StopIteration:
            return
        if _handles_sidecar(scope):
            return
        target = None
        for call in calls[start + 1:]:
            name = ctx.call_name(call) or ""
            if name in RESAVE_CALLS:
                saved = ctx.argument(call, 1, "f")
                if saved is not None and self._keys(saved) & keys:
                    return
                continue
            if name in COPY_CALLS:
                source = ctx.argument(call, 0, "src")
                if source is not None and self._keys(source) & keys:
                    target = call
                    break
                continue
            func = call.func
            last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
            if last in UPLOAD_NAMES and any(self._keys(a.value) & keys for a in call.args):
                target = call
                break
        if target is None:
            return
        fix = None
        if external is None:
            fix = Fix("Pass external_data=False (only for models under 2 GB)",
                      [(node, add_keyword(node, "external_data", cst.Name("False")))], FixKind.UNSAFE)
        self.report(node, fix=fix)

    def _keys(self, expr: Any) -> Set[str]:
        """What identifies a path expression: its dotted name and the string it holds."""
        out: Set[str] = set()
        if expr is None:
            return out
        name = dotted_name(expr)
        if name is not None:
            out.add("name:" + name)
            value = self.ctx.assigned_value(expr)
            if isinstance(value, cst.SimpleString):
                out.add("str:" + str(value.evaluated_value))
        elif isinstance(expr, cst.SimpleString):
            out.add("str:" + str(expr.evaluated_value))
        return out


def _calls_in(scope: Any) -> List[cst.Call]:
    """Calls of a function (or module) in source order, without nested functions and classes."""
    out: List[cst.Call] = []

    class Collect(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> Optional[bool]:
            return node is scope

        def visit_ClassDef(self, node: cst.ClassDef) -> Optional[bool]:
            return False

        def visit_Call(self, node: cst.Call) -> Optional[bool]:
            out.append(node)
            return None

    scope.visit(Collect())
    return out


def _handles_sidecar(scope: Any) -> bool:
    """A ``.data`` string, ``copytree`` or an ``external_data`` mention anywhere in the scope."""
    found = False

    class Look(cst.CSTVisitor):
        def visit_SimpleString(self, node: cst.SimpleString) -> None:
            nonlocal found
            if ".data" in node.value:
                found = True

        def visit_FormattedStringText(self, node: cst.FormattedStringText) -> None:
            nonlocal found
            if ".data" in node.value:
                found = True

        def visit_Name(self, node: cst.Name) -> None:
            nonlocal found
            if node.value in ("copytree", "save_model_with_external_data", "convert_model_from_external_data"):
                found = True

        def visit_Attribute(self, node: cst.Attribute) -> None:
            nonlocal found
            if node.attr.value in ("copytree", "convert_model_from_external_data", "load_external_data_for_model"):
                found = True

    scope.visit(Look())
    return found
