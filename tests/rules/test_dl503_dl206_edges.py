"""Edge cases of DL503 (tokenization-without-truncation) and DL206 (quantize-dynamic-unsupported-module)
beyond the examples the rules carry: spellings, scopes, layouts of the fix, and near-misses."""

from __future__ import annotations

import textwrap

import pytest

from dllint import fixes
from dllint.engine import RuleSet, lint_text
from dllint.registry import all_rules

RULESET = RuleSet(all_rules())


def _lint(code: str, rule: str):
    code = textwrap.dedent(code).lstrip("\n")
    result = lint_text(code, "case.py", RULESET, enabled={rule})
    found = [f for f in result.findings if f.code == rule]
    assert not [f for f in found if f.message.startswith("internal error")], found
    return code, result, found


def _lines(code: str, rule: str):
    return [f.line for f in _lint(code, rule)[2]]


def _fixed(code: str, rule: str) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, True)).code


HEADER = """
import torch
from transformers import AutoTokenizer, AutoModel, AutoModelForSequenceClassification
tok = AutoTokenizer.from_pretrained("bert-base-uncased")
model = AutoModel.from_pretrained("bert-base-uncased")
"""


# ---------------------------------------------------------------------- DL503 flagged


@pytest.mark.parametrize(
    "use",
    [
        "enc = tok(doc, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, return_tensors='pt')\nout = model(enc['input_ids'])",
        "enc = tok(doc, return_tensors='pt')\nout = model(input_ids=enc.input_ids)",
        "enc = tok(doc, return_tensors='pt').to(device)\nout = model.generate(**enc)",
        "ids = tok.encode(doc, return_tensors='pt')\nout = model(ids.cuda())",
        "out = model.forward(**tok(doc, return_tensors='pt'))",
        "enc = tok.encode_plus(doc, add_special_tokens=True, return_tensors='pt')\nout = model(**enc)",
        "enc = tok.batch_encode_plus(docs, padding=True, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, padding=True, max_length=128, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, truncation=None, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, truncation='do_not_truncate', return_tensors='pt')\nout = model(**enc)",
        "enc = tok('Question?', context, return_tensors='pt')\nout = model(**enc)",
        "sentence = input('> ')\nenc = tok(sentence, return_tensors='pt')\nout = model(**enc)",
        "ids = tok.encode(doc)\nif len(ids) > 512: print('long')\nout = model(torch.tensor([ids]))",
    ],
)
def test_dl503_flags_every_spelling(use):
    assert len(_lines(HEADER + use + "\n", "DL503")) == 1


def test_dl503_through_import_alias_and_module_constant():
    code = """
    import transformers as hf
    CKPT = "google/electra-base-discriminator"
    tokenizer = hf.ElectraTokenizerFast.from_pretrained(CKPT)
    clf = hf.ElectraForSequenceClassification.from_pretrained(CKPT)
    def score(review):
        batch = tokenizer(review, return_tensors="pt")
        return clf(**batch).logits
    """
    _, _, found = _lint(code, "DL503")
    assert [f.line for f in found] == [6]
    assert "512 for ELECTRA" in found[0].message


def test_dl503_tf_model():
    code = """
    from transformers import AutoTokenizer, TFAutoModelForSequenceClassification
    tok = AutoTokenizer.from_pretrained("distilbert-base-uncased")
    model = TFAutoModelForSequenceClassification.from_pretrained("distilbert-base-uncased")
    enc = tok(texts, padding=True, return_tensors="tf")
    logits = model(enc).logits
    """
    assert _lines(code, "DL503") == [4]


def test_dl503_gpt2_max_length_over_limit():
    code = """
    from transformers import GPT2TokenizerFast, GPT2LMHeadModel
    tok = GPT2TokenizerFast.from_pretrained("gpt2")
    lm = GPT2LMHeadModel.from_pretrained("gpt2")
    ids = tok(doc, truncation=True, max_length=2048, return_tensors="pt").input_ids
    out = lm(ids, labels=ids)
    """
    _, _, found = _lint(code, "DL503")
    assert len(found) == 1 and "max_length=2048" in found[0].message and "1024" in found[0].message
    assert found[0].fix is None


def test_dl503_one_finding_per_tokenizer_call():
    code = HEADER + "enc = tok(doc, return_tensors='pt')\na = model(**enc)\nb = model(enc['input_ids'])\n"
    assert len(_lines(code, "DL503")) == 1


# ---------------------------------------------------------------------- DL503 silent


