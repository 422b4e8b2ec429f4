"""fit: optimisers, penalties, schedules, clipping, early stopping, seeding, logging and the curves plot."""

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training.config import ConfigError, TrainConfig
from training.data.splits import Split, Splits
from training.export.evaluate import evaluate
from training.fit.history import History, write_curves
from training.fit.loop import fit
from training.fit.optim import penalised_weights, penalty
from training.models import Pipeline, build_model

CPU = torch.device("cpu")


def toy_splits(task: str = "classification", rows: int = 300, seed: int = 0, random_labels: bool = False) -> Splits:
    """Linearly separable (or random-label) rows in raw units far from 0 and 1, split 2/3, 1/6, 1/6."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, 8)) * 4 + 10).astype(np.float32)
    scores = (x - 10) @ rng.normal(size=(8, 3))
    train, val = rows * 2 // 3, rows * 5 // 6
    if task == "classification":
        y = rng.integers(0, 3, size=rows) if random_labels else scores.argmax(axis=1)
        y, labels, target_mean, target_std = y.astype(np.int64), ["a", "b", "c"], 0.0, 1.0
    else:
        y = (scores[:, 0] * 5 + 100).astype(np.float32)
        labels, target_mean, target_std = [], float(y[:train].mean()), float(y[:train].std())
    train_split, val_split, test_split = (
        Split(x[start:stop], y[start:stop]) for start, stop in ((0, train), (train, val), (val, rows))
    )
    names = [f"f{index}" for index in range(8)]
    mean, std = x[:train].mean(axis=0), x[:train].std(axis=0)
    return Splits(
        train_split, val_split, test_split, task, names, labels, mean, std, target_mean, target_std, "0" * 64, {}
    )


def small_config(tmp_path: Path, **settings: object) -> TrainConfig:
    base: dict[str, object] = {
        "checkpoint_dir": str(tmp_path / "checkpoints"),
        "progress": "none",
        "hidden_size": 16,
        "depth": 1,
        "dropout": 0.0,
        "epochs": 5,
        "batch_size": 32,
        "lr": 0.01,
        "early_stopping_patience": 0,
    }
    return TrainConfig(**(base | settings))  # type: ignore[arg-type]


def train(tmp_path: Path, splits: Splits | None = None, **settings: Any) -> tuple[Pipeline, History]:
    splits = splits or toy_splits()
    config = small_config(tmp_path, **settings)
    model = build_model(config, splits)
    return model, fit(model, splits, config, CPU)


def weights_of(model: Pipeline) -> list[torch.Tensor]:
    return [tensor.clone() for tensor in model.state_dict().values()]


@pytest.mark.parametrize(
    ("optimizer", "lr"), [("sgd", 0.05), ("adagrad", 0.05), ("rmsprop", 0.002), ("adam", 0.01), ("adamw", 0.01)]
)
def test_fit_each_optimiser_reduces_the_validation_loss(optimizer: str, lr: float, tmp_path: Path) -> None:
    splits = toy_splits()
    config = small_config(tmp_path, optimizer=optimizer, lr=lr, weight_decay=1e-4, nesterov=optimizer == "sgd")
    model = build_model(config, splits)
    x_val, y_val = torch.from_numpy(splits.val.x), torch.from_numpy(splits.val.y)
    before = evaluate(model, x_val, y_val, n_classes=3)["val_loss"]

    history = fit(model, splits, config, CPU)

    assert history.epochs[-1]["val_loss"] < 0.6 * before
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]


def test_fit_regression_learns_a_linear_target_in_target_units(tmp_path: Path) -> None:
    _, history = train(tmp_path, toy_splits("regression"), epochs=20)

    final = history.epochs[-1]
    assert set(final) >= {"val_loss", "val_mse", "val_mae", "val_r2"}
    assert final["val_r2"] > 0.9


def total_weight(model: Pipeline) -> float:
    return sum(float(weight.detach().abs().sum()) for weight in penalised_weights(model))


@pytest.mark.parametrize("penalty_setting", ["l1", "l2"])
def test_fit_penalty_shrinks_the_weights(penalty_setting: str, tmp_path: Path) -> None:
    settings: dict[str, Any] = {penalty_setting: 0.01, "epochs": 10}
    plain, _ = train(tmp_path / "plain", epochs=10)

    penalised, _ = train(tmp_path / "penalised", **settings)

    assert total_weight(penalised) < 0.8 * total_weight(plain)


def test_penalty_covers_weights_but_not_biases_or_buffers() -> None:
    model = build_model(TrainConfig(depth=1, hidden_size=4), toy_splits())
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]

    weights = penalised_weights(model)

    assert {id(weight) for weight in weights} == {id(linear.weight) for linear in linears}
    expected = sum(0.1 * w.abs().sum() + 0.2 * w.square().sum() for w in (linear.weight for linear in linears))
    torch.testing.assert_close(penalty(weights, l1=0.1, l2=0.2), expected)


def one_cycle_lr(step: int, total: int, peak: float) -> float:
    """PyTorch's one-cycle policy (cosine, 30% warm-up, start peak/25, end peak/25/1e4)."""
    start, end, warmup_end = peak / 25, peak / 25 / 1e4, 0.3 * total - 1

    def anneal(first: float, last: float, fraction: float) -> float:
        return last + (first - last) / 2 * (math.cos(math.pi * fraction) + 1)

    if step <= warmup_end:
        return anneal(start, peak, step / warmup_end)
    return anneal(peak, end, (step - warmup_end) / (total - 1 - warmup_end))


