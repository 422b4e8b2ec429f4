"""Checkpoints: SIGTERM mid-epoch and at an epoch boundary, resume bit for bit, atomic files, weights_only loads."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.test_loop import small_config, toy_splits
from training.config import ConfigError
from training.fit.checkpoint import LocalStore, load_latest_checkpoint, save_checkpoint
from training.fit.interrupt import Interrupted
from training.fit.loop import fit
from training.models import build_model

CPU = torch.device("cpu")

# Every stream a checkpoint must carry: dropout (torch's global RNG), shuffling, noise and mixup partners
# (our generator), mixup weights (numpy), AdamW moments, a per-step one-cycle schedule, early stopping.
SETTINGS: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 16,
    "hidden_size": 32,
    "depth": 2,
    "dropout": 0.1,
    "optimizer": "adamw",
    "weight_decay": 0.01,
    "schedule": "onecycle",
    "l1": 1e-4,
    "clip_grad_norm": 1.0,
    "noise_std": 0.05,
    "mixup_alpha": 0.4,
    "early_stopping_patience": 5,
}
STEPS = 39  # 3 epochs of 13 steps: 200 training rows in batches of 16


def run_fit(checkpoint_dir: str, resume: bool = False, sigterm_at_step: int = 0) -> dict[str, Any]:
    """A fresh model trained with SETTINGS; SIGTERM reaches this process during step `sigterm_at_step`."""
    config = small_config(Path(checkpoint_dir), **SETTINGS, checkpoint_dir=checkpoint_dir, resume=resume)
    splits = toy_splits()
    model = build_model(config, splits)
    steps = 0

    def count_steps(module: torch.nn.Module, inputs: object) -> None:
        nonlocal steps
        if module.training:
            steps += 1
            if steps == sigterm_at_step:
                os.kill(os.getpid(), signal.SIGTERM)  # what `docker stop` sends when Spot takes the host back

    model.register_forward_pre_hook(count_steps)
    history = fit(model, splits, config, CPU)
    epochs = [{key: value for key, value in epoch.items() if key != "seconds"} for epoch in history.epochs]
    return {"weights": model.state_dict(), "history": epochs, "best_epoch": history.best_epoch, "steps": steps}


@pytest.mark.parametrize(
    ("sigterm_at_step", "position"),
    [(20, {"epoch": 1, "step": 7}), (13, {"epoch": 1, "step": 0})],
    ids=["mid-epoch", "epoch boundary"],
)
def test_sigterm_then_resume_ends_with_the_same_weights_and_history(
    sigterm_at_step: int, position: dict[str, int], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoints = str(tmp_path / "checkpoints")
    with pytest.raises(Interrupted):
        run_fit(checkpoints, sigterm_at_step=sigterm_at_step)  # that step ends, then the run stops
    state = load_latest_checkpoint(LocalStore(Path(checkpoints)))
    assert state is not None and state["position"] == position

    with caplog.at_level(logging.INFO, logger="training"):
        resumed = run_fit(checkpoints, resume=True)

    expected = run_fit(str(tmp_path / "reference"))
    assert "resumed from" in caplog.text
    assert (expected["steps"], resumed["steps"]) == (STEPS, STEPS - sigterm_at_step)
    assert len(expected["history"]) == 3
    assert resumed["history"] == expected["history"]
    assert resumed["best_epoch"] == expected["best_epoch"]
    for name, tensor in expected["weights"].items():
        assert torch.equal(resumed["weights"][name], tensor), name


SAVE_FOREVER = """
import sys
from pathlib import Path
from training.fit.checkpoint import LocalStore

store = LocalStore(Path(sys.argv[1]))
step = 0
while True:
    store.save(f"blob-{step:06d}", bytes([step % 251]) * 32_000_000)
    store.delete(f"blob-{step - 2:06d}")
    step += 1
