"""The benchmarks' model: standardise, MLP, softmax, the graph the bundle contract asks for.

One class for both sides: serving_build exports it as the bundle, and cold_start's naive contender
loads its state dict into it. This module imports torch only, so the naive contender's cold start
imports what a plain PyTorch handler would.
"""

import torch
from torch import nn

N_FEATURES = 64
LABELS = [str(digit) for digit in range(10)]


class Classifier(nn.Module):
    """Standardise with the training rows' mean and std, hidden ReLU layers, softmax over LABELS."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        layers: list[nn.Module] = []
        width = mean.numel()
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, len(LABELS)))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net((features - self.mean) / self.std), dim=-1)
