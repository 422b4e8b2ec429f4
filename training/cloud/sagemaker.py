"""SageMaker's side of the job: `docker run IMAGE train` with its settings and data under /opt/ml.

- settings: /opt/ml/input/config/hyperparameters.json, every value a string, keys the TrainConfig
  setting names (snake_case or kebab-case); an unknown name fails the job, but those that SageMaker and its
  SDK add (`_tuning_objective_metric` in a tuning job, `sagemaker_*`) are logged and ignored;
- data: channel `train` (/opt/ml/input/data/train); hyperparameter `data` may name a file in it (or an
  s3:// URI), else the channel must hold exactly one CSV, Parquet or NPZ file; channels `validation` and
  `test`, when the job has them, are the validation and test rows (settings val_data and test_data, which
  may name a file in them) in place of parts of the training file (training/data/holdout.py);
- bundle: /opt/ml/model (SageMaker uploads it as model.tar.gz) and, when hyperparameter `out` is an
  s3:// prefix, uploaded there too, as AWS Batch jobs do; `sml submit` gives a job with network isolation
  (its default) no `out`, and the job then makes no AWS call at all (data, checkpoints and the bundle
  move through SageMaker's channels, CheckpointConfig and output);
- checkpoints: /opt/ml/checkpoints (CheckpointConfig.LocalPath; SageMaker syncs it with S3), resumed
  automatically when it holds one: a managed Spot job restarted after an interruption goes on;
- failure: the reason goes to /opt/ml/output/failure (shown by DescribeTrainingJob), exit non-zero;
- several instances: /opt/ml/input/config/resourceconfig.json (or SM_HOSTS / SM_CURRENT_HOST) names the
  hosts; the first is the rendezvous of torch.distributed, one process per GPU on each.

SageMaker turns log lines into metrics with regexes (MetricDefinitions); each epoch logs one JSON object:
    train_loss    "train_loss": ([-+0-9.eE]+)
    val_loss      "val_loss": ([-+0-9.eE]+)
    val_accuracy  "val_accuracy": ([-+0-9.eE]+)
    val_r2        "val_r2": ([-+0-9.eE]+)
    epoch         "epoch": ([0-9]+)

Every path is rooted at $SML_SAGEMAKER_ROOT (default /opt/ml), so tests run this in a temporary folder.
"""

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.cloud.contract import METRIC_REGEXES as METRIC_REGEXES  # documented above
from training.config import ConfigError, TrainConfig
from training.config_loading import config_from_mapping, parse_config
from training.data.tables import READERS, DataError
from training.fit.checkpoint import has_checkpoint, open_store
from training.fit.distributed import DEFAULT_MASTER_PORT, Rendezvous

DEFAULT_ROOT = "/opt/ml"
CHANNEL = "train"
VALIDATION_CHANNEL, TEST_CHANNEL = "validation", "test"  # they fill settings val_data and test_data
TUNING_OBJECTIVE = "_tuning_objective_metric"  # what a hyperparameter tuning job adds to every training job
SDK_PREFIX = "sagemaker_"  # the SageMaker Python SDK's own hyperparameters (sagemaker_program, ...)

logger = logging.getLogger("training")


