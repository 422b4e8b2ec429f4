"""A dynamic int8 copy of the exported model, kept only when its test score stays close to the float model's."""

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from training.cloud.contract import file_sha256
from training.data.splits import Splits
from training.export.encoding import graph_inputs
from training.export.onnx_run import PARITY_BATCHES, measure_latency, open_session, run_session, test_metrics

# Kept when the test score drops by at most this much: one point of accuracy for classification,
# and the same 0.01 of R² for regression (both scores top out at 1, so a point means the same).
MAX_SCORE_DROP = 0.01


def quantize_int8(
    onnx_path: Path, int8_path: Path, splits: Splits, expected: np.ndarray, float_metrics: dict[str, Any]
) -> dict[str, Any]:
    """Write `int8_path` beside `onnx_path` and return its card figures; the file is removed if not kept.

    `expected` holds PyTorch's test outputs: the int8 parity error is measured against them, and
    reported rather than gated (int8 is approximate by design; the score rule decides).
    """
    prepared = int8_path.with_name(f"{int8_path.stem}.prepared.onnx")
    quant_pre_process(onnx_path, prepared)  # shape inference and fusions, as onnxruntime recommends
    quantize_dynamic(prepared, int8_path, weight_type=QuantType.QInt8)
    prepared.unlink()
    onnx.checker.check_model(onnx.load(int8_path), full_check=True)

    session = open_session(int8_path)
    parity_error, outputs = 0.0, expected
    test_inputs = graph_inputs(splits.test, splits)
    for batch_size in PARITY_BATCHES:  # activations are quantised per call, so the batch size matters
        outputs = run_session(session, test_inputs, batch_size)
        parity_error = max(parity_error, float(np.max(np.abs(outputs.astype(np.float64) - expected))))
    metrics = test_metrics(outputs, splits)
    score = "accuracy" if splits.task == "classification" else "r2"
    drop = float(float_metrics[score]) - float(metrics[score])
    kept = drop <= MAX_SCORE_DROP + 1e-9
    figures: dict[str, Any] = {
        "kept": kept,
        "rule": f"kept when the test {score} drops by at most {MAX_SCORE_DROP} from the float model's",
        "parity_max_abs_error": parity_error,
        "metrics": {"test": metrics},
        "latency_ms": measure_latency(session, test_inputs),
    }
    if kept:
        figures.update(
            {"file": int8_path.name, "sha256": file_sha256(int8_path), "size_bytes": int8_path.stat().st_size}
        )
    else:
        int8_path.unlink()
        figures["reason"] = (
            f"test {score} dropped from {float_metrics[score]:.4f} to {metrics[score]:.4f} "
            f"({drop:.4f} > {MAX_SCORE_DROP}); {int8_path.name} not written"
        )
    return figures
