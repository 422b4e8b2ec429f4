"""Data parallelism on CPU processes (gloo): the same optimisation as one process, rank 0 alone writes, SIGTERM."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts.moto_server import free_port
from tests.unit.test_loop import small_config, toy_splits
from training.fit.checkpoint import LocalStore
from training.fit.distributed import Rendezvous, exit_code, worker_environment
from training.fit.interrupt import EXIT_INTERRUPTED
from training.fit.loop import fit
from training.models import build_model

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples/data/digits.csv"
CPU = torch.device("cpu")
# Everything that shapes the gradient, nothing random per rank (dropout, augmentation): two processes must
# then take the very steps one process takes. 197 training rows: the last batch of 5 splits 3 + 2.
SETTINGS = {
    "hidden_size": 32,
    "depth": 2,
    "epochs": 4,
    "batch_size": 32,
    "optimizer": "adamw",
    "weight_decay": 0.01,
    "l2": 1e-4,
    "clip_grad_norm": 1.0,
    "schedule": "onecycle",
}
ROWS = 296

FIT_IN_A_PROCESS_GROUP = """
import json, os, sys
from pathlib import Path
import torch
from tests.unit.test_loop import small_config, toy_splits
from training.fit.distributed import Worker, process_group
from training.fit.loop import fit
from training.models import build_model

out, settings = Path(sys.argv[1]), json.loads(sys.argv[2])
worker = Worker.from_environment(os.environ)
results = {}
with process_group(worker, torch.device("cpu")):
    for task in ("classification", "regression"):
        splits = toy_splits(task, rows=int(sys.argv[3]))
        config = small_config(out / task, **settings)
        model = build_model(config, splits)
        history = fit(model, splits, config, torch.device("cpu"))
        results[task] = {"weights": model.state_dict(), "history": history.epochs}
torch.save(results, out / f"rank-{worker.rank}.pt")
"""


def figures(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{key: value for key, value in epoch.items() if key not in ("seconds", "lr")} for epoch in history]


@pytest.mark.slow
def test_distributed_torchrun_two_processes_take_the_steps_of_one(tmp_path: Path) -> None:
    script = tmp_path / "fit.py"
    script.write_text(FIT_IN_A_PROCESS_GROUP)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
    ]

    result = subprocess.run(
        [*torchrun, str(script), str(tmp_path / "ddp"), json.dumps(SETTINGS), str(ROWS)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stderr
    ranks = [torch.load(tmp_path / "ddp" / f"rank-{rank}.pt", weights_only=True) for rank in (0, 1)]
    for task in ("classification", "regression"):
        splits = toy_splits(task, rows=ROWS)
        config = small_config(tmp_path / "one" / task, **SETTINGS)
        model = build_model(config, splits)
        history = fit(model, splits, config, CPU)
        for ran in ranks:
            for ran_epoch, epoch in zip(figures(ran[task]["history"]), figures(history.epochs), strict=True):
                assert ran_epoch == pytest.approx(epoch, rel=1e-5)
            for name, tensor in model.state_dict().items():
                torch.testing.assert_close(ran[task]["weights"][name], tensor, rtol=1e-5, atol=1e-6)
        # rank 0 alone writes checkpoints
        assert LocalStore(tmp_path / "ddp" / task / "checkpoints").names() == [
            "epoch-0003-step-000000.pt",
            "epoch-0004-step-000000.pt",
        ]


def test_distributed_worker_environment_numbers_ranks_across_nodes() -> None:
    rendezvous = Rendezvous(nodes=2, node_rank=1, master_addr="algo-1", master_port=29501, processes_per_node=4)

    environments = [worker_environment(rendezvous, local, {"PATH": "/usr/bin"}) for local in range(4)]

    assert [env["RANK"] for env in environments] == ["4", "5", "6", "7"]
    assert [env["LOCAL_RANK"] for env in environments] == ["0", "1", "2", "3"]
    assert {env["WORLD_SIZE"] for env in environments} == {"8"}
    assert {(env["MASTER_ADDR"], env["MASTER_PORT"], env["PATH"]) for env in environments} == {
        ("algo-1", "29501", "/usr/bin")
    }


def test_distributed_exit_code_counts_a_signal_as_a_shell_does() -> None:
    assert [exit_code(code) for code in (0, 2, -signal.SIGTERM, -signal.SIGKILL)] == [0, 2, 143, 137]


def run_digits(out: Path, port: int, **env: str) -> subprocess.Popen[str]:
    """`python -m training --processes 2` on the digits, as a user (or AWS Batch) starts it."""
    command = ["--data", str(DIGITS), "--target", "label", "--out", str(out), "--epochs", "30", "--processes", "2"]
    return subprocess.Popen(
        [sys.executable, "-m", "training", *command, "--progress", "none"],
        env={**os.environ, "MASTER_PORT": str(port), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_distributed_two_processes_stop_on_sigterm_resume_and_reach_the_quality_bar(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    first = run_digits(out, free_port())
    assert first.stderr is not None
    for line in first.stderr:  # let it train two epochs, then reclaim the "Spot instance"
        if line.startswith('{"epoch": 2,'):
            first.send_signal(signal.SIGTERM)
            break
    _, stopped_stderr = first.communicate(timeout=120)

    assert first.returncode == EXIT_INTERRUPTED, stopped_stderr
    assert stopped_stderr.count("training: interrupted, checkpoint written") == 1
    assert not out.exists()
    checkpoints = LocalStore(Path(f"{out}.checkpoints")).names()
    assert 1 <= len(checkpoints) <= 2 and checkpoints[-1] >= "epoch-0002-step-000000.pt"

    retry = run_digits(out, free_port(), AWS_BATCH_JOB_ATTEMPT="2")  # AWS Batch's retry of the job
    stdout, stderr = retry.communicate(timeout=300)

    assert retry.returncode == 0, stderr
    assert "resumed from" in stderr
    assert stderr.count("export: bundle") == 1
    (summary,) = stdout.splitlines()
    card = json.loads((out / "model.json").read_text())
    assert json.loads(summary)["version"] == card["version"]
    assert card["metrics"]["test"]["accuracy"] >= 0.97
    assert card["training"]["epochs_run"] == 30
    assert card["training"]["processes"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bundle"]  # the finished run's checkpoints removed
