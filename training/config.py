"""TrainConfig: every setting of a training job, from flags, a JSON/YAML file or SageMaker strings."""

import argparse
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("auto", "classification", "regression"),
    "model": ("mlp", "cnn", "transformer"),
    "optimizer": ("sgd", "adagrad", "rmsprop", "adam", "adamw"),
    "schedule": ("constant", "step", "cosine", "onecycle"),
    "early_stopping_metric": ("auto", "loss", "accuracy", "f1_macro", "mse", "mae", "r2"),
    "quantize": ("none", "int8"),
    "device": ("auto", "cpu", "cuda"),
    "precision": ("fp32", "bf16"),
    "data_placement": ("auto", "device", "host"),
    "progress": ("auto", "bar", "none"),
}


class ConfigError(ValueError):
    """A setting is unknown or has an invalid value; the message names it and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    # data
    data: str = "examples/data/digits.csv"  # CSV, Parquet or NPZ; a path or s3:// URI
    target: str = "label"
    out: str = "build/bundle"  # bundle folder or s3:// prefix
    exclude: tuple[str, ...] = ()  # identifiers / personal data: dropped at read time
    features: tuple[str, ...] = ()  # empty: every column but target and excluded ones
    task: str = "auto"  # auto: string or few-valued integer target -> classification
    input_shape: tuple[int, ...] = ()  # e.g. 1,8,8 for a cnn over flat pixel columns
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    name: str = ""  # bundle name; empty: "<data file stem>-<model>"
    # augmentation (training split only)
    noise_std: float = 0.0  # Gaussian noise, in standardised units
    shift_pixels: int = 0  # random shifts of image-shaped inputs, up to this many pixels
    mixup_alpha: float = 0.0  # 0 disables mixup
    # model
    model: str = "mlp"
    hidden_size: int = 128  # mlp width
    depth: int = 2  # mlp hidden layers
    dropout: float = 0.1
    channels: int = 32  # cnn: channels of the first convolution
    d_model: int = 32  # transformer: token width
    heads: int = 4
    layers: int = 2  # transformer: encoder layers
    # optimisation
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd and rmsprop
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # the optimiser's own decay (decoupled for adamw)
    l1: float = 0.0  # added to the loss: l1 * sum(|w|)
    l2: float = 0.0  # added to the loss: l2 * sum(w^2)
    schedule: str = "constant"
    step_size: int = 10  # step schedule: epochs between decays
    gamma: float = 0.5  # step schedule: decay factor
    clip_grad_norm: float = 0.0  # 0 disables clipping
    early_stopping_patience: int = 15  # epochs without improvement, then the best epoch's weights; 0 disables
    early_stopping_metric: str = "auto"  # auto: validation loss
    # runtime
    device: str = "auto"
    precision: str = "fp32"  # bf16 autocast applies on CUDA only
    checkpoint_dir: str = ""  # empty: "<out>.checkpoints" beside the bundle
    resume: bool = False  # continue from the latest checkpoint in checkpoint_dir
    progress: str = "auto"  # auto: a bar when stderr is a terminal
    dry_run: bool = False  # one batch, one epoch: a smoke test in seconds
    processes: int = 0  # data-parallel processes on this machine, one per GPU; 0: one per visible GPU (1 on CPU)
    data_placement: str = "auto"  # auto: rows in GPU memory if they fit in half of it, else pinned host memory
    compile: bool = False  # torch.compile for training steps, CUDA only: the first steps pay the compile time
    # export
    quantize: str = "none"
    parity_tolerance: float = 1e-5  # max |onnxruntime - torch|, relative to |value| beyond 1
    opset: int = 18

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{flag(name)}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size", "hidden_size", "depth", "channels", "d_model", "heads", "layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{flag(name)}: must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "parity_tolerance"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{flag(name)}: must be greater than 0, got {getattr(self, name)}")
        non_negative = ("weight_decay", "l1", "l2", "noise_std", "mixup_alpha", "clip_grad_norm", "momentum")
        for name in (*non_negative, "early_stopping_patience", "processes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{flag(name)}: must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout: must be in [0, 1), got {self.dropout}")
        if not (
            0 < self.val_fraction < 1 and 0 < self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1
        ):
            raise ConfigError("--val-fraction and --test-fraction: each in (0, 1) and together below 1")
        if self.d_model % self.heads:
            raise ConfigError(f"--d-model ({self.d_model}) must be divisible by --heads ({self.heads})")
        if self.model == "cnn" and len(self.input_shape) != 3:
            raise ConfigError("--model cnn needs --input-shape C,H,W (for example 1,8,8)")

    @property
    def checkpoint_location(self) -> str:
        return self.checkpoint_dir or f"{self.out.rstrip('/')}.checkpoints"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings, as recorded in the model card."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()
        }


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_kinds() -> dict[str, str]:
    """Field name -> how its value is parsed: bool, int, float, str, str_list or int_list."""
    kinds: dict[str, str] = {}
    for field in fields(TrainConfig):
        if get_origin(field.type) is tuple:
            kinds[field.name] = f"{get_args(field.type)[0].__name__}_list"
        else:
            kinds[field.name] = type(field.default).__name__
    return kinds


EXPECTED = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "int_list": "whole numbers like 1,8,8",
}


def _convert(name: str, value: Any, kind: str) -> Any:
    """Turn a flag, file or SageMaker value (often a string) into the field's type."""
    try:
        if kind == "bool":
            return _to_bool(value)
        if kind == "int_list":
            return tuple(
                _to_int(item) for item in _split_items(value.replace("x", ",") if isinstance(value, str) else value)
            )
        if kind == "str_list":
            return tuple(str(item) for item in _split_items(value))
        if kind == "int":
            return _to_int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag(name)}: expected {EXPECTED.get(kind, 'text')}, got {value!r}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


