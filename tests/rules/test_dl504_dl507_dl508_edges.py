"""Edge cases of DL504 (added-tokens-without-embedding-resize), DL507 (t5-family-in-float16) and
DL508 (hf-model-finetuned-in-eval-mode) beyond the examples the rules carry."""

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


def _cat(header: str, body: str) -> str:
    return textwrap.dedent(header).lstrip("\n") + textwrap.dedent(body).lstrip("\n")


def _lines(code: str, rule: str):
    return [f.line for f in _lint(code, rule)[2]]


def _fixed(code: str, rule: str, unsafe: bool = True) -> str:
    _, result, found = _lint(code, rule)
    return fixes.apply(result.module, fixes.fixable(found, unsafe)).code


# ---------------------------------------------------------------------- DL504

DL504_HEADER = """
from transformers import AutoTokenizer, AutoModelForCausalLM
tok = AutoTokenizer.from_pretrained("gpt2")
model = AutoModelForCausalLM.from_pretrained("gpt2")
"""


@pytest.mark.parametrize(
    "add",
    [
        'tok.add_tokens(["<x>"])',
        'tok.add_tokens("<x>", special_tokens=True)',
        'tok.add_special_tokens({"pad_token": "[PAD]"})',
        'tok.add_special_tokens({"additional_special_tokens": extra})',
        "tok.add_special_tokens(special)",
        'n_added = tok.add_tokens(words)',
    ],
)
def test_dl504_flags_adds(add):
    code = DL504_HEADER + add + "\nout = model.generate(**tok(prompt, return_tensors='pt'))\n"
    assert _lines(code, "DL504") == [4]


@pytest.mark.parametrize(
    "setting",
    [
        'tok.pad_token = "[PAD]"',  # measured: maps to the unknown id, the vocabulary does not grow
        "tok.pad_token = tok.eos_token",
        'tok.add_special_tokens({"pad_token": tok.eos_token, "sep_token": tok.unk_token})',
        "tok.add_special_tokens({})",
    ],
)
def test_dl504_not_an_add(setting):
    code = DL504_HEADER + setting + "\nout = model.generate(**tok(prompt, return_tensors='pt'))\n"
    assert _lines(code, "DL504") == []


def test_dl504_resize_anywhere_in_the_file_silences():
    code = _cat(DL504_HEADER, """
    tok.add_tokens(["<x>"])
    out = model(**tok("<x>", return_tensors="pt"))
    def later(m, t):
        m.resize_token_embeddings(len(t))
    """)
    assert _lines(code, "DL504") == []


def test_dl504_trl_helpers_that_resize_silence():
    code = _cat(DL504_HEADER, """
    from trl import setup_chat_format
    tok.add_special_tokens({"pad_token": "<pad>"})
    model, tok = setup_chat_format(model, tok)
    """)
    assert _lines(code, "DL504") == []


def test_dl504_pad_only_add_for_ppo_trainer_is_silent():
    code = _cat(DL504_HEADER, """
    from trl.experimental.ppo import PPOTrainer
    tok.add_special_tokens({"pad_token": "[PAD]"})
    trainer = PPOTrainer(args=cfg, processing_class=tok, model=model, ref_model=None)
    """)
    assert _lines(code, "DL504") == []


def test_dl504_other_tokens_for_ppo_trainer_are_flagged():
    code = _cat(DL504_HEADER, """
    from trl.experimental.ppo import PPOTrainer
    tok.add_special_tokens({"pad_token": "[PAD]", "additional_special_tokens": ["<tool>"]})
    trainer = PPOTrainer(args=cfg, processing_class=tok, model=model, ref_model=None)
    """)
    assert _lines(code, "DL504") == [5]


def test_dl504_two_models_reported_without_fix():
    code = """
    from transformers import AutoTokenizer, AutoModelForCausalLM
    tok = AutoTokenizer.from_pretrained("gpt2")
    policy = AutoModelForCausalLM.from_pretrained("gpt2")
    ref = AutoModelForCausalLM.from_pretrained("gpt2")
    tok.add_tokens(["<x>"])
    train(policy, ref)
    """
    _, _, found = _lint(code, "DL504")
    assert [f.line for f in found] == [5]
    assert found[0].fix is None


