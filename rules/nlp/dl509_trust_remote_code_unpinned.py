from __future__ import annotations

import re
from typing import Any

import libcst as cst

from dllint.context import dotted_name
from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._hf import PIPELINE_FUNCTIONS, UNKNOWN, argument_default, checkpoint, keyword_value, literal

#: A full git commit id: the only revision that cannot move.
COMMIT_SHA = re.compile(r"[0-9a-fA-F]{40}")

#: Calls whose result is a folder on this machine: a checkpoint made by them is a local path.
LOCAL_PATH_CALLS = ("os.path.", "pathlib.", "os.getcwd", "tempfile.")
LOCAL_PATH_FUNCTIONS = frozenset(
    {"huggingface_hub.snapshot_download", "huggingface_hub.hf_hub_download", "pathlib.Path", "os.fspath"}
)

#: Local path prefixes (no remote code is downloaded from them).
LOCAL_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")

#: ``<obj>.save_pretrained(<folder>)``: the folder (a name or attribute chain) the file writes.
_SAVE_PRETRAINED = re.compile(r"\.save_pretrained\(\s*(?:save_directory\s*=\s*)?([A-Za-z_][\w.]*)\s*[,)]")


def _saved_folders(ctx: Any) -> frozenset:
    """Spellings of the folders the file writes with ``save_pretrained``."""
    return frozenset(_SAVE_PRETRAINED.findall(ctx.source or ""))


