"""Load the model bundle once per container, verify it against its card, and run it."""

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import onnxruntime as ort

BUNDLE_FORMAT = "serverless-ml.bundle/1"
OUTPUT_BY_TASK = {"classification": "probabilities", "regression": "predictions"}
SAMPLE_TOLERANCE = 1e-4  # the card's sample outputs are rounded floats written by the exporter
# numpy.typing.NDArray[np.float32], spelled without importing numpy.typing: that costs ~1 ms of cold start
Float32Array: TypeAlias = np.ndarray[tuple[int, ...], np.dtype[np.float32]]


class BundleError(Exception):
    """The bundle is missing, unreadable or does not match its card; the function answers 503."""


class Model(NamedTuple):  # not a dataclass, whose class takes ~1.5 ms more of every cold start to build
    """A verified bundle: its card, a ready onnxruntime session, and the card's facts that serving reads."""

    card: dict[str, Any]
    session: ort.InferenceSession
    row_shape: tuple[int, ...]  # one instance: the card's input shape without the batch axis
    input_name: str
    output_name: str
    name: str
    version: str
    task: str
    labels: list[str]  # empty for regression

    def predict(self, batch: Float32Array) -> Float32Array:
        """Run the graph: probabilities [batch, classes] or predictions [batch]."""
        (output,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(output, dtype=np.float32)


def resolve_model_dir(value: str) -> Path:
    """MODEL_DIR is relative to the function's code folder (Lambda's /var/task) unless absolute."""
    path = Path(value)
    return path if path.is_absolute() else Path(__file__).resolve().parent / path


def load(model_dir: Path, intra_op_threads: int = 1, inter_op_threads: int = 1) -> Model:
    """Read the card, check model.onnx's sha256 against it, then build and self-test the session.

    Raises:
        BundleError: with a message that says what is wrong and how to fix it.
    """
    card = read_card(model_dir / "model.json")
    row_shape = check_card(card)
    onnx_path = model_dir / "model.onnx"
    try:
        model_bytes = onnx_path.read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read {onnx_path}: {error.strerror}; run `sml promote` to place a bundle") from error
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != card["sha256"]:
        raise BundleError(
            f"model.onnx sha256 {digest[:12]}... does not match the card's {card['sha256'][:12]}...: "
            "the file changed after export; promote the bundle again"
        )
    session = build_session(model_bytes, intra_op_threads, inter_op_threads)
    model = Model(
        card=card,
        session=session,
        row_shape=row_shape,
        input_name=card["input"]["name"],
        output_name=card["outputs"][0],
        name=str(card["name"]),
        version=str(card["version"]),
        task=str(card["task"]),
        labels=list(card.get("labels") or []),
    )
    check_session(model)
    return model


def read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_bytes())
    except FileNotFoundError as error:
        raise BundleError(f"{path} not found; run `sml promote` to place a bundle there") from error
    except (OSError, ValueError) as error:
        raise BundleError(f"{path} is not a readable JSON model card: {error}") from error
    if not isinstance(card, dict):
        raise BundleError(f"{path} must hold a JSON object")
    return card


def check_card(card: dict[str, Any]) -> tuple[int, ...]:
    """Check the keys serving relies on and return one instance's shape."""
    missing = [key for key in ("format", "name", "version", "task", "input", "outputs", "sha256") if key not in card]
    if missing:
        raise BundleError(f"model.json lacks {', '.join(missing)}")
    if card["format"] != BUNDLE_FORMAT:
        raise BundleError(f"model.json format is {card['format']!r}; this function reads {BUNDLE_FORMAT!r}")
    if card["task"] not in OUTPUT_BY_TASK:
        raise BundleError(f"model.json task is {card['task']!r}; expected one of {sorted(OUTPUT_BY_TASK)}")
    expected_output = OUTPUT_BY_TASK[card["task"]]
    if card["outputs"] != [expected_output]:
        raise BundleError(f"a {card['task']} card lists outputs [{expected_output!r}], not {card['outputs']!r}")
    labels = card.get("labels")
    if card["task"] == "classification" and not (
        isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels)
    ):
        raise BundleError("a classification card needs labels: a non-empty list of strings")
    spec = card["input"]
    shape = spec.get("shape") if isinstance(spec, dict) else None
    if not (
        isinstance(shape, list)
        and len(shape) >= 2
        and shape[0] is None
        and all(isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 for dim in shape[1:])
    ):
        raise BundleError(f"model.json input.shape must be [null, n, ...] with positive sizes, got {shape!r}")
    if spec.get("name") != "features" or spec.get("dtype") != "float32":
        raise BundleError("model.json input must be named 'features' with dtype float32")
    return tuple(shape[1:])


def build_session(model_bytes: bytes, intra_op_threads: int, inter_op_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads  # match the vCPU share Lambda gives the function
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    # onnxruntime raises its own Exception subclasses (InvalidProtobuf, Fail, InvalidGraph...) for a bad file.
    except Exception as error:
        raise BundleError(f"onnxruntime cannot load model.onnx: {error}") from error


def check_session(model: Model) -> None:
    """The graph must take the card's input and reproduce the card's sample outputs."""
    inputs = model.session.get_inputs()
    if [i.name for i in inputs] != [model.input_name] or inputs[0].type != "tensor(float)":
        raise BundleError(f"model.onnx inputs {[(i.name, i.type) for i in inputs]} differ from the card's")
    graph_row = inputs[0].shape[1:]
    if len(graph_row) != len(model.row_shape) or any(
        isinstance(dim, int) and dim != want for dim, want in zip(graph_row, model.row_shape, strict=True)
    ):
        raise BundleError(f"model.onnx input shape {inputs[0].shape} differs from the card's {model.card['input']}")
    if model.output_name not in [output.name for output in model.session.get_outputs()]:
        raise BundleError(f"model.onnx has no output {model.output_name!r}")
    sample = model.card.get("sample") or {}
    has_sample = bool(sample.get("instances"))
    # Scoring a batch here also warms the session up, so the first request pays no one-off allocation.
    instances = sample["instances"] if has_sample else np.zeros((1, *model.row_shape), dtype=np.float32)
    try:
        got = model.predict(np.asarray(instances, dtype=np.float32))
        want = np.asarray(sample["outputs"], dtype=np.float32) if has_sample else got
    # A sample that does not fit the graph is as much a broken bundle as a wrong answer.
    except Exception as error:
        raise BundleError(f"model.onnx cannot score the card's sample: {error}") from error
    if has_sample and (got.shape != want.shape or not np.allclose(got, want, rtol=0.0, atol=SAMPLE_TOLERANCE)):
        raise BundleError("model.onnx does not reproduce the card's sample outputs; the bundle is inconsistent")
    if model.task == "classification" and got.shape[-1] != len(model.labels):
        raise BundleError(f"model.onnx scores {got.shape[-1]} classes but the card has {len(model.labels)} labels")