"""


def test_checkpoint_store_killed_mid_write_leaves_only_complete_files(tmp_path: Path) -> None:
    script = tmp_path / "save_forever.py"
    script.write_text(SAVE_FOREVER)
    directory = tmp_path / "checkpoints"
    store = LocalStore(directory)
    caught_mid_write = False
    for attempt in range(3):  # until a kill lands while a file is being written (nearly always the first)
        before = set(store.names())
        process = subprocess.Popen([sys.executable, str(script), str(directory)])
        deadline = time.monotonic() + 60
        while set(store.names()) <= before and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.03 * attempt)
        process.kill()
        process.wait(timeout=30)
        caught_mid_write = any(path.name.endswith(".tmp") for path in directory.iterdir())
        if caught_mid_write:
            break

    assert caught_mid_write
    assert store.names(), "no file was ever completed"
    for name in store.names():
        data = store.load(name)
        assert len(data) == 32_000_000
        assert data == bytes([int(name.removeprefix("blob-")) % 251]) * 32_000_000


def test_checkpoint_of_a_real_run_loads_with_weights_only(tmp_path: Path) -> None:
    splits = toy_splits()
    config = small_config(tmp_path, epochs=2, early_stopping_patience=5, mixup_alpha=0.2, schedule="cosine")
    model = build_model(config, splits)
    history = fit(model, splits, config, CPU)

    (latest,) = sorted((tmp_path / "checkpoints").glob("epoch-0002-*.pt"))
    state = torch.load(latest, weights_only=True)

    assert state["position"] == {"epoch": 2, "step": 0}
    assert state["history"]["epochs"] == history.epochs
    assert set(state["rng"]) == {"shuffle", "ranks"}
    assert set(state["rng"]["ranks"][0]) == {"torch", "cuda", "generator", "generator_device", "numpy"}
    assert state["config"] == config.to_dict()
    assert set(state["model"]) == set(model.state_dict())


def test_checkpoint_store_keeps_the_newest_two(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for epoch, step in ((0, 5), (1, 0), (1, 3), (2, 0)):
        save_checkpoint(store, {"epoch": epoch}, epoch, step)

    assert store.names() == ["epoch-0001-step-000003.pt", "epoch-0002-step-000000.pt"]
    assert load_latest_checkpoint(store) == {"epoch": 2}


def test_fit_fresh_run_removes_checkpoints_of_an_earlier_run(tmp_path: Path) -> None:
    splits = toy_splits()
    fit(build_model(small_config(tmp_path, epochs=3), splits), splits, small_config(tmp_path, epochs=3), CPU)

    config = small_config(tmp_path, epochs=1)
    fit(build_model(config, splits), splits, config, CPU)

    assert LocalStore(tmp_path / "checkpoints").names() == ["epoch-0001-step-000000.pt"]


def test_fit_resume_of_a_finished_run_trains_no_further(tmp_path: Path) -> None:
    splits = toy_splits()
    config = small_config(tmp_path, epochs=2, early_stopping_patience=1)
    trained = build_model(config, splits)
    history = fit(trained, splits, config, CPU)
    resumed = build_model(config, splits)
    steps: list[int] = []
    resumed.register_forward_pre_hook(lambda module, inputs: steps.append(1) if module.training else None)

    resumed_history = fit(
        resumed, splits, small_config(tmp_path, epochs=2, early_stopping_patience=1, resume=True), CPU
    )

    assert steps == []
    assert resumed_history.epochs == history.epochs
    for name, tensor in trained.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name


def test_fit_resume_refuses_a_checkpoint_of_other_settings(tmp_path: Path) -> None:
    splits = toy_splits()
    config = small_config(tmp_path, epochs=1)
    fit(build_model(config, splits), splits, config, CPU)

    changed = small_config(tmp_path, epochs=1, lr=0.5, resume=True)
    with pytest.raises(ConfigError, match=r"--lr 0\.01 -> 0\.5"):
        fit(build_model(changed, splits), splits, changed, CPU)


def test_fit_resume_without_a_checkpoint_starts_from_the_beginning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    splits = toy_splits()
    config = small_config(tmp_path, epochs=2, resume=True)

    with caplog.at_level(logging.WARNING, logger="training"):
        history = fit(build_model(config, splits), splits, config, CPU)

    assert len(history.epochs) == 2
    assert "no checkpoint" in caplog.text