class TrustRemoteCodeUnpinned(Rule):
    """`trust_remote_code=True` in a transformers load without `revision=` pinned to a commit.

    Finds `<transformers class>.from_pretrained(..., trust_remote_code=True)` for any class of
    transformers (`AutoModel*`, `AutoTokenizer`, `AutoConfig`, `AutoProcessor`, concrete classes)
    and `transformers.pipeline(..., trust_remote_code=True)` whose `revision=` is missing or is
    not a full 40-character commit id: a branch or tag name (`"main"`, `"v1.0"`), `None`, or a
    short id. `trust_remote_code` may be a literal, a name assigned once to True or a parameter
    whose default is True; `revision` a literal, a module constant, a parameter's default or an
    argparse / dataclass default read as `args.<name>`.

    Why it is a hazard: with `trust_remote_code=True` transformers downloads Python files from the
    model repository and runs them in the calling process. Without a pinned revision the code that
    runs is whatever the repository's branch holds on the day of the call: a later push (by the
    owner, or by anyone who took over the account) changes it silently. transformers itself warns:
    "Make sure to double-check they do not contain any added malicious code. To avoid downloading
    new versions of the code file, you can pin a revision."

    How to fix: review the repository's code at one commit and pass that commit:
    `AutoModel.from_pretrained("org/model", trust_remote_code=True, revision="<40-hex sha>")`. Or
    drop `trust_remote_code` when transformers supports the architecture natively.

    No automatic fix: which commit to trust is a review decision.

    Stays silent when `trust_remote_code` is absent, False or not known to be True (a parameter
    without a True default, `args.trust_remote_code` / a config field), when the
    revision is not known (a parameter without default: a caller may pass a commit), when the
    call passes `**kwargs` (which may carry a revision), and for local checkpoints: a path
    starting with `./`, `../`, `/` or `~`, or built with `os.path` / `pathlib` /
    `snapshot_download` (a folder already on disk runs the code it holds), and a name or
    attribute that the file also passes to `save_pretrained(...)` (a folder the script writes
    itself, read back later: `model.save_pretrained(path)` ... `from_pretrained(path, ...)`). `datasets.load_dataset`
    and other libraries' `trust_remote_code` are not transformers loads and are not checked.

    Limits: a checkpoint held in a variable of unknown value is assumed to be a hub id; a revision
    pinned by a wrapper function elsewhere is not seen.
    """

    code = "DL509"
    name = "trust-remote-code-unpinned"
    family = "nlp"
    message = "trust_remote_code=True executes repository code; pin revision= to a reviewed commit"
    evidence = Evidence(
        study="(e) Pan et al., bugs found while reusing pretrained NLP models",
        category="limited access to model internals: remote model code executed unreviewed (security)",
        links=(
            "https://huggingface.co/docs/transformers/main/en/models#custom-models",
            "https://github.com/huggingface/transformers/blob/main/src/transformers/dynamic_module_utils.py",
        ),
    )
    triggers = ("trust_remote_code",)
    frameworks = ("transformers",)

    VALID = (
        Valid(dedent("""
            from transformers import AutoModel
            model = AutoModel.from_pretrained(
                "org/model", trust_remote_code=True, revision="0123456789abcdef0123456789abcdef01234567"
            )
            """), "pinned to a full commit id"),
        Valid(dedent("""
            from transformers import AutoModelForCausalLM
            REVISION = "0123456789abcdef0123456789abcdef01234567"
            model = AutoModelForCausalLM.from_pretrained("org/model", trust_remote_code=True, revision=REVISION)
            """), "pinned through a module constant"),
        Valid(dedent("""
            from transformers import AutoModel
            model = AutoModel.from_pretrained("./checkpoints/final", trust_remote_code=True)
            """), "a local folder: its code is already on disk"),
        Valid(dedent("""
            import os
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(os.path.join(out_dir, "tok"), trust_remote_code=True)
            """), "a path built with os.path"),
        Valid(dedent("""
            from transformers import AutoModel
            model = AutoModel.from_pretrained("org/model", trust_remote_code=False)
            """), "remote code not trusted"),
        Valid(dedent("""
            from transformers import AutoModel
            def load(name, trust_remote_code=False):
                return AutoModel.from_pretrained(name, trust_remote_code=trust_remote_code)
            """), "off unless the caller opts in"),
        Valid(dedent("""
            from transformers import AutoModel
            def load(name, revision):
                return AutoModel.from_pretrained(name, trust_remote_code=True, revision=revision)
            """), "the caller chooses the revision (unknown: may be a commit)"),
        Valid(dedent("""
            from datasets import load_dataset
            data = load_dataset("org/data", trust_remote_code=True)
            """), "not a transformers load"),
        Valid(dedent("""
            from transformers import AutoModel
            def load(name, **kwargs):
                return AutoModel.from_pretrained(name, trust_remote_code=True, **kwargs)
            """), "**kwargs may carry the revision"),
        Valid(dedent("""
            from huggingface_hub import snapshot_download
            from transformers import AutoModel
            path = snapshot_download("org/model", revision="0123456789abcdef0123456789abcdef01234567")
            model = AutoModel.from_pretrained(path, trust_remote_code=True)
            """), "loaded from a snapshot folder downloaded at a pinned revision"),
        Valid(dedent("""
            from transformers import AutoModelForCausalLM
            REVISION = "0123456789abcdef0123456789abcdef01234567"
            def run(args):
                cache = f"{args.model.split('/')[1]}_layers{args.layers}"
                if args.load_weights:
                    model = AutoModelForCausalLM.from_pretrained(cache, trust_remote_code=True)
                else:
                    model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code=True, revision=REVISION)
                if args.save_weights:
                    model.save_pretrained(cache)
            """), "a folder the script writes with save_pretrained and reads back"),
    )
    INVALID = (
        Invalid(dedent("""
            from transformers import AutoModel
            model = AutoModel.from_pretrained("org/model", trust_remote_code=True)
            """), note="no revision"),
        Invalid(dedent("""
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained("org/model", trust_remote_code=True, revision="main")
            """), note="a branch moves"),
        Invalid(dedent("""
            import transformers
            pipe = transformers.pipeline("text-generation", model="org/model", trust_remote_code=True)
            """), note="pipeline"),
        Invalid(dedent("""
            from transformers import AutoConfig, AutoModelForCausalLM
            def load(model_name):
                config = AutoConfig.from_pretrained(model_name, trust_remote_code=True)
                return AutoModelForCausalLM.from_pretrained(model_name, config=config, trust_remote_code=True)
            """), count=2, note="config and model, checkpoint unknown (assumed a hub id)"),
        Invalid(dedent("""
            from transformers import AutoTokenizer
            def get_tokenizer(name, trust_remote_code=True):
                return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
            """), note="a parameter that defaults to True"),
        Invalid(dedent("""
            import argparse
            from transformers import AutoModel
            parser = argparse.ArgumentParser()
            parser.add_argument("--revision", default="main")
            args = parser.parse_args()
            model = AutoModel.from_pretrained("org/model", trust_remote_code=True, revision=args.revision)
            """), note="the revision defaults to a branch"),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
            owner = ctx.qualname(func.value)
            if owner is None or not owner.startswith("transformers."):
                return
            source = ctx.argument(node, 0, "pretrained_model_name_or_path")
        elif ctx.call_name(node) in PIPELINE_FUNCTIONS:
            source = ctx.argument(node, 1, "model")
        else:
            return
        if not self._trusts(node):
            return
        if ctx.has_star_args(node) or self._local(source):
            return
        revision = ctx.keyword(node, "revision")
        if revision is not None and not self._unpinned(revision.value):
            return
        self.report(node)

    # ------------------------------------------------------------------ helpers

    def _trusts(self, node: cst.Call) -> bool:
        """``trust_remote_code=True``: a literal, a name assigned once to True, or a parameter
        whose default is True (remote code runs unless the caller opts out)."""
        ctx = self.ctx
        if keyword_value(ctx, node, "trust_remote_code", False) is True:
            return True
        arg = ctx.keyword(node, "trust_remote_code")
        if arg is None or not isinstance(arg.value, cst.Name):
            return False
        bindings = ctx.lookup(arg.value.value)
        if not bindings or len(bindings) != 1 or bindings[0].kind != "param":
            return False
        default = bindings[0].value.default
        return default is not None and literal(default) is True

    def _unpinned(self, value: Any) -> bool:
        """Whether a revision value is known not to be a commit id (None, a branch, a tag)."""
        ctx = self.ctx
        found = literal(value)
        if found is UNKNOWN:
            if isinstance(value, cst.Attribute):
                default = argument_default(ctx, value.attr.value)
                if default is None:
                    return False  # args.revision defaults to None: a caller may pass a commit
                found = default
            else:
                held = checkpoint(ctx, value)
                if held is None or not held.exact:
                    return False
                found = held.text
        if found is None:
            return True
        return not (isinstance(found, str) and COMMIT_SHA.fullmatch(found.strip()))

    def _local(self, source: Any) -> bool:
        """Whether the checkpoint is a folder on disk."""
        if source is None:
            return False
        ctx = self.ctx
        spelled = dotted_name(source)
        if spelled is not None and spelled in ctx.memo("dl509.saved_folders", _saved_folders):
            return True  # the file writes that folder with save_pretrained: a local checkpoint
        held = checkpoint(ctx, source)
        if held is not None:
            return held.text.startswith(LOCAL_PREFIXES)
        value = ctx.resolve(source) if isinstance(source, (cst.Name, cst.Attribute)) else source
        return self._path_expression(value)

    def _path_expression(self, node: Any) -> bool:
        ctx = self.ctx
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
            return True  # pathlib: base / "model"
        if isinstance(node, cst.Call):
            name = ctx.call_name(node) or ""
            if name.startswith(LOCAL_PATH_CALLS) or name in LOCAL_PATH_FUNCTIONS:
                return True
            if name == "str" and node.args:
                return self._path_expression(ctx.resolve(node.args[0].value))
        return False

