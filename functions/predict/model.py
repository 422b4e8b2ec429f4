"""Load the model bundle once per container, verify it against its card, and run it.

The checks here and in contract.py decide what can be served: `sml promote` runs `load` on the staged
bundle in a process of its own (sml/bundle.py), so a bundle that promote accepts is one this function serves.
"""

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import numpy as np
import onnxruntime as ort
from contract import (
    CARD_FILE,
    CATEGORIES_INPUT,
    ENCRYPTED_FILE,
    INT8_FILE,
    KEY_FILE,
    MODEL_FILE,
    OUTPUT_BY_TASK,
    BundleError,
    check_card,
    check_self_contained,
    check_servable,
    read_card,
)

if TYPE_CHECKING:  # records is imported only for models with categorical inputs
    from records import Schema

__all__ = ["OUTPUT_BY_TASK", "BundleError", "Model", "load", "resolve_model_dir"]  # what the rest of the function uses
# onnxruntime on Lambda (arm64) and in the training job (x86, another build) sum in other orders: their float32
# outputs differ by a few units in the last place, which a deep network grows to ~1e-5. Absolute up to 1 and
# relative beyond, like the export's parity gate: 1e-5 absolute is less than one float32 step above 128, so
# a regression model predicting 300 would fail on another machine; a changed weight misses by far more.
SAMPLE_TOLERANCE = 1e-4
# numpy.typing.NDArray[np.float32], spelled without importing numpy.typing: that costs ~1 ms of cold start
Float32Array: TypeAlias = np.ndarray[tuple[int, ...], np.dtype[np.float32]]


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
    schema: "Schema | None" = None  # a model with categorical inputs: its features (records.py)

    def predict(self, batch: Float32Array) -> Float32Array:
        """Run the graph: probabilities [batch, classes] or predictions [batch]."""
        (output,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(output, dtype=np.float32)

    def predict_categories(self, features: Float32Array, categories: np.ndarray) -> Float32Array:
        """Run a graph with categorical inputs: `categories` holds their strings, in card order."""
        feeds = {self.input_name: features, CATEGORIES_INPUT: categories}
        (output,) = self.session.run([self.output_name], feeds)
        return np.asarray(output, dtype=np.float32)


def resolve_model_dir(value: str) -> Path:
    """MODEL_DIR is relative to the function's code folder (Lambda's /var/task) unless absolute."""
    path = Path(value)
    return path if path.is_absolute() else Path(__file__).resolve().parent / path


def load(model_dir: Path, intra_op_threads: int = 1, inter_op_threads: int = 1) -> Model:
    """Read and check the card, check model.onnx's sha256 against it, then build and self-test the session.

    Raises:
        BundleError: with a message that says what is wrong and how to fix it; never anything else.
    """
    card = read_card(model_dir / CARD_FILE)
    row_shape = check_card(card)
    check_servable(card)
    model_bytes = read_model(model_dir / MODEL_FILE) if not is_sealed(model_dir) else open_sealed(model_dir, card)
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != card["sha256"]:
        raise BundleError(
            f"model.onnx sha256 {digest[:12]}... does not match the card's {card['sha256'][:12]}...: "
            "the file changed after export; promote the bundle again"
        )
    check_self_contained(model_bytes)  # before onnxruntime, which would read the external files
    schema = None
    if "features" in card["input"]:
        from records import read_schema

        schema = read_schema(card["input"], row_shape[0] if len(row_shape) == 1 else 0)
        if not any(schema.categorical):
            schema = None  # a numeric model that lists its features: served like any other
    session = build_session(model_bytes, intra_op_threads, inter_op_threads)
    model = Model(
        card=card,
        session=session,
        row_shape=row_shape,
        input_name="features",
        output_name=card["outputs"][0],
        name=card["name"],
        version=card["version"],
        task=card["task"],
        labels=list(card["labels"]) if card["task"] == "classification" else [],
        schema=schema,
    )
    check_session(model)
    return model


def read_model(path: Path) -> bytes:
    if path.is_symlink():
        raise BundleError(f"{path} is a symbolic link; a bundle holds regular files")
    try:
        return path.read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read {path}: {error.strerror}; run `sml promote` to place a bundle") from None


def is_sealed(model_dir: Path) -> bool:
    path = model_dir / ENCRYPTED_FILE
    return path.exists() or path.is_symlink()


def open_sealed(model_dir: Path, card: dict[str, Any]) -> bytes:
    """model.onnx.enc, decrypted in memory; no plaintext model may ship beside it."""
    for name in (MODEL_FILE, INT8_FILE):
        if (model_dir / name).exists() or (model_dir / name).is_symlink():
            raise BundleError(f"{name} ships beside {ENCRYPTED_FILE}: a sealed bundle holds no plaintext model")
    for name in (ENCRYPTED_FILE, KEY_FILE):
        if (model_dir / name).is_symlink():
            raise BundleError(f"{model_dir / name} is a symbolic link; a bundle holds regular files")
    import envelope  # boto3 and cryptography: only a sealed bundle's cold start imports them

    return envelope.open_model(model_dir, card)


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
        raise BundleError(f"onnxruntime cannot load model.onnx: {error}") from None


def check_session(model: Model) -> None:
    """The graph must take the card's input, with a dynamic batch axis and fixed feature axes, and reproduce
    the card's sample outputs in the shape serving answers with."""
    inputs = model.session.get_inputs()
    expected = [(model.input_name, "tensor(float)")]
    if model.schema is not None:
        expected.append((CATEGORIES_INPUT, "tensor(string)"))
    if [(i.name, i.type) for i in inputs] != expected:
        raise BundleError(f"model.onnx inputs {[(i.name, i.type) for i in inputs]} differ from the card's {expected}")
    if model.schema is not None:
        from records import check_categories_shape

        check_categories_shape(list(inputs[1].shape), model.schema)
    graph_shape = list(inputs[0].shape)
    if graph_shape[1:] != list(model.row_shape) or isinstance(graph_shape[0], int):
        raise BundleError(
            f"model.onnx input shape {graph_shape} is not [batch, {', '.join(map(str, model.row_shape))}] "
            f"(a dynamic batch axis, fixed feature axes) as the card's {model.card['input']['shape']} says"
        )
    outputs = {output.name: output.type for output in model.session.get_outputs()}
    if outputs.get(model.output_name) != "tensor(float)":
        raise BundleError(f"model.onnx has no float output {model.output_name!r}: its outputs are {outputs}")
    sample = model.card["sample"]
    if model.schema is not None:
        from records import sample_inputs

        return check_sample(model, *sample_inputs(model.schema, sample["instances"]))
    try:
        instances = np.asarray(sample["instances"], dtype=np.float32)
    except (ValueError, TypeError):
        raise BundleError("model.json: sample.instances must be arrays of numbers") from None
    if instances.shape[1:] != model.row_shape:
        raise BundleError(f"model.json: sample.instances are rows of shape {list(instances.shape[1:])}, "
                          f"not the input's {list(model.row_shape)}")  # fmt: skip
    check_sample(model, instances)


def check_sample(model: Model, instances: Float32Array, categories: np.ndarray | None = None) -> None:
    """The graph reproduces the card's sample outputs, in the shape serving answers with."""
    try:
        want = np.asarray(model.card["sample"]["outputs"], dtype=np.float64)
    except (ValueError, TypeError):
        raise BundleError("model.json: sample.outputs must be an array of numbers") from None
    # Scoring the sample here also warms the session up, so the first request pays no one-off allocation.
    try:
        scores = model.predict(instances) if categories is None else model.predict_categories(instances, categories)
        got = scores.astype(np.float64)
    except Exception as error:  # onnxruntime's own types: a graph that cannot score its input is broken
        raise BundleError(f"model.onnx cannot score the card's sample: {error}") from None
    serving_shape = (len(instances), len(model.labels)) if model.task == "classification" else (len(instances),)
    if got.shape != serving_shape:
        what = f"{len(model.labels)} labels" if model.task == "classification" else "one value per row"
        raise BundleError(f"model.onnx answers shape {list(got.shape)} for the sample; the card's {what} need "
                          f"{list(serving_shape)}")  # fmt: skip
    if want.shape != got.shape:
        raise BundleError(
            f"model.json: sample.outputs has shape {list(want.shape)}, the model answers {list(got.shape)}"
        )
    difference = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
    if not difference <= SAMPLE_TOLERANCE:  # also refuses NaN
        raise BundleError(
            f"model.onnx outputs differ from the card's sample outputs by {difference:.3g} "
            f"(tolerance {SAMPLE_TOLERANCE:g}, relative above 1): the model is not the one the card describes"
        )


def check_int8(model_dir: Path, card: dict[str, Any]) -> None:
    """A model.int8.onnx beside the model must be the one the card records (the function ships it, unused)."""
    path = model_dir / INT8_FILE
    if not (path.exists() or path.is_symlink()):
        return
    int8 = card.get("int8")
    if not isinstance(int8, dict) or not isinstance(int8.get("sha256"), str):
        raise BundleError(f"{path} is present but the card records no int8.sha256 for it")
    if hashlib.sha256(read_model(path)).hexdigest() != int8["sha256"]:
        raise BundleError(f"{path.name} does not match the card's int8.sha256: the file changed after export")
