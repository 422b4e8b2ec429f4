"""The training loop: steps, epochs, early stopping, checkpoints, SIGTERM, and data parallelism across ranks.

The training rows live on the device (training.data.feed) and each epoch indexes them with one permutation,
so a step costs one gather and no DataLoader. With several processes (training.fit.distributed) every rank
draws the same permutation from a generator seeded with --seed, cuts each global batch of --batch-size
rows into one contiguous share per rank, and scales its loss so that DistributedDataParallel's gradient
average equals the gradient of the whole batch: the run is the same optimisation whatever the number
of GPUs. On CPU a run is bit-reproducible from `config.seed`, also across a SIGTERM and `--resume`: the
checkpoint holds every random stream of every rank and the exact position in the epoch.
"""

import json
import logging
import math
import sys
import time
from contextlib import nullcontext
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from training.config import TrainConfig
from training.console import EPOCH_FIGURES
from training.data.augment import Augmenter
from training.data.feed import Rows, keep_on_device
from training.data.splits import Splits
from training.export.evaluate import evaluate
from training.fit.checkpoint import (
    check_resumable,
    clear_checkpoints,
    load_latest_checkpoint,
    open_store,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from training.fit.distributed import all_reduce_sum, any_rank, broadcast_from_main, gather_from_all, rank_and_world
from training.fit.early_stopping import early_stopping_for
from training.fit.history import History
from training.fit.interrupt import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # the exit code that goes with Interrupted
from training.fit.interrupt import Interrupted, SigtermFlag
from training.fit.optim import make_optimizer, make_schedule, penalised_weights, penalty
from training.models import Pipeline

AUGMENT_STREAM, DROPOUT_STREAM = 1, 2  # with the seed and the rank, they seed each rank's own random streams

logger = logging.getLogger("training")


def show_progress(config: TrainConfig) -> bool:
    return config.progress == "bar" or (config.progress == "auto" and sys.stderr.isatty())


def fit(model: Pipeline, splits: Splits, config: TrainConfig, device: torch.device) -> History:
    """Train `model` in place, with every process of the default process group if there is one.

    Returns the History (the same on every rank). Raises Interrupted after SIGTERM (checkpoint written).
    """
    return Trainer(model, splits, config, device).run()


class Trainer:
    """One training run and everything a checkpoint must hold to continue it bit for bit."""

    def __init__(self, model: Pipeline, splits: Splits, config: TrainConfig, device: torch.device) -> None:
        self.model, self.config, self.device = model, config, device
        self.rank, self.world = rank_and_world()
        self.n_classes = len(splits.labels) if splits.task == "classification" else 0
        train_x, train_y = self._tensors(splits.train.x, splits.train.y)
        val_x, val_y = self._tensors(splits.val.x, splits.val.y)
        nbytes = sum(tensor.nbytes for tensor in (train_x, train_y, val_x, val_y))
        on_device = keep_on_device(config.data_placement, device, nbytes)
        self.train_rows = Rows(train_x, train_y, device, on_device)
        share = torch.arange(len(val_y)).tensor_split(self.world)[self.rank]  # each rank scores its share
        self.val_rows = Rows(val_x[share], val_y[share], device, on_device)
        self.epochs = 1 if config.dry_run else config.epochs
        self.steps_per_epoch = 1 if config.dry_run else math.ceil(len(train_y) / config.batch_size)
        self.optimizer = make_optimizer(model, config)
        self.weights = penalised_weights(model)
        self.schedule = make_schedule(self.optimizer, config, self.epochs, self.steps_per_epoch)
        self.shuffle = torch.Generator().manual_seed(config.seed)  # the same on every rank: one permutation
        # Each rank's own streams: noise, shifts and mixup partners (generator), mixup weights (numpy).
        self.generator = torch.Generator(device).manual_seed(stream_seed(config.seed, AUGMENT_STREAM, self.rank))
        self.numpy_rng = np.random.default_rng([config.seed, AUGMENT_STREAM, self.rank])
        self.augment = Augmenter(config, model.std, self.n_classes, self.generator, self.numpy_rng)
        self.stopping = early_stopping_for(config, splits.task)
        self.history = History(self.stopping, processes=self.world)
        self.store = open_store(config.checkpoint_location) if self.rank == 0 else None  # rank 0 alone writes
        self.bf16 = config.precision == "bf16" and device.type == "cuda"
        self.forward = self._training_forward()
        # Where the run stands: the 0-based epoch in progress, the next step in it, and that epoch's tallies;
        # `permutation` is None between epochs.
        self.epoch, self.step = 0, 0
        self.permutation: Tensor | None = None
        self.loss_sum = torch.zeros((), device=device)
        self.epoch_lr = 0.0

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
        features = torch.as_tensor(x, dtype=torch.float32)
        if self.n_classes:
            return features, torch.as_tensor(y, dtype=torch.int64)
        target = torch.as_tensor(y, dtype=torch.float32)
        return features, (target - self.model.target_mean.cpu()) / self.model.target_std.cpu()

    def _training_forward(self) -> nn.Module:
        """The module training steps call: the model, wrapped for data parallelism, compiled if asked."""
        forward: nn.Module = self.model
        if self.world > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            forward = DistributedDataParallel(self.model, device_ids=device_ids)
        if self.config.compile and self.device.type == "cuda":
            forward = cast(nn.Module, torch.compile(forward))
        return forward

    def run(self) -> History:
        torch.manual_seed(stream_seed(self.config.seed, DROPOUT_STREAM, self.rank))  # dropout uses the global RNG
        self._start_or_resume()
        self.model.train()
        total = self.epochs * self.steps_per_epoch
        done = self.epoch * self.steps_per_epoch + self.step
        quiet = self.rank != 0 or not show_progress(self.config)
        # While the bar is drawn, log lines are written above it, never on its line.
        with (
            SigtermFlag() as sigterm,
            tqdm(total=total, initial=done, disable=quiet, unit="step", leave=False) as bar,
            logging_redirect_tqdm() if not quiet else nullcontext(),
        ):
            while self.epoch < self.epochs and not self.history.stopped_early:
                self._train_epoch(sigterm, bar)
                if any_rank(sigterm.raised, self.device):
                    raise Interrupted(
                        f"stopped after epoch {self.epoch}; checkpoint in {self.config.checkpoint_location}"
                    )
        if self.stopping.best_weights is not None:
            self.model.load_state_dict(self.stopping.best_weights)
            if self.rank == 0:
                self._report_kept()
        return self.history

    def _report_kept(self) -> None:
        """Say which epoch's weights the bundle gets, and why the run ended where it did."""
        metric, best = self.stopping.metric, self.stopping.best
        if self.history.stopped_early:
            logger.info(
                "early stopping: %s did not improve for %d epochs; stopped after epoch %d of %d",
                metric, self.stopping.patience, self.epoch, self.epochs,
            )  # fmt: skip
        logger.info("kept the weights of epoch %d, the best %s (%.4g)", self.stopping.best_epoch, metric, best)

    def _start_or_resume(self) -> None:
        state = None
        if self.store is not None:
            state = self._read_checkpoint()
        state = broadcast_from_main(state)
        if state is not None:
            self._load_state(state)
            if self.rank == 0:
                location = self.config.checkpoint_location
                logger.info("resumed from %s at epoch %d, step %d", location, self.epoch + 1, self.step)

    def _read_checkpoint(self) -> dict[str, Any] | None:
        assert self.store is not None
        location = self.config.checkpoint_location
        if not self.config.resume:
            if removed := clear_checkpoints(self.store):
                logger.info(
                    "starting afresh: removed %d checkpoints of an interrupted run from %s (--resume continues it)",
                    removed, location,
                )  # fmt: skip
            return None
        state = load_latest_checkpoint(self.store)
        if state is None:
            logger.warning("--resume: no checkpoint in %s yet; starting from the beginning", location)
        return state

    def _train_epoch(self, sigterm: SigtermFlag, bar: tqdm) -> None:
        started = time.perf_counter()
        if self.permutation is None:
            self.permutation = torch.randperm(len(self.train_rows), generator=self.shuffle)
            self.loss_sum.zero_()
            self.epoch_lr = self.optimizer.param_groups[0]["lr"]
        permutation = self.permutation.to(self.train_rows.index_device)
        batch_size = self.config.batch_size
        while self.step < self.steps_per_epoch:
            if any_rank(sigterm.raised, self.device):
                self._save()
                raise Interrupted(
                    f"stopped at epoch {self.epoch + 1}, step {self.step}; "
                    f"checkpoint in {self.config.checkpoint_location}"
                )
            self._train_step(permutation[self.step * batch_size : (self.step + 1) * batch_size])
            self.step += 1
            bar.update()
        seen = len(self.train_rows) if not self.config.dry_run else min(batch_size, len(self.train_rows))
        figures = evaluate(self.model, self.val_rows.x, self.val_rows.y, self.n_classes)
        self.epoch, self.step, self.permutation = self.epoch + 1, 0, None
        train_loss = all_ranks_sum(self.loss_sum) / seen
        patience_ran_out = self.stopping.update(self.epoch, figures, self.model)
        self.history.stopped_early = patience_ran_out and self.epoch < self.epochs
        if self.config.schedule != "onecycle":
            self.schedule.step()
        seconds = time.perf_counter() - started
        record = {"epoch": self.epoch, "train_loss": train_loss, **figures, "lr": self.epoch_lr, "seconds": seconds}
        self.history.epochs.append(record)
        if self.rank == 0:  # a JSON line, or an aligned text line on a terminal (training.console)
            logger.info("%s", json.dumps(record), extra={EPOCH_FIGURES: record})
        bar.set_postfix(train_loss=f"{record['train_loss']:.4f}", val_loss=f"{record['val_loss']:.4f}")
        self._save()

    def _train_step(self, batch_rows: Tensor) -> None:
        """One optimiser step on a global batch; this rank computes its share of the rows."""
        x, y = self.train_rows.take(batch_rows.tensor_split(self.world)[self.rank])
        x, targets = self.augment(x, y)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            outputs = self.forward(x)
        # Mixup targets are class probabilities; cross_entropy takes them as they are.
        if self.n_classes:
            summed = F.cross_entropy(outputs.float(), targets, reduction="sum")
        else:
            summed = F.mse_loss(outputs.float(), targets, reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks: scaled so, the sum of shares is the mean over the global batch.
        scaled = summed * (self.world / len(batch_rows))
        (scaled + penalty(self.weights, self.config.l1, self.config.l2)).backward()
        if self.config.clip_grad_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        if self.config.schedule == "onecycle":
            self.schedule.step()
        self.loss_sum += summed.detach()

    def _save(self) -> None:
        # Collectives first: every rank takes part, then rank 0 alone writes.
        streams = gather_from_all(rng_state(self.generator, self.numpy_rng))
        loss_sum = all_ranks_sum(self.loss_sum)
        if self.store is not None:
            save_checkpoint(self.store, self._state(streams, loss_sum), self.epoch, self.step)

    def _state(self, streams: list[dict[str, Any]], loss_sum: float) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "position": {"epoch": self.epoch, "step": self.step},
            "epoch_tallies": {"permutation": self.permutation, "loss_sum": loss_sum, "lr": self.epoch_lr},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": {"shuffle": self.shuffle.get_state(), "ranks": streams},
            "early_stopping": self.stopping.state(),
            "history": {"epochs": self.history.epochs, "stopped_early": self.history.stopped_early},
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        check_resumable(self.config, state["config"])
        self.epoch, self.step = state["position"]["epoch"], state["position"]["step"]
        tallies = state["epoch_tallies"]
        self.permutation = tallies["permutation"]
        # The epoch's loss so far (all ranks together) is carried by rank 0 alone.
        self.loss_sum = torch.tensor(tallies["loss_sum"] if self.rank == 0 else 0.0, device=self.device)
        self.epoch_lr = tallies["lr"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self._restore_streams(state["rng"])
        self.stopping.load_state(state["early_stopping"])
        self.history.epochs = state["history"]["epochs"]
        self.history.stopped_early = state["history"]["stopped_early"]

    def _restore_streams(self, saved: dict[str, Any]) -> None:
        self.shuffle.set_state(saved["shuffle"])
        if len(saved["ranks"]) != self.world:
            reason = f"the checkpoint is from a run of {len(saved['ranks'])} processes, this one has {self.world}"
        elif not restore_rng(saved["ranks"][self.rank], self.generator, self.numpy_rng):
            reason = "the checkpoint is from another kind of device"
        else:
            return
        if self.rank == 0:
            logger.warning(
                "--resume: %s; augmentation and dropout go on with fresh random streams and the run "
                "will not repeat the original bit for bit",
                reason,
            )


def stream_seed(seed: int, stream: int, rank: int) -> int:
    """A seed for one random stream of one rank: independent of the other streams, the same on every rerun."""
    return int(np.random.SeedSequence([seed, stream, rank]).generate_state(1)[0])


def all_ranks_sum(tally: Tensor) -> float:
    """A per-rank tally summed over every rank."""
    return float(all_reduce_sum(tally.detach().to(torch.float64, copy=True)).item())
