"""Edge cases of DL501 (tokenizer-model-checkpoint-mismatch), DL509 (trust-remote-code-unpinned)
and DL510 (transformers-v4-api-removed-in-v5) beyond the examples the rules carry: spellings,
flows, fix layouts, and the target-version gate through the command line."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes, versions
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


@pytest.fixture(autouse=True)
def fresh_pins():
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


def _fixed(code: str, rule: str, unsafe: bool = True) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, unsafe)).code


# ---------------------------------------------------------------------- DL501


@pytest.mark.parametrize(
    "code",
    [
        # pipeline with two hub ids of different vocabularies
        """
        from transformers import pipeline
        clf = pipeline("text-classification", model="roberta-base", tokenizer="bert-base-uncased")
        """,
        # trl trainer whose model is a hub id
        """
        from transformers import AutoTokenizer
        from trl import SFTTrainer
        tok = AutoTokenizer.from_pretrained("gpt2")
        trainer = SFTTrainer(model="FacebookAI/roberta-base", processing_class=tok)
        """,
        # Trainer with the transformers 4 keyword
        """
        from transformers import AutoTokenizer, AutoModelForSequenceClassification, Trainer
        tok = AutoTokenizer.from_pretrained("bert-base-cased")
        model = AutoModelForSequenceClassification.from_pretrained("distilbert-base-uncased")
        trainer = Trainer(model=model, tokenizer=tok)
        """,
        # forward through .to(device) and a dict comprehension
        """
        from transformers import AutoTokenizer, AutoModel
        tok = AutoTokenizer.from_pretrained("xlm-roberta-base")
        model = AutoModel.from_pretrained("bert-base-multilingual-cased").to("cuda")
        enc = tok(texts, truncation=True, return_tensors="pt")
        batch = {k: v.to("cuda") for k, v in enc.items()}
        out = model(**batch)
        """,
        # community ids compared by case only
        """
        from transformers import AutoTokenizer, AutoModel
        tok = AutoTokenizer.from_pretrained("dbmdz/bert-base-german-cased")
        model = AutoModel.from_pretrained("bert-base-uncased")
        out = model(input_ids=tok(text, truncation=True, return_tensors="pt").input_ids)
        """,
        # module constants
        """
        from transformers import AutoTokenizer, AutoModelForCausalLM
        TOKENIZER = "gpt2"
        MODEL = "EleutherAI/pythia-160m"
        tok = AutoTokenizer.from_pretrained(TOKENIZER)
        model = AutoModelForCausalLM.from_pretrained(MODEL)
        out = model.generate(**tok(prompt, return_tensors="pt"))
        """,
    ],
)
def test_dl501_flags(code):
    assert len(_lines(code, "DL501")) == 1


@pytest.mark.parametrize(
    "code",
    [
        # community ids with family words but other vocabularies
        """
        from transformers import AutoTokenizer, AutoModel
        tok = AutoTokenizer.from_pretrained("hfl/chinese-roberta-wwm-ext")
        model = AutoModel.from_pretrained("bert-base-chinese")
        out = model(**tok(text, truncation=True, return_tensors="pt"))
        """,
        """
        from transformers import BertTokenizer
        tok = BertTokenizer.from_pretrained("hfl/chinese-roberta-wwm-ext")
        """,
        # a local folder named after a family (no organisation, underscores)
        """
        from transformers import BertTokenizer
        tok = BertTokenizer.from_pretrained("roberta_wwm")
        """,
        # a community id with a family word and no casing word
        """
        from transformers import RobertaTokenizer
        tok = RobertaTokenizer.from_pretrained("bertin-project/bertin-roberta-base-spanish")
        """,
        # same vocabulary families
        """
        from transformers import RobertaTokenizer, BartForConditionalGeneration
        tok = RobertaTokenizer.from_pretrained("facebook/bart-large")
        model = BartForConditionalGeneration.from_pretrained("facebook/bart-large")
        out = model.generate(**tok(text, truncation=True, return_tensors="pt"))
        """,
        """
        from transformers import GPT2TokenizerFast
        tok = GPT2TokenizerFast.from_pretrained("EleutherAI/gpt-j-6b")
        """,
        # an f-string checkpoint is not exact
        """
        from transformers import AutoTokenizer, AutoModel
        tok = AutoTokenizer.from_pretrained(f"bert-base-{variant}")
        model = AutoModel.from_pretrained("roberta-base")
        out = model(**tok(text, truncation=True, return_tensors="pt"))
        """,
        # the same id spelled with a trailing slash
        """
        from transformers import pipeline
        clf = pipeline("fill-mask", model="bert-base-uncased/", tokenizer="bert-base-uncased")
        """,
        # the model is a parameter
        """
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained("bert-base-uncased")
        def run(model, text):
            return model(**tok(text, return_tensors="pt"))
        """,
        # a name assigned twice
        """
        from transformers import AutoTokenizer, AutoModel
        tok = AutoTokenizer.from_pretrained("bert-base-uncased")
        if use_roberta:
            tok = AutoTokenizer.from_pretrained("roberta-base")
        model = AutoModel.from_pretrained("roberta-base")
        out = model(**tok(text, return_tensors="pt"))
        """,
    ],
)
def test_dl501_silent(code):
    assert _lines(code, "DL501") == []


@pytest.mark.parametrize(
    "cls, ckpt",
    [
        ("RobertaTokenizer", "bert-large-uncased-whole-word-masking-finetuned-squad"),
        ("RobertaTokenizer", "albert-base-v2"),
        ("GPT2Tokenizer", "FacebookAI/xlm-roberta-base"),
        ("XLNetTokenizer", "t5-small"),
        ("BertTokenizerFast", "distilroberta-base"),
    ],
)
def test_dl501_class_on_reference_checkpoint_of_another_vocabulary(cls, ckpt):
    code = f"from transformers import {cls}\ntok = {cls}.from_pretrained({ckpt!r})\n"
    assert _lines(code, "DL501") == [2]


def test_dl501_reports_each_pair_once():
    code = """
    from transformers import AutoTokenizer, AutoModel
    tok = AutoTokenizer.from_pretrained("bert-base-uncased")
    model = AutoModel.from_pretrained("roberta-base")
    a = model(**tok(x, return_tensors="pt"))
    b = model(**tok(y, return_tensors="pt"))
    """
    _, _, found = _lint(code, "DL501")
    assert len(found) == 1
    assert "bert-base-uncased" in found[0].message and "roberta-base" in found[0].message


def test_dl501_class_message_names_both_families():
    _, _, found = _lint(
        """
        from transformers import RobertaTokenizerFast
        tok = RobertaTokenizerFast.from_pretrained("google-bert/bert-base-cased")
        """,
        "DL501",
    )
    assert len(found) == 1
    assert "RobertaTokenizerFast (RoBERTa)" in found[0].message and "(BERT)" in found[0].message


# ---------------------------------------------------------------------- DL509


@pytest.mark.parametrize(
    "code",
    [
        'from transformers import AutoProcessor\np = AutoProcessor.from_pretrained("org/m", trust_remote_code=True)\n',
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/m", trust_remote_code=True, revision=None)\n',
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/m", trust_remote_code=True, revision="a1b2c3d")\n',
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/m", trust_remote_code=True, revision="v1.0")\n',
        'from transformers import pipeline\np = pipeline("text-generation", "org/m", trust_remote_code=True)\n',
        'import transformers\nREMOTE = True\nm = transformers.AutoModel.from_pretrained("org/m", trust_remote_code=REMOTE)\n',
        'from transformers import AutoModel\ndef load(name="org/m", revision="main"):\n'
        '    return AutoModel.from_pretrained(name, trust_remote_code=True, revision=revision)\n',
        'import os\nfrom transformers import AutoModel\nm = AutoModel.from_pretrained(os.environ["MODEL"], trust_remote_code=True)\n',
    ],
)
def test_dl509_flags(code):
    assert len(_lines(code, "DL509")) == 1


@pytest.mark.parametrize(
    "code",
    [
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("/models/m", trust_remote_code=True)\n',
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("~/models/m", trust_remote_code=True)\n',
        'from pathlib import Path\nfrom transformers import AutoModel\n'
        'm = AutoModel.from_pretrained(Path(root) / "m", trust_remote_code=True)\n',
        'import os\nfrom transformers import AutoModel\nd = os.path.join(root, "m")\n'
        'm = AutoModel.from_pretrained(d, trust_remote_code=True)\n',
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/m", trust_remote_code=True, '
        'revision="0123456789ABCDEF0123456789abcdef01234567")\n',
        'import argparse\nfrom transformers import AutoModel\np = argparse.ArgumentParser()\n'
        'p.add_argument("--revision", default=None)\nargs = p.parse_args()\n'
        'm = AutoModel.from_pretrained("org/m", trust_remote_code=True, revision=args.revision)\n',
        'from transformers import AutoModel\nm = AutoModel.from_pretrained("org/m", trust_remote_code=args.trust_remote_code)\n',
        'from modelscope import AutoModel\nm = AutoModel.from_pretrained("org/m", trust_remote_code=True)\n',
    ],
)
def test_dl509_silent(code):
    assert _lines(code, "DL509") == []


# ---------------------------------------------------------------------- DL510


def test_dl510_pad_to_max_length_fix_keeps_transformers_4_meaning():
    code = """
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained("bert-base-uncased")
    a = tok(texts, pad_to_max_length=True, max_length=64, truncation=False)
    b = tok.encode(text,
                   pad_to_max_length=True,
                   max_length=64)
    c = tok(texts, pad_to_max_length=flag, max_length=64, truncation=True)
    """
    fixed = _fixed(code, "DL510")
    assert 'a = tok(texts, padding="max_length", max_length=64, truncation=False)' in fixed
    assert 'padding="max_length",\n               truncation=True,\n               max_length=64)' in fixed
    assert 'c = tok(texts, padding=("max_length" if flag else False), max_length=64, truncation=True)' in fixed


def test_dl510_batch_text_keyword_becomes_text():
    code = """
    from transformers import BertTokenizerFast
    tok = BertTokenizerFast.from_pretrained("bert-base-uncased")
    enc = tok.batch_encode_plus(batch_text_or_text_pairs=pairs, truncation=True)
    """
    assert "enc = tok(text=pairs, truncation=True)" in _fixed(code, "DL510")


def test_dl510_safe_fixes_only_without_unsafe():
    code = """
    import torch
    from transformers import AutoModel, AutoTokenizer, Trainer
    model = AutoModel.from_pretrained("bert-base-uncased", torch_dtype=torch.float16)
    tok = AutoTokenizer.from_pretrained("bert-base-uncased")
    enc = tok.encode_plus(text)
    trainer = Trainer(model=model, tokenizer=tok)
    """
    fixed = _fixed(code, "DL510", unsafe=False)
    assert "dtype=torch.float16" in fixed and "torch_dtype" not in fixed
    assert "processing_class=tok" in fixed
    assert "tok.encode_plus(text)" in fixed


@pytest.mark.parametrize(
    "code",
    [
        # self attribute assigned once
        """
        from transformers import AutoTokenizer
        class Enc:
            def __init__(self):
                self.tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
            def __call__(self, text):
                return self.tokenizer.encode_plus(text)
        """,
        # a receiver spelled like a tokenizer
        """
        import transformers
        def encode(self, text):
            return self.bert_tokenizer.batch_encode_plus([text])
        """,
        # pipeline(torch_dtype=)
        """
        import torch
        from transformers import pipeline
        pipe = pipeline("text-generation", model="gpt2", torch_dtype=torch.float16)
        """,
        # from_config(torch_dtype=)
        """
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained("gpt2"), torch_dtype=torch.float16)
        """,
        # a subclass through another subclass and a mixin
        """
        from transformers import Trainer
        class LossMixin:
            def compute_loss(self, model, inputs, **kwargs):
                return model(**inputs).loss
        class Base(LossMixin, Trainer):
            pass
        class Mine(Base):
            pass
        trainer = Mine(model=model, tokenizer=tok)
        """,
        # a subclass whose __init__ forwards **kwargs
        """
        from transformers import Seq2SeqTrainer
        class Mine(Seq2SeqTrainer):
            def __init__(self, *args, alpha=1.0, **kwargs):
                super().__init__(*args, **kwargs)
                self.alpha = alpha
        trainer = Mine(model=model, tokenizer=tok, alpha=0.5)
        """,
        # a module-qualified Trainer
        """
        import transformers
        trainer = transformers.Trainer(model=model, args=args, tokenizer=tokenizer)
        """,
    ],
)
def test_dl510_flags(code):
    assert len(_lines(code, "DL510")) == 1


@pytest.mark.parametrize(
    "code",
    [
        # no transformers import: the name alone is not enough
        """
        def encode(tokenizer, text):
            return tokenizer.encode_plus(text)
        """,
        # a receiver not spelled like a tokenizer
        """
        import transformers
        def encode(codec, text):
            return codec.encode_plus(text)
        """,
        # known to be something else
        """
        from transformers import AutoModel
        model = AutoModel.from_pretrained("bert-base-uncased")
        out = model.encode_plus(text)
        """,
        # TAPAS keeps encode_plus
        """
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained("google/tapas-base")
        enc = tok.encode_plus(table=table, query=query)
        """,
        # an unknown base before Trainer may define __init__
        """
        from transformers import Trainer
        from mylib import Custom
        class Mine(Custom, Trainer):
            pass
        trainer = Mine(model=model, tokenizer=tok)
        """,
        # a subclass whose parent takes tokenizer itself: super().__init__(tokenizer=) is fine
        """
        from transformers import Trainer
        class Base(Trainer):
            def __init__(self, model, tokenizer=None, **kwargs):
                super().__init__(model=model, processing_class=tokenizer, **kwargs)
        class Mine(Base):
            def __init__(self, model, tokenizer=None, **kwargs):
                super().__init__(model, tokenizer=tokenizer, **kwargs)
        """,
        # torch_dtype on a tokenizer or config is not a model load
        """
        import torch
        from transformers import AutoConfig
        config = AutoConfig.from_pretrained("gpt2", torch_dtype=torch.float16)
        """,
        # padding given with **kwargs: may carry padding=
        """
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained("bert-base-uncased")
        enc = tok(texts, pad_to_max_length=True, **kwargs)
        """,
    ],
)
def test_dl510_silent(code):
    assert _lines(code, "DL510") == []


BAD_V4 = """\
from transformers import AutoTokenizer, Trainer
tok = AutoTokenizer.from_pretrained("bert-base-uncased")
enc = tok.batch_encode_plus(texts, pad_to_max_length=True, max_length=128)
trainer = Trainer(model=model, args=args, tokenizer=tok)
"""


@pytest.mark.parametrize(
    "target, expected",
    [({"transformers": "4.40"}, 0), ({"transformers": "4.99.9"}, 0), ({"transformers": "5.0"}, 2), ({}, 2)],
)
def test_dl510_target_versions_gate(target, expected):
    assert len(_lines(BAD_V4, "DL510", target)) == expected


def _project(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / ".git").mkdir()
    source = tmp_path / "pkg" / "train.py"
    source.parent.mkdir()
    source.write_text(BAD_V4)
    return source


def _dl510_lines(run_dllint, tmp_path):
    code, out, err = run_dllint("--select", "DL510", "--no-cache", "--exit-zero", "pkg/train.py", cwd=tmp_path)
    assert code == 0, err
    return [line for line in out.splitlines() if " DL510 " in line]


def test_dl510_silent_in_a_project_pinned_to_transformers_4(tmp_path, run_dllint):
    _project(tmp_path, {"requirements.txt": "torch>=2.0\ntransformers==4.30.2\n"})
    assert _dl510_lines(run_dllint, tmp_path) == []


def test_dl510_silent_with_target_versions_in_pyproject(tmp_path, run_dllint):
    _project(tmp_path, {"pyproject.toml": '[tool.dllint]\ntarget-versions = { transformers = "4.40" }\n'})
    assert _dl510_lines(run_dllint, tmp_path) == []


def test_dl510_reported_in_a_project_on_transformers_5(tmp_path, run_dllint):
    _project(tmp_path, {"requirements.txt": "transformers>=5.0\n"})
    found = _dl510_lines(run_dllint, tmp_path)
    assert len(found) == 2
    assert any("transformers 5 removed (AttributeError)" in line and "ignores silently" in line for line in found)


def test_dl510_lint_text_reads_the_pins_of_the_file_path(tmp_path):
    source = _project(tmp_path, {"requirements.txt": "transformers<5\n"})
    assert versions.target_version("transformers", {}, str(source)) == (4, versions.INF)
    result = lint_text(BAD_V4, str(source), RULESET, enabled={"DL510"})
    assert [f for f in result.findings if f.code == "DL510"] == []



# --- second reading: folders the script writes itself --------------------------------------------


def test_dl509_folder_written_with_save_pretrained_is_local():
    code = """
from transformers import AutoModelForCausalLM
out_dir = f"{name}_small"
model = AutoModelForCausalLM.from_pretrained(out_dir, trust_remote_code=True)
model.save_pretrained(save_directory=out_dir)
"""
    assert _lines(code, "DL509") == []


def test_dl509_other_folder_saved_still_checked():
    code = """
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(model_name, trust_remote_code=True)
model.save_pretrained(out_dir)
"""
    assert _lines(code, "DL509") == [2]
