"""The seeded train/validation/test partition of the rows, stratified for classification."""

import math

import numpy as np

from training.data.tables import DataError


def split_indices(
    y: np.ndarray, stratify: bool, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/val/test row indices; stratified (each class split on its own) when asked."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == value) for value in np.unique(y)] if stratify else [np.arange(len(y))]
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for group in groups:
        shuffled = rng.permutation(group)
        n_val, n_test = split_sizes(len(shuffled), val_fraction, test_fraction)
        parts[0].append(shuffled[n_val + n_test :])
        parts[1].append(shuffled[:n_val])
        parts[2].append(shuffled[n_val : n_val + n_test])
    train, val, test = (rng.permutation(np.concatenate(part)) for part in parts)
    fractions = f"--val-fraction {val_fraction} and --test-fraction {test_fraction}"
    if (len(val) == 0 or len(test) == 0) and len(groups) > 1:
        largest = max(len(group) for group in groups)
        need = rows_for_each_split(val_fraction, test_fraction)
        raise DataError(
            f"too few rows per class to split: {len(y)} rows over {len(groups)} classes, the largest with {largest}; "
            f"the split is stratified (each class on its own) and with {fractions} a class needs {need} rows "
            "to give a validation and a test row; add rows, merge rare classes or raise the fractions"
        )
    if len(val) == 0 or len(test) == 0:
        raise DataError(
            f"{len(y)} rows are too few to split: {fractions} leave {len(val)} validation and {len(test)} test rows; "
            "add rows or raise the fractions"
        )
    return train, val, test


def split_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Rounded validation and test sizes that leave at least one training row."""
    n_val, n_test = int(n_rows * val_fraction + 0.5), int(n_rows * test_fraction + 0.5)
    excess = max(0, n_val + n_test - (n_rows - 1))
    from_val = min(excess, n_val)
    return n_val - from_val, n_test - (excess - from_val)


def rows_for_each_split(val_fraction: float, test_fraction: float) -> int:
    """The fewest rows that split_sizes gives at least one validation and one test row."""
    rows = max(3, math.ceil(0.5 / min(val_fraction, test_fraction)) - 1)  # from just below the rounding threshold
    while min(split_sizes(rows, val_fraction, test_fraction)) < 1:
        rows += 1
    return rows
