from __future__ import annotations

import libcst as cst

from dllint.rule import Evidence, Fix, FixKind, Invalid, Rule, Valid, dedent
from dllint.rules.numerical._losses import (
    LossModelSummaries,
    loss_call,
    producer_input,
    strip_parens,
    value_origin,
)
from dllint.rules.numerical._values import softmax_kind


class SoftmaxIntoCrossEntropy(LossModelSummaries, Rule):
    """Softmax probabilities passed to a loss that applies softmax itself.

    Finds a softmax output used as the *input* (the prediction) of a cross-entropy loss that
    computes its own log_softmax: `F.cross_entropy(F.softmax(x, 1), y)`,
    `nn.CrossEntropyLoss()(torch.softmax(x, 1), y)`, `criterion(probs, y)` where `criterion` is a
    name or `self` attribute bound once to `nn.CrossEntropyLoss(...)` and `probs` comes from a
    softmax, `tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=tf.nn.softmax(z))` and
    the sparse and `tf.compat.v1` / `tf.losses` variants.  The softmax is followed through
    names assigned once, `self` attributes, shape-only methods (`.view`, `.squeeze`, `[...]`),
    one-return helpers, layers built with `activation="softmax"`, and models defined in the
    same file: `model = Net(); criterion(model(x), y)` where `Net.forward` has a single return
    that ends in `softmax` / `nn.Softmax`, or an `nn.Sequential` whose last layer is
    `nn.Softmax`.

    Why it is a bug: the loss applies softmax again, so it is computed on probabilities squashed
    into [0, 1].  The loss can no longer approach 0, and its gradient vanishes where the model is
    confidently wrong (measured, torch 2.13: for logits [10, -10] and the second class as target,
    the logit gradient is about 3e-9 instead of 1), so training is silently degraded.  The
    PyTorch `CrossEntropyLoss` docs say the input should contain unnormalised logits; the TF docs
    say "Do not call this op with the output of softmax, as it will produce incorrect results".

    How to fix: pass the logits to the loss and keep softmax for reporting predictions only;
    return logits from `forward`.

    Fix: safe when the softmax call is the direct input of the loss: the softmax wrapper is
    dropped.  No automatic fix through a name or across `forward`.

    Stays silent on `log_softmax` inputs (the loss's own log_softmax leaves a log_softmax input
    unchanged, so loss and gradients are identical), on probability *targets*
    (`F.cross_entropy(logits, F.softmax(teacher, 1))`, the second argument), on softmax values
    that do not flow into the loss (predictions computed beside it), on models whose `forward`
    has several returns, and on Keras losses with `from_logits=True` (another rule's).
    """

    code = "DL109"
    name = "softmax-into-cross-entropy"
    family = "numerical"
    message = (
        "CrossEntropyLoss/softmax_cross_entropy_with_logits applies softmax internally; passing softmax "
        "probabilities applies it twice (silently degraded training). Pass raw logits."
    )
    fix = FixKind.SAFE
    evidence = Evidence(
        study="(b) numerical bugs in DL programs; silent-bug reports",
        category="softmax output fed to a loss that applies softmax (double softmax)",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html",
            "https://www.tensorflow.org/api_docs/python/tf/nn/softmax_cross_entropy_with_logits",
            "https://github.com/Lightning-Universe/lightning-bolts/issues/654",
            "https://github.com/tflearn/tflearn/pull/562",
            "https://github.com/NVIDIA/DeepLearningExamples/issues/468",
        ),
    )
    triggers = ("softmax", "Softmax")

    VALID = (
        Valid(dedent("""
            import torch.nn.functional as F
            loss = F.cross_entropy(logits, y)
            probs = F.softmax(logits, dim=1)
            """), "softmax computed for predictions beside a loss on the logits"),
        Valid(dedent("""
            import torch.nn.functional as F
            loss = F.cross_entropy(student_logits, F.softmax(teacher_logits / T, dim=1))
            """), "probability targets in the second argument are fine"),
        Valid(dedent("""
            import torch.nn.functional as F
            loss = F.cross_entropy(F.log_softmax(x, dim=1), y)
            """), "log_softmax input: the loss's own log_softmax leaves it unchanged"),
        Valid(dedent("""
            import torch
            from torch import nn
            criterion = nn.CrossEntropyLoss()
            p = torch.softmax(x, dim=1)
            p = p + noise
            loss = criterion(p, y)
            """), "the name has two assignments"),
        Valid(dedent("""
            import torch.nn.functional as F
            from torch import nn
            class Net(nn.Module):
                def forward(self, x):
                    x = self.fc(x)
                    if self.training:
                        return x
                    return F.softmax(x, dim=1)
            model = Net()
            loss = nn.CrossEntropyLoss()(model(x), y)
            """), "forward has two returns: logits while training"),
        Valid(dedent("""
            import tensorflow as tf
            p = tf.nn.softmax(teacher)
            loss = tf.nn.softmax_cross_entropy_with_logits(labels=p, logits=student)
            """), "TF: the softmax is the label distribution"),
        Valid(dedent("""
            import torch
            from torch import nn
            loss = nn.NLLLoss()(torch.log(torch.softmax(x, 1)), y)
            """), "not a cross-entropy loss"),
        Valid(dedent("""
            import torch.nn.functional as F
            def train(model, criterion, x, y):
                return criterion(F.softmax(model(x), dim=1), y)
            """), "criterion is a parameter: its loss is unknown"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch.nn.functional as F
                loss = F.cross_entropy(F.softmax(logits, dim=1), y)
                """),
            fixed=dedent("""
                import torch.nn.functional as F
                loss = F.cross_entropy(logits, y)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                loss = nn.CrossEntropyLoss(reduction="sum")(torch.softmax(out, 1), y)
                """),
            fixed=dedent("""
                import torch
                from torch import nn
                loss = nn.CrossEntropyLoss(reduction="sum")(out, y)
                """),
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(8, 3)
                        self.criterion = nn.CrossEntropyLoss()
                    def forward(self, x):
                        return self.fc(x)
                    def training_step(self, x, y):
                        probs = self(x).softmax(dim=1)
                        return self.criterion(probs, y)
                """),
            note="criterion bound in __init__, softmax through a name: reported, no fix",
        ),
        Invalid(
            dedent("""
                import torch.nn.functional as F
                from torch import nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(8, 3)
                    def forward(self, x):
                        x = self.fc(x)
                        x = F.softmax(x, dim=1)
                        return x
                model = Net()
                criterion = nn.CrossEntropyLoss()
                for x, y in loader:
                    out = model(x)
                    loss = criterion(out, y)
                """),
            note="the model's forward ends in softmax",
        ),
        Invalid(
            dedent("""
                from torch import nn
                model = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1)).cuda()
                loss = nn.CrossEntropyLoss()(model(x).view(-1, 3), y)
                """),
            note="an nn.Sequential ending in nn.Softmax",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=tf.nn.softmax(z)))
                """),
            fixed=dedent("""
                import tensorflow as tf
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z))
                """),
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                y_conv = tf.nn.softmax(tf.matmul(h, W) + b)
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=y_conv)
                """),
            note="TF sparse variant through a name",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                import tflearn
                X = tf.placeholder(shape=(None, 784), dtype=tf.float32)
                net = tflearn.fully_connected(X, 10, activation='softmax')
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(net, Y))
                """),
            note="pre-1.0 positional (logits, labels) order in graph-mode code; a softmax activation",
        ),
        Invalid(
            dedent("""
                import torch
                from torch import nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(8, 3)
                        self.softmax = nn.Softmax(dim=1)
                        self.loss = nn.CrossEntropyLoss()
                    def forward(self, x, y):
                        return self.loss(self.softmax(self.fc(x)), y)
                """),
            fixed=dedent("""
                import torch
                from torch import nn
                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.fc = nn.Linear(8, 3)
                        self.softmax = nn.Softmax(dim=1)
                        self.loss = nn.CrossEntropyLoss()
                    def forward(self, x, y):
                        return self.loss(self.fc(x), y)
                """),
            note="a softmax layer attribute, direct: the wrapper is dropped",
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        loss = loss_call(ctx, node)
        if loss is None or loss.family not in ("cross_entropy", "tf_softmax") or loss.prediction is None:
            return
        origin = value_origin(ctx, loss.prediction, self.summaries)
        if origin is None or origin.kind != "softmax":
            return
        if loss.family == "tf_softmax" and ctx.keyword(node, "logits") is None:
            # positional TF call: labels and logits swap places between TF versions, so stay
            # silent when both could be probabilities (a softmax label distribution)
            positional = [a.value for a in node.args if a.keyword is None]
            if all((o := value_origin(ctx, a, self.summaries)) is not None and o.kind == "softmax"
                   for a in positional[:2]):
                return
        fix = None
        direct = strip_parens(loss.prediction)
        kind = softmax_kind(ctx, direct)
        if origin.direct and kind is not None:
            inner = producer_input(ctx, direct, kind)
            if inner is not None:
                fix = Fix("Pass the logits: drop the softmax", [(loss.prediction, inner)])
        self.report(node, fix=fix)
