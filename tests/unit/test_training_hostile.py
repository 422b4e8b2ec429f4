"""Hostile training input: data files, settings and signals, as a careless user or an attacker sends them.

Every case ends with its documented exit code and one line on stderr, no traceback, and leaves the
folder it ran in exactly as it was: the previous bundle in --out, no `.bundle.staging-*` folder and
no checkpoints (a signal during the export keeps the last epoch's checkpoint: a rerun resumes from it).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sml.bundle import check_with_function
from sml.cli import main as sml_main
from tests.conftest import FUNCTION_DIR
from tests.projects import copy_function
from training.__main__ import main
from training.cloud.contract import EXIT_USER_ERROR, FAILURE_PREFIXES
from training.config import NAME_PATTERN, TrainConfig
from training.fit.interrupt import Terminated, signals_held, sigterm_raises

REPO = Path(__file__).resolve().parents[2]
NAME_RULE_LINE = "a bundle name must be 1-128 letters, digits or . _ + : -"


def tiny_table(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    """Two features, a two-class `label` and a regression `price`: enough for one quick epoch."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.0, 1.0, rows), rng.normal(5.0, 2.0, rows)
    return pd.DataFrame({"a": a, "b": b, "label": (a > 0).astype(int), "price": 3.0 * a + b})


def csv(path: Path, table: pd.DataFrame | None = None) -> str:
    (tiny_table() if table is None else table).to_csv(path, index=False)
    return str(path)


def a_file(path: Path) -> Path:
    path.write_text("not a folder\n")
    return path


def dangling_link(path: Path) -> Path:
    path.symlink_to(path.with_name("nowhere"))
    return path


def truncated_npz(folder: Path) -> str:
    whole = folder / "whole.npz"
    np.savez(whole, x=np.zeros((40, 2)), label=np.arange(40) % 2)
    (folder / "cut.npz").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return str(folder / "cut.npz")


def zip_not_npz(folder: Path) -> str:
    with zipfile.ZipFile(folder / "archive.npz", "w") as archive:
        archive.writestr("notes.txt", "label,a\n1,2\n")
    return str(folder / "archive.npz")


def single_array_npz(folder: Path) -> str:
    np.save(folder / "single.npy", np.zeros((40, 3)))
    return str((folder / "single.npy").rename(folder / "single.npz"))


def complex_npz(folder: Path) -> str:
    features = np.ones((40, 2)) + 1j
    np.savez(folder / "complex.npz", x=features, label=np.arange(40) % 2)
    return str(folder / "complex.npz")


def object_npz(folder: Path) -> str:
    np.savez(folder / "objects.npz", x=np.array([{"a": 1}, None], dtype=object), label=np.arange(2))
    return str(folder / "objects.npz")


def two_data_files(folder: Path) -> str:
    for name in ("one.csv", "two.csv"):
        csv(folder / name)
    return str(folder)


def random_bytes_csv(folder: Path) -> str:
    (folder / "noise.csv").write_bytes(np.random.default_rng(0).bytes(512))
    return str(folder / "noise.csv")


def with_column(name: str, values: Sequence[object]) -> Callable[[Path], str]:
    return lambda folder: csv(folder / "data.csv", tiny_table().assign(**{name: values}))


def config_file(text: str) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        (folder / "job.yaml").write_text(text)
        return str(folder / "job.yaml")

    return write


