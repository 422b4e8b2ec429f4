"""Training settings for `sml submit`: a JSON/YAML file, then `--set name=value` pairs, as strings the job parses."""

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sml.errors import UserError

SETTING_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
RESERVED_SETTINGS = {
    "out": "sml sends the bundle to s3://BUCKET/bundles/JOB_NAME/",
    "checkpoint_dir": "sml keeps checkpoints in s3://BUCKET/checkpoints/JOB_NAME/",
    "resume": "a retried attempt resumes from its checkpoints by itself",
}


def read_settings(config: Path | None, assignments: Sequence[str]) -> dict[str, str]:
    """Training settings from a JSON/YAML file, then `--set name=value` pairs (which win), as strings."""
    settings: dict[str, str] = {}
    if config is not None:
        for key, value in read_config_file(config).items():
            settings[setting_name(str(key), f"--config {config}")] = setting_text(key, value)
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals:
            raise UserError(f"--set {assignment!r}: write NAME=VALUE, for example --set epochs=10")
        settings[setting_name(key.strip(), "--set")] = value.strip()
    for key, why in RESERVED_SETTINGS.items():
        if key in settings:
            raise UserError(f"setting {key!r} cannot be set: {why}")
    return settings


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
