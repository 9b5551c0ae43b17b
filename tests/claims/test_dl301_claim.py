"""DL301: a module traced / exported in train mode keeps its training behaviour in the graph.

Measured with torch 2.13 CPU on a Linear -> BatchNorm1d -> Dropout(0.5) module:
- torch.jit.trace in train mode: two calls on the same input differ (live dropout), and calling
  .eval() on the traced module does not switch the dropout off (the trace froze the mode);
- traced after model.eval(): deterministic, and equal to eager eval-mode output;
- torch.export.export in train mode records `aten.dropout.default(x, 0.5, True)` and a
  training-form batch norm (plus the num_batches_tracked update); its module() re-samples dropout
  on every call (and in 2.13 refuses .eval(): "Calling eval() is not supported yet"). After
  model.eval() the same op is recorded with train=False.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")


def _version():
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 32)
        self.bn = torch.nn.BatchNorm1d(32)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.bn(self.fc(x)))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _model():
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    return model


def test_trace_in_train_mode_keeps_dropout_live():
    model = _model()
    x = torch.randn(8, 16)
    traced = torch.jit.trace(model, x, check_trace=False)
    with torch.no_grad():
        first, second = traced(x), traced(x)
        assert not torch.equal(first, second)  # dropout re-samples on every call
        traced.eval()  # too late: the trace recorded the train-mode graph
        third, fourth = traced(x), traced(x)
        assert not torch.equal(third, fourth)
        model.eval()
        assert not torch.allclose(third, model(x))


def test_trace_after_eval_is_deterministic_and_matches_eager():
    model = _model().eval()
    x = torch.randn(8, 16)
    traced = torch.jit.trace(model, x)
    with torch.no_grad():
        first, second = traced(x), traced(x)
        assert torch.equal(first, second)
        torch.testing.assert_close(first, model(x))


@pytest.mark.skipif(_version() < (2, 13), reason="graph text measured on torch 2.13")
def test_torch_export_in_train_mode_records_dropout():
    x = torch.randn(8, 16)
    program = torch.export.export(_model(), (x,))
    train_graph = str(program.graph)
    # aten.dropout.default(input, p, train) with train=True, and batch norm in training form
    assert "aten.dropout.default](args = (%batch_norm, 0.5, True)" in train_graph
    assert "%b_bn_running_mean, %b_bn_running_var, True, 0.1" in train_graph  # training=True
    assert "aten.add_.Tensor](args = (%b_bn_num_batches_tracked" in train_graph
    with torch.no_grad():
        exported = program.module()
        assert not torch.equal(exported(x), exported(x))  # live dropout in the exported program
    eval_graph = str(torch.export.export(_model().eval(), (x,)).graph)
    assert "aten.dropout.default](args = (%batch_norm, 0.5, False)" in eval_graph
