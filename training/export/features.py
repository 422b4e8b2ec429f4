"""The card's description of a model with categorical inputs: each feature's kind, and its synthetic sample.

The sample follows training/export/sample.py's rules (each feature drawn on its own from the training
split's statistics, no row of the data, outputs that differ most), with rows in card order as POST
/predict takes them: numbers, and strings drawn from each categorical feature's vocabulary.
"""

from dataclasses import replace
from typing import Any

import numpy as np
import onnxruntime as ort

from training.data.categories import CATEGORIES, FEATURES
from training.data.splits import Split, Splits
from training.export.sample import CANDIDATES, DRAWS, Categorical, Feature, Numeric, numeric_features, spread, unseen


def feature_kinds(splits: Splits) -> list[dict[str, Any]]:
    """input.features: per feature in row order, its name, kind and, for a categorical one, its known values."""
    return [
        {"name": name, "kind": "categorical", "values": list(splits.vocabularies[name])}
        if name in splits.vocabularies
        else {"name": name, "kind": "numeric"}
        for name in splits.feature_names
    ]


def mixed_sample(
    session: ort.InferenceSession, splits: Splits, rows: int, seed: int
) -> tuple[list[list[Any]], np.ndarray]:
    """`rows` synthetic rows in card order, none equal to a row of the data, and onnxruntime's outputs for them.

    Raises:
        ValueError: no drawn row differs from every data row.
    """
    rng = np.random.default_rng(seed)
    numeric = iter(numeric_features(splits.train.x[:, : len(splits.numeric_names)], rng))
    exact: list[Feature] = [
        Categorical(tuple(splits.vocabularies[name])) if name in splits.vocabularies else next(numeric)
        for name in splits.feature_names
    ]
    between = [replace(feature, whole=False) if isinstance(feature, Numeric) else feature for feature in exact]
    data = [in_card_order(split, splits) for split in (splits.train, splits.val, splits.test)]
    found: list[np.ndarray] = []
    for round_ in range(DRAWS):
        drawn = np.column_stack([f.draw(rng, CANDIDATES) for f in (exact if round_ < DRAWS // 2 else between)])
        found.append(unseen(as_float32(drawn.astype(object), splits), data))
        if sum(map(len, found)) >= rows:
            break
    candidates = np.concatenate(found)
    if not len(candidates):
        raise ValueError("every feature holds one value in the training split, so every row is the data's")
    chosen = candidates[np.sort(spread(run(session, candidates, splits), rows))]
    return chosen.tolist(), run(session, chosen, splits)


def numeric_at(splits: Splits) -> list[int]:
    return [at for at, name in enumerate(splits.feature_names) if name not in splits.vocabularies]


def as_float32(rows: np.ndarray, splits: Splits) -> np.ndarray:
    """`rows` (object, card order) with each number rounded to float32, as serving reads it."""
    for at in numeric_at(splits):
        rows[:, at] = [float(value) for value in rows[:, at].astype(np.float32)]
    return rows


def in_card_order(split: Split, splits: Splits) -> np.ndarray:
    """A split's rows as the API takes them (object array): its numbers as float32 values, its raw categories."""
    assert split.categories is not None  # only models with categorical inputs are sampled here
    rows = np.empty((len(split.y), len(splits.feature_names)), dtype=object)
    numeric = numeric_at(splits)
    rows[:, numeric] = split.x[:, : len(numeric)].astype(np.float64)
    rows[:, [at for at in range(rows.shape[1]) if at not in numeric]] = split.categories
    return rows


def run(session: ort.InferenceSession, rows: np.ndarray, splits: Splits) -> np.ndarray:
    numeric = numeric_at(splits)
    categorical = [at for at in range(rows.shape[1]) if at not in numeric]
    feeds = {FEATURES: rows[:, numeric].astype(np.float32), CATEGORIES: rows[:, categorical].astype(str).astype(object)}
    return np.asarray(session.run(None, feeds)[0])
