"""onnxruntime helpers for export: a CPU session, batched runs, test metrics and latency figures."""

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from training.data.splits import Splits
from training.fit.metrics import classification_metrics, regression_metrics

PARITY_BATCHES = (1, 64)  # batch sizes at which onnxruntime must reproduce PyTorch (float) or is measured (int8)
LATENCY_BATCHES = (1, 64)
LATENCY_RUNS = 50


def open_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the vCPU share a Lambda function gets: latency figures mean what they say
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session: ort.InferenceSession, x: np.ndarray | dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    """The model's single output for every row of `x` (the features, or every graph input by name), run
    `batch_size` rows at a time."""
    inputs = x if isinstance(x, dict) else {"features": x}
    rows = len(inputs["features"])
    feeds = (
        {name: value[start : start + batch_size] for name, value in inputs.items()}
        for start in range(0, rows, batch_size)
    )
    return np.concatenate([np.asarray(session.run(None, feed)[0]) for feed in feeds])


def test_metrics(outputs: np.ndarray, splits: Splits) -> dict[str, Any]:
    """Held-out metrics of a model's outputs on the test split (probabilities or predictions)."""
    if splits.task == "classification":
        return classification_metrics(splits.test.y, outputs.argmax(axis=1), splits.labels)
    return regression_metrics(splits.test.y, outputs)


def measure_latency(session: ort.InferenceSession, x: np.ndarray | dict[str, np.ndarray]) -> dict[str, float]:
    """Median milliseconds per call at batch 1 and 64 (test rows repeated to fill a batch)."""
    inputs = x if isinstance(x, dict) else {"features": x}
    figures: dict[str, float] = {}
    for batch_size in LATENCY_BATCHES:
        feed = {name: np.resize(value, (batch_size, value.shape[1])) for name, value in inputs.items()}
        for _ in range(5):  # first calls allocate buffers and pick kernels
            session.run(None, feed)
        timings = []
        for _ in range(LATENCY_RUNS):
            start = time.perf_counter()
            session.run(None, feed)
            timings.append(time.perf_counter() - start)
        figures[f"p50_batch_{batch_size}"] = round(statistics.median(timings) * 1000, 4)
    return figures
