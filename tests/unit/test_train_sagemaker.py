"""SageMaker's side of the job: hyperparameters, the channel, automatic resume, failures, hosts, metric regexes."""

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import training.cloud.sagemaker
from tests.unit.test_loop import small_config, toy_splits
from training.__main__ import launch_environment, main
from training.cloud.contract import EXIT_USER_ERROR
from training.cloud.sagemaker import METRIC_REGEXES, SageMakerPaths, sagemaker_config, sagemaker_rendezvous
from training.config import ConfigError
from training.data.splits import DataError
from training.fit.checkpoint import LocalStore, save_checkpoint
from training.fit.distributed import Rendezvous
from training.fit.loop import fit
from training.models import build_model

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples/data/digits.csv"


def sagemaker_root(root: Path, hyperparameters: dict[str, str], data: dict[str, Path] | None = None) -> SageMakerPaths:
    """/opt/ml as SageMaker lays it out before `train` starts: config files, the channel, an empty model folder."""
    paths = SageMakerPaths(root)
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps({"target": "label", **hyperparameters}))  # a job names its target
    paths.channel.mkdir(parents=True)
    for name, source in (data if data is not None else {"digits.csv": DIGITS}).items():
        shutil.copyfile(source, paths.channel / name)
    paths.model.mkdir()
    return paths


def test_sagemaker_config_takes_string_hyperparameters_by_either_spelling(tmp_path: Path) -> None:
    hyperparameters = {
        "target": "label",
        "epochs": "5",
        "hidden-size": "64",
        "input_shape": "1,8,8",
        "nesterov": "true",
        "lr": "0.01",
        "exclude": "pixel_0_0,pixel_0_1",
        "out": "s3://bucket/bundles/job/",
    }
    paths = sagemaker_root(tmp_path, hyperparameters)

    config = sagemaker_config(paths)

    assert (config.epochs, config.hidden_size, config.input_shape, config.nesterov) == (5, 64, (1, 8, 8), True)
    assert (config.lr, config.exclude) == (0.01, ("pixel_0_0", "pixel_0_1"))
    assert config.data == str(paths.channel / "digits.csv")
    assert config.out == "s3://bucket/bundles/job/"
    assert config.checkpoint_dir == str(tmp_path / "checkpoints")
    assert config.resume is False


def test_sagemaker_config_without_out_keeps_the_bundle_in_the_model_folder(tmp_path: Path) -> None:
    config = sagemaker_config(sagemaker_root(tmp_path, {}))

    assert config.out == str(tmp_path / "model")


def test_sagemaker_data_hyperparameter_picks_a_file_of_the_channel(tmp_path: Path) -> None:
    data = {"digits.csv": DIGITS, "diabetes.csv": REPO / "examples/data/diabetes.csv"}
    paths = sagemaker_root(tmp_path, {"data": "diabetes.csv"}, data)

    assert sagemaker_config(paths).data == str(paths.channel / "diabetes.csv")


def test_sagemaker_channel_of_several_files_needs_the_data_hyperparameter(tmp_path: Path) -> None:
    data = {"digits.csv": DIGITS, "diabetes.csv": REPO / "examples/data/diabetes.csv"}
    paths = sagemaker_root(tmp_path, {}, data)

    with pytest.raises(
        DataError, match=r"holds 2 CSV/Parquet/NPZ files: diabetes\.csv, digits\.csv; .*hyperparameter data"
    ):
        sagemaker_config(paths)


def test_sagemaker_resumes_by_itself_when_a_checkpoint_is_there(tmp_path: Path) -> None:
    paths = sagemaker_root(tmp_path, {})
    save_checkpoint(LocalStore(paths.checkpoints), {"position": {"epoch": 3, "step": 0}}, 3, 0)

    assert sagemaker_config(paths).resume is True


