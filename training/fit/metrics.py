"""Classification and regression metrics in numpy, ready for JSON (plain floats and ints)."""

from typing import Any

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1, and the confusion matrix (rows = true class).

    A class that is never predicted has precision 0 (and one never present, recall 0) rather than NaN.
    Macro averages cover the classes present in `y_true` or `y_pred`, so a class missing from a small
    test split does not count as a zero.
    """
    y_true, y_pred = _check(y_true, y_pred)
    n_classes = len(labels)
    if min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes:
        raise ValueError(f"class indices must lie in [0, {n_classes}) for {n_classes} labels")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    true_positives = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _ratio(true_positives, predicted)
    recall = _ratio(true_positives, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    seen = (support > 0) | (predicted > 0)
    return {
        "accuracy": float(true_positives.sum() / len(y_true)),
        "precision_macro": float(precision[seen].mean()),
        "recall_macro": float(recall[seen].mean()),
        "f1_macro": float(f1[seen].mean()),
        "per_class": {
            label: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, label in enumerate(labels)
        },
        "confusion_matrix": confusion.tolist(),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R² (1.0 for a perfect fit of a constant target, 0.0 for an imperfect one)."""
    y_true, y_pred = _check(y_true, y_pred)
    truth, residual = y_true.astype(np.float64), y_pred.astype(np.float64) - y_true
    squares, total = float(np.sum(residual**2)), float(np.sum((truth - truth.mean()) ** 2))
    r2 = 1.0 - squares / total if total > 0 else float(squares == 0)
    mse = squares / len(truth)
    return {"mse": mse, "rmse": mse**0.5, "mae": float(np.mean(np.abs(residual))), "r2": r2}


def _check(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"need equally many true and predicted values, got {len(y_true)} and {len(y_pred)}")
    return y_true, y_pred


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (no warning, no NaN)."""
    ratio: np.ndarray = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return ratio
