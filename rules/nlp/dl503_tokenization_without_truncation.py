from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import (
    Family,
    checkpoint_of,
    family_of_checkpoint,
    family_of_class,
    is_model_class,
    is_tokenizer_class,
    pretrained_class,
    strip_self_returning,
)

#: Tokenizer methods that encode text and take truncation= / max_length= (encode_plus and
#: batch_encode_plus exist on transformers 4 only).
ENCODE_METHODS = frozenset({"__call__", "encode", "encode_plus", "batch_encode_plus"})

#: Name of the text parameter per method.
TEXT_PARAMETER = {
    "__call__": "text",
    "encode": "text",
    "encode_plus": "text",
    "batch_encode_plus": "batch_text_or_text_pairs",
}

#: Model methods that run the forward pass on token ids.
FORWARD_METHODS = frozenset({"generate", "forward", "__call__"})

#: Keyword arguments of a model call that carry the token ids.
ID_KEYWORDS = frozenset({"input_ids", "inputs"})

#: Auto classes whose models are encoders (learned absolute positions in practice): with an unknown
#: checkpoint these are still reported; decoder Auto classes (mostly rotary models) are not.
ENCODER_AUTO_CLASSES = frozenset(
    prefix + name
    for prefix in ("", "TF", "Flax")
    for name in (
        "AutoModel",
        "AutoModelForSequenceClassification",
        "AutoModelForTokenClassification",
        "AutoModelForQuestionAnswering",
        "AutoModelForMaskedLM",
        "AutoModelForMultipleChoice",
        "AutoModelForNextSentencePrediction",
        "AutoModelForPreTraining",
    )
)

#: Tensor methods between the tokenizer output and the model that keep the sequence length.
LENGTH_PRESERVING_METHODS = frozenset({"to", "cuda", "cpu", "long", "int", "unsqueeze"})

#: Functions that wrap a list of ids into a tensor (the length is kept).
TENSOR_CONSTRUCTORS = frozenset(
    {
        "torch.tensor",
        "torch.LongTensor",
        "torch.as_tensor",
        "tensorflow.constant",
        "tensorflow.convert_to_tensor",
        "numpy.array",
        "numpy.asarray",
    }
)

#: Literal values of truncation= that do not truncate.
NO_TRUNCATION = (False, None, "do_not_truncate")
#: Literal values of padding= that do not pad.
NO_PADDING = (False, None, "do_not_pad")

_UNKNOWN = object()
_OTHER = object()  # an attribute assignment whose value is not a from_pretrained load



@dataclass(frozen=True)
class Load:
    """A ``transformers.<cls>.from_pretrained(checkpoint, ...)`` call, read in the scope where it
    was assigned (a class may import transformers inside ``__init__`` only)."""

    node: cst.Call
    cls: str
    checkpoint: Optional[str]


#: ``self.<attr>`` assignments a finding relies on: (class node id, attribute, assigned record).
Deps = Tuple[Tuple[int, str, Any], ...]


