"""Categorical feature columns: which columns are categories, their vocabularies, and their one-hot encoding.

A column of text becomes categorical, as does a numeric one named by --categorical (integer codes). Its
vocabulary is the training split's most frequent values, up to --max-categories; every column then has two
more buckets, one for values training never saw and one for missing values. The exported graph repeats this
encoding with ONNX operators (training/export/encoding.py) and the parity gate holds the two equal.
"""

import numpy as np
import pandas as pd

from training.config import TrainConfig
from training.data.numbers import feature_not_numbers, first_non_number
from training.data.tables import DataError

# A missing value's text, in training and serving: a table's NaN and the API's null become it.
MISSING = ""
# The exported graph's inputs: the numeric features and the categorical ones' text (training/export/encoding.py).
# Twins of functions/predict/contract.py's input names (tests/unit/test_predict_categorical.py holds them equal).
FEATURES, CATEGORIES = "features", "categories"
# Twin of functions/predict/records.py MAX_CATEGORY_CHARS (tests/unit/test_categories.py holds them equal).
MAX_CATEGORY_CHARS = 256
MOSTLY_UNIQUE = 0.5  # a column with more distinct values than this share of its rows is an id or free text
MOSTLY_NUMBERS = 0.5  # a text column with more numbers than this share of its values is a numeric one with typos


def categorical_columns(table: pd.DataFrame, features: list[str], config: TrainConfig) -> list[str]:
    """The features that are categories, in table order: text columns and those --categorical names.

    Raises:
        DataError: --categorical names a column that is not a feature, a text column is mostly numbers (a typo
            in a numeric column, not a category), or a categorical column is named like the numeric input.
    """
    for name in config.categorical:
        if name not in features:
            raise DataError(f"--categorical: {name!r} is not a feature column; features: {', '.join(features)}")
    chosen = []
    for name in features:
        column = table[name]
        if name in config.categorical:
            chosen.append(name)
        elif not pd.api.types.is_numeric_dtype(column):
            values = column.dropna()
            numbers = pd.to_numeric(values.astype(str), errors="coerce").notna().sum()
            if isinstance(first_non_number(column), int) or numbers > MOSTLY_NUMBERS * len(values):
                raise feature_not_numbers(name, column)
            chosen.append(name)
    if FEATURES in chosen:  # the Open Inference Protocol lists each categorical feature beside the numeric input
        raise DataError(f"categorical column {FEATURES!r} has the name of the model's numeric input, which v2 "
                        f"clients send beside it: rename the column")  # fmt: skip
    return chosen


def as_text(column: pd.Series) -> np.ndarray:
    """A column's values as the strings serving receives (whole floats without ".0"), MISSING where missing."""
    missing = column.isna().to_numpy()
    values = column
    present = column.dropna()
    if pd.api.types.is_float_dtype(column) and np.all(np.mod(present, 1) == 0) and np.all(present.abs() < 2**53):
        values = column.astype("Int64")  # codes read as floats because of a missing value: 3.0 is "3"
    texts: np.ndarray = values.astype(str).to_numpy(dtype=object)
    texts[missing] = MISSING
    return texts


def learn_vocabulary(name: str, texts: np.ndarray, max_categories: int) -> list[str]:
    """The training split's values of one column, most frequent first (ties by value), up to `max_categories`.

    Raises:
        DataError: the column looks like an identifier or free text, or holds values too long to serve.
    """
    present = pd.Series(texts[texts != MISSING])
    if present.empty:
        raise DataError(f"categorical column {name!r} has no values in the training rows; pass --exclude {name}")
    counts = present.value_counts()
    distinct = len(counts)
    if distinct > max_categories and distinct > MOSTLY_UNIQUE * len(present):
        raise DataError(
            f"column {name!r} looks like an identifier or free text ({distinct} distinct values in {len(present)} "
            f"training rows), not a category; pass --exclude {name}, or --max-categories {distinct} to encode it anyway"
        )
    longest = int(present.str.len().max())
    if longest > MAX_CATEGORY_CHARS:
        raise DataError(
            f"categorical column {name!r} holds a value of {longest} characters, over the {MAX_CATEGORY_CHARS} "
            f"serving accepts (free text?); pass --exclude {name}"
        )
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [str(value) for value, _ in ranked[:max_categories]]


def bucket_count(values: list[str]) -> int:
    """A column's one-hot width: its values, then the unseen bucket, then the missing one."""
    return len(values) + 2


def one_hot(texts: np.ndarray, vocabularies: list[list[str]]) -> np.ndarray:
    """float32 (rows, sum of bucket counts): each column of `texts` (rows, columns) one-hot over its buckets."""
    blocks = []
    for column, values in zip(texts.T, vocabularies, strict=True):
        index = {value: position for position, value in enumerate(values)}
        unseen, missing = len(values), len(values) + 1
        codes = [missing if text == MISSING else index.get(text, unseen) for text in column]
        blocks.append(np.eye(bucket_count(values), dtype=np.float32)[np.asarray(codes, dtype=np.int64)])
    return np.concatenate(blocks, axis=1)
