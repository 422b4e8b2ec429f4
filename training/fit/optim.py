"""Optimisers, learning-rate schedules and the L1/L2 penalty, each built from TrainConfig."""

import torch
from torch import Tensor, nn

from training.config import TrainConfig


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params, lr, decay = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=decay)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr, weight_decay=decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr, momentum=config.momentum, weight_decay=decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr, weight_decay=decay)
    return torch.optim.AdamW(params, lr, weight_decay=decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The LR schedule; onecycle steps after every batch, the others after every epoch."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if config.schedule == "onecycle":
        # LR only: cycling momentum would override --momentum and fails for optimisers without one
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, config.lr, total_steps=epochs * steps_per_epoch, cycle_momentum=False
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)


def penalised_weights(model: nn.Module) -> list[nn.Parameter]:
    """What L1/L2 apply to: weight matrices, kernels and embeddings (2+ dims), not biases or norm scales."""
    return [parameter for parameter in model.parameters() if parameter.ndim >= 2]


def penalty(weights: list[nn.Parameter], l1: float, l2: float) -> Tensor | float:
    """l1 * sum|w| + l2 * sum w^2."""
    total: Tensor | float = 0.0
    for weight in weights:
        if l1:
            total = total + l1 * weight.abs().sum()
        if l2:
            total = total + l2 * weight.square().sum()
    return total
