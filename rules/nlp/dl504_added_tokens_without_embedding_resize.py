from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._hf import Load, keyword_value, literal, load_of

ADD_METHODS = frozenset({"add_tokens", "add_special_tokens"})

SENTENCE_TRANSFORMERS = frozenset(
    {
        "sentence_transformers.SentenceTransformer",
        "sentence_transformers.SentenceTransformer.SentenceTransformer",
    }
)

#: Words whose presence anywhere in the file means the embeddings may be resized: the method
#: itself and the trl helpers that add tokens and resize together.
RESIZE_WORDS = ("resize_token_embeddings", "setup_chat_format", "clone_chat_template")

#: trl trainers that replace pad ids by 0 before the forward pass (trl/experimental/ppo).
PAD_MASKING_TRAINERS = ("PPOTrainer",)

#: Library prefixes whose functions do not resize a model they are given.
NON_RESIZING_LIBRARIES = ("transformers.", "trl.", "torch.", "datasets.", "peft.", "accelerate.")


@dataclass
class _Add:
    call: cst.Call
    receiver: str  # dotted spelling of the tokenizer (``tok``, ``model.tokenizer``)
    tok_is_name: bool
    #: the statement line holding the call as its whole value, and the block it is in
    line: Optional[cst.SimpleStatementLine]
    block: Any
    #: for a SentenceTransformer's tokenizer: the spelling of the SentenceTransformer
    st_model: Optional[str] = None
    #: the call adds a pad token and nothing else
    pad_only: bool = False


