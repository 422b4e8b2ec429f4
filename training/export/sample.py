"""The card's sample: synthetic rows, never records of the data, that still exercise the model.

`sml promote`, the function's self-test at load and the pre-traffic check score the card's sample, and
GET /model serves it to every caller: it must not be a row of the data. Each feature is drawn on its own
from the training split's marginal distribution (`Numeric`: inverse CDF over its quantiles, so values stay
within the observed minimum and maximum, and whole-number columns stay whole); a categorical feature
draws from its vocabulary (`Categorical`). Drawing features independently breaks the links between a
record's values; any candidate that still equals a row of the data is dropped (when a few whole-number
columns leave no other combination, their values are drawn between whole numbers). Of the candidates left, the
sample keeps those whose outputs differ most (distinct classes, least saturated first; for regression,
predictions spread over their range), so comparing them tells one model from another.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import onnxruntime as ort

QUANTILES = np.linspace(0.0, 1.0, 21)  # 5% steps: the shape of each feature's distribution, not its values
STATISTICS_ROWS = 100_000
CANDIDATES = 64  # rows drawn before the sample's rows are chosen among them
DRAWS = 8  # rounds of CANDIDATES; the later half draws whole-number columns unrounded (few values: all seen)


class Feature(Protocol):
    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Numeric:
    quantiles: np.ndarray  # the column's values at QUANTILES: [0] its minimum, [-1] its maximum
    whole: bool  # every observed value is a whole number: so are the drawn ones

    @classmethod
    def of(cls, column: np.ndarray) -> "Numeric":
        values = column.astype(np.float64)
        return cls(quantiles=np.quantile(values, QUANTILES), whole=bool(np.all(np.mod(values, 1) == 0)))

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        values: np.ndarray = np.interp(rng.random(count), QUANTILES, self.quantiles)
        return np.round(values) if self.whole else values


@dataclass(frozen=True)
class Categorical:
    vocabulary: tuple[str, ...]  # the values seen in the training split

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.choice(np.asarray(self.vocabulary, dtype=object), size=count)


def numeric_features(train_x: np.ndarray, rng: np.random.Generator) -> list[Numeric]:
    """The spec of every column of a numeric training matrix (tabular features or flattened pixels), measured
    on STATISTICS_ROWS rows at most: quantiles need no more, and sorting millions of rows per column takes minutes."""
    if len(train_x) > STATISTICS_ROWS:
        train_x = train_x[np.sort(rng.choice(len(train_x), STATISTICS_ROWS, replace=False))]
    return [Numeric.of(column) for column in train_x.T]


def draw_rows(features: Sequence[Feature], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` rows, each feature drawn independently (an object array when any feature is categorical)."""
    return np.column_stack([feature.draw(rng, count) for feature in features])


def unseen(candidates: np.ndarray, data: Sequence[np.ndarray]) -> np.ndarray:
    """The candidates equal to no row of any array in `data`."""
    keep = np.ones(len(candidates), dtype=bool)
    for index, row in enumerate(candidates):
        for rows in data:
            match = np.ones(len(rows), dtype=bool)
            for column, value in enumerate(row):  # column by column: most rows differ in the first few
                match &= rows[:, column] == value
                if not match.any():
                    break
            if match.any():
                keep[index] = False
                break
    return candidates[keep]


def synthetic_sample(
    session: ort.InferenceSession, train_x: np.ndarray, data: Sequence[np.ndarray], rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`rows` synthetic float32 instances drawn from `train_x`'s statistics, none equal to a row of `data`, and
    onnxruntime's outputs for them.

    Raises:
        ValueError: no drawn row differs from every data row: every feature holds one value.
    """
    rng = np.random.default_rng(seed)
    exact = numeric_features(train_x, rng)
    between = [replace(feature, whole=False) for feature in exact]
    found: list[np.ndarray] = []
    for round_ in range(DRAWS):
        features = exact if round_ < DRAWS // 2 else between
        found.append(unseen(draw_rows(features, CANDIDATES, rng).astype(np.float32), data))
        if sum(map(len, found)) >= rows:
            break
    candidates = np.concatenate(found)
    if not len(candidates):
        raise ValueError("every feature holds one value in the training split, so every row is the data's")
    chosen = candidates[np.sort(spread(np.asarray(session.run(None, {"features": candidates})[0]), rows))]
    # Recorded as one batch of the sample's rows: the way the function's self-test and promote score them.
    return chosen, np.asarray(session.run(None, {"features": chosen})[0])


def spread(outputs: np.ndarray, rows: int) -> np.ndarray:
    """Indices of up to `rows` outputs that differ most: one per predicted class, least confident first, then the
    rest by confidence (classification); evenly spaced ranks of the predictions (regression)."""
    if outputs.ndim == 1:
        order = np.argsort(outputs, kind="stable")
        ranks = np.unique(np.linspace(0, len(order) - 1, min(rows, len(order))).round().astype(int))
        return np.asarray(order[ranks])
    by_confidence = np.argsort(outputs.max(axis=1), kind="stable")
    classes: set[int] = set()
    first: list[int] = []
    rest: list[int] = []
    for index in by_confidence:
        predicted = int(outputs[index].argmax())
        (rest if predicted in classes else first).append(int(index))
        classes.add(predicted)
    return np.asarray((first + rest)[:rows])
