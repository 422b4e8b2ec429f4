"""Read, clean and split the training data."""

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.config import TrainConfig
from training.data.categories import as_text, bucket_count, categorical_columns, learn_vocabulary, one_hot
from training.data.holdout import TRAINING_FILE, assign_parts, read_sources
from training.data.numbers import check_magnitude, first_non_number, quote
from training.data.partition import split_indices
from training.data.privacy import protect
from training.data.tables import DataError as DataError  # part of this module's interface
from training.data.tables import describe


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32 (rows, n_features): imputed numbers, then categories one-hot; not standardised
    y: np.ndarray  # int64 class index (classification) or float32 (rows,) (regression)
    categories: np.ndarray | None = None  # str (rows, n_categorical): the raw values, None without categories

    def head(self, rows: int) -> "Split":
        return Split(self.x[:rows], self.y[:rows], None if self.categories is None else self.categories[:rows])


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    task: str  # "classification" | "regression"
    feature_names: list[str]  # every feature in table order: the order of the API's positional rows
    labels: list[str]  # class labels in index order; [] for regression
    mean: np.ndarray  # float32 (n_features,), from the training split only
    std: np.ndarray  # float32 (n_features,), from the training split only; zeros replaced by 1
    target_mean: float  # regression: training-split target mean; classification: 0.0
    target_std: float  # regression: training-split target std; classification: 1.0
    data_sha256: str
    cleaning: dict[str, int]  # rows_read, rows_dropped_missing_target, values_imputed, columns_excluded
    vocabularies: dict[str, list[str]] = field(default_factory=dict)  # categorical feature -> known values

    @property
    def numeric_names(self) -> list[str]:
        return [name for name in self.feature_names if name not in self.vocabularies]

    @property
    def n_features(self) -> int:
        """The network's input width: the numeric features, then each categorical one's buckets."""
        return len(self.numeric_names) + sum(map(bucket_count, self.vocabularies.values()))

    @property
    def n_outputs(self) -> int:
        return len(self.labels) or 1


logger = logging.getLogger("training")

MAX_AUTO_CLASSES = 50
MIN_ROWS_PER_AUTO_CLASS = 10


