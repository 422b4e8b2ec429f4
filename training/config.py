"""TrainConfig: every setting of a training job, its defaults and the checks on its values.

config_loading.py builds one from flags, a JSON/YAML file or SageMaker's string hyperparameters.
"""

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "log_format": ("auto", "text", "json"),
}


# The bundle name rule of the card contract. Its twin is the function loader's (functions/predict/contract.py's
# NAME, which `sml promote` runs), which training may not import: tests/unit/test_training_hostile.py promotes
# bundles named with each of a list of names and holds the two equal.
NAME_CHARACTERS, NAME_MAX = r"\w.+:-", 128
NAME_PATTERN = re.compile(rf"[{NAME_CHARACTERS}]{{1,{NAME_MAX}}}")
NAME_RULE = f"1-{NAME_MAX} letters, digits or . _ + : -"


class ConfigError(ValueError):
    """A setting is unknown or has an invalid value; the message names it and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    # data
    # --data and --target are required on the command line (config_loading.REQUIRED); these defaults serve --dry-run.
    data: str = "examples/data/digits.csv"  # CSV, Parquet or NPZ; a path or s3:// URI
    target: str = "label"
    out: str = "build/bundle"  # bundle folder or s3:// prefix
    exclude: tuple[str, ...] = ()  # identifiers / personal data: dropped at read time
    allow_column: tuple[str, ...] = ()  # columns the personal-data scan lets through (training/data/pii.py)
    mask: tuple[str, ...] = ()  # columns replaced by a keyed hash before training (training/data/privacy.py)
    mask_key_secret: str = ""  # Secrets Manager secret holding the --mask key; empty: $SML_MASK_KEY
    features: tuple[str, ...] = ()  # empty: every column but target and excluded ones
    categorical: tuple[str, ...] = ()  # numeric columns to treat as categories too (text columns always are)
    max_categories: int = 32  # a categorical column keeps its most frequent values up to this many
    task: str = "auto"  # auto: string or few-valued integer target -> classification
    input_shape: tuple[int, ...] = ()  # e.g. 1,8,8 for a cnn over flat pixel columns
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    val_data: str = ""  # validation rows from a file of their own (SageMaker: channel validation); empty: split
    test_data: str = ""  # test rows from a file of their own (SageMaker: channel test); empty: split
    seed: int = 0
    name: str = ""  # bundle name (NAME_RULE); empty: "<data file stem>-<model>", made to fit the rule
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
    checkpoint_dir: str = ""  # empty: "<out>.checkpoints" beside the bundle, removed once the bundle is written
    resume: bool = False  # continue from the latest checkpoint in checkpoint_dir
    progress: str = "auto"  # auto: a bar when stderr is a terminal
    log_format: str = "auto"  # auto: text lines for a terminal, JSON lines where logs are collected
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
        at_least_one = ("epochs", "batch_size", "hidden_size", "depth", "channels", "d_model", "heads", "layers")
        for name in (*at_least_one, "step_size", "max_categories"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{flag(name)}: must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "parity_tolerance", "gamma"):
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
        for field in dataclasses.fields(self):  # inf passes the bounds above, and trains NaN weights or crashes
            if isinstance(getattr(self, field.name), float) and not math.isfinite(getattr(self, field.name)):
                raise ConfigError(f"{flag(field.name)}: must be a finite number, got {getattr(self, field.name)}")
        if not 0 <= self.seed < 2**63:  # what both torch's and numpy's generators take
            raise ConfigError(f"--seed: must be a whole number from 0 to 2**63 - 1, got {self.seed}")
        if self.d_model % self.heads:
            raise ConfigError(f"--d-model ({self.d_model}) must be divisible by --heads ({self.heads})")
        if self.model == "cnn" and len(self.input_shape) != 3:
            raise ConfigError("--model cnn needs --input-shape C,H,W (for example 1,8,8)")
        if self.shift_pixels and len(self.input_shape) != 3:
            raise ConfigError("--shift-pixels needs --input-shape C,H,W (for example 1,8,8)")
        if self.name and not NAME_PATTERN.fullmatch(self.name):
            raise ConfigError(f"--name {self.name!r}: a bundle name must be {NAME_RULE}")

    @property
    def bundle_name(self) -> str:
        """--name, else "<data file stem>-<model>" with each run of characters the rule refuses made one "-"."""
        if self.name:
            return self.name
        suffix = f"-{self.model}"
        stem = re.sub(rf"[^{NAME_CHARACTERS}]+", "-", Path(self.data.rstrip("/")).stem).strip("-.") or "data"
        return stem[: NAME_MAX - len(suffix)] + suffix

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


def check_local_destinations(config: TrainConfig) -> None:
    """Refuse, before any work, a local --out or checkpoint folder that can never be written.

    Raises:
        ConfigError: the path holds a NUL, is a file or a link to nothing, lies under a file, or its nearest
            existing folder is not writable.
    """
    destinations = {"--out": config.out, "--checkpoint-dir": config.checkpoint_location}
    for setting, location in destinations.items():
        if location.startswith("s3://"):
            continue
        if "\0" in location:  # no file system takes it: os calls raise ValueError, not OSError
            raise ConfigError(f"{setting} {location!r}: a path cannot hold a NUL character")
        path = Path(location)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{setting} {location}: is a file, not a folder; pass a folder path")
        if path.is_symlink() and not path.exists():
            raise ConfigError(f"{setting} {location}: is a link to nothing; remove it or pass another folder")
        existing = next(folder for folder in (path, *path.parents) if folder.exists())
        if not existing.is_dir():
            raise ConfigError(f"{setting} {location}: {existing} is a file, so no folder can be made under it")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{setting} {location}: {existing} is not writable; pass a folder you can write to")
