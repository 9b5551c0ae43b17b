"""Edge cases of DL502 (padded-input-without-attention-mask), DL505 (missing-pad-token-for-padding)
and DL506 (right-padding-for-batched-generation) beyond the examples the rules carry."""

from __future__ import annotations

import textwrap

import libcst as cst
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


def _fixed(code: str, rule: str, unsafe: bool = True) -> str:
    _, result, found = _lint(code, rule)
    text = fixes.apply(result.module, fixes.fixable(found, unsafe)).code
    cst.parse_module(text)
    return text


BERT = """
import torch
from transformers import AutoTokenizer, AutoModel
tok = AutoTokenizer.from_pretrained("bert-base-uncased")
model = AutoModel.from_pretrained("bert-base-uncased")
"""

GPT2 = """
import torch
from transformers import AutoTokenizer, AutoModelForCausalLM
tok = AutoTokenizer.from_pretrained("gpt2")
model = AutoModelForCausalLM.from_pretrained("gpt2")
"""


# ---------------------------------------------------------------------- DL502 flagged


@pytest.mark.parametrize(
    "use",
    [
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'])",
        "enc = tok(texts, padding='longest', return_tensors='pt')\nout = model(input_ids=enc.input_ids)",
        "enc = tok(text, padding='max_length', max_length=64, return_tensors='pt')\nout = model(enc.input_ids)",
        "enc = tok(texts, padding=True, return_tensors='pt').to(device)\nout = model.forward(enc['input_ids'])",
        "ids = tok(batch, padding=True, return_tensors='pt')['input_ids']\nout = model(ids.cuda())",
        "enc = tok.batch_encode_plus(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'])",
        "out = model(tok(['a b', 'c'], padding=True, return_tensors='pt').input_ids)",
        "ids = [x + [tok.pad_token_id] * (n - len(x)) for x in rows]\nout = model(torch.tensor(ids))",
        "pad = tok.pad_token_id\nout = model(torch.tensor([ids + [pad, pad]]))",
        "ids = torch.nn.functional.pad(t, (0, 5), value=tok.pad_token_id)\nout = model(ids)",
        "enc = tok(texts, padding=True, return_tensors='pt', return_attention_mask=False)\nout = model(enc['input_ids'])",
    ],
)
def test_dl502_flagged(use):
    assert len(_lines(BERT + use, "DL502")) == 1


@pytest.mark.parametrize(
    "use",
    [
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'], enc['attention_mask'])",
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'], attention_mask=None)",
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'], **extra)",
        "enc = tok(text, padding=True, return_tensors='pt')\nout = model(enc['input_ids'])",
        "enc = tok(texts, padding=flag, return_tensors='pt')\nout = model(enc['input_ids'])",
        "enc = tok(texts, return_tensors='pt')\nout = model(enc['input_ids'])",
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc)",
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'][:, :1])",
        "enc = tok(texts, padding=True, return_tensors='pt')\nout = other(enc['input_ids'])",
        "ids = torch.tensor([x + [5] for x in rows])\nout = model(ids)",
        "ids = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)\nmask = ids.ne(0)\nout = model(ids, attention_mask=mask)",
    ],
)
def test_dl502_silent(use):
    assert _lines(BERT + use, "DL502") == []


def test_dl502_reassigned_name_uses_its_last_value():
    code = BERT + "x = torch.tensor([ids + [0, 0]])\nx = torch.tensor([ids])\nout = model(x)\n"
    assert _lines(code, "DL502") == []
    code = BERT + "if cond:\n    x = torch.tensor([ids + [0, 0]])\nelse:\n    x = torch.tensor([ids])\nout = model(x)\n"
    assert _lines(code, "DL502") == []  # not straight-line: unknown
    code = BERT + "for ids in rows:\n    x = torch.tensor([ids])\n    out = model(x)\n    x = torch.tensor([ids + [0]])\n"
    assert _lines(code, "DL502") == []


def test_dl502_literal_pad_id_follows_the_vocabulary():
    code = "import torch\nfrom transformers import RobertaModel\nmodel = RobertaModel.from_pretrained('roberta-base')\n"
    assert _lines(code + "out = model(torch.tensor([ids + [1, 1]]))\n", "DL502") == [4]
    assert _lines(code + "out = model(torch.tensor([ids + [0, 0]]))\n", "DL502") == []