def test_dl504_model_in_another_scope_is_not_used():
    code = """
    from transformers import AutoTokenizer, AutoModel
    model = AutoModel.from_pretrained("bert-base-uncased")
    def make_tokenizer():
        tok = AutoTokenizer.from_pretrained("bert-base-uncased")
        tok.add_tokens(["<x>"])
        return tok
    """
    assert _lines(code, "DL504") == []


def test_dl504_one_finding_per_tokenizer_at_the_last_add():
    code = _cat(DL504_HEADER, """
    tok.add_tokens(["<a>"])
    tok.add_tokens(["<b>"])
    tok.add_special_tokens({"additional_special_tokens": ["<c>"]})
    out = model(**tok("<a>", return_tensors="pt"))
    """)
    assert _lines(code, "DL504") == [6]


def test_dl504_fix_keeps_crlf_and_reparses():
    code = DL504_HEADER.lstrip("\n") + 'tok.add_tokens(["<x>"])\nout = model(**tok("<x>", return_tensors="pt"))\n'
    code = code.replace("\n", "\r\n")
    result = lint_text(code, "case.py", RULESET, enabled={"DL504"})
    fixed = fixes.apply(result.module, fixes.fixable(result.findings, False)).code
    assert "model.resize_token_embeddings(len(tok))\r\n" in fixed
    cst.parse_module(fixed)
    assert lint_text(fixed, "case.py", RULESET, enabled={"DL504"}).findings == []


def test_dl504_fix_goes_after_a_later_model_load():
    code = """
    from transformers import AutoTokenizer, AutoModel
    def build(path):
        tok = AutoTokenizer.from_pretrained(path)
        tok.add_tokens(["<x>"])
        model = AutoModel.from_pretrained(path).to("cuda")
        return model(**tok("<x>", return_tensors="pt"))
    """
    fixed = _fixed(code, "DL504", unsafe=False)
    assert 'model = AutoModel.from_pretrained(path).to("cuda")\n    model.resize_token_embeddings(len(tok))\n' in fixed


def test_dl504_sentence_transformer_needs_later_use():
    code = """
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer("all-MiniLM-L6-v2")
    st.tokenizer.add_tokens(["<x>"])
    st.save("out")
    """
    assert _lines(code, "DL504") == [3]
    code_unused = """
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer("all-MiniLM-L6-v2")
    st.tokenizer.add_tokens(["<x>"])
    """
    assert _lines(code_unused, "DL504") == []


def test_dl504_sentence_transformer_fix_is_unsafe_only():
    code = """
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer("all-MiniLM-L6-v2")
    st.tokenizer.add_tokens(["<x>"])
    vecs = st.encode(texts)
    """
    assert "resize_token_embeddings" not in _fixed(code, "DL504", unsafe=False)
    assert "st._first_module().auto_model.resize_token_embeddings(len(st.tokenizer))" in _fixed(code, "DL504")


# ---------------------------------------------------------------------- DL507

T5_HEADER = """
import torch
from transformers import T5ForConditionalGeneration
model = T5ForConditionalGeneration.from_pretrained("t5-large")
"""


@pytest.mark.parametrize(
    "cast",
    [
        "model.half()",
        "model = model.half()",
        "model.to(torch.float16)",
        "model.to(torch.half)",
        "model.to('cuda', torch.float16)",
        "model.to(device=dev, dtype=torch.float16)",
        "model.cuda().half()",
    ],
)
def test_dl507_flags_casts(cast):
    assert _lines(T5_HEADER + cast + "\n", "DL507") == [4]


@pytest.mark.parametrize(
    "cast",
    ["model.to('cuda')", "model.float()", "model.to(torch.float32)", "model.bfloat16()", "x = ids.half()"],
)
def test_dl507_not_float16(cast):
    assert _lines(T5_HEADER + cast + "\n", "DL507") == []


def test_dl507_from_import_of_float16_is_flagged_without_fix():
    code = T5_HEADER + "from torch import float16\nmodel.to(float16)\n"
    _, _, found = _lint(code, "DL507")
    assert [f.line for f in found] == [5] and found[0].fix is None


@pytest.mark.parametrize(
    "checkpoint",
    ["google/flan-t5-xl", "google/mt5-base", "google/byt5-large", "google/t5-v1_1-xl", "google-t5/t5-base",
     "bigscience/T0_3B-t5"],
)
def test_dl507_family_by_checkpoint(checkpoint):
    code = f"""
    from transformers import AutoModelForSeq2SeqLM
    model = AutoModelForSeq2SeqLM.from_pretrained("{checkpoint}").half()
    """
    assert _lines(code, "DL507") == [2]


