"""Training settings for `sml submit`: a JSON/YAML file, then `--set name=value` pairs, as strings the job parses."""

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sml.errors import UserError
from training.config import ConfigError
from training.config_loading import config_from_mapping, settings_from_mapping

SETTING_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
RESERVED_SETTINGS = {
    "out": "sml sends the bundle to s3://BUCKET/bundles/JOB_NAME/",
    "checkpoint_dir": "sml keeps checkpoints in s3://BUCKET/checkpoints/JOB_NAME/",
    "resume": "a retried attempt resumes from its checkpoints by itself",
    "log_format": "a job on AWS logs JSON lines, which SageMaker's metric definitions and `sml logs` read",
}


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