BAD_JOBS: dict[str, tuple[dict[str, str], dict[str, Path] | None, str]] = {
    "wrong type": ({"epochs": "ten"}, None, "hyperparameters.json: --epochs: expected a whole number, got 'ten'"),
    "unknown name": ({"epocs": "3"}, None, "hyperparameters.json: unknown setting 'epocs'"),
    "empty channel": ({}, {}, "SageMaker channel 'train'"),
    "missing file": ({"data": "absent.csv"}, None, "absent.csv not found"),
    "local out": ({"out": "/tmp/elsewhere"}, None, "hyperparameter out '/tmp/elsewhere'"),
    "bad data": ({"target": "digit"}, None, "--target 'digit' is not a column"),
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_sagemaker_bad_job_writes_the_failure_file_and_exits_2(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hyperparameters, data, expected = BAD_JOBS[case]
    paths = sagemaker_root(tmp_path, hyperparameters | {"dry_run": "true"}, data)
    monkeypatch.setenv("SML_SAGEMAKER_ROOT", str(tmp_path))

    code = main(["train"])

    stderr = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert stderr.startswith("training: error: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr
    assert paths.failure.read_text() == stderr
    assert list(paths.model.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["input", "model", "output"]


def test_sagemaker_hosts_from_resourceconfig_meet_at_the_first(tmp_path: Path) -> None:
    paths = sagemaker_root(tmp_path, {})
    resources = {"current_host": "algo-2", "hosts": ["algo-1", "algo-2", "algo-3"], "network_interface_name": "eth0"}
    paths.resource_config.write_text(json.dumps(resources))

    rendezvous = sagemaker_rendezvous(paths, {"MASTER_PORT": "29700"}, processes=8)

    assert rendezvous == Rendezvous(nodes=3, node_rank=1, master_addr="algo-1", master_port=29700, processes_per_node=8)
    assert launch_environment({}, paths) == {"NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0"}


def test_sagemaker_hosts_from_the_toolkit_variables(tmp_path: Path) -> None:
    environ = {"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-1"}

    rendezvous = sagemaker_rendezvous(SageMakerPaths(tmp_path), environ, processes=1)

    assert (rendezvous.nodes, rendezvous.node_rank, rendezvous.master_addr) == (2, 0, "algo-1")


def test_sagemaker_one_host_is_a_single_node(tmp_path: Path) -> None:
    assert sagemaker_rendezvous(SageMakerPaths(tmp_path), {}, processes=2) == Rendezvous(processes_per_node=2)


def test_sagemaker_metric_regexes_read_the_figures_of_every_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    histories = []
    with caplog.at_level(logging.INFO, logger="training"):
        for task in ("classification", "regression"):
            splits = toy_splits(task)
            config = small_config(tmp_path / task, epochs=2)
            histories += fit(build_model(config, splits), splits, config, torch.device("cpu")).epochs
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith('{"epoch"')]

    assert len(lines) == len(histories) == 4
    for line, epoch in zip(lines, histories, strict=True):
        for name, regex in METRIC_REGEXES.items():
            found = re.search(regex, line)
            if name in epoch:
                assert found is not None and float(found[1]) == pytest.approx(epoch[name], rel=1e-12), name
            else:
                assert found is None, name
    documented = training.cloud.sagemaker.__doc__ or ""
    assert all(f"{name}  " in documented and regex in documented for name, regex in METRIC_REGEXES.items())


def test_sagemaker_refuses_unknown_hyperparameters_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"known settings: .*hidden_size"):
        sagemaker_config(sagemaker_root(tmp_path, {"hidden": "3"}))


# What a hyperparameter tuning job started by the SageMaker Python SDK puts beside the settings.
ADDED_BY_SAGEMAKER = {
    "_tuning_objective_metric": "val_accuracy",
    "sagemaker_estimator_class_name": '"Estimator"',
    "sagemaker_estimator_module": '"sagemaker.estimator"',
    "sagemaker_container_log_level": "20",
    "sagemaker_job_name": '"digits-tuning-2026"',
}


def add_channel(paths: SageMakerPaths, channel: str, name: str, table: pd.DataFrame) -> Path:
    folder = paths.channel_named(channel)
    folder.mkdir(parents=True)
    table.to_csv(folder / name, index=False)
    return folder


def test_sagemaker_ignores_the_hyperparameters_sagemaker_adds_and_logs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="training"):
        config = sagemaker_config(sagemaker_root(tmp_path, {"epochs": "7", **ADDED_BY_SAGEMAKER}))

    assert config.epochs == 7
    (line,) = [record.getMessage() for record in caplog.records if "_tuning_objective_metric" in record.getMessage()]
    assert all(f"{name}={value!r}" in line for name, value in ADDED_BY_SAGEMAKER.items())


def test_sagemaker_still_refuses_a_misspelt_setting_beside_those_it_ignores(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'epoch' \(did you mean 'epochs'\?\)"):
        sagemaker_config(sagemaker_root(tmp_path, {"epoch": "7", **ADDED_BY_SAGEMAKER}))


def test_sagemaker_validation_and_test_channels_fill_val_data_and_test_data(tmp_path: Path) -> None:
    paths = sagemaker_root(tmp_path, {"test_data": "holdout.csv"})
    digits = pd.read_csv(DIGITS)
    validation = add_channel(paths, "validation", "val.csv", digits[:100])
    test = add_channel(paths, "test", "holdout.csv", digits[100:200])

    config = sagemaker_config(paths)

    assert (config.val_data, config.test_data) == (str(validation), str(test / "holdout.csv"))
    assert sagemaker_config(sagemaker_root(tmp_path / "plain", {})).val_data == ""


def test_sagemaker_tuning_job_trains_on_its_channels_and_logs_the_objective(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A training job as a tuning job starts it: tuned values as strings, SageMaker's additions, three channels."""
    digits = pd.read_csv(DIGITS)
    train, validation, test = digits[:1200], digits[1200:1500], digits[1500:]
    hyperparameters = {"target": "label", "epochs": "3", "hidden-size": "32", "lr": "0.003", **ADDED_BY_SAGEMAKER}
    paths = sagemaker_root(tmp_path, hyperparameters, data={})
    train.to_csv(paths.channel / "train.csv", index=False)
    add_channel(paths, "validation", "validation.csv", validation)
    add_channel(paths, "test", "test.csv", test)
    monkeypatch.setenv("SML_SAGEMAKER_ROOT", str(tmp_path))

    with caplog.at_level(logging.INFO, logger="training"):
        code = main(["train"])

    assert code == 0, paths.failure.read_text() if paths.failure.exists() else ""
    card = json.loads((paths.model / "model.json").read_text())
    assert card["training"]["rows"] == {"train": 1200, "val": 300, "test": len(test)}
    # The card's sample is synthetic: no row of any channel (training/export/sample.py).
    features = digits.drop(columns="label").to_numpy(dtype=np.float32)
    instances = np.array(card["sample"]["instances"], dtype=np.float32)
    assert not any((features == instance).all(axis=1).any() for instance in instances)
    assert (
        card["training"]["config"]["hidden_size"] == 32 and "_tuning_objective_metric" not in card["training"]["config"]
    )
    objective = re.compile(METRIC_REGEXES[ADDED_BY_SAGEMAKER["_tuning_objective_metric"]])
    values = [float(found[1]) for record in caplog.records if (found := objective.search(record.getMessage()))]
    assert len(values) == 3 and all(0.0 <= value <= 1.0 for value in values)


def test_a_sagemaker_job_without_a_target_hyperparameter_is_refused_before_any_work(tmp_path: Path) -> None:
    paths = sagemaker_root(tmp_path, {})
    paths.hyperparameters.write_text(json.dumps({"epochs": "3"}))

    with pytest.raises(ConfigError, match="hyperparameter target is required: the column to predict"):
        sagemaker_config(paths)
