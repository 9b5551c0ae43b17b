from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from dllint.rule import Evidence, Invalid, Rule, Valid, dedent
from dllint.rules.conversion._export import file_classes, find_method

COL = "(N,1)"
FLAT = "(N,)"

#: Element-wise regression losses that warn and broadcast on (N,1) vs (N,).  The BCE pair is
#: left out: it raises a ValueError on mismatched sizes (measured, torch 2.13), nothing silent.
LOSS_MODULES = {
    f"torch.nn.{prefix}{name}"
    for name in ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss")
    for prefix in ("", "modules.", "modules.loss.")
}
LOSS_FUNCTIONS = {
    f"torch.nn.functional.{name}" for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
}

#: Tensor methods that keep the shape of their receiver.
SAME_SHAPE_METHODS = frozenset({
    "float", "double", "half", "long", "int", "to", "cuda", "cpu", "detach", "clone", "type",
    "requires_grad_", "contiguous", "sigmoid", "relu", "tanh", "exp", "abs", "numpy", "type_as",
})
#: Functions whose first argument's shape is the result's shape.
SAME_SHAPE_FUNCTIONS = frozenset({
    "torch.sigmoid", "torch.relu", "torch.tanh", "torch.exp", "torch.abs",
    "torch.nn.functional.relu", "torch.nn.functional.sigmoid", "torch.nn.functional.softplus",
    "tensorflow.cast", "tensorflow.sigmoid", "tensorflow.nn.sigmoid", "tensorflow.nn.relu",
    "tensorflow.convert_to_tensor", "torch.as_tensor", "torch.from_numpy", "numpy.asarray",
    "numpy.array", "torch.tensor", "torch.Tensor", "torch.FloatTensor", "torch.LongTensor",
    "tensorflow.constant", "numpy.float32",
})
#: Builders of random / constant tensors from a shape given as positional ints or one sequence.
SHAPED_BUILDERS = frozenset({
    "torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty",
    "tensorflow.random.normal", "tensorflow.random.uniform", "tensorflow.zeros", "tensorflow.ones",
    "numpy.random.randn", "numpy.random.rand", "numpy.zeros", "numpy.ones",
    "tensorflow.random.truncated_normal", "tensorflow.truncated_normal", "tensorflow.random_normal",
    "tensorflow.random_uniform", "tensorflow.compat.v1.random_normal", "tensorflow.compat.v1.truncated_normal",
})
#: Matrix products: ``x @ w`` is (N,1) when ``w`` is a (k,1) weight.
MATMUL = frozenset({"torch.matmul", "torch.mm", "tensorflow.matmul", "tensorflow.linalg.matmul",
                    "tensorflow.compat.v1.matmul"})
#: Wrappers that make a weight from an initial value of the same shape.
VARIABLES = frozenset({"tensorflow.Variable", "tensorflow.compat.v1.Variable", "torch.nn.Parameter",
                       "torch.nn.parameter.Parameter"})
GET_VARIABLE = frozenset({"tensorflow.get_variable", "tensorflow.compat.v1.get_variable"})
#: Element-wise modules that may follow the last Linear(_, 1) without changing the shape.
ELEMENTWISE_MODULES = frozenset(
    f"torch.nn.{name}" for name in ("Sigmoid", "ReLU", "Tanh", "Identity", "Softplus", "LeakyReLU", "ELU",
                                    "Dropout", "GELU")
)
#: Square / absolute value of a difference: a hand-written element-wise loss.
SQUARE_FUNCTIONS = frozenset({"torch.square", "torch.abs", "tensorflow.square", "tensorflow.math.square",
                              "tensorflow.abs", "tensorflow.math.abs", "keras.ops.square", "keras.ops.abs",
                              "numpy.square", "numpy.abs"})
SQUARE_METHODS = frozenset({"abs", "square", "pow"})


def _int(node: Any) -> Optional[int]:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(
        node.expression, cst.Integer
    ):
        return -int(node.expression.value)
    return None


def _ints(nodes: Any) -> Optional[list]:
    out = []
    for n in nodes:
        v = _int(n)
        if v is None:
            return None
        out.append(v)
    return out


def _number(node: Any) -> bool:
    return isinstance(node, (cst.Integer, cst.Float)) or (
        isinstance(node, cst.UnaryOperation) and isinstance(node.expression, (cst.Integer, cst.Float))
    )