@pytest.mark.parametrize(
    "use",
    [
        "enc = tok(doc, truncation=True, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, truncation='longest_first', return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, truncation=flag, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, max_length=256, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, max_length=512, truncation=True, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, padding=pad, max_length=128, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, return_tensors='pt', **opts)\nout = model(**enc)",
        "enc = tok(doc, return_tensors='pt')\nprint(enc['input_ids'].shape)",
        "enc = tok(doc, return_tensors='pt')\nenc = shorten(enc)\nout = model(**enc)",
        "enc = tok(doc, return_tensors='pt')\nout = model(enc['input_ids'][:, :512])",
        "enc = tok(['a title', 'another title'], padding=True, return_tensors='pt')\nout = model(**enc)",
        "enc = tok('Question?', 'A short context.', return_tensors='pt')\nout = model(**enc)",
        "enc = other(doc, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, return_tensors='pt')\nout = other_model(**enc)",
        "ds = ds.map(lambda b: tok(b['text']), batched=True)",
        "enc = tok(doc[:2000], return_tensors='pt')\nout = model(**enc)",
        "enc = tok(doc, return_tensors='pt')\nassert enc['input_ids'].shape[1] <= 512\nout = model(**enc)",
        "ids = tok.encode(doc)\nif len(ids) > 512: raise ValueError('too long')\nout = model(torch.tensor([ids]))",
    ],
)
def test_dl503_silent(use):
    assert _lines(HEADER + use + "\n", "DL503") == []


def test_dl503_silent_on_exempt_families():
    for ckpt in ("t5-small", "google/flan-t5-base", "allenai/longformer-base-4096", "google/bigbird-roberta-base",
                 "microsoft/deberta-v3-base", "meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1"):
        code = f"""
        from transformers import AutoTokenizer, AutoModel
        tok = AutoTokenizer.from_pretrained("{ckpt}")
        model = AutoModel.from_pretrained("{ckpt}")
        out = model(**tok(doc, return_tensors="pt"))
        """
        assert _lines(code, "DL503") == [], ckpt


def test_dl503_silent_without_transformers_loads():
    code = """
    import torch
    from mylib import load_tokenizer, load_model
    tok = load_tokenizer("bert-base-uncased")
    model = load_model("bert-base-uncased")
    out = model(**tok(doc, return_tensors="pt"))
    """
    assert _lines(code, "DL503") == []


def test_dl503_silent_for_processor():
    code = """
    from transformers import AutoProcessor, AutoModel
    proc = AutoProcessor.from_pretrained("openai/clip-vit-base-patch32")
    model = AutoModel.from_pretrained("openai/clip-vit-base-patch32")
    out = model(**proc(text=caption, images=img, return_tensors="pt"))
    """
    assert _lines(code, "DL503") == []


# ---------------------------------------------------------------------- DL503 pipelines

PIPE_HEADER = """
from transformers import pipeline, AutoModelForSequenceClassification
"""


@pytest.mark.parametrize(
    "use",
    [
        "clf = pipeline('text-classification', model='bert-base-uncased')\nres = clf(doc)",
        "clf = pipeline(task='sentiment-analysis')\nres = clf(doc)",
        "res = pipeline('sentiment-analysis')(doc)",
        "clf = pipeline('sentiment-analysis', truncation=False)\nres = clf(doc)",
        "clf = pipeline('sentiment-analysis')\nres = clf(inputs=doc, top_k=None)",
        "clf = pipeline('feature-extraction', model='roberta-base', device=0)\nres = clf(docs)",
        "clf = pipeline('fill-mask', model='distilbert-base-uncased')\nres = clf(text)",
        "clf = pipeline('text-classification', model='nlptown/bert-base-multilingual-uncased-sentiment')\n"
        "for line in open(path):\n    print(clf(line))",
        "m = AutoModelForSequenceClassification.from_pretrained('roberta-base')\n"
        "clf = pipeline('text-classification', model=m, tokenizer=t)\nres = clf(doc)",
        "def make(name='distilbert-base-uncased-finetuned-sst-2-english'):\n"
        "    clf = pipeline('text-classification', model=name)\n    return clf(doc)",
        "clf = pipeline('sentiment-analysis')\nres = clf(' '.join(['word'] * 600))",
        "clf = pipeline('sentiment-analysis')\nres = clf('word ' * 600)",
    ],
)
def test_dl503_pipeline_flagged(use):
    assert len(_lines(PIPE_HEADER + use + "\n", "DL503")) == 1


