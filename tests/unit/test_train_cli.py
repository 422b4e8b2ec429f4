"""`python -m training`: the whole job from a CSV to a verified bundle, and its answers to bad input."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from tests.conftest import read_event
from training.__main__ import check_compiler, main
from training.cloud.contract import EXIT_USER_ERROR
from training.config import ConfigError, TrainConfig

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples/data/digits.csv"
DIABETES = REPO / "examples/data/diabetes.csv"


def run_training(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", "--progress", "none", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def predict_with_bundle(bundle: Path, rows: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    (outputs,) = session.run(None, {"features": rows.astype(np.float32)})
    return np.asarray(outputs)


def test_train_dry_run_writes_a_complete_bundle(
    tmp_path: Path, load_predict_app: Callable[..., ModuleType], lambda_context: object
) -> None:
    out = tmp_path / "bundle"

    result = run_training("--data", str(DIGITS), "--target", "label", "--out", str(out), "--dry-run")

    assert result.returncode == 0, result.stderr
    card = json.loads((out / "model.json").read_text())
    assert {path.name for path in out.iterdir()} >= {"model.onnx", "model.json", "curves.png"}
    assert card["format"] == "serverless-ml.bundle/1"
    assert card["input"]["shape"] == [None, 64]
    assert json.loads(result.stdout)["version"] == card["version"]
    # The round trip: the function's own loader accepts what the job wrote, and scores the card's sample.
    event = read_event("predict.json")
    event["body"] = json.dumps({"instances": card["sample"]["instances"]})
    response = load_predict_app(out).lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200, response["body"]
    assert len(json.loads(response["body"])["predictions"]) == len(card["sample"]["instances"])


@pytest.mark.slow
def test_train_digits_mlp_reaches_97_percent_test_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "bundle"

    code = main(["--data", str(DIGITS), "--target", "label", "--out", str(out), "--epochs", "30", "--progress", "none"])

    card = json.loads((out / "model.json").read_text())
    assert code == 0
    assert card["metrics"]["test"]["accuracy"] >= 0.97
    assert card["labels"] == [str(digit) for digit in range(10)]
    assert card["export"]["parity_max_abs_error"] <= 1e-5


@pytest.mark.slow
def test_train_digits_cnn_reaches_98_percent_test_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    args = [
        "--data",
        str(DIGITS),
        "--target",
        "label",
        "--out",
        str(out),
        "--model",
        "cnn",
        "--input-shape",
        "1,8,8",
        "--epochs",
        "30",
    ]

    code = main([*args, "--progress", "none"])

    card = json.loads((out / "model.json").read_text())
    assert code == 0
    assert card["metrics"]["test"]["accuracy"] >= 0.98


@pytest.mark.slow
def test_train_diabetes_mlp_reaches_r2_of_0_40(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    # 310 training rows: a narrower net with more dropout, and early stopping (on by default) picks the epoch.
    args = ["--data", str(DIABETES), "--target", "progression", "--out", str(out), "--hidden-size", "32"]

    code = main([*args, "--dropout", "0.2", "--epochs", "200", "--progress", "none"])

    card = json.loads((out / "model.json").read_text())
    assert code == 0
    assert card["training"]["stopped_early"] is True
    assert card["training"]["best_epoch"] == card["training"]["epochs_run"] - 15
    assert card["task"] == "regression"
    assert card["outputs"] == ["predictions"]
    assert card["metrics"]["test"]["r2"] >= 0.40
    sample = np.asarray(card["sample"]["instances"], dtype=np.float32)
    np.testing.assert_allclose(predict_with_bundle(out, sample), card["sample"]["outputs"], atol=1e-5)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    digits = pd.read_csv(DIGITS).head(64)
    with_text = digits.assign(pixel_0_0=["dark", *digits["pixel_0_0"][1:]])  # a typo in a numeric column
    one_class = digits.assign(label=3)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    return {
        "missing file": (["--data", str(tmp_path / "absent.csv")], "not found"),
        "unknown target": (["--data", str(DIGITS), "--target", "digit"], "digit"),
        "text in a numeric feature": (["--data", str(write_csv(tmp_path / "text.csv", with_text))], "pixel_0_0"),
        "empty file": (["--data", str(empty)], "empty"),
        "one class": (["--data", str(write_csv(tmp_path / "one.csv", one_class))], "class"),
        "unknown optimiser": (["--data", str(DIGITS), "--optimizer", "lbfgs"], "lbfgs"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing file", "unknown target", "text in a numeric feature", "empty file", "one class", "unknown optimiser"],
)
def test_train_bad_input_exits_2_with_one_line_and_no_bundle(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, expected = bad_inputs(tmp_path)[case]
    out = tmp_path / "bundle"

    code = main([*args, "--out", str(out), "--dry-run", "--progress", "none"])

    stderr_lines = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USER_ERROR
    assert stderr_lines[-1].startswith("training: error: ")
    assert expected in stderr_lines[-1]
    assert not out.exists()
    assert list(tmp_path.glob("bundle*")) == []


def test_train_bad_input_from_the_command_line_prints_no_traceback(tmp_path: Path) -> None:
    result = run_training("--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "bundle"))

    assert result.returncode == EXIT_USER_ERROR
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("training: error: ")


def test_compile_on_a_gpu_is_refused_at_start_up_where_no_c_compiler_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)

    with pytest.raises(ConfigError, match=r"^--compile: torch.compile on a GPU needs a C compiler .* drop --compile$"):
        check_compiler(TrainConfig(compile=True), torch.device("cuda"))
    check_compiler(TrainConfig(compile=True), torch.device("cpu"))  # ignored on a CPU: nothing to refuse
    check_compiler(TrainConfig(), torch.device("cuda"))
    compiler = tmp_path / "gcc"
    compiler.write_text("#!/bin/sh\n")
    compiler.chmod(0o755)
    check_compiler(TrainConfig(compile=True), torch.device("cuda"))  # found: Triton can build its launchers