class LossTargetShapeBroadcast(Rule):
    """Element-wise regression loss between a (N,1) prediction and a (N,) target (or the reverse).

    Finds `nn.MSELoss`, `nn.L1Loss`, `nn.SmoothL1Loss`, `nn.HuberLoss` (called through a name or
    `self.<attr>` holding the module, or directly) and `F.mse_loss`, `F.l1_loss`,
    `F.smooth_l1_loss`, `F.huber_loss`, and hand-written losses that square or take the absolute
    value of a difference (`torch.mean((pred - y) ** 2)`, `tf.reduce_mean(tf.square(y - p))`,
    `(p - y).abs()`), when one operand's shape is inferred as (N,1) and the other's as (N,).
    Shapes come from the expressions that built the values (followed through single
    assignments): (N,1) from `t.view(-1, 1)` / `reshape(-1, 1)` / `tf.reshape(t, [-1, 1])`, from
    `unsqueeze(1)` / `unsqueeze(-1)` / `t[:, None]` / `tf.expand_dims(t, -1)` of a (N,) tensor,
    from `torch.randn(n, 1)`-style builders, from lists of one-element lists, and from calling a
    model whose last layer is `nn.Linear(k, 1)` (an `nn.Sequential` literal, a bare Linear, or a
    class of this file whose `forward` returns such a layer's output); (N,) from `view(-1)`,
    `reshape(-1)`, `flatten()`, `tf.reshape(t, [-1])`, `squeeze()` of a (N,1) tensor, flat list
    literals, `torch.arange`, `torch.randn(n)`-style builders and a single DataFrame column
    (`df["price"].values`).

    Why it is a bug: (N,) against (N,1) broadcasts to (N,N): every prediction is compared with
    every target, so the loss and its gradients are silently wrong.  PyTorch only warns ("Using
    a target size (torch.Size([4])) that is different to the input size (torch.Size([4, 1]))");
    measured with torch 2.13: `F.mse_loss` of the (4,1) prediction [[1], [2], [3], [4]] against
    the (4,) target [1, 2, 3, 4.5] gives 2.9375 where the aligned loss is 0.0625.  Keras loss objects align the ranks themselves, so
    they are not reported; the BCE losses raise a ValueError on mismatched sizes (loud, not
    reported).

    How to fix: make the shapes equal: `loss_fn(model(x).squeeze(-1), y)` or
    `loss_fn(model(x), y.unsqueeze(-1))`.  No automatic fix (which side to change is the
    author's call).

    Limits (precision first): nothing is reported unless both shapes are inferred; batches from
    a DataLoader, function parameters and values assigned more than once have unknown shapes.
    """

    code = "DL405"
    name = "loss-target-shape-broadcast"
    family = "silent"
    message = (
        "prediction and target shapes differ ((N,1) vs (N,)); the element-wise loss broadcasts to (N,N) "
        "and is silently wrong"
    )
    evidence = Evidence(
        study="(d) silent bugs in deep learning frameworks (Keras/TF), 'Wrong calculation' / 'Wrong shape' effects",
        category="PyTorch module semantics: loss input/target broadcasting",
        links=(
            "https://pytorch.org/docs/stable/generated/torch.nn.MSELoss.html",
            "https://pytorch.org/docs/stable/notes/broadcasting.html",
            "https://github.com/tensorflow/tensorflow/issues/30040",
        ),
    )
    triggers = ("Loss", "_loss", "square", "**", "abs", "pow")
    frameworks = ("torch", "tensorflow", "keras")

    VALID = (
        Valid(dedent("""
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
            y = torch.tensor(df["price"].values).float()
            loss = nn.MSELoss()(model(x).squeeze(-1), y)
            """), "prediction squeezed to (N,)"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
            y = torch.tensor(df["price"].values).float().unsqueeze(1)
            loss = nn.MSELoss()(model(x), y)
            """), "target unsqueezed to (N,1)"),
        Valid(dedent("""
            import torch.nn.functional as F
            for x, y in loader:
                loss = F.mse_loss(model(x), y)
            """), "shapes unknown (loader batch, model unknown)"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
            y = torch.randn(100)
            loss = nn.L1Loss()(model(x), y)
            """), "three outputs: not the (N,1) case (a loud shape error or intended broadcast)"),
        Valid(dedent("""
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
            y = torch.tensor(df["label"].values).float()
            loss = nn.BCELoss()(model(x), y)
            """), "BCELoss raises on mismatched sizes: loud, not silent"),
        Valid(dedent("""
            import tensorflow as tf
            p = tf.reshape(pred, [-1])
            y = tf.reshape(labels, [-1])
            loss = tf.reduce_mean(tf.square(y - p))
            """), "both flattened"),
        Valid(dedent("""
            import torch
            a = torch.randn(10, 1)
            b = torch.randn(10)
            d = a - b
            """), "a difference that is not squared: not a loss"),
        Valid(dedent("""
            import torch
            w = torch.nn.Parameter(torch.zeros(5, 1))
            b = torch.zeros(1)
            loss = ((X @ w - b) ** 2).mean()
            """), "a length-1 vector broadcasts harmlessly"),
        Valid(dedent("""
            import tensorflow as tf
            W = tf.Variable(tf.zeros([784, 10]))
            y = tf.constant([1.0, 2.0, 3.0])
            loss = tf.reduce_mean(tf.square(tf.matmul(x, W) - y))
            """), "a (784, 10) weight: not the (N,1) case"),
    )

    INVALID = (
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
                criterion = nn.MSELoss()
                y = torch.tensor(df["price"].values).float()
                loss = criterion(model(x), y)
                """),
            note="catalogue's Bad: Linear(64, 1) head against a 1-D column",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn.functional as F
                pred = out.view(-1)
                target = labels.view(-1, 1)
                loss = F.smooth_l1_loss(pred, target)
                """),
            note="one side flattened, the other reshaped to a column",
        ),
        Invalid(
            dedent("""
                import torch
                import torch.nn as nn
                class Regressor(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.body = nn.Linear(13, 32)
                        self.head = nn.Linear(32, 1)
                    def forward(self, x):
                        x = torch.relu(self.body(x))
                        return self.head(x)
                net = Regressor()
                X = torch.randn(64, 13)
                y = torch.randn(64)
                loss = torch.mean((net(X) - y) ** 2)
                """),
            note="a class of the file with a Linear(_, 1) head; hand-written MSE",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                p = tf.expand_dims(tf.reshape(pred, [-1]), -1)
                y = tf.constant([1.0, 2.0, 3.0])
                loss = tf.reduce_mean(tf.square(y - p))
                """),
            note="hand-written TF loss",
        ),
        Invalid(
            dedent("""
                import torch
                from torch.nn import L1Loss
                t = torch.arange(8).float()
                loss = L1Loss()(t.unsqueeze(1), t * 2)
                """),
            note="target (N,) built by arange, prediction unsqueezed",
        ),
        Invalid(
            dedent("""
                import tensorflow as tf
                def weight_variable(shape):
                    initial = tf.truncated_normal(shape, stddev=0.1)
                    return tf.Variable(initial)
                x = tf.constant([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
                y_ = tf.constant([1.0, 2.0, 3.0])
                w = weight_variable((2, 1))
                y = tf.matmul(x, w)
                error = tf.reduce_mean(tf.square(y_ - y))
                """),
            note="TF1 linear regression: x @ (2,1) weight against a 1-D target",
        ),
        Invalid(
            dedent("""
                import torch
                w = torch.nn.Parameter(torch.zeros(5, 1))
                y = torch.randn(100)
                loss = ((X @ w - y) ** 2).mean()
                """),
            note="matrix product with a (5,1) parameter",
        ),
    )

    # -- loss calls ----------------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        if not self._is_loss_call(node) or self.ctx.has_star_args(node):
            return
        first = self.ctx.argument(node, 0, "input")
        second = self.ctx.argument(node, 1, "target")
        if first is None or second is None:
            return
        self._check(node, first, second)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, cst.Subtract) or not self._squared_or_abs(node):
            return
        self._check(node, node.left, node.right)

    def _check(self, node: Any, first: Any, second: Any) -> None:
        a, b = self._shape(first), self._shape(second)
        if {a, b} == {COL, FLAT}:
            message = None
            if a == FLAT:
                message = self.message.replace("((N,1) vs (N,))", "((N,) vs (N,1))")
            self.report(node, message)

    def _is_loss_call(self, node: cst.Call) -> bool:
        name = self.ctx.call_name(node)
        if name in LOSS_FUNCTIONS:
            return True
        func = node.func
        if isinstance(func, cst.Call):
            return self.ctx.call_name(func) in LOSS_MODULES
        if isinstance(func, (cst.Name, cst.Attribute)) and name is None:
            value = self.ctx.assigned_value(func)
            return isinstance(value, cst.Call) and self.ctx.call_name(value) in LOSS_MODULES
        return False

    def _squared_or_abs(self, node: cst.BinaryOperation) -> bool:
        """The difference is squared or made absolute right away (parentheses aside)."""
        stack = self.ctx.stack
        if not stack:
            return False
        parent = stack[-1]
        if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Power):
            return parent.left is node and _int(parent.right) == 2
        if isinstance(parent, cst.Attribute) and parent.attr.value in SQUARE_METHODS and len(stack) >= 2:
            call = stack[-2]
            if isinstance(call, cst.Call) and call.func is parent:
                if parent.attr.value == "pow":
                    return len(call.args) == 1 and _int(call.args[0].value) == 2
                return not call.args
            return False
        if isinstance(parent, cst.Arg) and len(stack) >= 2:
            call = stack[-2]
            if isinstance(call, cst.Call) and call.args and call.args[0] is parent:
                name = self.ctx.call_name(call)
                if name in SQUARE_FUNCTIONS or name == "abs":
                    return True
        return False

    # -- shape inference -------------------------------------------------------------------

    def _shape(self, expr: Any, depth: int = 0) -> Optional[str]:
        if depth > 8 or expr is None:
            return None
        if isinstance(expr, cst.Attribute) and expr.attr.value == "values" and self._column(expr.value):
            return FLAT
        if isinstance(expr, (cst.Name, cst.Attribute)) and self.ctx.qualname(expr) is None:
            value = self.ctx.assigned_value(expr)
            return self._shape(value, depth + 1) if value is not None else None
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return self._shape(expr.expression, depth + 1)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.MatrixMultiply):
            return COL if self._column_weight(expr.right) else None
        if isinstance(expr, cst.BinaryOperation):
            if _number(expr.right):
                return self._shape(expr.left, depth + 1)
            if _number(expr.left):
                return self._shape(expr.right, depth + 1)
            return None
        if isinstance(expr, cst.List):
            return self._list_shape(expr)
        if isinstance(expr, cst.Subscript):
            return self._subscript_shape(expr, depth)
        if not isinstance(expr, cst.Call):
            return None
        name = self.ctx.call_name(expr)
        func = expr.func
        if name is None and isinstance(func, cst.Attribute):
            return self._method_shape(expr, func.attr.value, func.value, depth)
        if name is None:
            return self._model_output(func)
        return self._function_shape(expr, name, depth)

    def _list_shape(self, node: cst.List) -> Optional[str]:
        elements = [e.value for e in node.elements if isinstance(e, cst.Element)]
        if len(elements) != len(node.elements) or len(elements) < 2:
            return None
        if all(isinstance(e, (cst.Integer, cst.Float)) or _number(e) for e in elements):
            return FLAT
        if all(isinstance(e, cst.List) and len(e.elements) == 1 and _number(e.elements[0].value) for e in elements):
            return COL
        return None

    def _subscript_shape(self, node: cst.Subscript, depth: int) -> Optional[str]:
        parts = node.slice
        if len(parts) == 2 and isinstance(parts[0].slice, cst.Slice) and isinstance(parts[1].slice, cst.Index):
            s = parts[0].slice
            index = parts[1].slice.value
            whole = s.lower is None and s.upper is None and s.step is None
            is_none = (isinstance(index, cst.Name) and index.value == "None") or (
                self.ctx.qualname(index) == "numpy.newaxis")
            if whole and is_none and self._shape(node.value, depth + 1) == FLAT:
                return COL
        return None

    def _column(self, expr: Any) -> bool:
        """``df["price"]`` (a string key): one DataFrame column, a 1-D Series."""
        return (
            isinstance(expr, cst.Subscript)
            and len(expr.slice) == 1
            and isinstance(expr.slice[0].slice, cst.Index)
            and isinstance(expr.slice[0].slice.value, cst.SimpleString)
        )

    def _method_shape(self, call: cst.Call, method: str, receiver: Any, depth: int) -> Optional[str]:
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        keywords = {a.keyword.value for a in call.args if a.keyword is not None}
        if method in ("view", "reshape"):
            dims = _ints(args[0].elements if len(args) == 1 and isinstance(args[0], (cst.Tuple, cst.List))
                         else args) if args else None
            if dims is not None and not keywords:
                if dims == [-1]:
                    return FLAT
                if dims == [-1, 1]:
                    return COL
            return None
        if method in ("flatten", "ravel") and not call.args:
            return FLAT
        if method == "unsqueeze":
            dim = self.ctx.argument(call, 0, "dim")
            if _int(dim) in (1, -1) and self._shape(receiver, depth + 1) == FLAT:
                return COL
            return None
        if method == "squeeze":
            dim = self.ctx.argument(call, 0, "dim")
            if (dim is None or _int(dim) in (1, -1)) and self._shape(receiver, depth + 1) == COL:
                return FLAT
            return None
        if method in ("values", "to_numpy"):
            return FLAT if self._column(receiver) else None
        if method in SAME_SHAPE_METHODS:
            return self._shape(receiver, depth + 1)
        if method in ("predict", "__call__"):
            return self._model_output(receiver)
        return None

    def _function_shape(self, call: cst.Call, name: str, depth: int) -> Optional[str]:
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        if name in SHAPED_BUILDERS:
            dims = None
            if len(args) == 1 and isinstance(args[0], (cst.Tuple, cst.List)):
                dims = _ints(e.value for e in args[0].elements)
            elif args:
                dims = _ints(args)
            # a length-1 vector or a (1, 1) tensor broadcasts harmlessly
            if dims is not None and len(dims) == 1 and dims[0] != 1:
                return FLAT
            if dims is not None and len(dims) == 2 and dims[1] == 1 and dims[0] != 1:
                return COL
            return None
        if name in MATMUL and len(args) == 2 and not any(a.keyword for a in call.args):
            return COL if self._column_weight(args[1]) else None
        if name in ("torch.arange", "torch.linspace", "numpy.arange", "numpy.linspace", "tensorflow.range"):
            return FLAT
        if name in ("tensorflow.reshape", "torch.reshape") and len(args) == 2:
            target = args[1]
            if isinstance(target, (cst.List, cst.Tuple)):
                dims = _ints(e.value for e in target.elements)
                if dims == [-1]:
                    return FLAT
                if dims == [-1, 1]:
                    return COL
            return None
        if name in ("tensorflow.expand_dims", "torch.unsqueeze") and len(args) == 2:
            if _int(args[1]) in (1, -1) and self._shape(args[0], depth + 1) == FLAT:
                return COL
            return None
        if name in ("tensorflow.squeeze", "torch.squeeze") and len(args) == 1:
            return FLAT if self._shape(args[0], depth + 1) == COL else None
        if name == "torch.flatten" and len(call.args) == 1:
            return FLAT
        if name in SAME_SHAPE_FUNCTIONS and args:
            if self._column(args[0]):
                return None
            return self._shape(args[0], depth + 1)
        return None

    def _column_weight(self, expr: Any, depth: int = 0) -> bool:
        """``expr`` is a (k, 1) weight: a variable / parameter built from a (k, 1) initial value,
        ``tf.get_variable(name, [k, 1])``, or a helper of this file called with a literal (k, 1)
        shape that returns a variable."""
        if depth > 4:
            return False
        if isinstance(expr, (cst.Name, cst.Attribute)) and self.ctx.qualname(expr) is None:
            value = self.ctx.assigned_value(expr)
            return value is not None and self._column_weight(value, depth + 1)
        if not isinstance(expr, cst.Call):
            return False
        name = self.ctx.call_name(expr)
        if name in VARIABLES:
            initial = self.ctx.argument(expr, 0, "initial_value" if name.startswith("tensorflow") else "data")
            return initial is not None and self._shape(initial, depth + 4) == COL
        if name in GET_VARIABLE:
            shape = self.ctx.argument(expr, 1, "shape")
            return _column_dims(shape)
        if name is None and isinstance(expr.func, cst.Name):
            args = [a.value for a in expr.args if a.keyword is None and not a.star]
            returned = self.ctx.returned_value(expr)
            return (
                len(args) == 1 and len(expr.args) == 1 and _column_dims(args[0])
                and isinstance(returned, cst.Call) and self.ctx.call_name(returned) in VARIABLES
            )
        return False

    # -- models whose output is (N,1) ------------------------------------------------------------

    def _model_output(self, func: Any) -> Optional[str]:
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return None
        value = self.ctx.assigned_value(func)
        if isinstance(value, cst.Call) and self._one_output(value, 0):
            return COL
        return None

    def _one_output(self, builder: cst.Call, depth: int) -> bool:
        """Whether the module ``builder`` makes ends in ``Linear(_, 1)`` (elementwise layers aside)."""
        if depth > 3:
            return False
        name = self.ctx.call_name(builder)
        if name in ("torch.nn.Linear", "torch.nn.modules.linear.Linear"):
            out = self.ctx.argument(builder, 1, "out_features")
            return _int(out) == 1
        if name in ("torch.nn.Sequential", "torch.nn.modules.container.Sequential"):
            if not builder.args or any(a.star or a.keyword is not None for a in builder.args):
                return False
            for arg in reversed(builder.args):
                layer = arg.value
                if not isinstance(layer, cst.Call):
                    return False
                if self.ctx.call_name(layer) in ELEMENTWISE_MODULES:
                    continue
                return self._one_output(layer, depth + 1)
            return False
        if name is None and isinstance(builder.func, cst.Name):
            cls = file_classes(self.ctx).get(builder.func.value)
            if cls is not None:
                return self._class_one_output(cls, depth)
        return False

    def _class_one_output(self, cls: cst.ClassDef, depth: int) -> bool:
        forward = find_method(self.ctx, cls, "forward")
        init = find_method(self.ctx, cls, "__init__")
        if forward is None or init is None or not isinstance(forward.body, cst.IndentedBlock):
            return False
        body = list(forward.body.body)
        returns = [s for s in body if isinstance(s, cst.SimpleStatementLine)
                   and any(isinstance(x, cst.Return) for x in s.body)]
        if len(returns) != 1 or returns[0] is not body[-1] or _has_nested_return(forward):
            return False
        value = next(x for x in returns[0].body if isinstance(x, cst.Return)).value
        value = _last_value(body[:-1], value)
        if not isinstance(value, cst.Call):
            return False
        # element-wise wrappers around the head
        while self.ctx.call_name(value) in SAME_SHAPE_FUNCTIONS and value.args:
            inner = _last_value(body[:-1], value.args[0].value)
            if not isinstance(inner, cst.Call):
                return False
            value = inner
        func = value.func
        if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"):
            return False
        layer = _self_assignment(init, func.attr.value)
        return isinstance(layer, cst.Call) and self._one_output(layer, depth + 1)


def _column_dims(node: Any) -> bool:
    if not isinstance(node, (cst.List, cst.Tuple)) or len(node.elements) != 2:
        return False
    dims = _ints(e.value for e in node.elements)
    return dims is not None and dims[1] == 1 and dims[0] != 1


def _has_nested_return(function: cst.FunctionDef) -> bool:
    count = 0

    class Finder(cst.CSTVisitor):
        def visit_Return(self, node: cst.Return) -> None:
            nonlocal count
            count += 1

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return node is function

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

    function.visit(Finder())
    return count != 1


def _last_value(statements: Any, value: Any) -> Any:
    """Follow a Name back to its last top-level assignment among ``statements`` (none of the
    compound statements after it may bind the name)."""
    if not isinstance(value, cst.Name):
        return value
    for statement in reversed(statements):
        if isinstance(statement, cst.SimpleStatementLine):
            for small in reversed(statement.body):
                if isinstance(small, cst.Assign) and len(small.targets) == 1:
                    target = small.targets[0].target
                    if isinstance(target, cst.Name) and target.value == value.value:
                        return small.value
                if isinstance(small, (cst.AugAssign, cst.AnnAssign)):
                    return None
        else:
            return None
    return None


def _self_assignment(init: cst.FunctionDef, attr: str) -> Any:
    found = []

    class Finder(cst.CSTVisitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            for t in node.targets:
                target = t.target
                if (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
                        and target.value.value == "self" and target.attr.value == attr):
                    found.append(node.value)

    init.visit(Finder())
    return found[0] if len(found) == 1 else None