@pytest.mark.parametrize(
    "use",
    [
        "clf = pipeline('sentiment-analysis', truncation=True)\nres = clf(doc)",
        "clf = pipeline('sentiment-analysis')\nres = clf(doc, truncation=True)",
        "clf = pipeline('sentiment-analysis')\nres = clf(doc, truncation=flag)",
        "clf = pipeline('sentiment-analysis', max_length=512)\nres = clf(doc)",
        "clf = pipeline('sentiment-analysis', **opts)\nres = clf(doc)",
        "clf = pipeline('sentiment-analysis')\nres = clf(doc, **opts)",
        "clf = pipeline('fill-mask')\nres = clf(text, tokenizer_kwargs={'truncation': True})",
        "clf = pipeline('sentiment-analysis')\nres = clf('short and sweet')",
        "clf = pipeline('sentiment-analysis')\nres = clf(['good', 'bad film'])",
        "clf = pipeline('sentiment-analysis')\nfor t in ['good', 'bad film']:\n    print(clf(t))",
        "clf = pipeline('sentiment-analysis')\nres = clf(doc[:1000])",
        "clf = pipeline('sentiment-analysis')\nfor doc in docs:\n    if len(doc) > 1000:\n        continue\n"
        "    print(clf(doc))",
        "clf = pipeline('ner')\nres = clf(doc)",
        "clf = pipeline('token-classification', model='dslim/bert-base-NER')\nres = clf(doc)",
        "clf = pipeline('zero-shot-classification')\nres = clf(doc, candidate_labels=['a', 'b'])",
        "clf = pipeline('question-answering')\nres = clf(question=q, context=doc)",
        "clf = pipeline('text-generation', model='gpt2')\nres = clf(prompt)",
        "clf = pipeline('summarization')\nres = clf(doc)",
        "clf = pipeline(task)\nres = clf(doc)",
        "clf = pipeline('text-classification', model=path)\nres = clf(doc)",
        "clf = pipeline('text-classification', model='microsoft/deberta-v3-base')\nres = clf(doc)",
        "clf = pipeline('text-classification', model='gpt2')\nres = clf(doc)",
        "clf = pipeline('sentiment-analysis')\nclf.model.eval()\ntok = clf.tokenizer",
        "clf = pipeline('sentiment-analysis')\nres = clf(row['headline'])",
        "clf = pipeline('sentiment-analysis')\nfor tweet in tweets:\n    print(clf(tweet.strip()))",
        "clf = pipeline('sentiment-analysis')\nres = clf(self.search_query)",
    ],
)
def test_dl503_pipeline_silent(use):
    assert _lines(PIPE_HEADER + use + "\n", "DL503") == []


def test_dl503_pipeline_held_by_the_instance():
    code = """
    from transformers import pipeline
    class Sentiment:
        def __init__(self):
            self.clf = pipeline("sentiment-analysis", model="distilbert-base-uncased-finetuned-sst-2-english")
        def __call__(self, text):
            return self.clf(text)[0]["label"]
    """
    _, _, found = _lint(code, "DL503")
    assert [f.line for f in found] == [6]
    assert "512 positions of the DistilBERT model" in found[0].message


def test_dl503_pipeline_fix_and_message():
    code = PIPE_HEADER + "clf = pipeline('fill-mask')\nres = clf(text)\nfe = pipeline('feature-extraction')\nv = fe(text)\n"
    _, _, found = _lint(code, "DL503")
    assert len(found) == 2
    fill, feat = found
    assert fill.fix is None and 'tokenizer_kwargs={"truncation": True}' in fill.message
    assert "RoBERTa" in fill.message and "DistilBERT" in feat.message
    assert _fixed(code, "DL503").endswith("v = fe(text, truncation=True)\n")


# ---------------------------------------------------------------------- DL503 checkpoint identity


