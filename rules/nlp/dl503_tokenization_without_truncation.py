from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

import libcst as cst

from dllint.context import children

from dllint.fixes import append_keyword
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import (
    Family,
    family_of_checkpoint,
    family_of_class,
    is_model_class,
    is_tokenizer_class,
    pretrained_class,
    strip_self_returning,
)
from dllint.rules.nlp._hf import Checkpoint, checkpoint, items_source, load_of

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

#: Pipeline tasks whose preprocessing does not truncate unless asked (measured on transformers 5.23,
#: ``transformers/pipelines``: TextClassificationPipeline and FeatureExtractionPipeline pass the
#: caller's tokenizer keywords and nothing else, FillMaskPipeline its ``tokenizer_kwargs``).  Not
#: here: token-classification (truncates to ``model_max_length`` by default), zero-shot-classification
#: (``truncation=ONLY_FIRST`` by default), question-answering (windows the context with
#: ``doc_stride``; removed in transformers 5).
UNTRUNCATED_PIPELINE_TASKS = frozenset({"text-classification", "feature-extraction", "fill-mask"})

#: Task aliases of ``pipeline()`` (transformers 5.23 ``pipelines/__init__.py`` TASK_ALIASES).
PIPELINE_TASK_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}

#: The checkpoint ``pipeline(task)`` loads when ``model=`` is absent (transformers 5.23
#: ``pipelines/__init__.py`` SUPPORTED_TASKS "default"; transformers 4 names the same checkpoints
#: without the organisation prefix).  The family table gives their limits (DistilBERT 512,
#: RoBERTa 512).
PIPELINE_DEFAULT_MODELS = {
    "text-classification": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "feature-extraction": "distilbert/distilbert-base-cased",
    "fill-mask": "distilbert/distilroberta-base",
}

#: Keywords of a pipeline (construction or call) that make or may make its tokenizer truncate.
PIPELINE_TRUNCATING_KEYWORDS = ("truncation", "tokenizer_kwargs", "max_length")

#: Words of a variable, attribute or key name that mark a text short by nature (the catalogue's
#: "inputs known to be short (titles, queries)"): ``titles``, ``article.title``, ``row["headline"]``,
#: ``search_query``, ``tweet``.  Such texts are left alone.
SHORT_TEXT_WORDS = frozenset(
    {
        "title", "titles", "headline", "headlines", "query", "queries", "keyword", "keywords",
        "label", "labels", "caption", "captions", "tweet", "tweets", "tag", "tags", "phrase", "phrases",
    }
)