class AddedTokensWithoutEmbeddingResize(Rule):
    """Tokens added to a tokenizer while the model's embedding matrix keeps its old size.

    Finds `tok.add_tokens(...)` / `tok.add_special_tokens({...})` on a transformers tokenizer
    (a name assigned from `AutoTokenizer.from_pretrained(...)` or a concrete `*Tokenizer*` class,
    also `self.<attr>` assigned once in its class), when a transformers model loaded with
    `from_pretrained` is a name of the same function (or of the module, for top-level code)
    that is used after the add, and the file never calls `resize_token_embeddings` on any
    model (nor trl's `setup_chat_format` / `clone_chat_template`, which resize). Also the same
    on a sentence-transformers model: `st.tokenizer.add_special_tokens(...)` where
    `st = SentenceTransformer(...)` is used afterwards. The finding is at the last add call of the
    tokenizer in that scope.

    Why it is a bug: the new tokens get ids `len(vocab)`, `len(vocab) + 1`, ..., past the last
    row of the model's input embedding matrix. The first input that contains one fails with
    `IndexError: index out of range in self` (a device-side assert on CUDA)
    (transformers#1062, #11102, #12763; sentence-transformers#744; mickeysjm/R-BERT#5). Measured,
    transformers 5.23: a tiny BERT with a 100-row embedding raises the IndexError on an added
    token; `model.resize_token_embeddings(len(tok))` makes it run.

    How to fix: call `model.resize_token_embeddings(len(tok))` after adding the tokens (and after
    loading the model); for a SentenceTransformer,
    `st._first_module().auto_model.resize_token_embeddings(len(st.tokenizer))`.

    Fix: safe when the tokenizer and the single candidate model are plain names whose add
    statement and model assignment sit in the same block: inserts
    `<model>.resize_token_embeddings(len(<tok>))` after the later of the two. For a
    SentenceTransformer the inserted line is suggested (unsafe): its first module may not be a
    transformers model.

    Not an add: `tok.pad_token = "[PAD]"` (measured, transformers 5.23: a pad token string that
    is not in the vocabulary maps to the unknown token's id and the vocabulary does not grow),
    `tok.pad_token = tok.eos_token`, `tok.add_special_tokens({"pad_token": tok.eos_token})`
    (only existing tokens named).

    Stays silent when `resize_token_embeddings` appears anywhere in the file, when the model and
    the tokenizer are passed together to a helper function after the add (it may resize), when
    no model loaded with `from_pretrained` is a name of the same scope and used after the add,
    when the tokenizer is not known to be a transformers tokenizer, and when only a pad token
    is added and the tokenizer goes to trl's `PPOTrainer`, which replaces pad ids by 0 before
    every forward pass (`torch.masked_fill(queries, ~attention_mask, 0)`), so the new id never
    reaches the embedding.

    Also silent when every such model is loaded with `trust_remote_code` (True or a value not
    known to be False): a model running its repository's own modeling code sets its own embedding
    size, and such repositories often reserve rows past the tokenizer's length for tokens their
    instructions register at load (Yuan 2.0's recipe `tok.add_tokens(["<sep>", "<pad>", ...],
    special_tokens=True)` with no resize, copied into many projects, works because the model
    already has those rows).

    Limits: adding a token that the vocabulary already has adds nothing, which cannot be told
    statically (such files are reported); a model loaded from a directory saved after resizing
    is fine, but one loaded in the same scope as an add is reported. Tokenizers and models in
    different files (the add in a `load_tokenizer()` helper of another module) are not seen.
    """

    code = "DL504"
    name = "added-tokens-without-embedding-resize"
    family = "nlp"
    message = (
        "tokens were added to the tokenizer but the model's embedding matrix was not resized; "
        "new ids will index out of range"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(e) Pan et al., bugs found while reusing pretrained NLP models",
        category="limited access to model internals: vocabulary grown without resizing the embeddings",
        links=(
            "https://github.com/huggingface/transformers/issues/1062",
            "https://github.com/huggingface/transformers/issues/12763",
            "https://github.com/huggingface/transformers/issues/11102",
            "https://github.com/huggingface/transformers/pull/10331",
            "https://github.com/huggingface/sentence-transformers/issues/744",
            "https://github.com/mickeysjm/R-BERT/issues/5",
        ),
    )
    triggers = ("add_tokens", "add_special_tokens")
    frameworks = ("transformers", "sentence_transformers")

    VALID = (
        Valid(dedent("""
            from transformers import AutoModelForCausalLM, AutoTokenizer
            def load(path, remote=True):
                tok = AutoTokenizer.from_pretrained(path, eos_token="<eod>")
                tok.add_tokens(["<sep>", "<pad>", "<mask>"], special_tokens=True)
                model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=remote)
                return model, tok
            """), "a remote-code model: its own embedding holds the tokens its recipe registers"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            tok.add_tokens(["<new>"])
            model.resize_token_embeddings(len(tok))
            out = model(**tok("a <new> token", return_tensors="pt"))
            """), "resized after the add"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForCausalLM
            tok = AutoTokenizer.from_pretrained("gpt2")
            model = AutoModelForCausalLM.from_pretrained("gpt2")
            tok.pad_token = tok.eos_token
            out = model.generate(**tok(prompts, padding=True, return_tensors="pt"))
            """), "an existing token reused as the pad token: nothing added"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForCausalLM
            tok = AutoTokenizer.from_pretrained("gpt2")
            model = AutoModelForCausalLM.from_pretrained("gpt2")
            tok.add_special_tokens({"pad_token": tok.eos_token})
            out = model.generate(**tok(prompts, padding=True, return_tensors="pt"))
            """), "add_special_tokens naming only an existing token"),
        Valid(dedent("""
            from transformers import AutoTokenizer
            def load_tokenizer(path):
                tok = AutoTokenizer.from_pretrained(path)
                tok.add_special_tokens({"additional_special_tokens": ["<e1>", "</e1>"]})
                return tok
            """), "no model in this scope (resized elsewhere, or not)"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            def grow(tok, model, words):
                tok.add_tokens(words)
                model.resize_token_embeddings(len(tok))
            grow(tok, model, ["<x>"])
            """), "resized by a helper of the same file"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForCausalLM
            from mylib import add_tokens_and_resize
            tok = AutoTokenizer.from_pretrained("gpt2")
            model = AutoModelForCausalLM.from_pretrained("gpt2")
            tok.add_tokens(["<x>"])
            add_tokens_and_resize(model, tok)
            model.generate(**tok("<x>", return_tensors="pt"))
            """), "model and tokenizer handed to a helper that may resize"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModel
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            out = model(**tok(text, return_tensors="pt"))
            tok.add_tokens(["<later>"])
            tok.save_pretrained("out")
            """), "the model is not used after the add"),
        Valid(dedent("""
            from transformers import AutoModel
            model = AutoModel.from_pretrained("bert-base-uncased")
            tok = make_tokenizer()
            tok.add_tokens(["<x>"])
            out = model(**tok("<x>", return_tensors="pt"))
            """), "the tokenizer is not known to be a transformers tokenizer"),
        Valid(dedent("""
            from transformers import AutoTokenizer, AutoModelForCausalLM
            from trl.experimental.ppo import PPOTrainer
            tokenizer = AutoTokenizer.from_pretrained(args.sft_model_path, padding_side="left")
            tokenizer.add_special_tokens({"pad_token": "[PAD]"})
            policy = AutoModelForCausalLM.from_pretrained(args.sft_model_path)
            trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=None)
            """), "only a pad token, and trl's PPOTrainer replaces pad ids by 0 before every forward pass"),
    )

    INVALID = (
        Invalid(
            dedent("""
                from transformers import BertTokenizer, BertModel
                tok = BertTokenizer.from_pretrained("bert-base-uncased")
                model = BertModel.from_pretrained("bert-base-uncased")
                tok.add_special_tokens({"additional_special_tokens": ["<e1>", "</e1>"]})
                out = model(**tok(text, return_tensors="pt"))
                """),
            fixed=dedent("""
                from transformers import BertTokenizer, BertModel
                tok = BertTokenizer.from_pretrained("bert-base-uncased")
                model = BertModel.from_pretrained("bert-base-uncased")
                tok.add_special_tokens({"additional_special_tokens": ["<e1>", "</e1>"]})
                model.resize_token_embeddings(len(tok))
                out = model(**tok(text, return_tensors="pt"))
                """),
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                def main(path):
                    tokenizer = AutoTokenizer.from_pretrained(path)
                    tokenizer.add_tokens(["<code>", "</code>"])
                    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
                    model = AutoModelForCausalLM.from_pretrained(path)
                    model.train()
                    return model
                """),
            fixed=dedent("""
                from transformers import AutoTokenizer, AutoModelForCausalLM
                def main(path):
                    tokenizer = AutoTokenizer.from_pretrained(path)
                    tokenizer.add_tokens(["<code>", "</code>"])
                    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
                    model = AutoModelForCausalLM.from_pretrained(path)
                    model.resize_token_embeddings(len(tokenizer))
                    model.train()
                    return model
                """),
            note="two adds, one finding at the last; the model is loaded after them",
        ),
        Invalid(
            dedent("""
                from sentence_transformers import SentenceTransformer
                model = SentenceTransformer("bert-base-nli-mean-tokens")
                special_tokens_dict = {"additional_special_tokens": ["[USR]", "[SYS]"]}
                model.tokenizer.add_special_tokens(special_tokens_dict)
                embeddings = model.encode(turns)
                """),
            fixed=dedent("""
                from sentence_transformers import SentenceTransformer
                model = SentenceTransformer("bert-base-nli-mean-tokens")
                special_tokens_dict = {"additional_special_tokens": ["[USR]", "[SYS]"]}
                model.tokenizer.add_special_tokens(special_tokens_dict)
                model._first_module().auto_model.resize_token_embeddings(len(model.tokenizer))
                embeddings = model.encode(turns)
                """),
            unsafe=True,
            note="a SentenceTransformer's tokenizer (sentence-transformers#744)",
        ),
        Invalid(
            dedent("""
                from transformers import AutoTokenizer, AutoModelForSequenceClassification, Trainer
                tok = AutoTokenizer.from_pretrained("roberta-base")
                model = AutoModelForSequenceClassification.from_pretrained("roberta-base")
                if tok.pad_token is None:
                    tok.add_special_tokens({"pad_token": "<pad>"})
                trainer = Trainer(model=model, processing_class=tok)
                """),
            note="the add is inside an if: reported without an automatic fix",
        ),
        Invalid(
            dedent("""
                import transformers
                tokenizer = transformers.GPT2Tokenizer.from_pretrained("gpt2")
                lm = transformers.GPT2LMHeadModel.from_pretrained("gpt2")
                n = tokenizer.add_tokens(new_words)
                ids = tokenizer.encode(text, return_tensors="pt")
                logits = lm(ids).logits
                """),
            fixed=dedent("""
                import transformers
                tokenizer = transformers.GPT2Tokenizer.from_pretrained("gpt2")
                lm = transformers.GPT2LMHeadModel.from_pretrained("gpt2")
                n = tokenizer.add_tokens(new_words)
                lm.resize_token_embeddings(len(tokenizer))
                ids = tokenizer.encode(text, return_tensors="pt")
                logits = lm(ids).logits
                """),
        ),
    )

    def __init__(self, ctx: Any, sink: List[Any]) -> None:
        super().__init__(ctx, sink)
        #: id(scope node) -> adds seen in it, in source order
        self._adds: Dict[int, List[_Add]] = {}

    # ------------------------------------------------------------------ collecting the adds

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in ADD_METHODS):
            return
        ctx = self.ctx
        if any(word in ctx.source for word in RESIZE_WORDS):
            return
        receiver = func.value
        spelling = dotted_name(receiver)
        if spelling is None or not self._adds_new_token(node, func.attr.value):
            return
        st_model: Optional[str] = None
        load = load_of(ctx, receiver)
        if load is None or load.kind != "tokenizer":
            st_model = self._sentence_transformer(receiver)
            if st_model is None:
                return
        line, block = self._statement()
        scope = ctx.scope.node
        self._adds.setdefault(id(scope), []).append(
            _Add(node, spelling, isinstance(receiver, cst.Name), line, block, st_model, self._pad_only(node, func.attr.value))
        )

    def _pad_only(self, call: cst.Call, method: str) -> bool:
        """``add_special_tokens({"pad_token": "[PAD]"})``: only a pad token is added."""
        if method != "add_special_tokens":
            return False
        arg = self.ctx.argument(call, 0, "special_tokens_dict")
        value = self.ctx.resolve(arg) if isinstance(arg, cst.Name) else arg
        if not isinstance(value, cst.Dict) or not value.elements:
            return False
        return all(
            isinstance(e, cst.DictElement) and literal(e.key) == "pad_token" for e in value.elements
        )

    def _adds_new_token(self, call: cst.Call, method: str) -> bool:
        """False when the call can only name tokens the tokenizer already has
        (``add_special_tokens({"pad_token": tok.eos_token})``)."""
        ctx = self.ctx
        if method == "add_tokens":
            arg = ctx.argument(call, 0, "new_tokens")
            return arg is not None
        arg = ctx.argument(call, 0, "special_tokens_dict")
        if arg is None:
            return False
        value = ctx.resolve(arg) if isinstance(arg, cst.Name) else arg
        if not isinstance(value, cst.Dict):
            return True
        if not value.elements:
            return False
        for element in value.elements:
            if not isinstance(element, cst.DictElement):
                return True
            if not _existing_token(element.value):
                return True
        return False

    def _sentence_transformer(self, receiver: Any) -> Optional[str]:
        """``st.tokenizer`` where ``st`` is a name holding a ``SentenceTransformer(...)``."""
        if not (isinstance(receiver, cst.Attribute) and receiver.attr.value == "tokenizer"):
            return None
        owner = receiver.value
        if not isinstance(owner, cst.Name):
            return None
        value = self.ctx.assigned_value(owner)
        if isinstance(value, cst.Call) and self.ctx.call_name(value) in SENTENCE_TRANSFORMERS:
            return owner.value
        return None

    def _statement(self) -> Tuple[Optional[cst.SimpleStatementLine], Any]:
        """The statement line holding the call being visited as its whole value, and its block."""
        stack = self.ctx.stack
        if len(stack) < 3:
            return None, None
        small, line, block = stack[-1], stack[-2], stack[-3]
        if not (isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1 and line.body[0] is small):
            return None, None
        if not isinstance(small, (cst.Expr, cst.Assign, cst.AnnAssign)):
            return None, None
        if not isinstance(block, (cst.IndentedBlock, cst.Module)):
            return None, None
        return line, block

    # ------------------------------------------------------------------ deciding at the end of a scope

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._decide(node)

    def leave_Module(self, node: cst.Module) -> None:
        self._decide(node)

    def _decide(self, scope_node: Any) -> None:
        adds = self._adds.pop(id(scope_node), [])
        if not adds:
            return
        last: Dict[str, _Add] = {}
        for add in adds:
            last[add.receiver] = add  # the last add per tokenizer spelling
        for add in last.values():
            if add.st_model is not None:
                self._decide_sentence_transformer(scope_node, add)
            else:
                self._decide_transformers(scope_node, add)

    def _decide_transformers(self, scope_node: Any, add: _Add) -> None:
        ctx = self.ctx
        models: List[Tuple[str, Load, Any]] = []
        for name, bindings in ctx.scope.bindings.items():
            if not any(b.kind == "assign" for b in bindings):
                continue
            load = load_of(ctx, cst.Name(name))
            if load is None or load.kind != "model" or not load.pretrained:
                continue
            creation = next((b.value for b in bindings if b.kind == "assign" and _holds(b.value, load.node)), None)
            models.append((name, load, creation))
        used = [m for m in models if _used_after(scope_node, add.call, m[0])]
        if not used:
            return
        if all(keyword_value(ctx, load.node, "trust_remote_code", False) is not False for _, load, _ in used):
            return  # remote modeling code: its embedding size is the repository's, not the table's
        if any(self._handed_to_helper(scope_node, add, name) for name, _, _ in used):
            return
        if add.pad_only and self._pad_ids_masked(scope_node, add):
            return
        fix = None
        if len(used) == 1 and add.tok_is_name and add.line is not None:
            name, _, creation = used[0]
            anchor = _later_statement(add.block, add.line, creation)
            if anchor is not None:
                fix = Fix(
                    f"Resize {name}'s embeddings to the tokenizer's length",
                    [(anchor, _insert_after(ctx.module, anchor, f"{name}.resize_token_embeddings(len({add.receiver}))"))],
                    FixKind.SAFE,
                )
        self.report(add.call, fix=fix)

    def _decide_sentence_transformer(self, scope_node: Any, add: _Add) -> None:
        st = add.st_model
        assert st is not None
        if not _used_after(scope_node, add.call, st):
            return
        fix = None
        if add.line is not None:
            fix = Fix(
                "Resize the sentence-transformers model's word embeddings",
                [(add.line, _insert_after(
                    self.ctx.module, add.line, f"{st}._first_module().auto_model.resize_token_embeddings(len({add.receiver}))"
                ))],
                FixKind.UNSAFE,
            )
        self.report(add.call, fix=fix)

    def _handed_to_helper(self, scope_node: Any, add: _Add, model: str) -> bool:
        """Whether, after the add, the model and the tokenizer are arguments of one call to a
        function that is not from a library known not to resize (a local helper may resize)."""
        for node, _ in _after(scope_node, add.call):
            if not isinstance(node, cst.Call):
                continue
            values = {dotted_name(arg.value) for arg in node.args}
            if model in values and add.receiver in values:
                name = self.ctx.call_name(node)
                if name is None or not name.startswith(NON_RESIZING_LIBRARIES):
                    return True
        return False


    def _pad_ids_masked(self, scope_node: Any, add: _Add) -> bool:
        """Whether the tokenizer is handed, after the add, to a trainer that replaces pad ids by
        0 before every forward pass (trl's PPOTrainer: ``torch.masked_fill(queries,
        ~attention_mask, 0)``), so an added pad token never reaches the embedding."""
        for node, _ in _after(scope_node, add.call):
            if not isinstance(node, cst.Call):
                continue
            name = self.ctx.call_name(node) or ""
            if name.startswith("trl.") and name.endswith(PAD_MASKING_TRAINERS):
                if any(dotted_name(arg.value) == add.receiver for arg in node.args):
                    return True
        return False


# ---------------------------------------------------------------------- helpers


def _existing_token(node: Any) -> bool:
    """``tok.eos_token`` / ``tokenizer.unk_token``: a token the tokenizer has already."""
    return isinstance(node, cst.Attribute) and node.attr.value.endswith("_token")


def _holds(value: Any, load_node: Any) -> bool:
    """Whether the assigned ``value`` is (a chain ending in) the load call."""
    while isinstance(value, cst.Call):
        if value is load_node:
            return True
        func = value.func
        if not isinstance(func, cst.Attribute):
            return False
        value = func.value
    return False


def _walk(node: Any) -> Iterator[Tuple[Any, Any]]:
    """(node, parent) pairs under ``node`` in source order."""
    todo: List[Tuple[Any, Any]] = [(node, None)]
    while todo:
        current, parent = todo.pop()
        yield current, parent
        for child in reversed(children(current)):
            todo.append((child, current))


def _after(scope_node: Any, call: Any) -> Iterator[Tuple[Any, Any]]:
    """(node, parent) for the nodes of the scope after ``call`` (not inside it), in source order."""
    seen = False
    inside: set = set()
    for node, parent in _walk(scope_node):
        if node is call:
            seen = True
            inside.add(id(node))
            continue
        if not seen:
            continue
        if parent is not None and id(parent) in inside:
            inside.add(id(node))
            continue
        yield node, parent


def _used_after(scope_node: Any, call: Any, name: str) -> bool:
    """Whether the variable ``name`` is read after ``call`` (an assignment target, an attribute
    name ``x.name`` and a keyword ``name=`` do not count)."""
    for node, parent in _after(scope_node, call):
        if not (isinstance(node, cst.Name) and node.value == name):
            continue
        if isinstance(parent, cst.AssignTarget) and parent.target is node:
            continue
        if isinstance(parent, cst.Attribute) and parent.attr is node:
            continue
        if isinstance(parent, cst.Arg) and parent.keyword is node:
            continue
        if isinstance(parent, (cst.FunctionDef, cst.ClassDef, cst.Param)):
            continue
        return True
    return False


def _later_statement(block: Any, line: Any, creation: Any) -> Optional[Any]:
    """The later of the add's statement and the model's creation statement, when both are
    statements of ``block``; None otherwise."""
    if block is None or creation is None:
        return None
    body = list(block.body)
    add_index = next((i for i, s in enumerate(body) if s is line), None)
    model_index = None
    for i, statement in enumerate(body):
        if (
            isinstance(statement, cst.SimpleStatementLine)
            and len(statement.body) == 1
            and isinstance(statement.body[0], (cst.Assign, cst.AnnAssign))
            and statement.body[0].value is creation
        ):
            model_index = i
            break
    if add_index is None or model_index is None:
        return None
    return body[max(add_index, model_index)]


def _insert_after(module: Any, statement: Any, code: str) -> cst.FlattenSentinel:
    new = cst.parse_statement(code + module.default_newline, config=module.config_for_parsing)
    return cst.FlattenSentinel([statement, new])


__all__ = ["AddedTokensWithoutEmbeddingResize"]
