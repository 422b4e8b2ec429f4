"""Verify a model bundle before it is served: the card's contract keys, the files' sha256, the recorded sample."""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from sml.errors import UserError
from training.cloud.contract import file_sha256

FORMAT = "serverless-ml.bundle/1"
MODEL_FILE, CARD_FILE, INT8_FILE = "model.onnx", "model.json", "model.int8.onnx"
BUNDLE_FILES = (MODEL_FILE, CARD_FILE, INT8_FILE)
SAMPLE_ATOL = 1e-5  # float32 graphs on one machine and another agree far closer than this
TASKS = ("classification", "regression")
CARD_KEYS: dict[str, type] = {
    "format": str,
    "name": str,
    "version": str,
    "task": str,
    "input": dict,
    "outputs": list,
    "metrics": dict,
    "sample": dict,
    "training": dict,
    "export": dict,
    "sha256": str,
}
# onnxruntime raises its own exception types (not RuntimeError subclasses) for a model it cannot load or run.
ONNXRUNTIME_ERRORS = (ValueError, TypeError, ort_state.Fail, ort_state.InvalidArgument, ort_state.InvalidGraph,
                      ort_state.InvalidProtobuf, ort_state.NotImplemented, ort_state.RuntimeException)  # fmt: skip


class BundleError(UserError):
    """The bundle breaks the contract in DESIGN.md; it must not be served."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    card: dict[str, Any]
    files: tuple[str, ...]  # the bundle files present, model.onnx and model.json first


def verify_bundle(path: Path) -> Bundle:
    """Check the card, every file's hash, and that onnxruntime reproduces the card's sample outputs.

    Raises:
        BundleError: naming the first check that failed.
    """
    if not (path / MODEL_FILE).is_file() or not (path / CARD_FILE).is_file():
        raise BundleError(f"{path} is not a bundle: it needs {MODEL_FILE} and {CARD_FILE}")
    card = read_card(path / CARD_FILE)
    check_card(card)
    check_hash(path / MODEL_FILE, card["sha256"])
    if (path / INT8_FILE).is_file():
        int8 = card.get("int8")
        if not isinstance(int8, dict) or not isinstance(int8.get("sha256"), str):
            raise BundleError(f"{path / INT8_FILE} is present but the card records no int8.sha256 for it")
        check_hash(path / INT8_FILE, int8["sha256"])
    check_sample(path / MODEL_FILE, card)
    files = tuple(name for name in BUNDLE_FILES if (path / name).is_file())
    return Bundle(path=path, card=card, files=files)


def read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(card, dict):
        raise BundleError(f"{path} must hold a JSON object")
    return card


def check_card(card: dict[str, Any]) -> None:
    """The keys DESIGN.md makes a contract, with the types serving relies on."""
    for key, kind in CARD_KEYS.items():
        if key not in card:
            raise BundleError(f"{CARD_FILE}: required key {key!r} is missing")
        if not isinstance(card[key], kind):
            raise BundleError(f"{CARD_FILE}: {key!r} must be a {kind.__name__}, got {type(card[key]).__name__}")
    if card["format"] != FORMAT:
        raise BundleError(f"{CARD_FILE}: format {card['format']!r} is not {FORMAT!r}, the one this sml reads")
    if card["task"] not in TASKS:
        raise BundleError(f"{CARD_FILE}: task must be one of {', '.join(TASKS)}, got {card['task']!r}")
    for key in ("name", "version"):
        if not re.fullmatch(r"[\w.+:-]{1,128}", card[key]):
            raise BundleError(f"{CARD_FILE}: {key} {card[key]!r} must be 1-128 letters, digits or . _ + : -")
    if not re.fullmatch(r"[0-9a-f]{64}", card["sha256"]):
        raise BundleError(f"{CARD_FILE}: sha256 must be 64 lower-case hex digits")
    model_input = card["input"]
    if not isinstance(model_input.get("name"), str) or not isinstance(model_input.get("shape"), list):
        raise BundleError(f"{CARD_FILE}: input needs a name (string) and a shape (list)")
    if model_input.get("dtype") != "float32":
        raise BundleError(f"{CARD_FILE}: input dtype must be 'float32', got {model_input.get('dtype')!r}")
    if not card["outputs"] or not all(isinstance(name, str) for name in card["outputs"]):
        raise BundleError(f"{CARD_FILE}: outputs must be a non-empty list of output names")
    labels = card.get("labels")
    if card["task"] == "classification" and not (
        isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels)
    ):
        raise BundleError(f"{CARD_FILE}: a classification card needs labels, a non-empty list of strings")
    if not isinstance(card["metrics"].get("test"), dict):
        raise BundleError(f"{CARD_FILE}: metrics.test must be an object of held-out metrics")
    sample = card["sample"]
    if not isinstance(sample.get("instances"), list) or not sample["instances"]:
        raise BundleError(f"{CARD_FILE}: sample.instances must be a non-empty list of rows")
    if not isinstance(sample.get("outputs"), list) or len(sample["outputs"]) != len(sample["instances"]):
        raise BundleError(f"{CARD_FILE}: sample.outputs must hold one output per sample instance")


def check_hash(path: Path, expected: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise BundleError(
            f"{path.name} sha256 {actual[:12]}... does not match the card's {expected[:12]}...: "
            "the file changed after export"
        )


def check_sample(model_path: Path, card: dict[str, Any]) -> None:
    """onnxruntime, here, must give the outputs the training job recorded for the card's sample rows."""
    try:
        session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        instances = np.asarray(card["sample"]["instances"], dtype=np.float32)
        (actual,) = session.run([card["outputs"][0]], {card["input"]["name"]: instances})
        expected = np.asarray(card["sample"]["outputs"], dtype=np.float64)
    except ONNXRUNTIME_ERRORS as error:
        raise BundleError(f"{model_path.name} cannot run the card's sample: {str(error).splitlines()[0]}") from None
    actual = np.asarray(actual, dtype=np.float64)
    if actual.size != expected.size:
        raise BundleError(f"{model_path.name} gives outputs of shape {actual.shape}; the card records {expected.shape}")
    difference = float(np.max(np.abs(actual.reshape(expected.shape) - expected)))
    if not difference <= SAMPLE_ATOL:  # also refuses NaN
        raise BundleError(
            f"{model_path.name} outputs differ from the card's sample outputs by {difference:.3g} "
            f"(tolerance {SAMPLE_ATOL:g}): the model is not the one the card describes"
        )