class TokenizationWithoutTruncation(Rule):
    """A tokenizer call without truncation whose ids reach a model with a fixed position limit.

    Finds a transformers tokenizer (a name assigned once from `AutoTokenizer.from_pretrained(...)`
    or a concrete `*Tokenizer` / `*TokenizerFast` class's `from_pretrained`, or a `self.<attr>`
    assigned once in the methods of its class) called as
    `tok(text, ...)`, `tok.encode(text, ...)` or, on transformers 4, `tok.encode_plus(...)` /
    `tok.batch_encode_plus(...)` without truncation, when its result then feeds the forward pass of
    a model loaded with a transformers `*Model*.from_pretrained` / `AutoModel*.from_pretrained`
    call: `model(**enc)`, `model(enc["input_ids"])`, `model(input_ids=enc.input_ids)`,
    `model.generate(**enc)`, `model(torch.tensor([tok.encode(text)]))`, through names assigned
    once, `.to(device)` and `{k: v.to(device) for k, v in enc.items()}`; the model is a name or a
    `self.<attr>` with one such load (`model = model.to(device)` is allowed). The finding is at
    the tokenizer call.

    A call does not truncate when it passes neither `truncation=` nor `max_length=`, when it passes
    `truncation=False` (or `"do_not_truncate"`), or when it passes `max_length=` together with
    `padding=` but no `truncation=`: then the tokenizer pads short inputs up to `max_length` and
    leaves long ones whole (measured, transformers 5.23: 42 ids out of `padding="max_length",
    max_length=10`; only `max_length=` alone turns truncation on). Also reported: `max_length=N`
    with an integer N above the position limit of the model's family (BERT, RoBERTa, DistilBERT,
    ELECTRA, ALBERT, CamemBERT 512; GPT-2 and BART 1024), even with `truncation=True`.

    Why it is a bug: by default a tokenizer neither pads nor truncates. A text longer than the
    model's position table gives ids the model cannot index: "Token indices sequence length is
    longer than the specified maximum sequence length for this model ... Running this sequence
    through the model will result in indexing errors", then an IndexError, a size-mismatch
    RuntimeError (BERT on transformers 5: "The size of tensor a (42) must match the size of tensor
    b (16)", measured on a 16-position model) or a CUDA device-side assert. The warning is printed
    only when the tokenizer knows `model_max_length`, and the crash waits for the first long input,
    often in production rather than in a test on short sentences.

    How to fix: pass `truncation=True` (and `max_length=` up to the model's limit), or split long
    inputs into windows with `stride=` and `return_overflowing_tokens=True`. `truncation=True`
    without `max_length` truncates to the tokenizer's `model_max_length`, which hub checkpoints
    set (512 for bert-base-uncased) but a tokenizer built from a bare vocabulary file does not.

    Fix: suggested (unsafe): adds `truncation=True` (or turns `truncation=False` into `True`).
    It changes results for long inputs, which lose their tail; chunking may be what is wanted. No
    automatic fix for a `max_length` above the limit.

    Model families: the checkpoint string of the model's `from_pretrained` (a literal or a name
    assigned once to one) decides, else the concrete model class, else the tokenizer's checkpoint
    or class. T5 (relative positions), DeBERTa and XLNet (relative), rotary-position decoders
    (Llama, Mistral, Qwen, Gemma, Phi, Pythia) and long-context families (Longformer, BigBird,
    LED) are left alone. With an unknown family the rule reports only for encoder Auto classes
    (`AutoModel`, `AutoModelFor{SequenceClassification,TokenClassification,QuestionAnswering,
    MaskedLM,...}`), whose checkpoints have learned absolute positions in practice.

    Stays silent when the call truncates (`truncation=True`, `"longest_first"`, `"only_first"`, a
    non-literal value), passes `**kwargs`, windows the input (`stride=`,
    `return_overflowing_tokens=`), encodes texts of known length (string literals, lists of
    them, an f-string that only inserts special tokens such as `{tok.mask_token}`; a literal
    question with a variable `text_pair` is still checked), when the ids are sliced before the
    model (`ids[:, :512]`), when the result never reaches a model, when the tokenizer or the model
    has no single known `from_pretrained` origin (a parameter, a pipeline's `.tokenizer`, a name
    or attribute assigned twice, an attribute of another object), and for the exempt families.

    Limits: the flow is followed inside one file, through names assigned once (in source order)
    and one level of `self.<attr>`; tokenizers applied through `datasets.map`, collators or helper
    functions, and pipelines (`pipeline(...)(text)`), are not checked. Inputs that are short by
    nature (titles, queries) cannot be told apart from documents.
    """

    code = "DL503"
    name = "tokenization-without-truncation"
    family = "nlp"
    message = (
        "tokenization without truncation can exceed the model's max positions (e.g. 512) and crash "
        "(IndexError, size-mismatch RuntimeError or CUDA assert); pass truncation=True (and max_length), "
        "or chunk long inputs"
    )
    fix = FixKind.UNSAFE
    evidence = Evidence(
        study="(e) Pan et al., bugs found while reusing pretrained NLP models",
        category="lack of input validation -> crashes: sequence longer than the model maximum (no truncation)",
        links=(
            "https://github.com/huggingface/transformers/issues/1791",
            "https://github.com/huggingface/transformers/issues/14384",
            "https://github.com/alexandrainst/danlp/issues/54",
            "https://github.com/monologg/KoELECTRA/issues/8",
        ),
    )
    triggers = ("from_pretrained",)

    VALID = (
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForSequenceClassification
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
            enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
            logits = model(**enc).logits
            """), "truncation=True"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("roberta-base")
            model = AutoModel.from_pretrained("roberta-base")
            enc = tok(doc, max_length=512, return_tensors="pt")
            out = model(**enc)
            """), "max_length alone turns truncation on"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            def embed(text, **kwargs):
                enc = tok(text, return_tensors="pt", **kwargs)
                return model(**enc)
            """), "**kwargs may carry truncation"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            enc = tok(doc, return_tensors="pt")
            n_tokens = enc["input_ids"].shape[1]
            """), "the ids never reach the model"),
        Valid(dedent("""
            from transformers import pipeline
            clf = pipeline("sentiment-analysis")
            tok = clf.tokenizer
            enc = tok(doc, return_tensors="pt")
            out = clf.model(**enc)
            """), "tokenizer and model come from a pipeline"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("allenai/longformer-base-4096")
            model = AutoModel.from_pretrained("allenai/longformer-base-4096")
            out = model(**tok(doc, return_tensors="pt"))
            """), "long-context family"),
        Valid(dedent("""
            from transformers import T5TokenizerFast, T5ForConditionalGeneration
            tok = T5TokenizerFast.from_pretrained(ckpt)
            model = T5ForConditionalGeneration.from_pretrained(ckpt)
            ids = tok(article, return_tensors="pt").input_ids
            summary = model.generate(ids, max_new_tokens=60)
            """), "T5 has relative positions: no position table to overflow"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            model = AutoModel.from_pretrained("bert-base-uncased")
            def encode(tok, text):
                return model(**tok(text, return_tensors="pt"))
            """), "the tokenizer is a parameter, not known to be a transformers tokenizer"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            inputs = tok("Hello, my dog is cute", return_tensors="pt")
            out = model(**inputs)
            """), "a string literal: the input length is known"),
        Valid(dedent("""
            import torch
            from transformers import BertTokenizer, BertModel
            tok = BertTokenizer.from_pretrained("bert-base-uncased")
            model = BertModel.from_pretrained("bert-base-uncased")
            ids = tok(doc, return_tensors="pt")["input_ids"][:, :512]
            out = model(ids)
            """), "sliced to the limit before the model"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForCausalLM
            tok = AutoTokenizer.from_pretrained(args.model)
            model = AutoModelForCausalLM.from_pretrained(args.model)
            out = model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=20)
            """), "unknown decoder checkpoint: most have rotary positions"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            enc = tok(doc, truncation=True, max_length=512, stride=128,
                      return_overflowing_tokens=True, padding=True, return_tensors="pt")
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            """), "windowed with stride and overflowing tokens"),
        Valid(dedent("""
            from transformers import AutoTokenizer, BertForMaskedLM
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = BertForMaskedLM.from_pretrained("bert-base-uncased")
            text = f"Paris is the {tok.mask_token} of France."
            logits = model(**tok(text, return_tensors="pt")).logits
            """), "an f-string that only inserts a special token"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForTokenClassification
            class Tagger:
                def __init__(self, path):
                    self.model = AutoModelForTokenClassification.from_pretrained(path)
                    self.tokenizer = AutoTokenizer.from_pretrained(path)
                def predict(self, text):
                    inputs = self.tokenizer.encode(text, return_tensors="pt")
                    return self.model(inputs)[0]
                def swap(self, other):
                    self.model = other
            """), "self.model is assigned twice in the class"),
        Valid(dedent("""
            import torch
            from transformers import BertTokenizer, BertModel
            tok = BertTokenizer.from_pretrained("bert-base-uncased")
            model = BertModel.from_pretrained("bert-base-uncased")
            for doc in docs:
                ids = tok.encode(doc)
                if len(ids) > 512:
                    continue
                vec = model(torch.tensor([ids]))[1]
            """), "over-long inputs are skipped before the model"),
    )

    INVALID = (
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                ids = tok(doc, return_tensors="pt")
                out = model(**ids)
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                ids = tok(doc, return_tensors="pt", truncation=True)
                out = model(**ids)
                """),
            unsafe=True,
        ),
        Invalid(
            dedent("""
                from transformers import RobertaTokenizer, RobertaModel
                tokenizer = RobertaTokenizer.from_pretrained("microsoft/codebert-base")
                model = RobertaModel.from_pretrained("microsoft/codebert-base")
                for code in snippets:
                    vec = model(tokenizer(code, return_tensors="pt")["input_ids"])[1]
                """),
            fixed=dedent("""
                from transformers import RobertaTokenizer, RobertaModel
                tokenizer = RobertaTokenizer.from_pretrained("microsoft/codebert-base")
                model = RobertaModel.from_pretrained("microsoft/codebert-base")
                for code in snippets:
                    vec = model(tokenizer(code, return_tensors="pt", truncation=True)["input_ids"])[1]
                """),
            unsafe=True,
            note="family from the concrete model class",
        ),
        Invalid(
            dedent("""
                import torch
                import transformers
                tok = transformers.GPT2Tokenizer.from_pretrained("gpt2")
                lm = transformers.GPT2LMHeadModel.from_pretrained("gpt2").eval()
                ids = tok.encode(story)
                out = lm.generate(torch.tensor([ids]), max_new_tokens=50)
                """),
            fixed=dedent("""
                import torch
                import transformers
                tok = transformers.GPT2Tokenizer.from_pretrained("gpt2")
                lm = transformers.GPT2LMHeadModel.from_pretrained("gpt2").eval()
                ids = tok.encode(story, truncation=True)
                out = lm.generate(torch.tensor([ids]), max_new_tokens=50)
                """),
            unsafe=True,
            note="encode() through torch.tensor([...]) into generate",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForSequenceClassification
                ckpt = "distilbert-base-uncased-finetuned-sst-2-english"
                tok = AutoTokenizer.from_pretrained(ckpt)
                model = AutoModelForSequenceClassification.from_pretrained(ckpt).to(device)
                def classify(texts):
                    batch = tok(
                        texts,
                        padding="max_length",
                        max_length=256,
                        return_tensors="pt",
                    ).to(device)
                    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModelForSequenceClassification
                ckpt = "distilbert-base-uncased-finetuned-sst-2-english"
                tok = AutoTokenizer.from_pretrained(ckpt)
                model = AutoModelForSequenceClassification.from_pretrained(ckpt).to(device)
                def classify(texts):
                    batch = tok(
                        texts,
                        padding="max_length",
                        max_length=256,
                        return_tensors="pt",
                        truncation=True,
                    ).to(device)
                    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
                """),
            unsafe=True,
            note="padding with max_length but no truncation pads short inputs and keeps long ones whole",
        ),
        Invalid(
            dedent("""
                from transformers import BertTokenizerFast, BertForSequenceClassification
                tok = BertTokenizerFast.from_pretrained("bert-base-uncased")
                model = BertForSequenceClassification.from_pretrained("bert-base-uncased")
                enc = tok(texts, truncation=True, max_length=1024, padding=True, return_tensors="pt")
                logits = model(**enc).logits
                """),
            note="max_length above BERT's 512 positions: reported, no automatic fix",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained(args.checkpoint)
                model = AutoModel.from_pretrained(args.checkpoint)
                model = model.to(device)
                enc = tok(batch, padding=True, return_tensors="pt")
                inputs = {k: v.to(device) for k, v in enc.items()}
                out = model(**inputs)
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained(args.checkpoint)
                model = AutoModel.from_pretrained(args.checkpoint)
                model = model.to(device)
                enc = tok(batch, padding=True, return_tensors="pt", truncation=True)
                inputs = {k: v.to(device) for k, v in enc.items()}
                out = model(**inputs)
                """),
            unsafe=True,
            note="encoder Auto class with an unknown checkpoint; through a dict comprehension",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                enc = tok(doc, truncation=False, return_tensors="pt")
                out = model(**enc)
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModel
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                enc = tok(doc, truncation=True, return_tensors="pt")
                out = model(**enc)
                """),
            unsafe=True,
            note="explicit truncation=False",
        ),
        Invalid(
            dedent("""
                import warnings
                from transformers import AutoTokenizer, AutoModelForTokenClassification
                class Tagger:
                    def __init__(self, path):
                        self.model = AutoModelForTokenClassification.from_pretrained(path)
                        self.tokenizer = AutoTokenizer.from_pretrained(path)
                    def predict(self, text):
                        inputs = self.tokenizer.encode(text, return_tensors="pt")
                        if len(inputs[0]) > 512:
                            warnings.warn("BERT takes at most 512 tokens")
                        return self.model(inputs)[0]
                """),
            fixed=dedent("""
                import warnings
                from transformers import AutoTokenizer, AutoModelForTokenClassification
                class Tagger:
                    def __init__(self, path):
                        self.model = AutoModelForTokenClassification.from_pretrained(path)
                        self.tokenizer = AutoTokenizer.from_pretrained(path)
                    def predict(self, text):
                        inputs = self.tokenizer.encode(text, return_tensors="pt", truncation=True)
                        if len(inputs[0]) > 512:
                            warnings.warn("BERT takes at most 512 tokens")
                        return self.model(inputs)[0]
                """),
            unsafe=True,
            note="tokenizer and model held as attributes assigned once in the class; a warning does not stop the crash",
        ),
    )

    def __init__(self, ctx: Any, sink: Any) -> None:
        super().__init__(ctx, sink)
        self._reported: Set[int] = set()
        #: class node id -> attribute name -> one record per assignment to ``self.<name>`` in its
        #: methods: a Load, or _OTHER for any other value (augmented, unpacked, a parameter...).
        self._attrs: Dict[int, Dict[str, List[Any]]] = {}
        #: class node id -> findings that wait for the end of the class to check that the
        #: ``self.<name>`` attributes they rely on are assigned once in the whole class.
        self._pending: Dict[int, List[Tuple[Deps, cst.Call, Optional[str], Optional[Fix]]]] = {}
        #: scope node id -> names whose length an ``if ...: return/continue/break/raise`` or an
        #: ``assert`` checks (``if len(ids) > 512: continue``): such ids are guarded.
        self._guarded: Dict[int, Set[str]] = {}

    # ------------------------------------------------------------------ the model call

    def visit_Call(self, node: cst.Call) -> None:
        if not self.ctx.imports("transformers"):
            return
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in FORWARD_METHODS:
            receiver = func.value
        else:
            receiver = func
        model = self._model_load(receiver)
        if model is None:
            return
        positional_seen = False
        for arg in node.args:
            if arg.star == "**":
                fed = arg.value
            elif arg.star:
                continue
            elif arg.keyword is None:
                if positional_seen:
                    continue
                positional_seen = True
                fed = arg.value
            elif arg.keyword.value in ID_KEYWORDS:
                fed = arg.value
            else:
                continue
            names: List[str] = []
            tok_call = self._token_source(fed, names)
            if tok_call is not None and not self._guarded.get(id(self._scope()), set()).intersection(names):
                self._check(tok_call, model)

    # ------------------------------------------------------------------ length guards

    def visit_If(self, node: cst.If) -> None:
        if _leaves(node.body):
            self._note_guard(node.test)

    def visit_Assert(self, node: cst.Assert) -> None:
        self._note_guard(node.test)

    def _note_guard(self, test: Any) -> None:
        names: Set[str] = set()
        measured = False
        for sub in _subtree(test):
            if isinstance(sub, cst.Name):
                names.add(sub.value)
            elif isinstance(sub, cst.Call) and isinstance(sub.func, cst.Name) and sub.func.value == "len":
                measured = True
            elif isinstance(sub, cst.Attribute) and sub.attr.value in ("shape", "size", "numel"):
                measured = True
        if measured:
            self._guarded.setdefault(id(self._scope()), set()).update(names)

    def _scope(self) -> Any:
        return self.ctx.function() or self.ctx.module

    def _model_load(self, receiver: Any) -> Optional[Tuple[Load, Deps]]:
        """The one ``<Model>.from_pretrained(...)`` call a name or ``self.<attr>`` holds (allowing
        ``model = model.to(device)`` rebindings), with the attributes it relies on; else None."""
        if isinstance(receiver, cst.Attribute):
            origin = self._attribute_origin(receiver)
            if origin is None:
                return None
            load, deps = origin
            return (load, deps) if is_model_class(load.cls) else None
        if not isinstance(receiver, cst.Name):
            return None
        bindings = self.ctx.lookup(receiver.value)
        if not bindings:
            return None
        load: Optional[Load] = None
        for binding in bindings:
            if binding.kind != "assign":
                return None
            value = strip_self_returning(binding.value)
            if isinstance(value, cst.Name) and value.value == receiver.value:
                continue
            found = self._load(value)
            if found is None or not is_model_class(found.cls) or load is not None:
                return None
            load = found
        return (load, ()) if load is not None else None

    def _load(self, value: Any) -> Optional[Load]:
        cls = pretrained_class(self.ctx, value)
        if cls is None:
            return None
        return Load(value, cls, checkpoint_of(self.ctx, value))

    # ------------------------------------------------------------------ self.<attr> in classes

    def leave_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._note_attribute(target.target, node.value)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._note_attribute(node.target, node.value)

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        self._note_attribute(node.target, None)

    def _note_attribute(self, target: Any, value: Any) -> None:
        """Record ``self.<attr> = value`` inside a method (runs before the Context records the
        statement, so a name in ``value`` resolves as it did before it)."""
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._note_attribute(element.value, None)
            return
        if not (isinstance(target, cst.Attribute) and _is_self(target.value)):
            return
        cls = self.ctx.enclosing_class()
        if cls is None or self.ctx.function() is None:
            return
        record: Any = None
        if value is not None:
            value = strip_self_returning(value)
            if isinstance(value, cst.Attribute) and _is_self(value.value) and value.attr.value == target.attr.value:
                return  # self.model = self.model.to(device)
            if isinstance(value, cst.Name):
                value = strip_self_returning(self.ctx.resolve(value))
            record = self._load(value)
        # a value that is not a from_pretrained load still counts as an assignment
        self._attrs.setdefault(id(cls), {}).setdefault(target.attr.value, []).append(record or _OTHER)

    def _attribute_origin(self, node: cst.Attribute) -> Optional[Tuple[Load, Deps]]:
        """The load ``self.<attr>`` was assigned, when it is its only assignment so far in this
        class's methods (leave_ClassDef checks that no later method assigns it again)."""
        if not _is_self(node.value) or self.ctx.function() is None:
            return None
        cls = self.ctx.enclosing_class()
        if cls is None:
            return None
        values = self._attrs.get(id(cls), {}).get(node.attr.value, [])
        if len(values) != 1 or not isinstance(values[0], Load):
            return None
        return values[0], ((id(cls), node.attr.value, values[0]),)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        attrs = self._attrs.pop(id(node), {})
        for deps, call, message, fix in self._pending.pop(id(node), []):
            if all(len(attrs.get(name, [])) == 1 and attrs[name][0] is value for _, name, value in deps):
                self.report(call, message, fix=fix)

    # ------------------------------------------------------------------ from ids back to the tokenizer

    def _token_source(self, expr: Any, names: List[str]) -> Optional[cst.Call]:
        """The tokenizer call whose ids ``expr`` carries unchanged in length, else None; the
        names passed through are added to ``names``."""
        ctx = self.ctx
        for _ in range(10):
            if isinstance(expr, cst.Name):
                names.append(expr.value)
                expr = ctx.assigned_value(expr)
                if expr is None:
                    return None
            elif isinstance(expr, cst.Subscript):
                if not _is_input_ids_key(expr):
                    return None
                expr = expr.value
            elif isinstance(expr, cst.Attribute):
                if expr.attr.value != "input_ids":
                    return None
                expr = expr.value
            elif isinstance(expr, cst.Call):
                if self._tokenizer(expr) is not None:
                    return expr
                func = expr.func
                if isinstance(func, cst.Attribute) and func.attr.value in LENGTH_PRESERVING_METHODS:
                    expr = func.value
                elif ctx.call_name(expr) in TENSOR_CONSTRUCTORS:
                    expr = ctx.argument(expr, 0, "data")
                else:
                    return None
            elif isinstance(expr, (cst.List, cst.Tuple)):
                if len(expr.elements) != 1 or isinstance(expr.elements[0], cst.StarredElement):
                    return None
                expr = expr.elements[0].value
            elif isinstance(expr, cst.DictComp):
                # {k: v.to(device) for k, v in enc.items()}
                loop = expr.for_in
                it = loop.iter
                if (
                    loop.inner_for_in is not None
                    or loop.ifs
                    or not isinstance(it, cst.Call)
                    or it.args
                    or not isinstance(it.func, cst.Attribute)
                    or it.func.attr.value != "items"
                ):
                    return None
                expr = it.func.value
            else:
                return None
        return None

    def _tokenizer(self, call: cst.Call) -> Optional[Tuple[str, Load, Deps]]:
        """(method, tokenizer load, attributes relied on) when ``call`` encodes text with a known
        transformers tokenizer: ``tok(...)``, ``tok.encode(...)``, ``self.tokenizer(...)``..."""
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in ENCODE_METHODS:
            method, receiver = func.attr.value, func.value
        else:
            method, receiver = "__call__", func
        load: Optional[Load]
        if isinstance(receiver, cst.Name):
            load, deps = self._load(self.ctx.assigned_value(receiver)), ()
        elif isinstance(receiver, cst.Attribute):
            origin = self._attribute_origin(receiver)
            if origin is None:
                return None
            load, deps = origin
        else:
            return None
        if load is None or not is_tokenizer_class(load.cls):
            return None
        return method, load, deps

    # ------------------------------------------------------------------ the decision

    def _check(self, call: cst.Call, model: Tuple[Load, Deps]) -> None:
        if id(call) in self._reported:
            return
        ctx = self.ctx
        tokenizer = self._tokenizer(call)
        if tokenizer is None or ctx.has_star_args(call):
            return
        method, tok_load, tok_deps = tokenizer
        model_load, model_deps = model
        text = ctx.argument(call, 0, TEXT_PARAMETER[method])
        pair = ctx.argument(call, 1, "text_pair") if method != "batch_encode_plus" else None
        if text is None or (_is_literal_text(ctx, text) and (pair is None or _is_literal_text(ctx, pair))):
            return  # texts of known length (a literal question with a variable context is checked)
        if _is_cut(text):
            return  # tok(text[:1000]): the caller limits the length on purpose
        if ctx.keyword(call, "stride") is not None or ctx.keyword(call, "return_overflowing_tokens") is not None:
            return
        family = self._family(model_load, tok_load)
        if family is not None and family.exempt:
            return

        truncation = ctx.keyword(call, "truncation")
        max_length = ctx.keyword(call, "max_length")
        max_value = _literal(max_length.value) if max_length is not None else None
        if max_length is not None and max_value is None:
            max_length = None  # max_length=None is no max_length
        if truncation is not None:
            value = _literal(truncation.value)
            truncates = value is _UNKNOWN or value not in NO_TRUNCATION
        elif max_length is not None:
            padding = ctx.keyword(call, "padding")
            pad_value = _literal(padding.value) if padding is not None else False
            # max_length without truncation truncates only when nothing is padded (measured)
            truncates = pad_value is _UNKNOWN or pad_value in NO_PADDING
        else:
            strategy = ctx.keyword(call, "truncation_strategy")  # transformers 2-4 spelling
            truncates = strategy is not None and _literal(strategy.value) != "do_not_truncate"

        message: Optional[str] = None
        fix: Optional[Fix] = None
        if truncates:
            limit = family.max_positions if family is not None else None
            if not (
                limit is not None
                and isinstance(max_value, int)
                and not isinstance(max_value, bool)
                and max_value > limit
            ):
                return
            message = (
                f"max_length={max_value} exceeds the {limit} positions of the {family.name} model; "
                f"inputs longer than {limit} tokens crash (IndexError, size-mismatch RuntimeError or "
                f"CUDA assert); use max_length={limit} or less"
            )
        else:
            if family is None:
                if model_load.cls not in ENCODER_AUTO_CLASSES:
                    return
            else:
                message = self.message.replace("(e.g. 512)", f"({family.max_positions} for {family.name})")
            fix = Fix(
                "Add truncation=True (long inputs lose their tail)",
                [(call, _with_truncation(call))],
                FixKind.UNSAFE,
            )
        self._reported.add(id(call))
        deps = tuple(model_deps) + tuple(tok_deps)
        if deps:
            self._pending.setdefault(deps[0][0], []).append((deps, call, message, fix))
        else:
            self.report(call, message, fix=fix)

    @staticmethod
    def _family(model_load: Load, tok_load: Load) -> Optional[Family]:
        """The model's family by its checkpoint, else by its class, else the tokenizer's."""
        for load in (model_load, tok_load):
            family = family_of_checkpoint(load.checkpoint) if load.checkpoint else None
            if family is None:
                family = family_of_class(load.cls)
            if family is not None:
                return family
        return None