def load_splits(config: TrainConfig) -> Splits:
    """Read `config.data`, pick target and features, clean, split and measure the training split."""
    table, origin, source, data_sha256 = read_sources(config)  # origin: the file of each row (holdout.py)
    table = protect(table, config)  # masked columns hashed; personal data refused before any other check
    rows_read = len(table)
    feature_names = choose_features(table, config)
    has_target = table[config.target].notna().to_numpy()
    table, origin = table[has_target], origin[has_target]
    if table.empty:
        raise DataError(f"every row of {source} has a missing target {config.target!r}; fill it or pick --target")
    task = detect_task(table[config.target], config.task)
    labels, y = encode_target(table[config.target], task, config.target)
    categorical = categorical_columns(table, feature_names, config)
    numeric = [name for name in feature_names if name not in categorical]
    if not numeric:
        raise DataError("every feature is categorical; the model needs at least one numeric feature column")
    x = table[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
    for name, column in zip(numeric, x.T, strict=True):
        if np.isinf(column).any():
            raise DataError(f"feature column {name!r} holds infinite values; clean it or pass --exclude {name}")
        check_magnitude(column, f"feature column {name!r}", f"rescale it or pass --exclude {name}")

    in_training_file = origin == TRAINING_FILE
    split = split_indices(
        y[in_training_file], task == "classification", config.val_fraction, config.test_fraction, config.seed
    )
    parts = assign_parts(split, origin, (bool(config.val_data), bool(config.test_data)))
    train_x = x[parts[0]]
    if np.isnan(train_x).all(axis=0).any():
        empty = numeric[int(np.flatnonzero(np.isnan(train_x).all(axis=0))[0])]
        raise DataError(f"feature column {empty!r} has no values in the training rows; pass --exclude {empty}")
    medians = np.nanmedian(train_x, axis=0)
    missing = np.isnan(x)
    x = np.where(missing, medians, x).astype(np.float32)
    texts = np.stack([as_text(table[name]) for name in categorical], axis=1) if categorical else None
    vocabularies = {}
    if texts is not None:
        train_texts = texts[parts[0]]
        vocabularies = {
            name: learn_vocabulary(name, train_texts[:, at], config.max_categories)
            for at, name in enumerate(categorical)
        }
        x = np.concatenate([x, one_hot(texts, list(vocabularies.values()))], axis=1)
    train_x = x[parts[0]]
    # Sums of squares in float64: in float32 they overflow long before the values do (MAX_MAGNITUDE).
    std = train_x.std(axis=0, dtype=np.float64)
    target_mean, target_std = 0.0, 1.0
    if task == "regression":
        train_y = y[parts[0]].astype(np.float64)
        target_mean, target_std = float(np.float32(train_y.mean())), float(np.float32(train_y.std())) or 1.0

    cleaning = {
        "rows_read": rows_read,
        "rows_dropped_missing_target": rows_read - len(table),
        "values_imputed": int(missing.sum()),
        "columns_excluded": len(config.exclude),
    }
    train, val, test = (
        Split(x=x[index], y=y[index], categories=None if texts is None else texts[index]) for index in parts
    )
    logger.info(
        "data: %d rows read from %s; %d dropped (missing target); %d values imputed with training medians; "
        "%d columns excluded; %s with %d features (%d categorical); rows train/val/test %d/%d/%d",
        rows_read, source, cleaning["rows_dropped_missing_target"], cleaning["values_imputed"],
        cleaning["columns_excluded"], task, len(feature_names), len(categorical), len(train.y), len(val.y),
        len(test.y),
    )  # fmt: skip
    return Splits(
        train=train,
        val=val,
        test=test,
        task=task,
        feature_names=feature_names,
        labels=labels,
        mean=train_x.mean(axis=0, dtype=np.float64).astype(np.float32),
        std=np.where(std > 0, std, 1.0).astype(np.float32),
        target_mean=target_mean,
        target_std=target_std,
        data_sha256=data_sha256,
        cleaning=cleaning,
        vocabularies=vocabularies,
    )


def choose_features(table: pd.DataFrame, config: TrainConfig) -> list[str]:
    """The feature columns: `config.features`, or every column but the target."""
    columns = list(table.columns)
    for name in (config.target, *config.features):
        if name in config.exclude:
            raise DataError(f"{name!r} is both used (--target/--features) and dropped (--exclude); pick one")
    if config.target not in columns:
        raise DataError(f"--target {config.target!r} is not a column; available columns: {describe(columns)}")
    features = list(config.features) or [name for name in columns if name != config.target]
    for name in features:
        if name not in columns:
            raise DataError(f"--features: no column named {name!r}; available columns: {describe(columns)}")
        if name == config.target:
            raise DataError(f"--features: {name!r} is the target; leave it out of --features")
        if pd.api.types.is_complex_dtype(table[name]):  # as float64, numpy would drop the imaginary parts
            raise DataError(
                f"feature column {name!r} holds complex numbers; split them in two or pass --exclude {name}"
            )
    if not features:
        raise DataError(f"no feature columns left besides the target {config.target!r}; check --exclude")
    return features


def detect_task(target: pd.Series, task: str) -> str:
    """Resolve task "auto" from the target column.

    Classification when the target is text or true/false, when it holds only two distinct values,
    or when it holds whole numbers with at most MAX_AUTO_CLASSES distinct values and at least
    MIN_ROWS_PER_AUTO_CLASS rows per value on average (digit labels: yes; a count or a score
    spread over many values: no). Anything else is regression. Pass --task to override.
    """
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if task == "regression" and not numeric:
        example = quote(first_non_number(target))
        raise DataError(f"--task regression needs a numeric target; {target.name!r} holds values such as {example}")
    if task != "auto":
        return task
    if not numeric:
        return "classification"
    values = target.to_numpy(dtype=np.float64)
    distinct = len(np.unique(values))
    whole = bool(np.all(np.mod(values, 1) == 0))
    few = distinct <= MAX_AUTO_CLASSES and distinct * MIN_ROWS_PER_AUTO_CLASS <= len(values)
    return "classification" if distinct == 2 or (whole and few) else "regression"


def encode_target(target: pd.Series, task: str, name: str) -> tuple[list[str], np.ndarray]:
    """Class labels (sorted, as text) and indices, or float32 values for regression."""
    if task == "regression":
        if not np.isfinite(target.to_numpy(dtype=np.float64)).all():
            raise DataError(f"target {name!r} holds infinite values; clean them or drop those rows")
        check_magnitude(target.to_numpy(dtype=np.float64), f"target {name!r}", "rescale it or drop those rows")
        values = target.to_numpy(dtype=np.float32)
        if len(np.unique(values)) < 2:
            raise DataError(f"target {name!r} has the same value {values[0]:g} in every row; nothing to learn")
        return [], values
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if numeric:
        classes, y = np.unique(target.to_numpy(dtype=np.float64), return_inverse=True)
        labels = [str(int(value)) if value.is_integer() else str(value) for value in classes.tolist()]
    else:
        classes, y = np.unique(target.astype(str).to_numpy(), return_inverse=True)
        labels = [str(value) for value in classes.tolist()]
    if len(labels) < 2:
        raise DataError(f"target {name!r} has one class ({labels[0]!r}); classification needs at least two")
    return labels, y.astype(np.int64)
