from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import libcst as cst

from dllint.context import children, dotted_name
from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.nlp._checkpoints import strip_self_returning
from dllint.rules.nlp._hf import Load, load_of

#: Model methods that run the forward pass.
FORWARD_METHODS = frozenset({"forward"})

#: Functions that wrap a model and return it in the mode it had (peft sets no mode).
MODE_KEEPING_WRAPPERS = frozenset(
    {
        "peft.get_peft_model",
        "peft.mapping.get_peft_model",
        "peft.mapping_func.get_peft_model",
        "peft.prepare_model_for_kbit_training",
        "peft.utils.prepare_model_for_kbit_training",
    }
)

#: Base classes whose methods are driven by a framework that sets the mode itself.
DRIVEN_BASES = ("Trainer", "LightningModule", "Callback", "TrainerCallback")


@dataclass
class _Use:
    """A forward call of a transformers model inside a loop of the current function."""

    call: cst.Call
    model: str  # dotted spelling: ``model``, ``self.bert``
    loop: Any  # the outermost loop of the function around the call
    block: Any  # the block the loop is a statement of (None when it is not one)


@dataclass
class _Function:
    uses: List[_Use] = field(default_factory=list)
    #: loops (ids) holding a ``<loss>.backward()`` / an optimizer ``.step()``
    backward_loops: Set[int] = field(default_factory=set)
    step_loops: Set[int] = field(default_factory=set)