def test_dl503_checkpoint_from_argparse_default_dataclass_and_fstring():
    argparse_code = """
    import argparse
    from transformers import AutoTokenizer, AutoModelForCausalLM
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="distilgpt2")
    args = parser.parse_args()
    tok = AutoTokenizer.from_pretrained(args.model)
    lm = AutoModelForCausalLM.from_pretrained(args.model)
    out = lm(**tok(prompt, return_tensors="pt"))
    """
    _, _, found = _lint(argparse_code, "DL503")
    assert [f.line for f in found] == [8] and "1024 for GPT-2" in found[0].message
    dataclass_template = """
    from dataclasses import dataclass, field
    from transformers import AutoTokenizer, AutoModelForCausalLM, AutoModelForSequenceClassification
    @dataclass
    class Args:
        model_name_or_path: str = field(default={default!r})
    args = Args()
    tok = AutoTokenizer.from_pretrained(args.model_name_or_path)
    lm = {cls}.from_pretrained(args.model_name_or_path)
    out = lm(**tok(prompt, return_tensors="pt"))
    """
    assert _lines(dataclass_template.format(default="gpt2", cls="AutoModelForCausalLM"), "DL503") == [9]
    # a rotary family by its default: exempt even behind an encoder-style Auto class
    llama = dataclass_template.format(default="meta-llama/Llama-2-7b-hf", cls="AutoModelForSequenceClassification")
    assert _lines(llama, "DL503") == []
    unknown = dataclass_template.format(default=None, cls="AutoModelForSequenceClassification")
    assert _lines(unknown, "DL503") == [9]  # unknown checkpoint, encoder Auto class
    fstring_code = """
    from transformers import AutoTokenizer, AutoModelForCausalLM
    def load(size):
        tok = AutoTokenizer.from_pretrained(f"gpt2-{size}")
        lm = AutoModelForCausalLM.from_pretrained(f"gpt2-{size}")
        return lm(**tok(prompt, return_tensors="pt"))
    """
    assert _lines(fstring_code, "DL503") == [5]


def test_dl503_short_by_name_only_when_every_part_is():
    assert _lines(HEADER + "enc = tok(titles, padding=True, return_tensors='pt')\nout = model(**enc)\n", "DL503") == []
    assert _lines(HEADER + "enc = tok(query, passage, return_tensors='pt')\nout = model(**enc)\n", "DL503") == [5]
    assert _lines(HEADER + "enc = tok(query, title, return_tensors='pt')\nout = model(**enc)\n", "DL503") == []
    # "text" and "sentence" say nothing about the length
    assert _lines(HEADER + "enc = tok(sentence, return_tensors='pt')\nout = model(**enc)\n", "DL503") == [5]


def test_dl503_literal_text_longer_than_the_limit():
    code = HEADER + "enc = tok('lorem ipsum ' * 300, return_tensors='pt')\nout = model(**enc)\n"
    _, _, found = _lint(code, "DL503")
    assert len(found) == 1
    short = HEADER + "enc = tok('lorem ipsum ' * 200, return_tensors='pt')\nout = model(**enc)\n"
    assert _lines(short, "DL503") == []


def test_dl503_silent_when_model_is_rebound_to_something_else():
    code = HEADER + "model = wrap(model)\nout = model(**tok(doc, return_tensors='pt'))\n"
    assert _lines(code, "DL503") == []


def test_dl503_unknown_decoder_checkpoint_is_silent_but_known_gpt2_is_not():
    template = """
    from transformers import AutoTokenizer, AutoModelForCausalLM
    tok = AutoTokenizer.from_pretrained({ckpt})
    lm = AutoModelForCausalLM.from_pretrained({ckpt})
    out = lm.generate(**tok(prompt, return_tensors="pt"))
    """
    assert _lines(template.format(ckpt="name"), "DL503") == []
    assert _lines(template.format(ckpt='"distilgpt2"'), "DL503") == [4]


# ---------------------------------------------------------------------- DL503 fix layouts


def test_dl503_fix_single_line():
    code = HEADER + "out = model(**tok(doc))\n"
    assert _fixed(code, "DL503").endswith("out = model(**tok(doc, truncation=True))\n")


def test_dl503_fix_multiline_without_trailing_comma():
    code = HEADER + "enc = tok(\n    doc,\n    return_tensors='pt'\n)\nout = model(**enc)\n"
    assert "enc = tok(\n    doc,\n    return_tensors='pt',\n    truncation=True\n)\n" in _fixed(code, "DL503")


def test_dl503_fix_multiline_single_argument_trailing_comma():
    code = HEADER + "enc = tok(\n    doc,\n)\nout = model(**enc)\n"
    assert "enc = tok(\n    doc,\n    truncation=True,\n)\n" in _fixed(code, "DL503")


def test_dl503_fix_switches_truncation_false_on():
    code = HEADER + "enc = tok(doc, truncation=False, padding=True)\nout = model(**enc)\n"
    assert "enc = tok(doc, truncation=True, padding=True)\n" in _fixed(code, "DL503")


# ---------------------------------------------------------------------- DL206

TORCH_NN = "import torch\nimport torch.nn as nn"