# ---------------------------------------------------------------------- helpers


def _subtree(node: Any) -> Any:
    yield node
    for child in children(node):
        yield from _subtree(child)


def _leaves(body: Any) -> bool:
    """Whether a block ends the path: a return, continue, break or raise among its statements."""
    if isinstance(body, cst.SimpleStatementSuite):
        lines = [body.body]
    else:
        lines = [stmt.body for stmt in body.body if isinstance(stmt, cst.SimpleStatementLine)]
    return any(isinstance(small, (cst.Return, cst.Continue, cst.Break, cst.Raise)) for line in lines for small in line)


def _is_cut(node: Any) -> bool:
    """``text[:n]`` / ``text[a:b]``: a slice with an upper bound."""
    return (
        isinstance(node, cst.Subscript)
        and len(node.slice) == 1
        and isinstance(node.slice[0].slice, cst.Slice)
        and node.slice[0].slice.upper is not None
    )


def _is_self(node: Any) -> bool:
    return isinstance(node, cst.Name) and node.value == "self"


def _is_input_ids_key(node: cst.Subscript) -> bool:
    if len(node.slice) != 1:
        return False
    index = node.slice[0].slice
    return (
        isinstance(index, cst.Index)
        and isinstance(index.value, cst.SimpleString)
        and index.value.evaluated_value == "input_ids"
    )