_NAME_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")

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
    #: the checkpoint id as the shared ``_hf.checkpoint`` reads it (literal, constant, parameter
    #: default, f-string stem, argparse / dataclass default), else None
    checkpoint: Optional[Checkpoint]


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

    Also finds a `transformers.pipeline(task, ...)` (a name or `self.<attr>` assigned once, or the
    call itself) called on a text, `pipe(text)`, for the tasks whose preprocessing hands the text
    to the tokenizer without truncation: "text-classification" ("sentiment-analysis"),
    "feature-extraction" and "fill-mask" (measured, transformers 5.23: a 16-position BERT crashes
    in all three on 32 tokens), when neither the construction nor the call passes `truncation=`
    (a falsy literal does not count), `max_length=`, `tokenizer_kwargs=` or `**kwargs`, and the
    model is an encoder family with a position limit: by its `model=` checkpoint (or a model loaded
    from a known checkpoint), or, when `model=` is absent, by the task's default checkpoint
    (transformers 5.23 SUPPORTED_TASKS: distilbert-base-uncased-finetuned-sst-2-english,
    distilbert-base-cased, distilroberta-base; 512 positions each). The text-classification pipeline
    has never truncated by default (transformers#5983, #4501; still so in 5.23), so the rule needs
    no version gate. Left alone: "token-classification" ("ner"), which truncates to
    `model_max_length` by itself (measured; transformers#15177), "zero-shot-classification"
    (`truncation="only_first"` by default), "question-answering" (windows the context with
    `doc_stride`; removed in transformers 5) and the generation tasks. The finding is at the
    pipeline call.

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
    RuntimeError (BERT on transformers 5: "The size of tensor a (32) must match the size of tensor
    b (16)", measured on a 16-position model) or a CUDA device-side assert. The warning is printed
    only when the tokenizer knows `model_max_length`, and the crash waits for the first long input,
    often in production rather than in a test on short sentences.

    How to fix: pass `truncation=True` (and `max_length=` up to the model's limit), or split long
    inputs into windows with `stride=` and `return_overflowing_tokens=True`. `truncation=True`
    without `max_length` truncates to the tokenizer's `model_max_length`, which hub checkpoints
    set (512 for bert-base-uncased) but a tokenizer built from a bare vocabulary file does not.
    For a pipeline: `pipeline(task, ..., truncation=True)` or `pipe(text, truncation=True)`; the
    fill-mask pipeline takes no `truncation=` (TypeError, measured) but
    `tokenizer_kwargs={"truncation": True}`.

    Fix: suggested (unsafe): adds `truncation=True` to the tokenizer call or to the
    text-classification / feature-extraction pipeline call (or turns `truncation=False` into
    `True`). It changes results for long inputs, which lose their tail; chunking may be what is
    wanted. No automatic fix for a `max_length` above the limit or for the fill-mask pipeline.

    Model families come from the shared family table (`_checkpoints`): the model's checkpoint as
    the shared `_hf.checkpoint` reads it (a literal, a module constant, a parameter default, an
    f-string's literal stem, an argparse `default=` or dataclass field default read through
    `args.<name>`, `args.tokenizer_name or args.model_name_or_path` when the first defaults to
    None) decides, else the concrete model class, else the tokenizer's checkpoint or class; the
    limit is the family's `max_positions`, and families the table marks exempt are left alone: T5
    (relative positions), DeBERTa and XLNet (relative), rotary / ALiBi decoders (Llama, Mistral,
    Qwen, Gemma, Phi, Pythia, GPT-J, BLOOM, Falcon) and long-context families (Longformer,
    BigBird, LED). With an unknown family the rule reports a tokenizer call only for encoder Auto
    classes (`AutoModel`, `AutoModelFor{SequenceClassification,TokenClassification,
    QuestionAnswering,MaskedLM,...}`), whose checkpoints have learned absolute positions in
    practice, and never a pipeline.

    Stays silent when the call truncates (`truncation=True`, `"longest_first"`, `"only_first"`, a
    non-literal value), passes `**kwargs`, windows the input (`stride=`,
    `return_overflowing_tokens=`), encodes texts of known length that fit (string literals, lists
    of them, the variable of a `for` loop over such a list, an f-string that only inserts special
    tokens such as `{tok.mask_token}`, `"..." * n`; a literal question with a variable `text_pair`
    is still checked; a literal is reported only when its whitespace-separated words alone, each at
    least one token, exceed the family's limit), texts named as short by nature (a variable,
    attribute or key whose words include title, headline, query, keyword, label, caption, tweet,
    tag or phrase: `titles`, `article.title`, `row["headline"]`; a long `text_pair` beside such a
    text is still checked), when the ids or the text are sliced before the
    model (`ids[:, :512]`, `text[:1000]`), when a length test on them leaves the block
    (`if len(ids) > 512: continue`), when the result never reaches a model, when the tokenizer or
    the model has no single known origin (a parameter, a pipeline's `.tokenizer`, a name or
    attribute assigned twice, an attribute of another object), and for the exempt families.

    Limits: the flow is followed inside one file, through names assigned once (in source order)
    and one level of `self.<attr>`; tokenizers applied through `datasets.map`, collators or helper
    functions are not checked. Inputs that are short by nature (titles, queries, tweets) cannot be
    told apart from documents. `truncation=True` without `max_length` relies on the tokenizer's
    `model_max_length`, which the rule takes on trust.
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
            "https://github.com/huggingface/transformers/issues/5983",
            "https://github.com/huggingface/transformers/issues/4501",
        ),
    )
    triggers = ("from_pretrained", "pipeline(")
    frameworks = ("transformers",)

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
        Valid(dedent("""
            from transformers import pipeline
            classifier = pipeline("sentiment-analysis", truncation=True)
            result = classifier(review)
            """), "the pipeline truncates: truncation=True at construction"),
        Valid(dedent("""
            from transformers import pipeline
            extractor = pipeline("feature-extraction", model="bert-base-uncased")
            vectors = extractor(doc, truncation=True)
            """), "truncation=True in the pipeline call"),
        Valid(dedent("""
            from transformers import pipeline
            ner = pipeline("ner", model="dslim/bert-base-NER", aggregation_strategy="simple")
            entities = ner(article)
            """), "the token-classification pipeline truncates to model_max_length by itself"),
        Valid(dedent("""
            from transformers import pipeline
            classifier = pipeline("sentiment-analysis")
            print(classifier("I loved this movie!"))
            """), "a literal text of known, short length"),
        Valid(dedent("""
            from transformers import pipeline
            clf = pipeline("text-classification", model="allenai/longformer-base-4096")
            label = clf(report)
            """), "long-context family behind the pipeline"),
        Valid(dedent("""
            from transformers import pipeline
            unmasker = pipeline("fill-mask", model="roberta-base", tokenizer_kwargs={"truncation": True})
            guesses = unmasker(text)
            """), "fill-mask pipeline truncating through tokenizer_kwargs"),
        Valid(dedent("""
            from transformers import pipeline
            clf = pipeline("text-classification", model=model_path)
            label = clf(doc)
            """), "unknown checkpoint behind the pipeline"),
        Valid(dedent("""
            import torch
            import transformers
            data = [
                "A multilayer perceptron (MLP) is a class of feedforward artificial neural network.",
                "Hello World",
            ]
            model = transformers.GPT2LMHeadModel.from_pretrained("gpt2")
            tok = transformers.GPT2Tokenizer.from_pretrained("gpt2")
            for dat in data:
                toks = tok.encode(dat, return_tensors="pt")
                logits = model(toks)[0]
            """), "loop over a literal list of short texts"),
        Valid(dedent("""
            from transformers import BertModel, BertTokenizer
            tokenizer = BertTokenizer.from_pretrained("bert-base-uncased")
            model = BertModel.from_pretrained("bert-base-uncased")
            sentences = ["The quick brown fox jumps over the lazy dog", "I am the king"]
            first = tokenizer(sentences[0], return_tensors="pt")
            second = tokenizer(sentences[1], return_tensors="pt")
            out1, out2 = model(**first), model(**second)
            """), "one text of a literal list, by index: its length is known"),
        Valid(dedent("""
            from transformers import pipeline
            classifier = pipeline("sentiment-analysis")
            def score(articles):
                titles = [article.title for article in articles]
                return classifier(titles)
            """), "titles are short by nature"),
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
        Invalid(
            dedent("""
                from transformers import pipeline
                classifier = pipeline("sentiment-analysis")
                result = classifier(review)
                """),
            fixed=dedent("""
                from transformers import pipeline
                classifier = pipeline("sentiment-analysis")
                result = classifier(review, truncation=True)
                """),
            unsafe=True,
            note="text-classification pipeline over its default DistilBERT (512 positions) does not truncate",
        ),
        Invalid(
            dedent("""
                from transformers import AutoModel, AutoTokenizer, pipeline
                model = AutoModel.from_pretrained("bert-base-uncased")
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                extractor = pipeline("feature-extraction", model=model, tokenizer=tok)
                for doc in corpus:
                    vectors = extractor(doc)
                """),
            fixed=dedent("""
                from transformers import AutoModel, AutoTokenizer, pipeline
                model = AutoModel.from_pretrained("bert-base-uncased")
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                extractor = pipeline("feature-extraction", model=model, tokenizer=tok)
                for doc in corpus:
                    vectors = extractor(doc, truncation=True)
                """),
            unsafe=True,
            note="feature-extraction pipeline over a model loaded from a known checkpoint",
        ),
        Invalid(
            dedent("""
                from transformers import pipeline
                unmasker = pipeline("fill-mask")
                guesses = unmasker(text)
                """),
            note="fill-mask takes tokenizer_kwargs, not truncation=: reported, no automatic fix",
        ),
        Invalid(
            dedent("""
                from transformers import pipeline
                classifier = pipeline("sentiment-analysis")
                review = "The plot was slow but the acting was great. " * 150
                result = classifier(review)
                """),
            fixed=dedent("""
                from transformers import pipeline
                classifier = pipeline("sentiment-analysis")
                review = "The plot was slow but the acting was great. " * 150
                result = classifier(review, truncation=True)
                """),
            unsafe=True,
            note="a literal whose words alone (9 x 150) exceed the 512 positions",
        ),
        Invalid(
            dedent("""
                import argparse
                from transformers import AutoTokenizer, AutoModelForCausalLM
                parser = argparse.ArgumentParser()
                parser.add_argument("--model_name_or_path", default="gpt2")
                args = parser.parse_args()
                tok = AutoTokenizer.from_pretrained(args.model_name_or_path)
                lm = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
                out = lm.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=20)
                """),
            fixed=dedent("""
                import argparse
                from transformers import AutoTokenizer, AutoModelForCausalLM
                parser = argparse.ArgumentParser()
                parser.add_argument("--model_name_or_path", default="gpt2")
                args = parser.parse_args()
                tok = AutoTokenizer.from_pretrained(args.model_name_or_path)
                lm = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
                out = lm.generate(**tok(prompt, return_tensors="pt", truncation=True), max_new_tokens=20)
                """),
            unsafe=True,
            note="the checkpoint is the argparse default: GPT-2, 1024 positions",
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
        #: the ``for`` loops the walk is inside, innermost last (a loop variable over a literal list
        #: of strings is a text of known length)
        self._loops: List[cst.For] = []

    # ------------------------------------------------------------------ the model call

    def visit_Call(self, node: cst.Call) -> None:
        if not self.ctx.imports("transformers"):
            return
        self._check_pipeline(node)
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

    # ------------------------------------------------------------------ loops over literal texts

    def visit_For(self, node: cst.For) -> None:
        self._loops.append(node)

    def leave_For(self, node: cst.For) -> None:
        if self._loops and self._loops[-1] is node:
            self._loops.pop()

    def _known_length(self, node: Any) -> Optional[int]:
        """A lower bound of the tokens of a text of known length (see ``_literal_words``), also
        for the variable of an enclosing ``for`` loop over a literal list of strings; None when the
        text is not known."""
        if isinstance(node, cst.Name):
            bindings = self.ctx.lookup(node.value)
            if bindings and len(bindings) == 1 and bindings[0].kind == "other" and bindings[0].value is None:
                for loop in reversed(self._loops):
                    if isinstance(loop.target, cst.Name) and loop.target.value == node.value:
                        items = self.ctx.resolve(loop.iter)
                        if isinstance(items, (cst.List, cst.Tuple)) and items.elements:
                            return _literal_words(self.ctx, items)
                        return None
        return _literal_words(self.ctx, node)

    def _short_by_name(self, node: Any, depth: int = 0) -> bool:
        """Whether a text is named as short by nature (``SHORT_TEXT_WORDS``): its variable, attribute
        or key, what a name assigned once holds, the list a comprehension or a ``for`` loop takes it
        from, through ``.strip()``-like calls and indexing."""
        if node is None or depth > 4:
            return False
        if isinstance(node, cst.Name):
            if _name_words(node.value) & SHORT_TEXT_WORDS:
                return True
            value = self.ctx.assigned_value(node)
            if value is not None:
                return self._short_by_name(value, depth + 1)
            for loop in reversed(self._loops):
                if isinstance(loop.target, cst.Name) and loop.target.value == node.value:
                    return self._short_by_name(loop.iter, depth + 1)
            return False
        if isinstance(node, cst.Attribute):
            return bool(_name_words(node.attr.value) & SHORT_TEXT_WORDS)
        if isinstance(node, cst.Subscript):
            if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
                key = _literal(node.slice[0].slice.value)
                if isinstance(key, str):
                    return bool(_name_words(key) & SHORT_TEXT_WORDS)
            return self._short_by_name(node.value, depth + 1)
        if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            return self._short_by_name(node.elt, depth + 1)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and not node.args:
            return self._short_by_name(node.func.value, depth + 1)  # title.strip(), q.lower()
        return False

    # ------------------------------------------------------------------ pipelines

    def _check_pipeline(self, node: cst.Call) -> None:
        """``pipe(text)`` for a ``pipeline(task)`` whose preprocessing does not truncate, over an
        encoder family with a position limit, with no truncation at construction or in the call."""
        func = node.func
        if not isinstance(func, (cst.Name, cst.Attribute, cst.Call)) or id(node) in self._reported:
            return
        ctx = self.ctx
        pipe = load_of(ctx, func)
        if pipe is None or pipe.kind != "pipeline":
            return
        made = pipe.node
        task_arg = ctx.argument(made, 0, "task")
        task = _literal(ctx.resolve(task_arg)) if task_arg is not None else None
        if not isinstance(task, str):
            return
        task = PIPELINE_TASK_ALIASES.get(task, task)
        if task not in UNTRUNCATED_PIPELINE_TASKS:
            return
        for call in (made, node):
            if ctx.has_star_args(call):
                return
            for name in PIPELINE_TRUNCATING_KEYWORDS:
                arg = ctx.keyword(call, name)
                if arg is not None and not (name == "truncation" and _literal(arg.value) in NO_TRUNCATION):
                    return
        family = self._pipeline_family(made, task)
        if family is None or family.exempt or family.max_positions is None or family.architecture != "encoder":
            return
        text = ctx.argument(node, 0, "inputs")
        if text is None or _is_cut(text):
            return
        if isinstance(text, cst.Name) and text.value in self._guarded.get(id(self._scope()), set()):
            return  # if len(text) > N: continue
        known = self._known_length(text)
        limit = family.max_positions
        if known is not None and known <= limit:
            return
        if known is None and self._short_by_name(text):
            return  # titles, queries, tweets: short by nature
        if task == "fill-mask":
            advice = 'pass tokenizer_kwargs={"truncation": True}'
            fix = None
        else:
            advice = "pass truncation=True to the pipeline or to the call"
            fix = Fix(
                "Add truncation=True to the pipeline call (long inputs lose their tail)",
                [(node, _with_truncation(node))],
                FixKind.UNSAFE,
            )
        message = (
            f'pipeline("{task}") does not truncate by default: a text longer than the {limit} positions of the '
            f"{family.name} model crashes (IndexError, size-mismatch RuntimeError or CUDA assert); {advice}, "
            f"or chunk long inputs"
        )
        self._reported.add(id(node))
        self.report(node, message, fix=fix)

    def _pipeline_family(self, made: cst.Call, task: str) -> Optional[Family]:
        """The family of the pipeline's model: its ``model=`` checkpoint (or a model loaded from a
        known checkpoint), else the task's default checkpoint when ``model=`` is absent."""
        model = self.ctx.argument(made, 1, "model")
        if model is None:
            return family_of_checkpoint(PIPELINE_DEFAULT_MODELS[task])
        ckpt = checkpoint(self.ctx, model)
        if ckpt is not None:
            return ckpt.family
        loaded = load_of(self.ctx, model)
        if loaded is not None and loaded.kind == "model":
            return loaded.family
        return None

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
        source = self.ctx.argument(value, 0, "pretrained_model_name_or_path")
        return Load(value, cls, checkpoint(self.ctx, source) if source is not None else None)

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
                expr = items_source(expr)
                if expr is None:
                    return None
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
        if text is None or _is_cut(text):
            return  # tok(text[:1000]): the caller limits the length on purpose
        if ctx.keyword(call, "stride") is not None or ctx.keyword(call, "return_overflowing_tokens") is not None:
            return
        family = self._family(model_load, tok_load)
        if family is not None and family.exempt:
            return
        known = self._known_length(text)
        known_pair = self._known_length(pair) if pair is not None else 0
        if known is not None and known_pair is not None:
            # texts of known length (a literal question with a variable context is checked): only
            # one certainly longer than the family's limit is reported
            limit = family.max_positions if family is not None else None
            if limit is None or known + known_pair <= limit:
                return
        elif (known is not None or self._short_by_name(text)) and (
            pair is None or known_pair is not None or self._short_by_name(pair)
        ):
            return  # titles, queries, tweets: short by nature (a long context beside them is checked)

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
            family = load.checkpoint.family if load.checkpoint is not None else None
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


def _name_words(name: str) -> Set[str]:
    """The lower-case words of an identifier or key: ``news_titles`` -> {news, titles},
    ``searchQuery`` -> {search, query}."""
    return {word.lower() for part in name.split("_") for word in _NAME_WORDS.findall(part)}


def _literal_words(ctx: Any, node: Any) -> Optional[int]:
    """For a text of known length, a lower bound of its tokens: the whitespace-separated words of a
    string literal (every word gives at least one token with WordPiece, BPE and SentencePiece
    vocabularies), an f-string that only inserts special tokens such as ``{tok.mask_token}`` (one
    token each), ``"..." * 150``, ``a + b``; for a list or tuple of texts (a batch), the longest.
    Names assigned once are followed.  None when the text is not known."""
    node = ctx.resolve(node) if isinstance(node, cst.Name) else node
    if isinstance(node, cst.Subscript):
        # ``sentences[0]`` of a list or tuple literal assigned once and never grown: one of its texts
        return _literal_words(ctx, _literal_container(ctx, node))
    if isinstance(node, (cst.List, cst.Tuple)):
        if not node.elements:
            return None
        longest = 0
        for element in node.elements:
            if not isinstance(element, cst.Element):
                return None
            words = _literal_words(ctx, element.value)
            if words is None:
                return None
            longest = max(longest, words)
        return longest
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return len(value.split()) if isinstance(value, str) else None
    if isinstance(node, cst.ConcatenatedString):
        left, right = _literal_words(ctx, node.left), _literal_words(ctx, node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, cst.FormattedString):
        words = 0
        for part in node.parts:
            if isinstance(part, cst.FormattedStringText):
                words += len(part.value.split())
            elif isinstance(part.expression, cst.Attribute) and part.expression.attr.value.endswith("_token"):
                words += 1
            else:
                return None
        return words
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Multiply):
            for text, times in ((node.left, node.right), (node.right, node.left)):
                count = _literal(times)
                if isinstance(count, int) and not isinstance(count, bool):
                    words = _literal_words(ctx, text)
                    return None if words is None else words * max(count, 0)
            return None
        if isinstance(node.operator, cst.Add):
            left, right = _literal_words(ctx, node.left), _literal_words(ctx, node.right)
            return None if left is None or right is None else left + right
    return None


def _literal_container(ctx: Any, node: cst.Subscript) -> Any:
    """For ``texts[i]`` (one index), the list or tuple literal ``texts`` holds when the name is
    assigned once and the file never grows or rewrites it (``texts.append(...)``,
    ``texts[i] = ...``, ``texts += ...``); else None."""
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    if not isinstance(node.value, cst.Name):
        return None
    container = ctx.resolve(node.value)
    if not isinstance(container, (cst.List, cst.Tuple)):
        return None
    name = re.escape(node.value.value)
    grown = re.compile(
        rf"\b{name}\s*(?:\.\s*(?:append|extend|insert)\s*\(|\[[^\]]*\]\s*=[^=]|\+=|\*=)"
    )
    if grown.search(ctx.source or ""):
        return None
    return container


def _with_truncation(call: cst.Call) -> cst.Call:
    """``call`` with ``truncation=True``: an existing falsy truncation= is switched on, else the
    keyword is appended, following the call's one-line or one-argument-per-line layout."""
    args = list(call.args)
    for i, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == "truncation":
            args[i] = arg.with_changes(value=cst.Name("True"))
            return call.with_changes(args=args)
    return append_keyword(call, "truncation", cst.Name("True"))