@pytest.mark.parametrize("checkpoint", ["t5-small", "google-t5/t5-small", "org/flan-t5-xl-fp16", "x/t5-large-bf16"])
def test_dl507_exempt_checkpoints(checkpoint):
    code = f"""
    from transformers import AutoModelForSeq2SeqLM
    model = AutoModelForSeq2SeqLM.from_pretrained("{checkpoint}").half()
    """
    assert _lines(code, "DL507") == []


def test_dl507_load_in_float16_is_the_info_case():
    code = """
    import torch
    from transformers import T5ForConditionalGeneration
    a = T5ForConditionalGeneration.from_pretrained("t5-base", dtype=torch.float16)
    b = T5ForConditionalGeneration.from_pretrained("t5-base", dtype="float16")
    c = T5ForConditionalGeneration.from_pretrained("t5-base", dtype=torch.bfloat16)
    """
    _, _, found = _lint(code, "DL507")
    assert [f.line for f in found] == [3, 4]
    assert all(f.message.startswith("(info)") and "`wo`" in f.message for f in found)
    fixed = _fixed(code, "DL507")
    assert 'dtype=torch.bfloat16)\nb = ' in fixed and 'dtype="bfloat16")' in fixed


def test_dl507_longt5_load_has_no_wo_safeguard():
    code = """
    import torch
    from transformers import LongT5ForConditionalGeneration
    m = LongT5ForConditionalGeneration.from_pretrained("google/long-t5-tglobal-base", torch_dtype=torch.float16)
    """
    _, _, found = _lint(code, "DL507")
    assert len(found) == 1 and not found[0].message.startswith("(info)")


@pytest.mark.parametrize(
    "setting, fixed",
    [
        ("TrainingArguments('out', fp16=True)", "TrainingArguments('out', bf16=True)"),
        ("Accelerator(mixed_precision='fp16')", "Accelerator(mixed_precision='bf16')"),
        ("pl.Trainer(precision=16)", 'pl.Trainer(precision="bf16-mixed")'),
        ("pl.Trainer(precision='16-mixed')", 'pl.Trainer(precision="bf16-mixed")'),
    ],
)
def test_dl507_file_level_mixed_precision(setting, fixed):
    code = f"""
    import pytorch_lightning as pl
    from accelerate import Accelerator
    from transformers import T5ForConditionalGeneration, TrainingArguments
    model = T5ForConditionalGeneration.from_pretrained("t5-base")
    x = {setting}
    """
    assert _lines(code, "DL507") == [5]
    assert fixed in _fixed(code, "DL507")


def test_dl507_file_level_needs_every_model_t5():
    code = """
    from transformers import T5ForConditionalGeneration, AutoModelForSeq2SeqLM, TrainingArguments
    a = T5ForConditionalGeneration.from_pretrained("t5-base")
    b = AutoModelForSeq2SeqLM.from_pretrained(args.model)
    x = TrainingArguments("out", fp16=True)
    """
    assert _lines(code, "DL507") == []


def test_dl507_file_level_silent_without_any_model():
    assert _lines("from transformers import TrainingArguments\nx = TrainingArguments('o', fp16=True)\n", "DL507") == []


@pytest.mark.parametrize(
    "manager, flagged",
    [
        ("torch.autocast('cuda')", True),
        ("torch.autocast(device_type='cuda')", True),
        ("torch.autocast('cuda', torch.float16)", True),
        ("torch.amp.autocast('cuda', dtype=torch.half)", True),
        ("torch.cuda.amp.autocast()", True),
        ("torch.autocast('cpu')", False),
        ("torch.autocast(device)", False),
        ("torch.cuda.amp.autocast(enabled=False)", False),
        ("torch.cuda.amp.autocast(dtype=torch.bfloat16)", False),
    ],
)
def test_dl507_autocast(manager, flagged):
    code = T5_HEADER + f"with {manager}:\n    out = model.generate(**batch)\n"
    assert _lines(code, "DL507") == ([4] if flagged else [])


# ---------------------------------------------------------------------- DL508

LOOP_HEADER = """
import torch
from transformers import AutoModelForSequenceClassification
model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
opt = torch.optim.AdamW(model.parameters())
"""


