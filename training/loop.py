"""The training loop: optimisers, schedules, L1/L2, clipping, early stopping, checkpoints and SIGTERM.

The whole dataset lives on the device as tensors and each epoch indexes it with one permutation, so a step
costs one gather and no DataLoader. On CPU a run is bit-reproducible from `config.seed`, also across a
SIGTERM and `--resume`: the checkpoint holds every random stream and the exact position in the epoch.
"""

import json
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from training.augment import Augmenter
from training.checkpoint import (
    clear_checkpoints,
    load_latest_checkpoint,
    open_store,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from training.config import ConfigError, TrainConfig
from training.data import Splits
from training.models import Pipeline

EXIT_INTERRUPTED = 143  # 128 + SIGTERM, what schedulers expect from a process that stopped on SIGTERM
EVAL_BATCH = 4096
# Settings a resumed run may change; any other difference would make it a different run.
RESUMABLE_CHANGES = {
    "resume",
    "progress",
    "out",
    "checkpoint_dir",
    "device",
    "name",
    "quantize",
    "parity_tolerance",
    "opset",
}
LOWER_IS_BETTER = {"loss", "mse", "mae"}

logger = logging.getLogger("training")


class Interrupted(Exception):
    """SIGTERM arrived: a checkpoint at the exact position was written; rerun with --resume to continue."""


@dataclass
class History:
    # One record per epoch: epoch, train_loss, val_loss, val_<metric>..., lr (at the epoch's first step), seconds.
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; the weights fit returns when early stopping is on
    stopped_early: bool = False
    metric: str = "val_loss"  # the figure early stopping watches

    def summary(self) -> dict[str, Any]:
        """best_epoch, epochs_run, stopped_early, and the validation figures of the best and the last epoch."""
        figures = [{key: value for key, value in epoch.items() if key.startswith("val_")} for epoch in self.epochs]
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.epochs),
            "stopped_early": self.stopped_early,
            "early_stopping_metric": self.metric,
            "best": figures[self.best_epoch - 1] if self.best_epoch else {},
            "final": figures[-1] if figures else {},
        }


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


@torch.no_grad()
def evaluate(model: Pipeline, x: Tensor, y: Tensor, n_classes: int) -> dict[str, float]:
    """val_loss (as trained: cross-entropy, or MSE of the standardised target) and the task's metrics."""
    was_training = model.training
    model.eval()
    outputs = torch.cat([model(x[start : start + EVAL_BATCH]) for start in range(0, len(x), EVAL_BATCH)])
    model.train(was_training)
    if n_classes:
        predicted = outputs.argmax(dim=1)
        confusion = torch.bincount(y * n_classes + predicted, minlength=n_classes**2).view(n_classes, n_classes)
        hits = confusion.diag().double()
        f1 = 2 * hits / (confusion.sum(0) + confusion.sum(1)).double().clamp(min=1)  # no support: 0, as sklearn
        return {
            "val_loss": F.cross_entropy(outputs, y).item(),
            "val_accuracy": (hits.sum() / len(y)).item(),
            "val_f1_macro": f1.mean().item(),
        }
    target = y * model.target_std + model.target_mean
    errors = outputs * model.target_std + model.target_mean - target
    return {
        "val_loss": F.mse_loss(outputs, y).item(),
        "val_mse": errors.square().mean().item(),
        "val_mae": errors.abs().mean().item(),
        "val_r2": (1 - errors.square().sum() / (target - target.mean()).square().sum().clamp(min=1e-12)).item(),
    }


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


def early_stopping_for(config: TrainConfig, task: str) -> EarlyStopping:
    name = "loss" if config.early_stopping_metric == "auto" else config.early_stopping_metric
    allowed = ("loss", "accuracy", "f1_macro") if task == "classification" else ("loss", "mse", "mae", "r2")
    if name not in allowed:
        raise ConfigError(f"--early-stopping-metric {name} does not apply to {task}; use one of {', '.join(allowed)}")
    return EarlyStopping(f"val_{name}", config.early_stopping_patience, name in LOWER_IS_BETTER)


class SigtermFlag:
    """Installed for the duration of fit: SIGTERM only sets a flag, so the loop stops at a step boundary."""

    def __init__(self) -> None:
        self.raised = False
        self.installed = False
        self.previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.raised = True

    def __enter__(self) -> "SigtermFlag":
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)