@pytest.mark.parametrize(
    "imports, call, count",
    [
        (TORCH_NN, "torch.ao.quantization.quantize_dynamic(m, {nn.Conv2d})", 1),
        ("import torch", "torch.quantization.quantize_dynamic(m, {torch.nn.BatchNorm2d, torch.nn.Linear})", 1),
        ("import torch\nfrom torch.nn import ConvTranspose2d as CT", "torch.ao.quantization.quantize_dynamic(m, (CT,))", 1),
        ("from torch.ao.quantization.quantize import quantize_dynamic\nimport torch.nn as nn",
         "quantize_dynamic(m, qconfig_spec=[nn.Conv3d, nn.BatchNorm3d])", 2),
        ("from torch import quantization\nfrom torch import nn", "quantization.quantize_dynamic(m, set([nn.Conv1d]))", 1),
        (TORCH_NN, "torch.ao.quantization.quantize_dynamic(m, {nn.Conv2d}, torch.qint8, None)", 1),
        ("import torch\nimport transformers", "torch.ao.quantization.quantize_dynamic(m, {transformers.Conv1D})", 1),
        (TORCH_NN, "torch.ao.quantization.quantize_dynamic(m, {nn.Linear, nn.LSTM})", 0),
        (TORCH_NN, "torch.ao.quantization.quantize_dynamic(m, {nn.Conv2d}, torch.qint8, my_map)", 0),
        (TORCH_NN, "torch.ao.quantization.quantize_dynamic(m, *extra)", 0),
        (TORCH_NN, "torch.ao.quantization.quantize(m, run_fn, [x])", 0),
        (TORCH_NN, "torchao.quantize_(m, {nn.Conv2d})", 0),
    ],
)
def test_dl206_spellings(imports, call, count):
    assert len(_lines(imports + "\nq = " + call + "\n", "DL206")) == count


def test_dl206_user_class_named_conv2d_is_not_torchs():
    code = """
    import torch
    class Conv2d(torch.nn.Module):
        pass
    q = torch.ao.quantization.quantize_dynamic(m, {Conv2d, torch.nn.Linear})
    """
    assert _lines(code, "DL206") == []


def test_dl206_shared_spec_reported_once():
    code = """
    import torch
    import torch.nn as nn
    SPEC = {nn.Linear, nn.Conv2d}
    a = torch.ao.quantization.quantize_dynamic(m1, SPEC)
    b = torch.ao.quantization.quantize_dynamic(m2, SPEC)
    """
    assert _lines(code, "DL206") == [3]


def test_dl206_gpt2_variants():
    template = (
        "import torch\n"
        "from transformers import {cls}\n"
        "model = {cls}.from_pretrained({ckpt}){chain}\n"
        "{between}\n"
        "q = torch.ao.quantization.quantize_dynamic(model, {{torch.nn.Linear}}, dtype=torch.qint8)\n"
    )

    def lines(cls="GPT2LMHeadModel", ckpt='"gpt2"', chain="", between=""):
        return _lines(template.format(cls=cls, ckpt=ckpt, chain=chain, between=between), "DL206")

    assert lines() == [5]
    assert lines(cls="GPT2Model", ckpt="path", chain=".eval().to('cpu')") == [5]
    assert lines(cls="AutoModelForCausalLM", ckpt='"openai-community/gpt2-medium"') == [5]
    assert lines(between="print(model)\nmodel.eval()") == [6]
    assert lines(cls="AutoModelForCausalLM", ckpt='"EleutherAI/gpt-neo-125m"') == []
    assert lines(cls="AutoModelForCausalLM", ckpt='"someone/gpt2-finetuned"') == []
    assert lines(cls="TFGPT2LMHeadModel") == []
    assert lines(between="model.transformer.h[0].attn.c_attn = swap(model.transformer.h[0].attn.c_attn)") == []
    assert lines(between="for name, mod in model.named_modules():\n    pass") == []
    assert lines(between="model = convert(model)") == []


# --- second reading: one text of a literal list, by index -------------------------------------


def test_dl503_indexed_literal_list_is_known():
    code = HEADER + """
sentences = ["a short sentence", "another one"]
enc = tok(sentences[0], return_tensors="pt")
out = model(**enc)
"""
    assert _lines(code, "DL503") == []


@pytest.mark.parametrize(
    "grow",
    ['sentences.append(document)', 'sentences[1] = document', 'sentences += [document]'],
)
def test_dl503_indexed_list_that_grows_is_checked(grow):
    code = HEADER + f"""
sentences = ["a short sentence", "another one"]
{grow}
enc = tok(sentences[1], return_tensors="pt")
out = model(**enc)
"""
    assert _lines(code, "DL503") == [8]


def test_dl503_indexed_unknown_list_is_checked():
    code = HEADER + """
def embed(sentences):
    enc = tok(sentences[0], return_tensors="pt")
    return model(**enc)
"""
    assert _lines(code, "DL503") == [7]
