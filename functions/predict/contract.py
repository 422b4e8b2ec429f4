"""The bundle contract, checked where it is served: what model.json must hold and what model.onnx may not.

This module and model.py are the one authority on what can be served: `sml promote` runs this loader
on the staged bundle (sml/bundle.py), so whatever promote accepts, the function serves. The rules, in
words, are in docs/bundle-contract.md; training/export/card.py writes cards that keep them.
"""

import json
import math
import re
from pathlib import Path
from typing import Any

import orjson

BUNDLE_FORMAT = "serverless-ml.bundle/1"
CARD_FILE, MODEL_FILE, INT8_FILE = "model.json", "model.onnx", "model.int8.onnx"
ENCRYPTED_FILE, KEY_FILE = "model.onnx.enc", "model.key.json"  # `sml promote --kms-key` (envelope.py)
# The graph's string input of a model with categorical features. Twin: training/data/categories.py CATEGORIES.
CATEGORIES_INPUT = "categories"
OUTPUT_BY_TASK = {"classification": "probabilities", "regression": "predictions"}
CARD_KEYS: dict[str, type] = {"format": str, "name": str, "version": str, "task": str, "input": dict,
                              "outputs": list, "metrics": dict, "sample": dict, "training": dict, "export": dict,
                              "sha256": str}  # fmt: skip
NAME = re.compile(r"[\w.+:-]{1,128}")
SHA256 = re.compile(r"[0-9a-f]{64}")
# Lambda's limit on a synchronous answer; twin: sml/local/worker.py MAX_PAYLOAD_BYTES (tests hold them equal).
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024
RESPONSE_ENVELOPE_BYTES = 1024  # statusCode, headers, cookies around GET /model's body
INT64 = 2**63  # orjson writes 64-bit integers only; JSON has no bound, so the card sets one


class BundleError(Exception):
    """The bundle is missing, unreadable or breaks the contract; the function answers 503 with this reason."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line: /health shows it and `sml promote` prints it


def read_card(path: Path) -> dict[str, Any]:
    """model.json as a JSON object of strings, 64-bit integers and finite floats, or BundleError."""
    if path.is_symlink():
        raise BundleError(f"{path} is a symbolic link; a bundle holds regular files")
    try:
        size = path.stat().st_size
        if size > LAMBDA_RESPONSE_BYTES:
            raise BundleError(f"{path} is {size} bytes; GET /model cannot return more than {LAMBDA_RESPONSE_BYTES}")
        text = path.read_bytes()
        card = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except FileNotFoundError as error:
        raise BundleError(f"{path} not found; run `sml promote` to place a bundle there") from error
    except RecursionError:
        raise BundleError(f"{path} is nested too deeply to be a model card") from None
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BundleError(f"{path} is not a readable JSON model card: {error}") from None
    if not isinstance(card, dict):
        raise BundleError(f"{path} must hold a JSON object")
    return card


def shown(value: Any) -> str:
    """A card's value in a message: repr, cut short (a message is one line of /health and of promote's output)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def parse_int(text: str) -> int:
    value = int(text) if len(text) <= 20 else INT64  # int() of 5000 digits is slow, then refused by Python
    if not -INT64 <= value < INT64:
        raise ValueError(f"the integer {text[:20]}... does not fit in 64 bits")
    return value


def parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is beyond a float's range")
    return value


def parse_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number a card may hold")


def check_card(card: dict[str, Any]) -> tuple[int, ...]:
    """Check every field serving reads, with its type and range; return one instance's shape."""
    for key, kind in CARD_KEYS.items():
        if key not in card:
            raise BundleError(f"{CARD_FILE}: required key {key!r} is missing")
        if not isinstance(card[key], kind):
            raise BundleError(f"{CARD_FILE}: {key!r} must be a {kind.__name__}, got {type(card[key]).__name__}")
    if card["format"] != BUNDLE_FORMAT:
        raise BundleError(f"{CARD_FILE}: format {shown(card['format'])} is not {BUNDLE_FORMAT!r}, the one served here")
    for key in ("name", "version"):
        if not NAME.fullmatch(card[key]):
            raise BundleError(f"{CARD_FILE}: {key} {shown(card[key])} must be 1-128 letters, digits or . _ + : -")
    if not SHA256.fullmatch(card["sha256"]):
        raise BundleError(f"{CARD_FILE}: sha256 must be 64 lower-case hex digits")
    task = card["task"]
    if task not in OUTPUT_BY_TASK:
        raise BundleError(f"{CARD_FILE}: task must be one of {', '.join(OUTPUT_BY_TASK)}, got {shown(task)}")
    if card["outputs"] != [OUTPUT_BY_TASK[task]]:
        raise BundleError(
            f"{CARD_FILE}: a {task} card lists outputs [{OUTPUT_BY_TASK[task]!r}], not {shown(card['outputs'])}"
        )
    labels = card.get("labels")
    if task == "classification" and not (
        isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels)
    ):
        raise BundleError(f"{CARD_FILE}: a classification card needs labels, a non-empty list of strings")
    if not isinstance(card["metrics"].get("test"), dict):
        raise BundleError(f"{CARD_FILE}: metrics.test must be an object of held-out metrics")
    if not isinstance(card["sample"].get("instances"), list) or not card["sample"]["instances"]:
        raise BundleError(f"{CARD_FILE}: sample.instances must be a non-empty list of rows of the input's shape")
    if not isinstance(card["sample"].get("outputs"), list):
        raise BundleError(f"{CARD_FILE}: sample.outputs must be the list of the sample's outputs")
    return check_input(card["input"])


