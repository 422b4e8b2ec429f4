"""A TrainConfig from outside: command-line flags, a JSON/YAML settings file, SageMaker's string hyperparameters.

Every value may arrive as a string; each is converted to its field's type, and a bad one is refused with a
ConfigError that names the flag and what it expects.
"""

import argparse
import dataclasses
import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from training.config import CHOICES, NAME_RULE, ConfigError, TrainConfig, flag


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
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)  # exactly: through float, a seed beyond 2**53 would change
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


def settings_from_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings by field name, each converted to its field's type; an unknown name or a bad value is refused.

    Keys may be snake_case or kebab-case; values may be strings. The values are not checked against each
    other: config_from_mapping does that when it builds the TrainConfig.
    """
    kinds = _field_kinds()
    settings: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in kinds:
            raise ConfigError(unknown_setting(str(raw_key), kinds))
        settings[key] = _convert(key, value, kinds[key])
    return settings


def unknown_setting(name: str, known: Iterable[str]) -> str:
    """The message for a setting no field has: the closest known name first, then every known name."""
    names = sorted(known)
    closest = difflib.get_close_matches(name.replace("-", "_"), names, n=1)
    hint = f" (did you mean {closest[0]!r}?)" if closest else ""
    return f"unknown setting {name!r}{hint}; known settings: {', '.join(names)}"


def config_from_mapping(values: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from a mapping of settings (a file, SageMaker hyperparameters): see settings_from_mapping."""
    return dataclasses.replace(base or TrainConfig(), **settings_from_mapping(values))


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
    "data": "training data: a CSV, Parquet or NPZ file, a path or s3:// URI (required, except with --dry-run)",
    "target": "column (or NPZ array) to predict (required, except with --dry-run)",
    "name": f"bundle name, {NAME_RULE} (empty: <data file stem>-<model>, made to fit)",
    "out": "folder or s3:// prefix that receives the bundle (model.onnx, model.json, curves.png)",
    "exclude": "comma-separated columns dropped at read time (identifiers, personal data)",
    "allow_column": "comma-separated columns trained on as they are although they look like personal data "
    "(emails, phones, card numbers, IP addresses, national ids: the job refuses those otherwise)",
    "mask": "comma-separated columns whose values are replaced by a keyed hash (HMAC-SHA256) before training; "
    "the key comes from $SML_MASK_KEY or --mask-key-secret and is never stored",
    "mask_key_secret": "ARN or name of the AWS Secrets Manager secret holding the --mask key (empty: $SML_MASK_KEY)",
    "features": "comma-separated feature columns (default: all but target and excluded)",
    "categorical": "comma-separated numeric columns to treat as categories, e.g. integer codes (text columns "
    "always are)",
    "max_categories": "values kept per categorical column, most frequent first; the rest share one 'unseen' bucket",
    "task": "classification or regression (auto: decided from the target)",
    "input_shape": "image shape of each row, C,H,W, e.g. 1,8,8 (needed by --model cnn and --shift-pixels)",
    "val_fraction": "share of the rows held out for validation (early stopping), between 0 and 1",
    "test_fraction": "share of the rows held out for the test metrics and the parity check, between 0 and 1",
    "val_data": "validation rows from a file of their own, with the columns of --data, instead of a part of --data",
    "test_data": "test rows from a file of their own, with the columns of --data, instead of a part of --data",
    "seed": "seed for the split, initialisation, shuffling and augmentation (0 to 2**63 - 1)",
    "noise_std": "augmentation: std of Gaussian noise added to training rows, in standardised units; 0: off",
    "shift_pixels": "augmentation: shift image rows by up to this many pixels (needs --input-shape); 0: off",
    "mixup_alpha": "augmentation: mixup's Beta(alpha, alpha) parameter for blending pairs of rows; 0: off",
    "model": "network: mlp, cnn (image-shaped inputs) or transformer (feature tokens)",
    "hidden_size": "mlp: units in each hidden layer",
    "depth": "mlp: number of hidden layers",
    "dropout": "share of units dropped in training, 0 to below 1",
    "channels": "cnn: channels of the first convolution (the second has twice as many)",
    "d_model": "transformer: width of each feature token, divisible by --heads",
    "heads": "transformer: attention heads per layer",
    "layers": "transformer: number of encoder layers stacked",
    "epochs": "most passes over the training split (early stopping may end the run sooner)",
    "batch_size": "rows per optimiser step, over all processes together",
    "optimizer": "sgd, adagrad, rmsprop, adam or adamw",
    "lr": "learning rate (peak rate for onecycle)",
    "momentum": "sgd and rmsprop: momentum factor, 0 or more",
    "nesterov": "sgd: use Nesterov momentum",
    "weight_decay": "the optimiser's weight decay factor (decoupled for adamw); 0: off",
    "l1": "L1 penalty factor: adds l1 * sum(|w|) of the weights to the loss; 0: off",
    "l2": "L2 penalty factor: adds l2 * sum(w^2) of the weights to the loss; 0: off",
    "schedule": "learning-rate schedule: constant, step, cosine or onecycle",
    "step_size": "step schedule: epochs between two decays of the learning rate",
    "gamma": "step schedule: factor the learning rate is multiplied by at each decay, e.g. 0.5",
    "clip_grad_norm": "clip the gradient's L2 norm to this value at each step; 0: off",
    "config": "JSON or YAML file of settings; flags given here override it",
    "resume": "continue from the latest checkpoint in --checkpoint-dir",
    "checkpoint_dir": "folder or s3:// prefix for checkpoints, written every epoch (empty: <out>.checkpoints "
    "beside the bundle, removed once the bundle is written)",
    "quantize": "also write model.int8.onnx (dynamic int8), kept if test accuracy (regression: R²) drops <= 0.01",
    "dry_run": "one batch of one epoch on the CPU (the bundled digits without --data): a smoke test",
    "early_stopping_patience": "stop after this many epochs without a better validation figure and keep the best "
    "epoch's weights; 0 trains every epoch",
    "early_stopping_metric": "validation figure early stopping watches (auto: the loss)",
    "device": "where to train: cuda, cpu, or auto (cuda when a GPU is visible)",
    "precision": "bf16: autocast matrix products to bfloat16 on CUDA (ignored on CPU)",
    "progress": "progress bar on stderr: bar, none, or auto (a bar when stderr is a terminal)",
    "log_format": "text: aligned lines for people; json: one JSON object per epoch, as SageMaker's metric "
    "definitions parse; auto: text on a terminal, json elsewhere and on SageMaker and Batch",
    "processes": "data-parallel processes (DDP) on this machine, one per GPU; 0: one per visible GPU, 1 on CPU",
    "data_placement": "device: training rows in GPU memory; host: pinned host memory, copied per batch; "
    "auto: device when they fit in half the free GPU memory",
    "compile": "torch.compile the model for training steps on CUDA (ignored on CPU)",
    "parity_tolerance": "largest difference allowed between onnxruntime's and PyTorch's outputs on the test "
    "rows, absolute up to 1 and relative beyond",
    "opset": "ONNX operator set version to export with",
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
        # A setting without a HELP entry still parses; tests/unit/test_help_texts.py fails on its bare name.
        help_text = HELP.get(field.name, field.name.replace("_", " "))
        if field.name in CHOICES:
            help_text += f" (one of: {', '.join(CHOICES[field.name])})"
        help_text += f" [default: {','.join(map(str, default)) if isinstance(default, tuple) else default}]"
        if kind == "bool":
            parser.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag(field.name), metavar=field.name.upper(), help=help_text)
    return parser


REQUIRED = ("data", "target")  # a job never trains on the bundled digits by accident; --dry-run may


def parse_config(
    argv: Sequence[str] | None = None, base: Mapping[str, Any] | None = None, *, require_data: bool = False
) -> TrainConfig:
    """Settings from defaults < `base` (e.g. SageMaker hyperparameters) < --config file < flags.

    With `require_data`, a run that is not --dry-run must name REQUIRED in one of them.
    """
    namespace = vars(build_parser().parse_args(argv))
    given = {key.replace("-", "_") for key in (base or {})} | set(namespace)
    config = config_from_mapping(base or {})
    config_file = namespace.pop("config", None)
    if config_file:
        settings = load_config_file(config_file)
        given |= {str(key).replace("-", "_") for key in settings}
        config = config_from_mapping(settings, config)
    config = config_from_mapping(namespace, config)
    missing = [flag(name) for name in REQUIRED if name not in given]
    if require_data and missing and not config.dry_run:
        verb = "are" if len(missing) > 1 else "is"
        raise ConfigError(
            f"{' and '.join(missing)} {verb} required: the data file and the column to predict, e.g. --data "
            "examples/data/digits.csv --target label (--dry-run alone smoke-tests on the bundled digits)"
        )
    return config
