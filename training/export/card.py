"""The model card (model.json): what a bundle holds, how it was made and how well it does.

Its keys are a contract with serving, `sml promote` and users' scripts (docs/bundle-contract.md):
add keys, never rename. The function's loader (functions/predict/contract.py) is the authority on what a
card may hold; this module writes cards that keep its rules, and `write_card` keeps them small enough to serve.
"""

import json
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort

from training.cloud.contract import file_sha256
from training.config import TrainConfig

if TYPE_CHECKING:  # annotations only: tests/fixtures builds cards without pandas' import cost
    from training.data.splits import Splits

# Twins of functions/predict/contract.py's BUNDLE_FORMAT and OUTPUT_BY_TASK (tests/unit/test_bundle_contract.py).
FORMAT = "serverless-ml.bundle/1"
OUTPUT_BY_TASK = {"classification": "probabilities", "regression": "predictions"}
SAMPLE_ROWS = 3
# GET /model answers with the card. Lambda escapes that answer as a JSON string, which at most triples it, and
# returns at most 6 MB (functions/predict/contract.py LAMBDA_RESPONSE_BYTES; a test holds the two in step).
MAX_CARD_BYTES = 1024 * 1024
# What write_card drops, in this order, from a card over MAX_CARD_BYTES (2,000 classes: a 50 MB confusion matrix).
TRIMMABLE = (("metrics", "test", "confusion_matrix"), ("metrics", "test", "per_class"))


class CardTooLarge(ValueError):
    """Even trimmed, the card is over MAX_CARD_BYTES: labels or feature names too many or too long."""


def build_card(
    *,
    splits: "Splits",
    config: TrainConfig,
    training_summary: dict[str, Any],
    onnx_path: Path,
    metrics: dict[str, Any],
    sample: tuple[np.ndarray | list[list[Any]], np.ndarray],
    parity: dict[str, float],
    latency_ms: dict[str, float],
) -> dict[str, Any]:
    """The card of the model at `onnx_path`; `sample` is synthetic instances and onnxruntime's outputs for them
    (training/export/sample.py: no row of the data)."""
    model_input: dict[str, Any] = {"feature_names": list(splits.feature_names)}
    if config.input_shape:
        model_input["image_shape"] = list(config.input_shape)
    if splits.vocabularies:  # additive: a numeric-only card has no input.features
        from training.export.features import feature_kinds

        model_input["features"] = feature_kinds(splits)
    training: dict[str, Any] = {
        "config": config.to_dict(),
        "data_sha256": splits.data_sha256,
        "rows": {"train": len(splits.train.y), "val": len(splits.val.y), "test": len(splits.test.y)},
        "cleaning": dict(splits.cleaning),
        "privacy": {
            "excluded": list(config.exclude),
            "masked": list(config.mask),
            "allowed": list(config.allow_column),
        },
    }
    training.update({key: value for key, value in training_summary.items() if key not in training})
    return assemble_card(
        onnx_path=onnx_path,
        name=config.bundle_name,
        task=splits.task,
        model_input=model_input,
        labels=list(splits.labels),
        metrics=metrics,
        sample_instances=sample[0],
        sample_outputs=sample[1],
        training=training,
        export={
            "torch": installed_version("torch"),
            **parity,
            "parity_tolerance": config.parity_tolerance,
            "latency_ms": latency_ms,
        },
    )


def assemble_card(
    *,
    onnx_path: Path,
    name: str,
    task: str,
    model_input: dict[str, Any],
    labels: list[str],
    metrics: dict[str, Any],
    sample_instances: np.ndarray | list[list[Any]],
    sample_outputs: np.ndarray,
    training: dict[str, Any],
    export: dict[str, Any],
) -> dict[str, Any]:
    """A card in the contract's shape for the ONNX file at `onnx_path`: the one writer of cards, which the
    training job and tests/fixtures/make_tiny_bundle.py share. `model_input` adds to the input's name, shape
    and dtype (feature_names, image_shape, features); `export` to the opset, library versions and file size.
    With categorical features (`model_input["features"]`) the sample's rows are lists of numbers and strings
    and the input's shape counts the numeric features only, the columns of the float input."""
    digest = file_sha256(onnx_path)
    if isinstance(sample_instances, list):
        n_features = sum(feature["kind"] == "numeric" for feature in model_input["features"])
        instances = sample_instances
    else:
        n_features, instances = int(np.prod(sample_instances.shape[1:])), sample_instances.tolist()
    card: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "version": f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{digest[:7]}",
        "task": task,
        "input": {"name": "features", "shape": [None, n_features], "dtype": "float32", **model_input},
        "outputs": [OUTPUT_BY_TASK[task]],
        "labels": labels,
        "metrics": {"test": metrics},
        "sample": {"instances": instances, "outputs": sample_outputs.tolist()},
        "training": training,
        "export": {
            "opset": onnx_opset(onnx_path),
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            **export,
            "size_bytes": onnx_path.stat().st_size,
        },
        "sha256": digest,
    }
    if task == "regression":
        del card["labels"]
    return card


def write_card(path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Write `card` to `path`, trimmed in place to MAX_CARD_BYTES first (recorded in export.card_trimmed).

    Raises:
        CardTooLarge: the card is too large even with one sample row and no per-class metrics.
    """
    trimmed: list[str] = []
    while len(text := card_text(card)) > MAX_CARD_BYTES:
        present = [keys for keys in TRIMMABLE if keys[-1] in dig(card, keys[:-1])]
        if present:
            del dig(card, present[0][:-1])[present[0][-1]]
            trimmed.append(".".join(present[0]))
        elif len(card["sample"]["instances"]) > 1:
            for part in ("instances", "outputs"):
                card["sample"][part] = card["sample"][part][:1]
            trimmed.append("sample")
        else:
            raise CardTooLarge(
                f"the model card would be {len(text)} bytes even trimmed ({', '.join(trimmed)}); serving returns "
                f"at most {MAX_CARD_BYTES}: use fewer classes, or shorter labels and feature names"
            )
        card["export"]["card_trimmed"] = trimmed
    path.write_text(text)
    return card


def card_text(card: dict[str, Any]) -> str:
    return json.dumps(card, indent=2, allow_nan=False) + "\n"


def dig(card: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    for key in keys:
        card = card[key]
    return card


def onnx_opset(path: Path) -> int:
    """The default-domain opset the file really declares (the exporter may not honour the one asked for)."""
    imports = onnx.load(path, load_external_data=False).opset_import
    return int(next(entry.version for entry in imports if entry.domain in ("", "ai.onnx")))
