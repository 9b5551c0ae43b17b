"""Export a trained classifier to ONNX for serving.

This example holds bugs on purpose: `dllint examples/` reports them.
"""

import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def main() -> None:
    model = Classifier()
    model.load_state_dict(torch.load("classifier.pt", weights_only=True))
    example = torch.randn(8, 32)
    # the model is still in train mode: dropout and batch statistics go into the graph
    torch.onnx.export(model, (example,), "classifier.onnx", opset_version=11)


if __name__ == "__main__":
    main()
