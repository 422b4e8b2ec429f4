"""Early stopping: watch one validation figure, keep the best epoch's weights, stop when patience runs out."""

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from training.config import ConfigError, TrainConfig

LOWER_IS_BETTER = {"loss", "mse", "mae"}


@dataclass
class EarlyStopping:
    metric: str  # history key, e.g. "val_loss"
    patience: int  # 0: never stop
    lower_is_better: bool
    best: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0
    best_weights: dict[str, Tensor] | None = None

    def improved(self, value: float) -> bool:
        if math.isnan(self.best):
            return True
        return value < self.best if self.lower_is_better else value > self.best

    def update(self, epoch: int, figures: dict[str, float], model: nn.Module) -> bool:
        """Record one epoch's figures; True when patience has run out."""
        value = figures[self.metric]
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            if self.patience:
                self.best_weights = {key: tensor.detach().clone() for key, tensor in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return bool(self.patience) and self.bad_epochs >= self.patience

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run stops where the uninterrupted one would."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_weights": self.best_weights,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs, self.best_weights = state["bad_epochs"], state["best_weights"]


def early_stopping_for(config: TrainConfig, task: str) -> EarlyStopping:
    name = "loss" if config.early_stopping_metric == "auto" else config.early_stopping_metric
    allowed = ("loss", "accuracy", "f1_macro") if task == "classification" else ("loss", "mse", "mae", "r2")
    if name not in allowed:
        raise ConfigError(f"--early-stopping-metric {name} does not apply to {task}; use one of {', '.join(allowed)}")
    return EarlyStopping(f"val_{name}", config.early_stopping_patience, name in LOWER_IS_BETTER)