def _literal(node: Any) -> Any:
    """The value of a True/False/None, int or plain-string literal, else _UNKNOWN."""
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, cst.Integer):
        return int(node.value.replace("_", ""), 0)
    if isinstance(node, cst.SimpleString):
        return node.evaluated_value
    return _UNKNOWN


def _is_literal_text(ctx: Any, node: Any) -> bool:
    """A text of known length: a string literal (an f-string may insert only special tokens such
    as ``{tok.mask_token}``), or a list/tuple of them, directly or through a name assigned once."""
    node = ctx.resolve(node)
    if isinstance(node, (cst.List, cst.Tuple)) and node.elements:
        return all(isinstance(e, cst.Element) and _is_literal_string(e.value) for e in node.elements)
    return _is_literal_string(node)


def _is_literal_string(node: Any) -> bool:
    if isinstance(node, cst.SimpleString):
        return True
    if isinstance(node, cst.ConcatenatedString):
        return _is_literal_string(node.left) and _is_literal_string(node.right)
    if isinstance(node, cst.FormattedString):
        return all(
            isinstance(part, cst.FormattedStringText)
            or (
                isinstance(part.expression, cst.Attribute)
                and part.expression.attr.value.endswith("_token")
            )
            for part in node.parts
        )
    return False


def _with_truncation(call: cst.Call) -> cst.Call:
    """``call`` with ``truncation=True``: an existing falsy truncation= is switched on, else the
    keyword is appended, following the call's one-line or one-argument-per-line layout."""
    args = list(call.args)
    for i, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == "truncation":
            args[i] = arg.with_changes(value=cst.Name("True"))
            return call.with_changes(args=args)
    new = cst.Arg(
        keyword=cst.Name("truncation"),
        value=cst.Name("True"),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
        separator = args[-2].comma.whitespace_after
    elif isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        separator = call.whitespace_before_args
    else:
        separator = cst.SimpleWhitespace(" ")
    if isinstance(last.comma, cst.Comma):  # a trailing comma stays trailing
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=separator))
        new = new.with_changes(comma=last.comma)
    else:
        args[-1] = last.with_changes(
            comma=cst.Comma(whitespace_after=separator), whitespace_after_arg=cst.SimpleWhitespace("")
        )
        new = new.with_changes(whitespace_after_arg=last.whitespace_after_arg)
    args.append(new)
    return call.with_changes(args=args)
