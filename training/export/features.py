"""The card's description of a model with categorical inputs: each feature's kind, and rows as the API takes them."""

from typing import Any

from training.data.categories import MISSING
from training.data.splits import Splits


def feature_kinds(splits: Splits) -> list[dict[str, Any]]:
    """input.features: per feature in row order, its name, kind and, for a categorical one, its known values."""
    return [
        {"name": name, "kind": "categorical", "values": list(splits.vocabularies[name])}
        if name in splits.vocabularies
        else {"name": name, "kind": "numeric"}
        for name in splits.feature_names
    ]


def positional_rows(splits: Splits, rows: int) -> list[list[Any]]:
    """The first test rows as POST /predict takes them: values in feature order, categories as strings, null
    for a missing one."""
    test = splits.test.head(rows)
    assert test.categories is not None  # only models with categorical inputs have such rows
    numbers = iter(range(len(splits.numeric_names)))
    columns: list[list[Any]] = []
    categorical = list(splits.vocabularies)
    for name in splits.feature_names:
        if name in splits.vocabularies:
            texts = test.categories[:, categorical.index(name)]
            columns.append([None if text == MISSING else str(text) for text in texts])
        else:
            columns.append(test.x[:, next(numbers)].tolist())
    return [list(row) for row in zip(*columns, strict=True)]