Build = Callable[[Path], list[str]]
# case: (the arguments, built in a fresh folder, that come after the defaults; a piece of the one stderr line)
CASES: dict[str, tuple[Build, str]] = {
    # names the card contract refuses (issue 15, class 2)
    "--name with a slash and a space": (
        lambda d: ["--data", csv(d / "d.csv"), "--name", "team/model v2"],
        f"--name 'team/model v2': {NAME_RULE_LINE}",
    ),
    "--name of 129 characters": (lambda d: ["--data", csv(d / "d.csv"), "--name", "m" * 129], NAME_RULE_LINE),
    "name in a settings file": (
        lambda d: ["--data", csv(d / "d.csv"), "--config", config_file("name: ../../etc\n")(d)],
        f"--name '../../etc': {NAME_RULE_LINE}",
    ),
    # values float32 training cannot hold (class 3)
    "regression target of 1e30": (
        lambda d: ["--data", with_column("price", [1e30, *np.linspace(1.0, 2.0, 39)])(d), "--target", "price"],
        "target 'price' holds values beyond ±1.8e+19 (e.g. 1e+30)",
    ),
    "feature finite in float64, beyond float32": (
        lambda d: ["--data", with_column("b", [1.0] * 39 + [1e39])(d)],
        "feature column 'b' holds values beyond ±1.8e+19 (e.g. 1e+39)",
    ),
    "integer beyond 64 bits": (
        lambda d: ["--data", with_column("b", [2, 10**26, *range(38)])(d)],
        "feature column 'b' holds values beyond ±1.8e+19 (e.g. 100000000000000000000000000)",
    ),
    "number of 5000 digits": (
        lambda d: ["--data", with_column("b", [2, "9" * 5000, *range(38)])(d)],
        "feature column 'b' is not numeric (e.g. '999999999999999999999999999999999999999… (5002 characters))",
    ),
    "infinite feature": (
        lambda d: ["--data", with_column("a", [float("inf")] + [0.5] * 39)(d)],
        "feature column 'a' holds infinite values",
    ),
    # destinations that can never be written, unreadable files (class 4)
    "--out is an existing file": (
        lambda d: ["--data", csv(d / "d.csv"), "--out", str(a_file(d / "taken"))],
        "taken: is a file, not a folder",
    ),
    "--out under a file": (
        lambda d: ["--data", csv(d / "d.csv"), "--out", str(a_file(d / "taken") / "bundle")],
        "is a file, so no folder can be made under it",
    ),
    "--out is a link to nothing": (
        lambda d: ["--data", csv(d / "d.csv"), "--out", str(dangling_link(d / "gone"))],
        "gone: is a link to nothing",
    ),
    "checkpoint folder with a NUL character, from a settings file": (
        lambda d: ["--data", csv(d / "d.csv"), "--config", config_file('checkpoint_dir: "ck\\0pt"\n')(d)],
        "--checkpoint-dir 'ck\\x00pt': a path cannot hold a NUL character",
    ),
    "--checkpoint-dir is a file": (
        lambda d: ["--data", csv(d / "d.csv"), "--checkpoint-dir", str(a_file(d / "ckpt"))],
        "--checkpoint-dir",
    ),
    "truncated npz": (lambda d: ["--data", truncated_npz(d)], "cut.npz is not a readable NPZ archive"),
    "zip that is not an npz": (
        lambda d: ["--data", zip_not_npz(d)],
        "archive.npz: member 'notes.txt' is not a NumPy array",
    ),
    "npz of one array": (lambda d: ["--data", single_array_npz(d)], "holds a single array, not an archive"),
    "npz of complex numbers": (
        lambda d: ["--data", complex_npz(d)],
        "feature column 'feature_0' holds complex numbers",
    ),
    "npz of pickled objects": (lambda d: ["--data", object_npz(d)], "could not be read as npz"),
    "random bytes as csv": (lambda d: ["--data", random_bytes_csv(d)], "noise.csv could not be read as csv"),
    "csv named parquet": (lambda d: ["--data", csv(d / "d.parquet")], "could not be read as parquet"),
    # the smaller ones (class 13)
    "not numeric after a numeric first value": (
        lambda d: ["--data", with_column("b", [1.5, 2.5, "heavy"] + [1.0] * 37)(d)],
        "feature column 'b' is not numeric (e.g. 'heavy')",
    ),
    "600 rows over 500 classes": (
        lambda d: ["--data", csv(d / "d.csv", tiny_table(600).assign(label=[f"c{i % 500}" for i in range(600)]))],
        "too few rows per class to split: 600 rows over 500 classes",
    ),
    # documented refusals that must stay so
    "folder with two data files": (lambda d: ["--data", two_data_files(d)], "holds 2 CSV/Parquet/NPZ files"),
    "header only": (lambda d: ["--data", csv(d / "h.csv", tiny_table().head(0))], "no data rows"),
    "unknown --features column": (lambda d: ["--data", csv(d / "d.csv"), "--features", "a,zz"], "'zz'"),
    "--epochs 0": (lambda d: ["--data", csv(d / "d.csv"), "--epochs", "0"], "--epochs: must be at least 1"),
    "--lr inf": (lambda d: ["--data", csv(d / "d.csv"), "--lr", "inf"], "--lr: must be a finite number, got inf"),
    "--weight-decay nan": (
        lambda d: ["--data", csv(d / "d.csv"), "--weight-decay", "nan"],
        "--weight-decay: must be a finite number, got nan",
    ),
    "--mixup-alpha inf": (
        lambda d: ["--data", csv(d / "d.csv"), "--mixup-alpha", "inf"],
        "--mixup-alpha: must be a finite number",
    ),
    "--step-size 0": (lambda d: ["--data", csv(d / "d.csv"), "--schedule", "step", "--step-size", "0"], "--step-size"),
    "--seed -1": (lambda d: ["--data", csv(d / "d.csv"), "--seed", "-1"], "--seed: must be a whole number from 0"),
    "--seed beyond 64 bits": (
        lambda d: ["--data", csv(d / "d.csv"), "--seed", "9" * 30],
        f"--seed: must be a whole number from 0 to 2**63 - 1, got {'9' * 30}",
    ),
    "settings file that is a list": (
        lambda d: ["--data", csv(d / "d.csv"), "--config", config_file("- epochs\n")(d)],
        "must hold a mapping",
    ),
}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file, folder and link under `folder`, hidden ones included: path -> bytes (None for a folder)."""
    return {str(path.relative_to(folder)): contents(path) for path in folder.rglob("*")}


def contents(path: Path) -> bytes | None:
    if path.is_symlink():
        return b"link to " + str(path.readlink()).encode()
    return None if path.is_dir() else path.read_bytes()


def previous_bundle(folder: Path) -> Path:
    out = folder / "bundle"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"the previous model")
    (out / "model.json").write_text('{"name": "previous"}\n')
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_exits_2_with_one_line_and_changes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, expected = CASES[case]
    out = previous_bundle(tmp_path)
    args = build(tmp_path)
    before = snapshot(tmp_path)

    code = main(["--out", str(out), "--target", "label", "--epochs", "1", "--progress", "none", *args])

    stderr = capsys.readouterr().err
    assert code == EXIT_USER_ERROR, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("training: error: ")
    assert expected in stderr
    assert snapshot(tmp_path) == before


def test_hostile_input_from_the_command_line_prints_no_traceback(tmp_path: Path) -> None:
    taken = a_file(tmp_path / "taken")

    result = run_training("--data", csv(tmp_path / "d.csv"), "--target", "label", "--out", str(taken / "bundle"))

    assert result.returncode == EXIT_USER_ERROR
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"training: error: --out {taken / 'bundle'}: {taken} is a file, so no folder can be made under it"
    ]


@pytest.mark.parametrize(
    ("data_name", "expected"),
    [
        ("my data.csv", "my-data-mlp"),
        ("data (1).csv", "data-1-mlp"),
        ("x" * 130 + ".csv", "x" * 124 + "-mlp"),
        ("s3://bucket/in/über daten.parquet", "über-daten-mlp"),
        ("/opt/ml/input/data/training/", "training-mlp"),
        ("((( ))).csv", "data-mlp"),
    ],
)
def test_default_bundle_name_is_derived_from_the_data_file_within_the_rule(data_name: str, expected: str) -> None:
    name = TrainConfig(data=data_name).bundle_name

    assert name == expected
    assert NAME_PATTERN.fullmatch(name)


NAMES = ["digits-mlp", "m" * 128, "m" * 129, "", "team/model v2", "v1.2+build:7_x-y", "é" * 5, "a b", "a\n"]


def test_the_name_rule_is_the_one_sml_promote_applies(tmp_path: Path, tiny_bundle: Path) -> None:
    # Through `sml promote` itself, whichever module owns its rule (training may not import it).
    function_dir = copy_function(tmp_path / "project")

    def promote_accepts(index: int, name: str) -> bool:
        candidate = Path(shutil.copytree(tiny_bundle, tmp_path / f"candidate-{index}"))
        card = json.loads((candidate / "model.json").read_text())
        (candidate / "model.json").write_text(json.dumps(card | {"name": name}))
        return sml_main(["promote", str(candidate), "--function-dir", str(function_dir)]) == 0

    accepted = [promote_accepts(index, name) for index, name in enumerate(NAMES)]

    assert accepted == [bool(NAME_PATTERN.fullmatch(name)) for name in NAMES]
    assert set(accepted) == {True, False}


def test_a_data_file_named_with_spaces_and_brackets_trains_a_bundle_sml_promote_accepts(tmp_path: Path) -> None:
    out = tmp_path / "bundle"

    code = main(["--data", csv(tmp_path / "my data (1).csv"), "--target", "label", "--out", str(out), "--dry-run"])

    assert code == 0
    assert check_with_function(FUNCTION_DIR, out).card["name"] == "my-data-1-mlp"


def run_training(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "training", "--progress", "none", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)


def sigint_as_python_sets_it() -> None:
    # A child of a process that ignores SIGINT (a background job, some test runners) would ignore it too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_export_exits_with_its_code_one_line_and_no_staging_folder(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    out = previous_bundle(tmp_path)
    before = snapshot(out)
    command = [sys.executable, "-m", "training", "--data", csv(tmp_path / "d.csv"), "--target", "label"]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--epochs", "1", "--progress", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=sigint_as_python_sets_it,
    )
    watchdog = threading.Timer(300, process.kill)  # bounds the test if the job never reaches the export
    watchdog.start()
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if line.startswith("export: exporting to ONNX"):  # the staging folder exists from here on
                process.send_signal(signum)
                break
        rest, errors = process.communicate(timeout=120)
    finally:
        watchdog.cancel()
    stderr = "".join(lines) + errors

    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.splitlines()[-1] == (
        f"training: interrupted by {signum.name}; no bundle written "
        "(a rerun with --resume continues from the last checkpoint, if any)"
    )
    assert stderr.splitlines()[-1].startswith(FAILURE_PREFIXES)  # what sml status and sml logs report
    assert list(tmp_path.glob(".bundle.staging-*")) == []
    assert snapshot(out) == before
    assert rest == ""
    if signum == signal.SIGTERM:  # what the line promises: the checkpoint of the last epoch is exported
        resumed = main([*command[3:], "--out", str(out), "--epochs", "1", "--progress", "none", "--resume"])
        assert resumed == 0
        assert check_with_function(FUNCTION_DIR, out).card["training"]["epochs_run"] == 1


def test_a_signal_during_the_publish_swap_waits_for_it_then_stops_the_job() -> None:
    steps = []
    handler = signal.getsignal(signal.SIGTERM)

    with pytest.raises(Terminated), sigterm_raises(), signals_held():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # Python runs a handler within a few bytecodes of the signal: it would have raised here
        steps.append("swap finished")

    assert steps == ["swap finished"]
    assert signal.getsignal(signal.SIGTERM) == handler  # the job's own handlers are gone again