STEPS = 7  # 200 training rows in batches of 32
EXPECTED_LR = {
    "constant": [0.1] * 6,
    "step": [0.1, 0.1, 0.05, 0.05, 0.025, 0.025],
    "cosine": [0.1 * (1 + math.cos(math.pi * epoch / 6)) / 2 for epoch in range(6)],
    "onecycle": [one_cycle_lr(epoch * STEPS, 6 * STEPS, 0.1) for epoch in range(6)],
}


@pytest.mark.parametrize("schedule", list(EXPECTED_LR))
def test_fit_schedule_gives_the_expected_learning_rate_per_epoch(schedule: str, tmp_path: Path) -> None:
    _, history = train(tmp_path, epochs=6, lr=0.1, optimizer="sgd", schedule=schedule, step_size=2, gamma=0.5)

    assert [epoch["lr"] for epoch in history.epochs] == pytest.approx(EXPECTED_LR[schedule], rel=1e-9)


def update_size(tmp_path: Path, clip: float) -> float:
    splits = toy_splits()
    config = small_config(tmp_path, optimizer="sgd", momentum=0.0, lr=1.0, clip_grad_norm=clip, dry_run=True)
    model = build_model(config, splits)
    before = [parameter.detach().clone() for parameter in model.parameters()]
    fit(model, splits, config, CPU)
    moves = [parameter.detach() - start for parameter, start in zip(model.parameters(), before, strict=True)]
    return float(torch.linalg.vector_norm(torch.cat([move.flatten() for move in moves])))


def test_fit_clipping_bounds_the_gradient_norm(tmp_path: Path) -> None:
    # Plain SGD at lr 1 moves the weights by exactly the (clipped) gradient.
    unclipped = update_size(tmp_path / "unclipped", clip=0.0)

    clipped = update_size(tmp_path / "clipped", clip=0.05)

    assert unclipped > 0.1
    assert clipped == pytest.approx(0.05, rel=1e-4)


def test_fit_early_stopping_stops_and_restores_the_best_epoch(tmp_path: Path) -> None:
    # Random labels: the net memorises the training rows and the validation loss soon rises.
    splits = toy_splits(random_labels=True)
    settings: dict[str, Any] = {"epochs": 60, "hidden_size": 64, "depth": 2, "lr": 0.02}

    model, history = train(tmp_path / "stopped", splits, early_stopping_patience=3, **settings)

    losses = [epoch["val_loss"] for epoch in history.epochs]
    assert history.stopped_early
    assert len(history.epochs) == history.best_epoch + 3 < 60
    assert losses[history.best_epoch - 1] == min(losses)
    best_run, _ = train(tmp_path / "best", splits, **(settings | {"epochs": history.best_epoch}))
    assert all(torch.equal(a, b) for a, b in zip(weights_of(model), weights_of(best_run), strict=True))
    assert history.summary()["best"]["val_loss"] == min(losses)


