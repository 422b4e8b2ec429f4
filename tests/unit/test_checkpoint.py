"""Checkpoints: SIGTERM mid-epoch and at an epoch boundary, resume bit for bit, atomic files, weights_only loads."""

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.unit.test_loop import small_config, toy_splits
from training.checkpoint import LocalStore, load_latest_checkpoint, open_store, save_checkpoint
from training.config import ConfigError
from training.loop import EXIT_INTERRUPTED, fit
from training.models import build_model

CPU = torch.device("cpu")

# A run of 3 epochs x 15 steps that uses every stream a checkpoint must carry: dropout (torch's global RNG),
# shuffling, noise and mixup partners (our generator), mixup weights (numpy), AdamW moments, a per-step
# one-cycle schedule and early-stopping state.
RUN_FIT = """
import logging, sys
import numpy as np, torch
from training.config import TrainConfig
from training.data import Split, Splits
from training.loop import EXIT_INTERRUPTED, Interrupted, fit
from training.models import build_model

SETTINGS = dict(
    progress="none", hidden_size=32, depth=2, dropout=0.1, epochs=3, batch_size=16, optimizer="adamw", lr=0.01,
    weight_decay=0.01, schedule="onecycle", l1=1e-4, clip_grad_norm=1.0, noise_std=0.05, mixup_alpha=0.4,
    early_stopping_patience=5,
)


def make_splits():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 8)) * 4 + 10).astype(np.float32)
    y = ((x - 10) @ rng.normal(size=(8, 3))).argmax(axis=1).astype(np.int64)
    parts = [Split(x[a:b], y[a:b]) for a, b in ((0, 240), (240, 270), (270, 300))]
    names = [f"f{i}" for i in range(8)]
    return Splits(*parts, "classification", names, ["a", "b", "c"], x[:240].mean(0), x[:240].std(0), 0.0, 1.0, "", {})


def run(checkpoint_dir, resume, pause_at=0):
    config = TrainConfig(**SETTINGS, checkpoint_dir=checkpoint_dir, resume=resume)
    splits = make_splits()
    model = build_model(config, splits)
    steps = 0

    def count_steps(module, inputs):
        nonlocal steps
        if module.training:
            steps += 1
            if steps == pause_at:
                print("ready", flush=True)
                sys.stdin.readline()  # the parent sends SIGTERM, then answers

    model.register_forward_pre_hook(count_steps)
    history = fit(model, splits, config, torch.device("cpu"))
    records = [{key: value for key, value in epoch.items() if key != "seconds"} for epoch in history.epochs]
    return {"weights": model.state_dict(), "history": records, "best_epoch": history.best_epoch, "steps": steps}


logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
mode = sys.argv[1]
if mode == "interrupt":
    try:
        run(sys.argv[2], resume=False, pause_at=int(sys.argv[3]))
    except Interrupted:
        sys.exit(EXIT_INTERRUPTED)
else:
    results = {"reference": run(sys.argv[3], resume=False)}
    results.update({directory: run(directory, resume=True) for directory in sys.argv[4:]})
    torch.save(results, sys.argv[2])
"""


def start(script: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt_when_ready(process: subprocess.Popen[str]) -> str:
    """Wait for the run to pause inside a training step, send SIGTERM, let it go on; returns its stderr."""
    assert process.stdout is not None and process.stdin is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    process.stdin.write("go\n")
    process.stdin.flush()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    return stderr


def test_sigterm_then_resume_ends_with_the_same_weights_and_history(tmp_path: Path) -> None:
    script = tmp_path / "run_fit.py"
    script.write_text(RUN_FIT)
    mid_epoch, boundary, reference = (str(tmp_path / name) for name in ("mid-epoch", "boundary", "reference"))
    # Pause in the 22nd step (epoch 2, step 7 of 15) and in the 15th, the last step of epoch 1.
    interrupted = [start(script, "interrupt", mid_epoch, "22"), start(script, "interrupt", boundary, "15")]
    for process in interrupted:
        interrupt_when_ready(process)

    mid_state = load_latest_checkpoint(LocalStore(Path(mid_epoch)))
    boundary_state = load_latest_checkpoint(LocalStore(Path(boundary)))
    assert mid_state is not None and boundary_state is not None
    assert mid_state["position"] == {"epoch": 1, "step": 7}
    assert boundary_state["position"] == {"epoch": 1, "step": 0}

    results_file = tmp_path / "results.pt"
    compare = subprocess.run(
        [sys.executable, str(script), "compare", str(results_file), reference, mid_epoch, boundary],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert compare.returncode == 0, compare.stderr
    results = torch.load(results_file, weights_only=True)
    expected = results["reference"]
    assert "resumed from" in compare.stderr
    assert expected["steps"] == 45
    assert len(expected["history"]) == 3
    for directory, steps_left in ((mid_epoch, 45 - 22), (boundary, 45 - 15)):
        resumed = results[directory]
        assert resumed["steps"] == steps_left
        assert resumed["history"] == expected["history"]
        assert resumed["best_epoch"] == expected["best_epoch"]
        assert resumed["weights"].keys() == expected["weights"].keys()
        for name, tensor in expected["weights"].items():
            assert torch.equal(resumed["weights"][name], tensor), name


SAVE_FOREVER = """
import sys
from pathlib import Path
from training.checkpoint import LocalStore

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
    assert set(state["rng"]) == {"torch", "cuda", "generator", "generator_device", "numpy"}
    assert state["config"] == config.to_dict()
    assert set(state["model"]) == set(model.state_dict())


def test_checkpoint_store_keeps_the_newest_two(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for epoch, step in ((0, 5), (1, 0), (1, 3), (2, 0)):
        save_checkpoint(store, {"epoch": epoch}, epoch, step)

    assert store.names() == ["epoch-0001-step-000003.pt", "epoch-0002-step-000000.pt"]
    assert load_latest_checkpoint(store) == {"epoch": 2}


def test_checkpoint_store_refuses_s3_for_now() -> None:
    with pytest.raises(ConfigError, match="not supported yet"):
        open_store("s3://bucket/checkpoints")


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