def _to_int(value: Any) -> int:
    number = float(value) if isinstance(value, str | float) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not float(number).is_integer():
        raise ValueError(value)
    return int(number)


def _split_items(value: Any) -> list[Any]:
    """ "a,b", "[1, 8, 8]" or a list -> items."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = json.loads(text)
            if not isinstance(parsed, list):
                raise ValueError(value)
            return parsed
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(value)


def config_from_mapping(values: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Build a config from a mapping of settings (file contents, SageMaker hyperparameters).

    Keys may be snake_case or kebab-case; values may be strings. Unknown keys are refused.
    """
    kinds = _field_kinds()
    settings: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in kinds:
            raise ConfigError(f"unknown setting {raw_key!r}; known settings: {', '.join(sorted(kinds))}")
        settings[key] = _convert(key, value, kinds[key])
    return dataclasses.replace(base or TrainConfig(), **settings)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML settings file into a mapping."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--config: {file} not found; pass a JSON or YAML file of settings")
    try:
        loaded = json.loads(file.read_text()) if file.suffix == ".json" else yaml.safe_load(file.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"--config: {file} is not valid JSON/YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config: {file} must hold a mapping of setting: value")
    return loaded


HELP: dict[str, str] = {
    "data": "training data: CSV, Parquet or NPZ, a path or s3:// URI",
    "target": "column (or NPZ array) to predict",
    "out": "folder or s3:// prefix that receives the bundle (model.onnx, model.json)",
    "exclude": "comma-separated columns dropped at read time (identifiers, personal data)",
    "features": "comma-separated feature columns (default: all but target and excluded)",
    "task": "classification or regression (auto: decided from the target)",
    "input_shape": "image shape of each row, e.g. 1,8,8 (needed by --model cnn)",
    "model": "network: mlp, cnn (image-shaped inputs) or transformer (feature tokens)",
    "epochs": "passes over the training split",
    "batch_size": "rows per optimiser step",
    "optimizer": "sgd, adagrad, rmsprop, adam or adamw",
    "lr": "learning rate (peak rate for onecycle)",
    "seed": "seed for the split, initialisation, shuffling and augmentation",
    "config": "JSON or YAML file of settings; flags given here override it",
    "resume": "continue from the latest checkpoint in --checkpoint-dir",
    "checkpoint_dir": "folder or s3:// prefix for checkpoints (empty: <out>.checkpoints beside the bundle)",
    "schedule": "learning-rate schedule: constant, step, cosine or onecycle",
    "quantize": "also write model.int8.onnx (dynamic int8), kept if test accuracy (regression: R²) drops <= 0.01",
    "dry_run": "one batch of one epoch on the CPU: a smoke test",
    "early_stopping_patience": "stop after this many epochs without a better validation figure and keep the best "
    "epoch's weights; 0 trains every epoch",
    "precision": "bf16: autocast matrix products to bfloat16 on CUDA (ignored on CPU)",
    "processes": "data-parallel processes (DDP) on this machine, one per GPU; 0: one per visible GPU, 1 on CPU",
    "data_placement": "device: training rows in GPU memory; host: pinned host memory, copied per batch; "
    "auto: device when they fit in half the free GPU memory",
    "compile": "torch.compile the model for training steps on CUDA (ignored on CPU)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a model on tabular or image data and export a verified ONNX bundle.",
        epilog="example: python -m training --data examples/data/digits.csv --target label --out build/bundle",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help=HELP["config"])
    kinds = _field_kinds()
    for field in fields(TrainConfig):
        kind = kinds[field.name]
        default = field.default
        help_text = HELP.get(field.name, field.name.replace("_", " "))
        if field.name in CHOICES:
            help_text += f" (one of: {', '.join(CHOICES[field.name])})"
        help_text += f" [default: {','.join(map(str, default)) if isinstance(default, tuple) else default}]"
        if kind == "bool":
            parser.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag(field.name), metavar=field.name.upper(), help=help_text)
    return parser


def parse_config(argv: Sequence[str] | None = None, base: Mapping[str, Any] | None = None) -> TrainConfig:
    """Settings from defaults < `base` (e.g. SageMaker hyperparameters) < --config file < flags."""
    namespace = vars(build_parser().parse_args(argv))
    config = config_from_mapping(base or {})
    config_file = namespace.pop("config", None)
    if config_file:
        config = config_from_mapping(load_config_file(config_file), config)
    return config_from_mapping(namespace, config)
