"""Training jobs on AWS: one request for AWS Batch and SageMaker alike, names both accept, and one view of a job.

The job puts its bundle at s3://BUCKET/bundles/JOB_NAME/ and its checkpoints at s3://BUCKET/checkpoints/JOB_NAME/
on either backend (aws-contract.md), so `sml promote` and a resumed attempt never need to know which one ran it.
"""

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sml.errors import UserError
from training.config import ConfigError
from training.config_loading import config_from_mapping, settings_from_mapping

BACKENDS = ("batch", "sagemaker")
# SageMaker's rule (letters, digits, inner hyphens, at most 63) is the stricter one, so such a name suits both.
NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
NAME_SUFFIX_LENGTH = len("-20261129-153000-a1b2")
SETTING_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
BATCH_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RESERVED_SETTINGS = {
    "out": "sml sends the bundle to s3://BUCKET/bundles/JOB_NAME/",
    "checkpoint_dir": "sml keeps checkpoints in s3://BUCKET/checkpoints/JOB_NAME/",
    "resume": "a retried attempt resumes from its checkpoints by itself",
}
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The training job's exit codes (aws-contract.md), as the reason a user reads.
EXIT_MEANINGS = {
    1: "the training job crashed",
    2: "bad settings or data (not retried)",
    3: "export refused: the ONNX model did not reproduce PyTorch's outputs",
    137: "killed: out of memory, or past its time limit",
    143: "stopped by SIGTERM after writing a checkpoint (Spot reclaim or time limit)",
}


@dataclass(frozen=True)
class TrainingJob:
    """What to train, where the results go, and for how long: the part both backends share."""

    name: str
    data: str  # s3:// URI of a data file or prefix
    target: str
    settings: dict[str, str]  # TrainConfig settings by snake_case name, as strings (SageMaker's hyperparameter type)
    bucket: str
    max_runtime_s: int | None  # None: the backend's default (Batch: the job definition's timeout)

    @property
    def bundle_uri(self) -> str:
        return f"s3://{self.bucket}/bundles/{self.name}/"

    @property
    def checkpoint_uri(self) -> str:
        return f"s3://{self.bucket}/checkpoints/{self.name}/"


@dataclass(frozen=True)
class LogLocation:
    """Where a job's CloudWatch logs are: named streams, or (SageMaker) every stream under a prefix."""

    group: str
    streams: tuple[str, ...] = ()
    prefix: str | None = None


@dataclass(frozen=True)
class JobView:
    """A job on either backend, in the words `sml status` prints."""

    backend: str  # "AWS Batch" or "SageMaker"
    job_id: str
    name: str
    state: str  # the service's own state word: RUNNABLE, RUNNING, InProgress, Completed, ...
    outcome: str | None  # None while it runs; then "succeeded" or "failed"
    logs: LogLocation
    reason: str | None = None
    attempts: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    stopped: datetime | None = None
    bundle: str | None = None
    exit: str | None = None  # how the last attempt's container exited, and what that means for a training job
    notes: tuple[str, ...] = field(default_factory=tuple)  # backend-specific lines: earlier exits, Spot savings


def new_job_name(prefix: str, now: datetime | None = None) -> str:
    """`prefix-YYYYMMDD-HHMMSS-xxxx`: unique, sortable, and valid for Batch and SageMaker."""
    if not NAME_PATTERN.fullmatch(prefix) or len(prefix) > 63 - NAME_SUFFIX_LENGTH:
        longest = 63 - NAME_SUFFIX_LENGTH
        raise UserError(f"--name {prefix!r}: use 1-{longest} letters, digits and inner hyphens")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def default_name_prefix(data: str) -> str:
    """The data file's stem, cut to what job names allow: s3://b/data/digits.csv -> digits."""
    stem = data.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", stem).strip("-")[: 63 - NAME_SUFFIX_LENGTH].strip("-")
    return cleaned or "sml"


def read_settings(config: Path | None, assignments: Sequence[str]) -> dict[str, str]:
    """Training settings from a JSON/YAML file, then `--set name=value` pairs (which win), as strings.

    Each is checked as the training job will read it, so that a misspelt name or a bad value stops here,
    before any AWS call, and not minutes later in a container that exits 2.
    """
    settings: dict[str, str] = {}
    sources: dict[str, str] = {}
    if config is not None:
        for key, value in read_config_file(config).items():
            name = setting_name(str(key), f"--config {config}")
            settings[name], sources[name] = setting_text(key, value), f"--config {config}"
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals:
            raise UserError(f"--set {assignment!r}: write NAME=VALUE, for example --set epochs=10")
        name = setting_name(key.strip(), "--set")
        settings[name], sources[name] = value.strip(), f"--set {assignment}"
    for key, why in RESERVED_SETTINGS.items():
        if key in settings:
            raise UserError(f"setting {key!r} cannot be set: {why}")
    check_settings(settings, sources)
    return settings


def check_settings(settings: dict[str, str], sources: dict[str, str]) -> None:
    """Read the settings with the training job's own loader (torch-free): each on its own, then all together."""
    for name, value in settings.items():
        try:
            settings_from_mapping({name: value})
        except ConfigError as error:
            raise UserError(f"{sources[name]}: {error}") from None
    try:
        config_from_mapping(settings)
    except ConfigError as error:
        raise UserError(f"training settings: {error}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--config {path} not found") from None
    try:
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise UserError(f"--config {path} is not valid JSON/YAML: {' '.join(str(error).split())}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"--config {path} must hold a mapping of setting: value, like {{epochs: 10}}")
    return loaded


def setting_name(key: str, source: str) -> str:
    """snake_case, as TrainConfig names its fields; kebab-case (the flags' spelling) is accepted too."""
    if not SETTING_PATTERN.fullmatch(key):
        raise UserError(f"{source}: {key!r} is not a setting name (lower-case letters, digits, - and _)")
    return key.replace("-", "_")


def setting_text(key: object, value: object) -> str:
    """A setting as the string the training job parses: true/false, 0.001, 1,8,8."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, int | float | str) for item in value):
        return ",".join(str(item) for item in value)
    raise UserError(f"--config: setting {key!r} must be a number, text, true/false or a list, got {value!r}")


def parse_duration(text: str) -> int:
    """Seconds in `3600`, `90m`, `12h` or `2d`."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 3600, 90m, 12h or 2d")
    return int(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


def backend_of(job_id: str) -> str:
    """AWS Batch job ids (and ARNs) are UUIDs; anything else names a SageMaker training job."""
    if BATCH_JOB_ID.fullmatch(job_id) or job_id.startswith("arn:aws:batch:"):
        return "batch"
    return "sagemaker"


def sagemaker_name(job_id: str) -> str:
    """The training job name in a name or an ARN (arn:aws:sagemaker:REGION:ACCOUNT:training-job/NAME)."""
    return job_id.rsplit("training-job/", 1)[-1] if job_id.startswith("arn:") else job_id


def require_s3_uri(uri: str, what: str) -> str:
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", uri):
        raise UserError(f"{what} {uri!r} must be an s3:// URI, like s3://BUCKET/data/train.csv")
    return uri