class HfModelFinetunedInEvalMode(Rule):
    """A transformers model fine-tuned in a hand-written loop while still in eval mode.

    Finds a model loaded with `transformers.<Class>.from_pretrained(...)` (a name assigned once,
    `model = model.to(device)` allowed, or a `self.<attr>` assigned once in its class) that is
    called (`model(...)`, `model.forward(...)`) inside a `for` / `while` loop of a function (or of
    the module's top level) when the same loop also calls `<loss>.backward()` and an optimizer's
    `.step()` (`scaler.step(opt)` counts), and the file never calls `.train(...)` on that model.
    The finding is at the model's first call in the loop.

    Why it is a bug: `from_pretrained` returns the model in evaluation mode (transformers calls
    `model.eval()` before returning it; measured, transformers 5.23: `training=False`). A manual
    fine-tuning loop that never calls `model.train()` runs with dropout disabled: two forward
    passes of the same batch give the same output, the regularisation the checkpoint was trained
    with is gone, and the fine-tuned model over-fits quietly (pytorch/opacus commit 446c974:
    "HuggingFace models load in eval mode"; deepset-ai/haystack#3791).

    How to fix: call `model.train()` before the training loop (and `model.eval()` for
    evaluation, switching back to `train()` afterwards).

    Fix: safe: inserts `<model>.train()` before the outermost loop of the function that holds the
    forward call, when the loop is a statement of a block.

    Stays silent when any `.train(...)` call in the file has a receiver spelled like the model or
    ending in its name (`model.train()`, `model.module.train()`, `self.model.train(True)`, a
    `self.train()` for a `self.<attr>` model: generous on purpose), when the model's parameters
    are never given to anything (`model.parameters()` / `model.named_parameters()` appear
    nowhere in the file: it is probably a frozen feature extractor), when the call is under
    `torch.no_grad()`, when the load sets a dropout keyword (`hidden_dropout_prob=0.0`...),
    inside classes driven by a framework (`Trainer` subclasses, Lightning modules, callbacks),
    and when the model has no single known `from_pretrained` origin (a parameter, a name
    assigned twice, `get_peft_model(model, ...)`).

    Limits: only loops whose model call, `backward()` and `step()` sit in the same function are
    seen; a training function that receives the model as a parameter from a caller is not
    followed. Intentional eval-mode fine-tuning (dropout off on purpose) is rare; silence it with
    a noqa comment or an explicit `model.train(False)`.
    """

    code = "DL508"
    name = "hf-model-finetuned-in-eval-mode"
    family = "nlp"
    message = (
        "transformers models load in eval mode; call model.train() before a manual fine-tuning loop "
        "(dropout is otherwise disabled)"
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(e) Pan et al., bugs found while reusing pretrained NLP models",
        category="limited access to model internals: the mode a pretrained model is returned in",
        links=(
            "https://github.com/pytorch/opacus/commit/446c974",
            "https://github.com/deepset-ai/haystack/pull/3791",
            "https://huggingface.co/docs/transformers/main_classes/model#transformers.PreTrainedModel.from_pretrained",
        ),
    )
    triggers = ("backward",)
    frameworks = ("transformers",)

    VALID = (
        Valid(dedent("""
            import torch
            from transformers import AutoModelForSequenceClassification
            model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
            opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
            model.train()
            for batch in loader:
                loss = model(**batch).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
            """), "train() before the loop"),
        Valid(dedent("""
            import torch
            from transformers import AutoModel
            bert = AutoModel.from_pretrained("bert-base-uncased")
            head = torch.nn.Linear(768, 2)
            opt = torch.optim.Adam(head.parameters())
            for x, y in loader:
                with torch.no_grad():
                    feats = bert(**x).pooler_output
                loss = torch.nn.functional.cross_entropy(head(feats), y)
                loss.backward()
                opt.step()
            """), "a frozen feature extractor: eval mode on purpose"),
        Valid(dedent("""
            from transformers import AutoModelForSequenceClassification, Trainer
            model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
            trainer = Trainer(model=model, train_dataset=ds)
            trainer.train()
            """), "Trainer sets the mode itself"),
        Valid(dedent("""
            import torch
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained("gpt2")
            opt = torch.optim.AdamW(model.parameters())
            def epoch():
                model.train()
            for batch in loader:
                model(**batch).loss.backward()
                opt.step()
            """), "a train() call anywhere in the file counts"),
        Valid(dedent("""
            import torch
            from transformers import AutoModelForSequenceClassification
            def fit(model, loader):
                opt = torch.optim.AdamW(model.parameters())
                for batch in loader:
                    model(**batch).loss.backward()
                    opt.step()
            """), "the model is a parameter: its mode is not known here"),
        Valid(dedent("""
            import torch
            from transformers import AutoModelForSequenceClassification
            model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", hidden_dropout_prob=0.0,
                                                                       attention_probs_dropout_prob=0.0)
            opt = torch.optim.AdamW(model.parameters())
            for batch in loader:
                model(**batch).loss.backward()
                opt.step()
            """), "dropout set at load: the mode changes nothing"),
        Valid(dedent("""
            import torch
            from transformers import AutoModelForSequenceClassification
            model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
            opt = torch.optim.AdamW(model.parameters())
            for batch in loader:
                out = model(**batch)
            out.loss.backward()
            opt.step()
            """), "backward and step are not in the loop with the model call"),
        Valid(dedent("""
            import torch
            from transformers import Trainer
            class MyTrainer(Trainer):
                def training_step(self, model, inputs):
                    for chunk in split(inputs):
                        loss = self.model(**chunk).loss
                        loss.backward()
                        self.optimizer.step()
            """), "a Trainer subclass: Trainer switches the mode"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                from transformers import AutoModelForSequenceClassification
                model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
                optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
                for batch in loader:
                    loss = model(**batch).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                """),
            fixed=dedent("""
                import torch
                from transformers import AutoModelForSequenceClassification
                model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
                optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
                model.train()
                for batch in loader:
                    loss = model(**batch).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import BertForSequenceClassification
                def main():
                    model = BertForSequenceClassification.from_pretrained("bert-base-uncased").to("cuda")
                    opt = torch.optim.AdamW(model.parameters())
                    # train
                    for epoch in range(3):
                        for batch in loader:
                            out = model(input_ids=batch["input_ids"], labels=batch["labels"])
                            out.loss.backward()
                            opt.step()
                            opt.zero_grad()
                """),
            fixed=dedent("""
                import torch
                from transformers import BertForSequenceClassification
                def main():
                    model = BertForSequenceClassification.from_pretrained("bert-base-uncased").to("cuda")
                    opt = torch.optim.AdamW(model.parameters())
                    # train
                    model.train()
                    for epoch in range(3):
                        for batch in loader:
                            out = model(input_ids=batch["input_ids"], labels=batch["labels"])
                            out.loss.backward()
                            opt.step()
                            opt.zero_grad()
                """),
            note="nested loops: train() goes before the outermost one",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import AutoModelForCausalLM
                class Tuner:
                    def __init__(self, path):
                        self.lm = AutoModelForCausalLM.from_pretrained(path)
                        self.opt = torch.optim.AdamW(self.lm.parameters())
                        self.scaler = torch.amp.GradScaler()
                    def fit(self, loader):
                        for batch in loader:
                            loss = self.lm.forward(**batch).loss
                            self.scaler.scale(loss).backward()
                            self.scaler.step(self.opt)
                            self.scaler.update()
                """),
            fixed=dedent("""
                import torch
                from transformers import AutoModelForCausalLM
                class Tuner:
                    def __init__(self, path):
                        self.lm = AutoModelForCausalLM.from_pretrained(path)
                        self.opt = torch.optim.AdamW(self.lm.parameters())
                        self.scaler = torch.amp.GradScaler()
                    def fit(self, loader):
                        self.lm.train()
                        for batch in loader:
                            loss = self.lm.forward(**batch).loss
                            self.scaler.scale(loss).backward()
                            self.scaler.step(self.opt)
                            self.scaler.update()
                """),
            note="self.<attr> model, scaled backward and scaler.step",
        ),
        Invalid(
            dedent("""
                import torch
                from transformers import AutoModelForSequenceClassification
                model = AutoModelForSequenceClassification.from_pretrained("roberta-base")
                opt = torch.optim.SGD(model.parameters(), lr=0.01)
                step = 0
                while step < 1000:
                    loss = model(**next(it)).loss; loss.backward(); opt.step()
                    step += 1
                model.eval()
                """),
            fixed=dedent("""
                import torch
                from transformers import AutoModelForSequenceClassification
                model = AutoModelForSequenceClassification.from_pretrained("roberta-base")
                opt = torch.optim.SGD(model.parameters(), lr=0.01)
                step = 0
                model.train()
                while step < 1000:
                    loss = model(**next(it)).loss; loss.backward(); opt.step()
                    step += 1
                model.eval()
                """),
            note="a while loop; an eval() call is not a train() call",
        ),
    )

    def __init__(self, ctx: Any, sink: List[Any]) -> None:
        super().__init__(ctx, sink)
        #: id(function node or module) -> what its loops hold
        self._functions: Dict[int, _Function] = {}

    def _current(self) -> _Function:
        scope = self.ctx.function() or self.ctx.module
        return self._functions.setdefault(id(scope), _Function())

    # ------------------------------------------------------------------ collecting

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        loop = self._outer_loop()
        if loop is None:
            return
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "backward":
                if not [a for a in node.args if a.keyword is None]:  # loss.backward(), not accelerator.backward(loss)
                    self._current().backward_loops.add(id(loop[0]))
                return
            if method == "step":
                receiver = (dotted_name(func.value) or "").lower()
                if "sched" not in receiver:  # an LR scheduler's step() is not an optimizer step
                    self._current().step_loops.add(id(loop[0]))
                return
        if self.ctx.in_no_grad():
            return
        if isinstance(func, cst.Attribute) and func.attr.value in FORWARD_METHODS:
            receiver = func.value
        else:
            receiver = func
        spelling = dotted_name(receiver)
        if spelling is None:
            return
        load = self._pretrained_model(receiver)
        if load is None:
            return
        if any("dropout" in (arg.keyword.value if arg.keyword else "") for arg in load.node.args):
            return
        self._current().uses.append(_Use(node, spelling, loop[0], loop[1]))

    def _pretrained_model(self, expr: Any, depth: int = 0) -> Optional[Load]:
        """The from_pretrained load ``expr`` holds, also through a peft wrapper
        (``get_peft_model(model, config)`` keeps the wrapped model's mode)."""
        load = load_of(self.ctx, expr)
        if load is not None:
            return load if load.kind == "model" and load.pretrained else None
        if depth > 2:
            return None
        value = self.ctx.assigned_value(expr) if isinstance(expr, (cst.Name, cst.Attribute)) else expr
        value = strip_self_returning(value)
        if isinstance(value, cst.Call) and self.ctx.call_name(value) in MODE_KEEPING_WRAPPERS:
            return self._pretrained_model(self.ctx.argument(value, 0, "model"), depth + 1)
        return None

    def _outer_loop(self) -> Optional[tuple]:
        """(outermost for/while loop of the current function around the node, its block)."""
        stack = self.ctx.stack
        found = None
        for index in range(len(stack) - 1, -1, -1):
            ancestor = stack[index]
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                break
            if isinstance(ancestor, (cst.For, cst.While)):
                parent = stack[index - 1] if index > 0 else None
                found = (ancestor, parent if isinstance(parent, (cst.IndentedBlock, cst.Module)) else None)
        return found

    # ------------------------------------------------------------------ deciding

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._decide(node)

    def leave_Module(self, node: cst.Module) -> None:
        self._decide(node)

    def _decide(self, scope_node: Any) -> None:
        record = self._functions.pop(id(scope_node), None)
        if record is None or not record.uses:
            return
        if self._driven():
            return
        done: Set[str] = set()
        for use in record.uses:
            if use.model in done:
                continue
            if id(use.loop) not in record.backward_loops or id(use.loop) not in record.step_loops:
                continue
            if self._trains(use.model) or not self._optimised(use.model):
                continue
            done.add(use.model)
            fix = None
            if use.block is not None:
                fix = Fix(
                    f"Call {use.model}.train() before the loop",
                    [(use.loop, _insert_before(self.ctx.module, use.loop, f"{use.model}.train()"))],
                    FixKind.SAFE,
                )
            self.report(use.call, fix=fix)

    def _driven(self) -> bool:
        """Inside a class whose base names a framework that drives the step."""
        cls = self.ctx.enclosing_class()
        if cls is None:
            return False
        for base in cls.bases:
            name = dotted_name(base.value) or ""
            if name.split(".")[-1].endswith(DRIVEN_BASES):
                return True
        return False

    def _calls(self) -> Dict[str, List[str]]:
        """method -> dotted receivers of every ``<receiver>.<method>(...)`` call in the file."""

        def compute(ctx: Any) -> Dict[str, List[str]]:
            table: Dict[str, List[str]] = {}
            todo = [ctx.module]
            while todo:
                node = todo.pop()
                if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                    receiver = dotted_name(node.func.value)
                    if receiver is not None:
                        table.setdefault(node.func.attr.value, []).append(receiver)
                todo.extend(children(node))
            return table

        return self.ctx.memo("dl508.calls", compute)

    def _trains(self, model: str) -> bool:
        """Any ``.train(...)`` call whose receiver is spelled like the model, ends in its last
        name, or is ``self`` for a ``self.<attr>`` model (generous)."""
        last = model.split(".")[-1]
        root = model.split(".")[0]
        for receiver in self._calls().get("train", []):
            parts = receiver.split(".")
            if receiver == model or last in parts or receiver.startswith(model + "."):
                return True
            if root == "self" and receiver == "self":
                return True
        return False

    def _optimised(self, model: str) -> bool:
        """The model's parameters are handed to something (an optimizer) somewhere in the file."""
        calls = self._calls()
        return any(model == r or r.startswith(model + ".") for m in ("parameters", "named_parameters") for r in calls.get(m, []))


def _insert_before(module: Any, statement: Any, code: str) -> cst.FlattenSentinel:
    new = cst.parse_statement(code + module.default_newline, config=module.config_for_parsing)
    new = new.with_changes(leading_lines=statement.leading_lines)
    return cst.FlattenSentinel([new, statement.with_changes(leading_lines=())])


__all__ = ["HfModelFinetunedInEvalMode"]
