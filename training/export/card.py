"""The model card (model.json): what a bundle holds, how it was made and how well it does.

Its keys are a contract with serving, `sml promote` and users' scripts (docs/DESIGN.md): add keys, never rename.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from training.cloud.contract import file_sha256
from training.config import TrainConfig
from training.data.splits import Splits

FORMAT = "serverless-ml.bundle/1"
SAMPLE_ROWS = 3


def build_card(
    *,
    splits: Splits,
    config: TrainConfig,
    training_summary: dict[str, Any],
    onnx_path: Path,
    output_name: str,
    metrics: dict[str, Any],
    sample_outputs: np.ndarray,
    parity: dict[str, float],
    latency_ms: dict[str, float],
) -> dict[str, Any]:
    """The card of the model at `onnx_path`; `sample_outputs` are onnxruntime's outputs for the first test rows."""
    digest = file_sha256(onnx_path)
    created = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    model_input: dict[str, Any] = {
        "name": "features",
        "shape": [None, splits.n_features],
        "dtype": "float32",
        "feature_names": list(splits.feature_names),
    }
    if config.input_shape:
        model_input["image_shape"] = list(config.input_shape)
    training: dict[str, Any] = {
        "config": config.to_dict(),
        "data_sha256": splits.data_sha256,
        "rows": {"train": len(splits.train.y), "val": len(splits.val.y), "test": len(splits.test.y)},
        "cleaning": dict(splits.cleaning),
    }
    training.update({key: value for key, value in training_summary.items() if key not in training})
    card: dict[str, Any] = {
        "format": FORMAT,
        "name": config.bundle_name,
        "version": f"{created}-{digest[:7]}",
        "task": splits.task,
        "input": model_input,
        "outputs": [output_name],
        "labels": list(splits.labels),
        "metrics": {"test": metrics},
        "sample": {"instances": splits.test.x[:SAMPLE_ROWS].tolist(), "outputs": sample_outputs.tolist()},
        "training": training,
        "export": {
            "opset": onnx_opset(onnx_path),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            **parity,
            "parity_tolerance": config.parity_tolerance,
            "latency_ms": latency_ms,
            "size_bytes": onnx_path.stat().st_size,
        },
        "sha256": digest,
    }
    if splits.task == "regression":
        del card["labels"]
    return card


def onnx_opset(path: Path) -> int:
    """The default-domain opset the file really declares (the exporter may not honour the one asked for)."""
    imports = onnx.load(path, load_external_data=False).opset_import
    return int(next(entry.version for entry in imports if entry.domain in ("", "ai.onnx")))