def show_progress(config: TrainConfig) -> bool:
    return config.progress == "bar" or (config.progress == "auto" and sys.stderr.isatty())


def fit(model: Pipeline, splits: Splits, config: TrainConfig, device: torch.device) -> History:
    """Train `model` in place; returns its History. Raises Interrupted after SIGTERM (checkpoint written)."""
    return Trainer(model, splits, config, device).run()


class Trainer:
    """One training run and everything a checkpoint must hold to continue it bit for bit."""

    def __init__(self, model: Pipeline, splits: Splits, config: TrainConfig, device: torch.device) -> None:
        self.model, self.config, self.device = model, config, device
        self.n_classes = len(splits.labels) if splits.task == "classification" else 0
        self.x_train, self.y_train = self._tensors(splits.train.x, splits.train.y)
        self.x_val, self.y_val = self._tensors(splits.val.x, splits.val.y)
        self.epochs = 1 if config.dry_run else config.epochs
        self.steps_per_epoch = 1 if config.dry_run else math.ceil(len(self.x_train) / config.batch_size)
        self.optimizer = make_optimizer(model, config)
        self.weights = penalised_weights(model)
        self.schedule = make_schedule(self.optimizer, config, self.epochs, self.steps_per_epoch)
        self.generator = torch.Generator(device).manual_seed(config.seed)  # shuffling and augmentation
        self.numpy_rng = np.random.default_rng(config.seed)  # mixup weights
        self.augment = Augmenter(config, model.std, self.n_classes, self.generator, self.numpy_rng)
        self.stopping = early_stopping_for(config, splits.task)
        self.history = History(metric=self.stopping.metric)
        self.store = open_store(config.checkpoint_location)
        self.bf16 = config.precision == "bf16" and device.type == "cuda"
        # Where the run stands: the 0-based epoch in progress, the next step in it, and that epoch's tallies;
        # `permutation` is None between epochs.
        self.epoch, self.step = 0, 0
        self.permutation: Tensor | None = None
        self.loss_sum = torch.zeros((), device=device)
        self.epoch_lr = 0.0

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
        features = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        if self.n_classes:
            return features, torch.as_tensor(y, dtype=torch.int64, device=self.device)
        target = torch.as_tensor(y, dtype=torch.float32, device=self.device)
        return features, (target - self.model.target_mean) / self.model.target_std

    def run(self) -> History:
        torch.manual_seed(self.config.seed)  # dropout draws from the global generator
        self._start_or_resume()
        self.model.train()
        total = self.epochs * self.steps_per_epoch
        done = self.epoch * self.steps_per_epoch + self.step
        with (
            SigtermFlag() as sigterm,
            tqdm(total=total, initial=done, disable=not show_progress(self.config), unit="step") as bar,
        ):
            while self.epoch < self.epochs and not self.history.stopped_early:
                self._train_epoch(sigterm, bar)
                if sigterm.raised:
                    raise Interrupted(
                        f"stopped after epoch {self.epoch}; checkpoint in {self.config.checkpoint_location}"
                    )
        if self.stopping.best_weights is not None:
            self.model.load_state_dict(self.stopping.best_weights)
        return self.history

    def _start_or_resume(self) -> None:
        location = self.config.checkpoint_location
        if not self.config.resume:
            if removed := clear_checkpoints(self.store):
                logger.info("removed %d checkpoints of an earlier run from %s", removed, location)
            return
        state = load_latest_checkpoint(self.store)
        if state is None:
            logger.warning("--resume: no checkpoint in %s yet; starting from the beginning", location)
            return
        self._load_state(state)
        logger.info("resumed from %s at epoch %d, step %d", location, self.epoch + 1, self.step)

    def _train_epoch(self, sigterm: SigtermFlag, bar: tqdm) -> None:
        started = time.perf_counter()
        if self.permutation is None:
            self.permutation = torch.randperm(len(self.x_train), generator=self.generator, device=self.device)
            self.loss_sum.zero_()
            self.epoch_lr = self.optimizer.param_groups[0]["lr"]
        batch_size = self.config.batch_size
        while self.step < self.steps_per_epoch:
            if sigterm.raised:
                self._save()
                raise Interrupted(
                    f"stopped at epoch {self.epoch + 1}, step {self.step}; "
                    f"checkpoint in {self.config.checkpoint_location}"
                )
            rows = self.permutation[self.step * batch_size : (self.step + 1) * batch_size]
            self._train_step(self.x_train[rows], self.y_train[rows])
            self.step += 1
            bar.update()
        seen = len(self.x_train) if not self.config.dry_run else min(batch_size, len(self.x_train))
        figures = evaluate(self.model, self.x_val, self.y_val, self.n_classes)
        self.epoch, self.step, self.permutation = self.epoch + 1, 0, None
        train_loss = self.loss_sum.item() / seen
        patience_ran_out = self.stopping.update(self.epoch, figures, self.model)
        self.history.stopped_early = patience_ran_out and self.epoch < self.epochs
        self.history.best_epoch = self.stopping.best_epoch
        if self.config.schedule != "onecycle":
            self.schedule.step()
        seconds = time.perf_counter() - started
        record = {"epoch": self.epoch, "train_loss": train_loss, **figures, "lr": self.epoch_lr, "seconds": seconds}
        self.history.epochs.append(record)
        logger.info("%s", json.dumps(record))
        bar.set_postfix(train_loss=f"{record['train_loss']:.4f}", val_loss=f"{record['val_loss']:.4f}")
        self._save()

    def _train_step(self, x: Tensor, y: Tensor) -> None:
        x, targets = self.augment(x, y)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            outputs = self.model(x)
        # Mixup targets are class probabilities; cross_entropy takes them as they are.
        loss = F.cross_entropy(outputs.float(), targets) if self.n_classes else F.mse_loss(outputs.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        (loss + penalty(self.weights, self.config.l1, self.config.l2)).backward()
        if self.config.clip_grad_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        if self.config.schedule == "onecycle":
            self.schedule.step()
        self.loss_sum += loss.detach() * len(x)

    def _save(self) -> None:
        save_checkpoint(self.store, self._state(), self.epoch, self.step)

    def _state(self) -> dict[str, Any]:
        stopping = self.stopping
        return {
            "config": self.config.to_dict(),
            "position": {"epoch": self.epoch, "step": self.step},
            "epoch_tallies": {"permutation": self.permutation, "loss_sum": self.loss_sum, "lr": self.epoch_lr},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": rng_state(self.generator, self.numpy_rng),
            "early_stopping": {
                "best": stopping.best,
                "best_epoch": stopping.best_epoch,
                "bad_epochs": stopping.bad_epochs,
                "best_weights": stopping.best_weights,
            },
            "history": {"epochs": self.history.epochs, "stopped_early": self.history.stopped_early},
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        changed = {
            key: (value, state["config"].get(key))
            for key, value in self.config.to_dict().items()
            if key not in RESUMABLE_CHANGES and state["config"].get(key) != value
        }
        if changed:
            differences = "; ".join(
                f"--{key.replace('_', '-')} {old!r} -> {new!r}" for key, (new, old) in changed.items()
            )
            raise ConfigError(
                f"--resume: the checkpoint in {self.config.checkpoint_location} is from a run with other settings "
                f"({differences}); use the same settings or another --checkpoint-dir"
            )
        self.epoch, self.step = state["position"]["epoch"], state["position"]["step"]
        tallies = state["epoch_tallies"]
        self.permutation = None if tallies["permutation"] is None else tallies["permutation"].to(self.device)
        self.loss_sum = tallies["loss_sum"].to(self.device)
        self.epoch_lr = tallies["lr"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if not restore_rng(state["rng"], self.generator, self.numpy_rng):
            logger.warning(
                "--resume: the checkpoint is from another kind of device; the run goes on with fresh random "
                "streams and will not repeat the original bit for bit"
            )
        saved = state["early_stopping"]
        self.stopping.best, self.stopping.best_epoch = saved["best"], saved["best_epoch"]
        self.stopping.bad_epochs, self.stopping.best_weights = saved["bad_epochs"], saved["best_weights"]
        self.history.epochs = state["history"]["epochs"]
        self.history.stopped_early = state["history"]["stopped_early"]
        self.history.best_epoch = self.stopping.best_epoch