def test_dl502_generate_narrow():
    # GPT-2 without a distinct pad token: generate cannot infer the mask
    base = GPT2 + "tok.pad_token = tok.eos_token\nenc = tok(prompts, padding=True, return_tensors='pt')\n"
    assert len(_lines(base + "out = model.generate(enc['input_ids'])\n", "DL502")) == 1
    assert len(_lines(base + "out = model.generate(input_ids=enc.input_ids, pad_token_id=tok.eos_token_id)\n", "DL502")) == 1
    assert _lines(base + "out = model.generate(**enc)\n", "DL502") == []
    # a distinct pad token, told to generate: inferred
    distinct = GPT2 + "tok.add_special_tokens({'pad_token': '[PAD]'})\nenc = tok(prompts, padding=True, return_tensors='pt')\n"
    assert _lines(distinct + "out = model.generate(enc['input_ids'], pad_token_id=tok.pad_token_id)\n", "DL502") == []
    assert _lines(distinct + "model.config.pad_token_id = tok.pad_token_id\nout = model.generate(enc['input_ids'])\n", "DL502") == []
    # unknown family, no pad = eos in the file: silent
    unknown = GPT2.replace('"gpt2"', "path") + "enc = tok(prompts, padding=True, return_tensors='pt')\n"
    assert _lines(unknown + "out = model.generate(enc['input_ids'])\n", "DL502") == []


def test_dl502_fix_spellings():
    code = BERT + "def f(texts):\n    enc = tok(texts, padding=True, return_tensors='pt')\n    return model(input_ids=enc['input_ids'].to(device))\n"
    assert "attention_mask=enc['attention_mask'].to(device))" in _fixed(code, "DL502", unsafe=False)
    code = BERT + "enc = tok(texts, padding=True, return_tensors='pt')\ninputs = {k: v.to(dev) for k, v in enc.items()}\nout = model(inputs['input_ids'])\n"
    assert "model(inputs['input_ids'], attention_mask=inputs['attention_mask'])" in _fixed(code, "DL502", unsafe=False)
    code = BERT + "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(\n    enc['input_ids'],\n    output_hidden_states=True,\n)\n"
    assert "    output_hidden_states=True,\n    attention_mask=enc['attention_mask'],\n)" in _fixed(code, "DL502", unsafe=False)


@pytest.mark.parametrize(
    "use",
    [
        "enc = tok(texts, padding=True, return_tensors='pt', return_attention_mask=False)\nout = model(enc['input_ids'])",
        "ids = tok(texts, padding=True, return_tensors='pt').input_ids\nout = model(ids)",
        "enc = tok(texts, padding=True, return_tensors='pt')\ndef f():\n    return model(enc['input_ids'])",
    ],
)
def test_dl502_no_fix_when_the_mask_is_not_at_hand(use):
    code = BERT + use + "\n"
    assert len(_lines(code, "DL502")) == 1
    assert _fixed(code, "DL502") == textwrap.dedent(code).lstrip("\n")


def test_dl502_self_attributes():
    code = """
    from transformers import AutoTokenizer, AutoModel
    class Embedder:
        def __init__(self, name):
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            self.model = AutoModel.from_pretrained(name)
        def __call__(self, sentences):
            enc = self.tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
            return self.model(enc["input_ids"]).last_hidden_state
    """
    assert _lines(code, "DL502") == [8]


# ---------------------------------------------------------------------- DL505


@pytest.mark.parametrize(
    "checkpoint",
    ["gpt2", "distilgpt2", "gpt2-medium", "EleutherAI/gpt-neo-125m", "EleutherAI/pythia-160m",
     "meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1", "tiiuae/falcon-7b", "openai-gpt"],
)
def test_dl505_no_pad_families(checkpoint):
    code = f"from transformers import AutoTokenizer\ntok = AutoTokenizer.from_pretrained({checkpoint!r})\nb = tok(texts, padding=True)\n"
    found = _lint(code, "DL505")[2]
    assert [f.line for f in found] == [3]
    assert found[0].message.startswith(checkpoint)


