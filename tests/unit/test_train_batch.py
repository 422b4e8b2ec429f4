"""AWS Batch's side of the job: TRAIN_* variables, flags that win, retries that resume, multi-node rendezvous."""

from pathlib import Path

import pytest

from training.__main__ import main
from training.cloud.batch import batch_config, batch_rendezvous
from training.cloud.contract import EXIT_USER_ERROR
from training.config import ConfigError
from training.fit.distributed import Rendezvous

REPO = Path(__file__).resolve().parents[2]
DIGITS = str(REPO / "examples/data/digits.csv")
BATCH_COMMAND = ["--data", "s3://bucket/data/digits.csv", "--target", "label", "--out", "s3://bucket/bundles/job/"]


def test_batch_settings_come_from_train_variables_and_flags_win() -> None:
    environ = {"TRAIN_EPOCHS": "12", "TRAIN_HIDDEN_SIZE": "64", "TRAIN_INPUT_SHAPE": "1,8,8", "TRAIN_LR": "0.003"}

    config = batch_config([*BATCH_COMMAND, "--lr", "0.01"], environ)

    assert (config.epochs, config.hidden_size, config.input_shape, config.lr) == (12, 64, (1, 8, 8), 0.01)
    assert config.out == "s3://bucket/bundles/job/"
    assert config.resume is False


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TRAIN_EPOCS", "10", "TRAIN_EPOCS='10': unknown setting 'epocs'"),
        ("TRAIN_EPOCHS", "ten", "TRAIN_EPOCHS='ten': --epochs: expected a whole number"),
    ],
)
def test_batch_refuses_a_train_variable_by_name(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        batch_config(BATCH_COMMAND, {variable: value})


def test_batch_bad_train_variable_exits_2_with_one_line_and_no_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAIN_BATCH_SIZE", "large")
    out = tmp_path / "bundle"

    code = main(["--data", DIGITS, "--out", str(out), "--dry-run"])

    assert code == EXIT_USER_ERROR
    assert capsys.readouterr().err == (
        "training: error: environment variable TRAIN_BATCH_SIZE='large': --batch-size: expected a whole number, "
        "got 'large'\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("attempt", "resume"), [(None, False), ("1", False), ("2", True), ("3", True)])
def test_batch_retry_attempt_resumes_from_the_checkpoint(attempt: str | None, resume: bool) -> None:
    environ = {"AWS_BATCH_JOB_ATTEMPT": attempt} if attempt else {}

    config = batch_config([*BATCH_COMMAND, "--checkpoint-dir", "s3://bucket/checkpoints/job/"], environ)

    assert config.resume is resume


def test_batch_rendezvous_is_one_node_outside_a_multi_node_job() -> None:
    assert batch_rendezvous({}, processes=4) == Rendezvous(processes_per_node=4)


def test_batch_rendezvous_of_a_multi_node_job_meets_at_the_main_node() -> None:
    environ = {
        "AWS_BATCH_JOB_NUM_NODES": "3",
        "AWS_BATCH_JOB_NODE_INDEX": "2",
        "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.1.17",
    }

    rendezvous = batch_rendezvous(environ, processes=8)

    assert rendezvous == Rendezvous(nodes=3, node_rank=2, master_addr="10.0.1.17", processes_per_node=8)
    assert rendezvous.world_size == 24


def test_batch_rendezvous_main_node_serves_it_locally() -> None:
    environ = {"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "0", "MASTER_PORT": "29600"}

    rendezvous = batch_rendezvous(environ, processes=1)

    assert (rendezvous.node_rank, rendezvous.master_addr, rendezvous.master_port) == (0, "127.0.0.1", 29600)