def check_input(spec: dict[str, Any]) -> tuple[int, ...]:
    shape = spec.get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) >= 2
        and shape[0] is None
        and all(isinstance(dim, int) and not isinstance(dim, bool) and 0 < dim < INT64 for dim in shape[1:])
    ):
        raise BundleError(f"{CARD_FILE}: input.shape must be [null, n, ...] with positive sizes, got {shown(shape)}")
    if spec.get("name") != "features" or spec.get("dtype") != "float32":
        raise BundleError(f"{CARD_FILE}: input must be named 'features' with dtype 'float32'")
    row_shape = tuple(shape[1:])
    if "features" in spec:  # records.read_schema checks feature_names against input.features
        return row_shape
    names = spec.get("feature_names")
    if names is not None and not (
        isinstance(names, list) and len(names) == math.prod(row_shape) and all(isinstance(n, str) for n in names)
    ):
        raise BundleError(
            f"{CARD_FILE}: input.feature_names must be {math.prod(row_shape)} strings, one per feature of {shape}"
        )
    return row_shape


def check_servable(card: dict[str, Any]) -> None:
    """GET /model must be able to answer with the card: orjson writes it, and Lambda returns it (6 MB at most)."""
    try:
        body = orjson.dumps(card)  # what GET /model writes (predict.serialize)
    except orjson.JSONEncodeError as error:
        raise BundleError(f"{CARD_FILE}: GET /model cannot write the card as JSON: {error}") from None
    size = len(body) + RESPONSE_ENVELOPE_BYTES
    if 3 * size > LAMBDA_RESPONSE_BYTES:  # escaping the body as a JSON string at most triples it
        size = len(json.dumps(body.decode())) + RESPONSE_ENVELOPE_BYTES
    if size > LAMBDA_RESPONSE_BYTES:
        raise BundleError(
            f"{CARD_FILE}: GET /model's answer would be {size} bytes, over Lambda's {LAMBDA_RESPONSE_BYTES}-byte limit"
        )


# Where a TensorProto can sit in an ONNX file (onnx.proto's field numbers): model -> graphs, functions,
# training graphs -> nodes -> attributes -> tensors, sparse tensors and subgraphs.
MODEL, GRAPH, NODE, ATTRIBUTE, TENSOR, SPARSE, FUNCTION, TRAINING = range(8)
CHILDREN = {
    MODEL: {7: GRAPH, 20: TRAINING, 25: FUNCTION},
    TRAINING: {1: GRAPH, 2: GRAPH},
    FUNCTION: {7: NODE},
    GRAPH: {1: NODE, 5: TENSOR, 15: SPARSE},
    NODE: {5: ATTRIBUTE},
    ATTRIBUTE: {5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH, 22: SPARSE, 23: SPARSE},
    SPARSE: {1: TENSOR, 2: TENSOR},
}
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION, EXTERNAL = 13, 14, 1


def check_self_contained(model: bytes) -> None:
    """Refuse a model.onnx with any tensor stored outside it: onnxruntime would read that file from
    wherever the path leads (the function's code, /etc), and the card's sha256 does not cover it."""
    stack = [(MODEL, 0, len(model))]
    try:
        while stack:
            kind, at, end = stack.pop()
            while at < end:
                key, at = read_varint(model, at)
                field, wire = key >> 3, key & 7
                if wire == 0:
                    value, at = read_varint(model, at)
                    external = kind == TENSOR and field == TENSOR_DATA_LOCATION and value == EXTERNAL
                elif wire == 2:
                    size, at = read_varint(model, at)
                    external = kind == TENSOR and field == TENSOR_EXTERNAL_DATA
                    if (child := CHILDREN.get(kind, {}).get(field)) is not None:
                        stack.append((child, at, at + size))
                    at += size
                elif wire in (1, 5):
                    at, external = at + (8 if wire == 1 else 4), False
                else:
                    raise IndexError(f"wire type {wire}")
                if external:
                    raise BundleError(
                        f"{MODEL_FILE} keeps tensors in external data files; a bundle's model is one file"
                    )
            if at != end:
                raise IndexError("a field runs past its message")
    except IndexError as error:
        raise BundleError(f"cannot load {MODEL_FILE}: it is not a valid ONNX protobuf ({error})") from None


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]  # IndexError when the file ends mid-number
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at
        if shift > 63:
            raise IndexError("a varint longer than 10 bytes")