@pytest.mark.parametrize(
    "checkpoint",
    ["bert-base-uncased", "roberta-base", "t5-small", "facebook/opt-125m", "google/gemma-2b", "Qwen/Qwen2-7B",
     "facebook/bart-large", "bigscience/bloom-560m", "my-org/custom-model"],
)
def test_dl505_families_with_pad_or_unknown(checkpoint):
    code = f"from transformers import AutoTokenizer\ntok = AutoTokenizer.from_pretrained({checkpoint!r})\nb = tok(texts, padding=True)\n"
    assert _lines(code, "DL505") == []


HEAD = "from transformers import AutoTokenizer, DataCollatorWithPadding, DataCollatorForLanguageModeling\ntok = AutoTokenizer.from_pretrained('gpt2')\n"


@pytest.mark.parametrize(
    "setter",
    [
        "tok.pad_token = tok.eos_token",
        "tok.pad_token_id = tok.eos_token_id",
        "tok.add_special_tokens({'pad_token': '[PAD]'})",
        "tok.add_special_tokens(dict(pad_token='[PAD]'))",
        "tok.add_special_tokens(special)",
        "setattr(tok, 'pad_token', tok.eos_token)",
        "def prepare(t):\n    t.pad_token = t.unk_token\nprepare(tok)",
        "if tok.pad_token is None:\n    tok.pad_token = tok.eos_token",
    ],
)
def test_dl505_pad_set_somewhere(setter):
    code = HEAD + setter + "\nb = tok(texts, padding=True)\nc = DataCollatorWithPadding(tok)\n"
    assert _lines(code, "DL505") == []


@pytest.mark.parametrize(
    "use, flagged",
    [
        ("c = DataCollatorWithPadding(tokenizer=tok)", True),
        ("c = DataCollatorWithPadding(tok, padding=False)", False),
        ("c = DataCollatorForLanguageModeling(tok, mlm=False)", True),
        ("c = DataCollatorForLanguageModeling(tok)", False),
        ("b = tok.pad(features)", True),
        ("b = tok.pad(features, padding=False)", False),
        ("b = tok(texts, padding='do_not_pad')", False),
        ("b = tok(texts, padding=pad)", False),
        ("b = tok.encode(text, padding='max_length', max_length=8)", True),
    ],
)
def test_dl505_padding_uses(use, flagged):
    assert len(_lines(HEAD + use + "\n", "DL505")) == int(flagged)


def test_dl505_load_with_star_kwargs_or_class():
    code = "from transformers import AutoTokenizer\ntok = AutoTokenizer.from_pretrained('gpt2', **kw)\nb = tok(texts, padding=True)\n"
    assert _lines(code, "DL505") == []
    code = "from transformers import LlamaTokenizer\ntok = LlamaTokenizer.from_pretrained(path)\nb = tok(texts, padding=True)\n"
    assert _lines(code, "DL505") == [3]


def test_dl505_fix_inserts_after_the_load():
    code = "from transformers import AutoTokenizer\ndef main():\n    tok = AutoTokenizer.from_pretrained('gpt2')\n    return tok(texts, padding=True)\n"
    assert _fixed(code, "DL505") == (
        "from transformers import AutoTokenizer\ndef main():\n    tok = AutoTokenizer.from_pretrained('gpt2')\n"
        "    tok.pad_token = tok.eos_token\n    return tok(texts, padding=True)\n"
    )


# ---------------------------------------------------------------------- DL506


GEN = GPT2 + "tok.pad_token = tok.eos_token\n"


@pytest.mark.parametrize(
    "use",
    [
        "enc = tok(prompts, padding=True, return_tensors='pt')\nout = model.generate(**enc)",
        "enc = tok(['a', 'b c'], padding=True, return_tensors='pt').to(dev)\nout = model.generate(enc.input_ids, attention_mask=enc.attention_mask)",
        "enc = tok(prompt, padding='max_length', max_length=32, return_tensors='pt')\nout = model.generate(input_ids=enc['input_ids'])",
        "enc = tok(prompts, padding=True, return_tensors='pt')\ninputs = {k: v.to(dev) for k, v in enc.items()}\nout = model.generate(**inputs)",
        "enc = tok(prompts, padding=True, padding_side='right', return_tensors='pt')\nout = model.generate(**enc)",
    ],
)
def test_dl506_flagged(use):
    assert len(_lines(GEN + use, "DL506")) == 1