def test_fit_early_stopping_on_accuracy_keeps_the_most_accurate_epoch(tmp_path: Path) -> None:
    _, history = train(
        tmp_path, epochs=8, early_stopping_patience=50, early_stopping_metric="accuracy", lr=0.001, optimizer="sgd"
    )

    accuracies = [epoch["val_accuracy"] for epoch in history.epochs]
    assert history.metric == "val_accuracy"
    assert accuracies[history.best_epoch - 1] == max(accuracies)
    assert not history.stopped_early


def test_fit_refuses_a_metric_of_the_other_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--early-stopping-metric r2 does not apply to classification"):
        train(tmp_path, early_stopping_metric="r2")


def test_fit_same_seed_gives_identical_weights(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"dropout": 0.2, "noise_std": 0.1, "mixup_alpha": 0.4, "epochs": 3}

    first, first_history = train(tmp_path / "first", **settings)
    second, second_history = train(tmp_path / "second", **settings)
    other, _ = train(tmp_path / "other", seed=1, **settings)

    assert all(torch.equal(a, b) for a, b in zip(weights_of(first), weights_of(second), strict=True))
    assert [e["train_loss"] for e in first_history.epochs] == [e["train_loss"] for e in second_history.epochs]
    assert not all(torch.equal(a, b) for a, b in zip(weights_of(first), weights_of(other), strict=True))


def test_fit_logs_one_json_line_per_epoch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="training"):
        _, history = train(tmp_path, epochs=3)

    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("{")]
    assert [json.loads(line) for line in lines] == history.epochs
    assert list(history.epochs[0])[:5] == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_macro"]
    val_losses = [float(re.search(r'"val_loss": ([0-9.e+-]+)', line)[1]) for line in lines]  # type: ignore[index]
    assert val_losses == [epoch["val_loss"] for epoch in history.epochs]


def test_fit_dry_run_takes_one_sgd_step_on_the_first_shuffled_batch(tmp_path: Path) -> None:
    splits = toy_splits()
    config = small_config(tmp_path, epochs=30, dry_run=True, optimizer="sgd", momentum=0.0, lr=0.5)
    model = build_model(config, splits)
    expected = build_model(config, splits)
    rows = torch.randperm(200, generator=torch.Generator().manual_seed(config.seed))[:32]
    x, y = torch.from_numpy(splits.train.x)[rows], torch.from_numpy(splits.train.y)[rows]
    loss = torch.nn.functional.cross_entropy(expected(x), y)
    gradients = torch.autograd.grad(loss, list(expected.parameters()))
    with torch.no_grad():
        for parameter, gradient in zip(expected.parameters(), gradients, strict=True):
            parameter.sub_(0.5 * gradient)

    history = fit(model, splits, config, CPU)

    assert len(history.epochs) == 1
    for trained, stepped in zip(model.parameters(), expected.parameters(), strict=True):
        torch.testing.assert_close(trained, stepped)


def test_fit_shows_a_progress_bar_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(tmp_path / "bar", epochs=2, progress="bar")
    with_bar = capsys.readouterr().err

    train(tmp_path / "none", epochs=2, progress="none")

    assert "14/14" in with_bar
    assert capsys.readouterr().err == ""


def test_history_summary_reports_best_and_final_figures(tmp_path: Path) -> None:
    _, history = train(tmp_path, epochs=4)

    summary = history.summary()

    assert summary["epochs_run"] == 4
    assert summary["stopped_early"] is False
    assert summary["final"]["val_loss"] == history.epochs[-1]["val_loss"]
    assert summary["best"]["val_loss"] == min(epoch["val_loss"] for epoch in history.epochs)


def test_write_curves_writes_a_png(tmp_path: Path) -> None:
    _, history = train(tmp_path, epochs=3)
    path = tmp_path / "plots" / "curves.png"

    write_curves(history, path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