@pytest.mark.parametrize(
    "train_call",
    ["model.train()", "model.train(True)", "model.train(mode=False)", "model.module.train()", "net.model.train()"],
)
def test_dl508_any_train_call_silences(train_call):
    code = LOOP_HEADER + train_call + "\nfor b in dl:\n    model(**b).loss.backward()\n    opt.step()\n"
    assert _lines(code, "DL508") == []


def test_dl508_accelerator_backward_is_not_matched():
    code = LOOP_HEADER + "for b in dl:\n    accelerator.backward(model(**b).loss)\n    opt.step()\n"
    assert _lines(code, "DL508") == []


def test_dl508_scheduler_step_is_not_an_optimizer_step():
    code = LOOP_HEADER + "for b in dl:\n    model(**b).loss.backward()\n    scheduler.step()\n"
    assert _lines(code, "DL508") == []


def test_dl508_lightning_module_is_driven():
    code = """
    import torch
    import pytorch_lightning as pl
    from transformers import AutoModel
    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained("bert-base-uncased")
            self.opt = torch.optim.AdamW(self.bert.parameters())
        def manual(self, batches):
            for b in batches:
                self.bert(**b).last_hidden_state.sum().backward()
                self.opt.step()
    """
    assert _lines(code, "DL508") == []


def test_dl508_peft_wrapper_keeps_eval_mode():
    code = """
    import torch
    from peft import get_peft_model, LoraConfig
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained("gpt2")
    model = get_peft_model(base, LoraConfig(r=8)).to("cuda")
    opt = torch.optim.AdamW(model.parameters())
    for batch in loader:
        model(**batch).loss.backward()
        opt.step()
    """
    assert _lines(code, "DL508") == [8]
    assert "model.train()\nfor batch in loader:" in _fixed(code, "DL508", unsafe=False)


def test_dl508_one_finding_per_model_and_function():
    code = _cat(LOOP_HEADER, """
    for b in dl:
        out = model(**b)
        aux = model(**b2)
        (out.loss + aux.loss).backward()
        opt.step()
    """)
    assert _lines(code, "DL508") == [6]


def test_dl508_loop_in_a_one_line_suite_is_reported_without_fix():
    code = LOOP_HEADER + "if go:\n    for b in dl: model(**b).loss.backward(); opt.step()\n"
    _, _, found = _lint(code, "DL508")
    assert [f.line for f in found] == [6]
    fixed = _fixed(code, "DL508", unsafe=False)
    cst.parse_module(fixed)
    assert "    model.train()\n    for b in dl:" in fixed


def test_dl508_fix_is_idempotent():
    code = LOOP_HEADER + "for b in dl:\n    model(**b).loss.backward()\n    opt.step()\n"
    fixed = _fixed(code, "DL508", unsafe=False)
    assert "model.train()\nfor b in dl:" in fixed
    assert lint_text(fixed, "case.py", RULESET, enabled={"DL508"}).findings == []


def test_dl504_attribute_and_keyword_spellings_are_not_uses():
    code = _cat(DL504_HEADER, """
    tok.add_tokens(["<x>"])
    run(self.model, model=other, tokenizer=tok)
    """)
    assert _lines(code, "DL504") == []


def test_dl504_model_used_in_a_later_function_of_the_module():
    code = _cat(DL504_HEADER, """
    tok.add_tokens(["<x>"])
    def predict(text):
        return model(**tok(text, return_tensors="pt"))
    """)
    assert _lines(code, "DL504") == [4]


# --- second reading: remote modeling code ------------------------------------------------------


@pytest.mark.parametrize("trust", ["True", "args.trust_remote_code"])
def test_dl504_remote_code_model_is_silent(trust):
    code = f"""
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(args.model)
tok.add_tokens(["<sep>", "<pad>"], special_tokens=True)
model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code={trust})
model(**tok("x <sep>", return_tensors="pt"))
"""
    assert _lines(code, "DL504") == []


def test_dl504_remote_code_off_is_checked():
    code = """
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("gpt2")
tok.add_tokens(["<sep>", "<pad>"], special_tokens=True)
model = AutoModelForCausalLM.from_pretrained("gpt2", trust_remote_code=False)
model(**tok("x <sep>", return_tensors="pt"))
"""
    assert _lines(code, "DL504") == [3]