@pytest.mark.parametrize(
    "use",
    [
        "tok.padding_side = 'left'\nenc = tok(prompts, padding=True, return_tensors='pt')\nout = model.generate(**enc)",
        "enc = tok(prompt, padding=True, return_tensors='pt')\nout = model.generate(**enc)",
        "enc = tok(prompts, return_tensors='pt')\nout = model.generate(**enc)",
        "enc = tok(prompts, padding=True, return_tensors='pt')\nout = model(**enc)",
        "enc = tok(prompts, padding=True, return_tensors='pt')\nout = other.generate(**enc)",
        "tok.padding_side = side\nenc = tok(prompts, padding=True, return_tensors='pt')\nout = model.generate(**enc)",
        "tok.padding_side = 'left'\ntok.padding_side = 'right'\nenc = tok(prompts, padding=True, return_tensors='pt')\nout = model.generate(**enc)",
        "def set_left(t):\n    t.padding_side = 'left'\nset_left(tok)\nenc = tok(prompts, padding=True, return_tensors='pt')\nout = model.generate(**enc)",
    ],
)
def test_dl506_silent(use):
    assert _lines(GEN + use, "DL506") == []


def test_dl506_encoder_decoder_exempt_and_unknown_defaults():
    code = "from transformers import AutoTokenizer, AutoModelForSeq2SeqLM\ntok = AutoTokenizer.from_pretrained('facebook/bart-large')\n"
    code += "tok.padding_side = 'right'\nmodel = AutoModelForSeq2SeqLM.from_pretrained('facebook/bart-large')\n"
    code += "out = model.generate(**tok(texts, padding=True, return_tensors='pt'))\n"
    assert _lines(code, "DL506") == []
    # unknown checkpoint, default side: the default is not known
    code = "from transformers import AutoTokenizer, AutoModelForCausalLM\ntok = AutoTokenizer.from_pretrained(path)\n"
    code += "model = AutoModelForCausalLM.from_pretrained(path)\nout = model.generate(**tok(texts, padding=True, return_tensors='pt'))\n"
    assert _lines(code, "DL506") == []
    assert _lines(code.replace("(path)\n", "(path, padding_side='right')\n", 1), "DL506") == [4]


def test_dl506_fixes():
    code = GEN + "enc = tok(prompts, padding=True, return_tensors='pt')\nout = model.generate(**enc)\n"
    assert 'tok = AutoTokenizer.from_pretrained("gpt2", padding_side="left")' in _fixed(code, "DL506")
    assert _fixed(code, "DL506", unsafe=False) == textwrap.dedent(code).lstrip("\n")  # suggested only
    code = GEN + "tok.padding_side = 'right'\nenc = tok(prompts, padding=True, return_tensors='pt')\nout = model.generate(**enc)\n"
    assert "tok.padding_side = 'left'" in _fixed(code, "DL506")


def test_dl505_trl_trainer_sets_the_pad_token():
    code = HEAD + "from trl import SFTTrainer\nc = DataCollatorForLanguageModeling(tok, mlm=False)\n"
    code += "trainer = SFTTrainer(model=m, processing_class=tok, data_collator=c)\n"
    assert _lines(code, "DL505") == []


def test_dl502_causal_forward_only_with_left_padding():
    base = GPT2 + "tok.pad_token = tok.eos_token\n"
    right = base + "enc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'])\n"
    assert _lines(right, "DL502") == []  # causal attention: pads on the right are never attended to
    left = base + "tok.padding_side = 'left'\nenc = tok(texts, padding=True, return_tensors='pt')\nout = model(enc['input_ids'])\n"
    assert len(_lines(left, "DL502")) == 1
    call_kw = base + "enc = tok(texts, padding=True, padding_side='left', return_tensors='pt')\nout = model(enc['input_ids'])\n"
    assert len(_lines(call_kw, "DL502")) == 1
    hand = base + "out = model(torch.tensor([[tok.pad_token_id] * 3 + ids]))\n"
    assert len(_lines(hand, "DL502")) == 1
    hand_right = base + "out = model(torch.tensor([ids + [tok.pad_token_id] * 3]))\n"
    assert _lines(hand_right, "DL502") == []