@dataclass(frozen=True)
class SageMakerPaths:
    root: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "SageMakerPaths":
        return cls(Path(environ.get("SML_SAGEMAKER_ROOT", DEFAULT_ROOT)))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.root / "input" / "config" / "resourceconfig.json"

    @property
    def channel(self) -> Path:
        return self.channel_named(CHANNEL)

    def channel_named(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"


def read_hyperparameters(paths: SageMakerPaths) -> dict[str, Any]:
    if not paths.hyperparameters.is_file():
        return {}  # SageMaker always writes the file; without it, a job with every default
    try:
        values = json.loads(paths.hyperparameters.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{paths.hyperparameters} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{paths.hyperparameters} must hold an object of setting: value")
    return values


def sagemaker_config(paths: SageMakerPaths, argv: Sequence[str] = ()) -> TrainConfig:
    """The job's settings: defaults < hyperparameters < flags after `train` (for trying the image locally)."""
    hyperparameters = without_added_by_sagemaker(read_hyperparameters(paths))
    try:
        config = config_from_mapping(hyperparameters)
    except ConfigError as error:
        raise ConfigError(f"{paths.hyperparameters.name}: {error}") from None
    if "target" not in hyperparameters and "--target" not in argv and not config.dry_run:
        raise ConfigError(
            f"{paths.hyperparameters.name}: hyperparameter target is required: the column to predict, "
            'e.g. "target": "label"'
        )
    out = config.out if "out" in hyperparameters else str(paths.model)
    if "out" in hyperparameters and not out.startswith("s3://"):
        raise ConfigError(
            f"hyperparameter out {out!r}: on SageMaker the bundle goes to {paths.model}; "
            "`out` may only name an s3:// prefix to upload it to as well"
        )
    config = dataclasses.replace(
        config,
        data=channel_data(paths, hyperparameters.get("data")),
        val_data=part_channel(paths, VALIDATION_CHANNEL, config.val_data),
        test_data=part_channel(paths, TEST_CHANNEL, config.test_data),
        out=out,
        checkpoint_dir=config.checkpoint_dir or str(paths.checkpoints),
        progress="none",  # the log is a file in CloudWatch, not a terminal
    )
    config = parse_config(argv, base=config.to_dict()) if argv else config
    # Resume whenever a checkpoint is there: SageMaker copies them back when it restarts an interrupted job.
    return dataclasses.replace(config, resume=config.resume or has_checkpoint(open_store(config.checkpoint_location)))


def without_added_by_sagemaker(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The settings, without the hyperparameters that SageMaker or its SDK add, which are logged."""
    added = sorted(name for name in hyperparameters if name == TUNING_OBJECTIVE or name.startswith(SDK_PREFIX))
    if added:
        shown = ", ".join(f"{name}={hyperparameters[name]!r}" for name in added)
        logger.info("ignored the hyperparameters SageMaker adds, which are no training settings: %s", shown)
    return {name: value for name, value in hyperparameters.items() if name not in added}


def part_channel(paths: SageMakerPaths, channel: str, value: str) -> str:
    """val_data or test_data: the `validation` or `test` channel, or the file `value` names in it, if there."""
    folder = paths.channel_named(channel)
    if not folder.is_dir() or value.startswith("s3://"):
        return value
    return str(folder / value) if value else str(folder)


def channel_data(paths: SageMakerPaths, data: object) -> str:
    """The data file: hyperparameter `data` (a name in the channel, or an s3:// URI), else the channel's one file."""
    if isinstance(data, str) and data.startswith("s3://"):
        return data
    if data:
        return str(paths.channel / str(data))
    found = sorted(path.name for path in paths.channel.glob("*") if path.suffix.lower() in READERS)
    if len(found) != 1:
        listed = f": {', '.join(found)}" if found else ""
        raise DataError(
            f"SageMaker channel {CHANNEL!r} ({paths.channel}) holds {len(found)} CSV/Parquet/NPZ files{listed}; "
            f"point the channel at one data file, or set hyperparameter data to the file's name"
        )
    return str(paths.channel / found[0])


def sagemaker_rendezvous(paths: SageMakerPaths, environ: Mapping[str, str], processes: int) -> Rendezvous:
    """The hosts of the job (resourceconfig.json, else SM_HOSTS / SM_CURRENT_HOST); the first is the rendezvous."""
    hosts: list[str] = json.loads(environ.get("SM_HOSTS", "[]"))
    current = environ.get("SM_CURRENT_HOST", "")
    if paths.resource_config.is_file():
        resources = json.loads(paths.resource_config.read_text())
        hosts, current = resources["hosts"], resources["current_host"]
    port = int(environ.get("MASTER_PORT", DEFAULT_MASTER_PORT))
    if len(hosts) <= 1:
        return Rendezvous(master_port=port, processes_per_node=processes)
    return Rendezvous(
        nodes=len(hosts),
        node_rank=hosts.index(current),
        master_addr=hosts[0],
        master_port=port,
        processes_per_node=processes,
    )


def network_interface(paths: SageMakerPaths) -> str | None:
    """The interface SageMaker names for traffic between hosts (for NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME)."""
    if not paths.resource_config.is_file():
        return None
    name = json.loads(paths.resource_config.read_text()).get("network_interface_name")
    return str(name) if name else None


def write_failure(paths: SageMakerPaths, reason: str) -> None:
    """SageMaker shows this file's first 1024 characters as the job's FailureReason."""
    paths.failure.parent.mkdir(parents=True, exist_ok=True)
    paths.failure.write_text(reason + "\n")
