"""What `python -m training` prints: text for a person at a terminal, today's JSON lines where logs are collected."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from training.cloud.contract import METRIC_REGEXES

ROOT = Path(__file__).resolve().parents[2]
DIABETES = ["--data", str(ROOT / "examples/data/diabetes.csv"), "--target", "progression", "--hidden-size", "8"]
EPOCH_LINE = re.compile(
    r"epoch +\d+/\d+  train_loss \d+\.\d{4}  val_loss \d+\.\d{4}  val_r2 -?\d+\.\d{4}  val_mae \d+\.\d{4}  "
    r"lr \d\.\d\de-\d\d  \d+\.\d\d s"
)


def run_in_terminal(*args: str, **env: str) -> tuple[int, str, str]:
    """Run the job with stderr on a pseudo-terminal, as a person's shell does; returns code, stdout, terminal text."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a new pty is 0 columns wide
    process = subprocess.Popen(
        [sys.executable, "-m", "training", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the job exited and closed its end
            break
        if not chunk:
            break
        seen += chunk
    stdout, _ = process.communicate(timeout=300)
    os.close(controller)
    return process.returncode, stdout, seen.decode()


def test_a_terminal_gets_aligned_epoch_lines_the_early_stop_the_parity_and_where_the_bundle_went(tmp_path):
    out = tmp_path / "bundle"

    code, stdout, terminal = run_in_terminal(
        *DIABETES, "--epochs", "40", "--early-stopping-patience", "1", "--lr", "0.05", "--batch-size", "2",
        "--out", str(out),
    )  # fmt: skip

    assert code == 0, terminal
    # The bar is redrawn after `\r`; a log line is what a terminal shows after the line's last `\r`.
    shown = [line.rsplit("\r", 1)[-1].strip() for line in terminal.replace("\r\n", "\n").split("\n")]
    epochs = [line for line in shown if line.startswith("epoch ")]
    assert epochs and all(EPOCH_LINE.fullmatch(line) for line in epochs), epochs
    assert "step/s" in terminal  # the bar was drawn, with its rate
    assert not any("step/s" in line or "|" in line for line in epochs)  # and never on a log line
    (stopped,) = [line for line in shown if line.startswith("early stopping:")]
    assert f"stopped after epoch {len(epochs)} of 40" in stopped
    kept = json.loads((out / "model.json").read_text())["training"]["best_epoch"]
    assert f"kept the weights of epoch {kept}, the best val_loss" in terminal
    assert kept < len(epochs)
    parity = next(line for line in shown if line.startswith("export: parity passed"))
    assert re.search(r"within \S+ \(absolute up to 1, relative beyond\), tolerance 1e-05", parity)
    assert stdout.splitlines()[0].startswith("bundle   diabetes-mlp ")
    assert f"curves   {out}/curves.png" in stdout
    assert "{" not in terminal  # no JSON for a person


def test_collected_logs_keep_one_json_line_per_epoch_that_the_metric_definitions_parse(tmp_path):
    out = tmp_path / "bundle"

    result = subprocess.run(
        [sys.executable, "-m", "training", *DIABETES, "--epochs", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    epochs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [epoch["epoch"] for epoch in epochs] == [1, 2]
    assert set(epochs[0]) == {"epoch", "train_loss", "val_loss", "val_mse", "val_mae", "val_r2", "lr", "seconds"}
    first = next(line for line in result.stderr.splitlines() if line.startswith("{"))
    parsed = {name: match[1] for name, regex in METRIC_REGEXES.items() if (match := re.search(regex, first))}
    assert {name: float(value) for name, value in parsed.items()} == {
        name: epochs[0][name] for name in ("train_loss", "val_loss", "val_r2", "epoch")
    }
    assert json.loads(result.stdout)["bundle"] == str(out)


def test_an_aws_batch_job_logs_json_lines_even_on_a_terminal(tmp_path):
    code, stdout, terminal = run_in_terminal("--dry-run", "--out", str(tmp_path / "bundle"), AWS_BATCH_JOB_ID="job-1")

    assert code == 0, terminal
    (epoch,) = [json.loads(line) for line in terminal.splitlines() if line.startswith("{")]
    assert epoch["epoch"] == 1
    assert json.loads(stdout)["bundle"] == str(tmp_path / "bundle")


def test_a_finished_run_removes_its_default_checkpoints_and_says_so(tmp_path):
    out = tmp_path / "bundle"

    result = subprocess.run(
        [sys.executable, "-m", "training", *DIABETES, "--epochs", "2", "--out", str(out), "--log-format", "text"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "bundle.checkpoints").exists()
    assert f"checkpoints: removed from {out}.checkpoints now that the bundle is written" in result.stderr
    assert json.loads((out / "model.json").read_text())["training"]["processes"] == 1


def test_data_and_target_are_required_except_for_a_dry_run(tmp_path):
    out = tmp_path / "bundle"

    result = subprocess.run(
        [sys.executable, "-m", "training", "--target", "label", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "training: error: --data is required: the data file and the column to predict, e.g. --data "
        "examples/data/digits.csv --target label (--dry-run alone smoke-tests on the bundled digits)"
    ]
    assert not out.exists()
