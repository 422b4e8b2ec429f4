"""The Open Inference Protocol's tensors: the request's inputs, JSON or binary, and the answer's outputs.

The binary tensor data extension: a body of `Inference-Header-Content-Length` bytes of JSON, then each
input with `parameters.binary_data_size` as raw little-endian bytes, in the order the inputs are listed.
An answer with binary outputs is laid out the same way. BYTES elements are a 4-byte little-endian length,
then the bytes. v2.py routes the requests; this module only reads and writes tensors.
"""

import math
import struct
from typing import Any, NamedTuple

import numpy as np
import orjson
from model import Float32Array
from predict import ApiError, holds_boolean, only_numbers, parse_json, straight_float32

ELEMENT_LENGTH = struct.Struct("<I").pack  # a BYTES element's 4-byte little-endian length
DATA_KEY = '"data"'  # a JSON tensor's values (only_numbers looks after it)
FLOAT32 = np.dtype("<f4")  # FP32 binary data: little-endian, as Lambda's CPUs (and numpy's float32 there)


class V2Error(Exception):
    """A request we refuse: becomes the protocol's `{"error": "..."}` with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class TensorSpec(NamedTuple):
    """One input or output as model metadata lists it; -1 is the batch axis."""

    name: str
    datatype: str  # FP32 or BYTES
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


Inputs = list[tuple[dict[str, Any], memoryview | None]]  # in the model's order: each tensor and its binary data
NO_DATA = memoryview(b"")


def read_request(
    body: bytes | str, header_length: str | None, specs: list[TensorSpec], max_batch: int
) -> tuple[dict[str, Any], Inputs, Float32Array]:
    """The request's JSON (an object with a list of inputs, and a string id if any), its inputs in the order of
    `specs` (the model's: the numeric features, then any categorical ones) each with its binary data, and the
    features as float32, 1 to max_batch rows. Every size is checked against the body.

    At batch 1 each step of this path costs a measurable share of the request (benchmarks/warm.py), so it is one
    pass with plain tuples, and the usual request meets no step it does not need.
    """
    header, rest = (body, NO_DATA) if header_length is None else split_header(body, header_length)
    document = parse(header)
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise V2Error(400, 'send {"inputs": [{"name", "shape", "datatype", "data"}]}: a non-empty list of tensors')
    if "id" in document and not isinstance(document["id"], str):
        raise V2Error(400, "id must be a string")
    inputs: Inputs = []
    names, offset = [], 0
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, dict):
            raise V2Error(400, f"input {index} must be an object: {{name, shape, datatype, data}}")
        names.append(tensor.get("name"))
        size = parameters(tensor).get("binary_data_size") if "parameters" in tensor else None
        if size is None:
            inputs.append((tensor, None))
            continue
        if header_length is None:
            raise V2Error(400, "binary_data_size needs the Inference-Header-Content-Length header")
        if type(size) is not int or size < 0:
            raise V2Error(400, f"input {index}: binary_data_size must be a non-negative integer")
        if offset + size > len(rest):
            raise V2Error(400, f"input {index}: binary_data_size {size} runs past the body's end "
                               f"({len(rest) - offset} bytes left)")  # fmt: skip
        inputs.append((tensor, rest[offset : offset + size]))
        offset += size
    if offset != len(rest):
        raise V2Error(400, f"the body holds {len(rest) - offset} bytes beyond the inputs' binary_data_size")
    if len(names) != len(specs) or names[0] != specs[0].name or len(specs) > 1:
        inputs = in_order(inputs, names, [spec.name for spec in specs])
    tensor, blob = inputs[0]
    spec, shape = specs[0], tensor.get("shape")
    if tensor.get("datatype") != "FP32":
        raise V2Error(400, f"input {spec.name!r} has datatype FP32, not {str(tensor.get('datatype'))[:20]}")
    # Equal to the spec's sizes past the batch axis, so only the batch size's type is left to check.
    if not (type(shape) is list and shape[1:] == [*spec.shape[1:]] and type(shape[0]) is int and shape[0] >= 1):
        raise V2Error(
            400, f"input {spec.name!r} has shape {list(spec.shape)} with at least 1 row, got {str(shape)[:60]}"
        )
    if shape[0] > max_batch:
        raise V2Error(413, f"at most {max_batch} rows per request, got {shape[0]}")
    if blob is None:
        return document, inputs, fp32_from_json(spec.name, tensor.get("data"), shape, header)
    if len(blob) != 4 * math.prod(shape):
        raise V2Error(400, f"input {spec.name!r}: binary_data_size {len(blob)} is not {4 * math.prod(shape)}, "
                           f"4 bytes for each of shape {shape}'s values")  # fmt: skip
    features = np.ndarray(shape, FLOAT32, blob)  # a view of the body: no copy
    # x·x is finite unless a value is NaN or infinite or the squares overflow float32 (values beyond ~1e19),
    # which np.isfinite then settles: one numpy call for a usual request (each costs microseconds).
    if not (math.isfinite(np.vdot(features, features)) or np.isfinite(features).all()):
        raise V2Error(400, f"input {spec.name!r} holds a value that is not a finite float32 number")
    return document, inputs, features


def split_header(text: bytes | str, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON header and the binary data after it, for an Inference-Header-Content-Length within the body."""
    body = text.encode() if isinstance(text, str) else text  # a direct invoke may send the body unencoded
    try:
        length = int(header_length)  # int() allows spaces around the digits, and refuses thousands of them
    except ValueError:
        length = 0
    if not 0 < length <= len(body):
        raise V2Error(400, f"Inference-Header-Content-Length {header_length[:20]!r} must be between 1 and the "
                           f"body's {len(body)} bytes")  # fmt: skip
    return body[:length], memoryview(body)[length:]


def in_order(inputs: Inputs, found: list[Any], names: list[str]) -> Inputs:
    """The inputs, named `found`, in the order of `names`, when they are those names once each."""
    if sorted(map(str, found)) != sorted(names):
        raise V2Error(400, f"send the inputs {', '.join(names)} once each, got {', '.join(map(str, found))[:200]}")
    return [inputs[found.index(name)] for name in names]


def parse(text: bytes | str) -> dict[str, Any]:
    try:
        document = parse_json(text)
    except ApiError as error:  # not JSON, or NaN / Infinity named as such
        raise V2Error(400, error.message) from None
    if not isinstance(document, dict):
        raise V2Error(400, "the inference request must be a JSON object")
    return document


def parameters(item: dict[str, Any]) -> dict[str, Any]:
    found = item.get("parameters")
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise V2Error(400, f"parameters of {str(item.get('name'))[:60]!r} must be an object")
    return found


def fp32_from_json(name: str, data: Any, shape: list[int], text: bytes | str) -> Float32Array:
    """`data`, nested or flat in row-major order, as float32 of `shape`: numbers only, finite in float32."""
    if not isinstance(data, list):
        raise V2Error(400, f"input {name!r} needs data: a list of numbers, or binary_data_size")
    # The request's one data key, and last, holding numbers only: read straight into float32.
    straight = straight_float32(data) if only_numbers(text, DATA_KEY) else None
    if straight is not None and straight.size == math.prod(shape):
        return straight.reshape(shape)
    try:
        values = np.array(data)
    except (ValueError, TypeError, RecursionError):
        raise V2Error(400, f"input {name!r}: data must be a list of numbers, nested or flat") from None
    if values.dtype.kind not in "iuf" or holds_boolean(text, data):
        raise V2Error(400, f"input {name!r}: data must hold numbers only (true and false are not)")
    if values.size != math.prod(shape):
        raise V2Error(400, f"input {name!r}: data holds {values.size} values, shape {shape} needs {math.prod(shape)}")
    if values.dtype.kind != "f":
        return values.reshape(shape).astype(np.float32)  # JSON integers (at most 64 bits) are finite in float32
    try:
        # orjson refused NaN and Infinity, so only a float64 beyond float32's range can fail, as numpy's flag says.
        with np.errstate(over="raise"):
            return values.reshape(shape).astype(np.float32)
    except FloatingPointError:
        raise V2Error(400, f"input {name!r} holds a value that is not a finite float32 number") from None


class Output(NamedTuple):
    """One output as the answer writes it: a plain record, read in the writer's loop without slicing specs."""

    name: str
    datatype: str  # FP32 or BYTES
    width: int | None  # values per row: the second axis of [rows, width], None for [rows]
    binary: bool  # sent after the JSON (binary tensor data extension), else as JSON data


def outputs_of(specs: list[TensorSpec], binary: bool) -> list[Output]:
    return [Output(spec.name, spec.datatype, spec.shape[1] if len(spec.shape) > 1 else None, binary) for spec in specs]


def chosen_outputs(every: dict[bool, list[Output]], document: dict[str, Any]) -> list[Output]:
    """The outputs the request asks for, each with whether it is sent binary. `every` holds the model's outputs,
    all as JSON (False) or all binary (True): what a request that names none gets, as most requests."""
    settings, requested = document.get("parameters"), document.get("outputs")
    if settings is None and requested is None:
        return every[False]
    if settings is not None and not isinstance(settings, dict):
        raise V2Error(400, "parameters must be an object")
    binary_default = settings.get("binary_data_output", False) if settings else False
    if not isinstance(binary_default, bool):
        raise V2Error(400, "binary_data_output must be true or false")
    if requested is None:
        return every[binary_default]
    if not isinstance(requested, list) or not all(isinstance(item, dict) for item in requested):
        raise V2Error(400, 'outputs must be a list of {"name": ...} objects')
    known = {output.name: output for output in every[False]}
    chosen = []
    for item in requested:
        name = item.get("name")
        if name not in known:
            raise V2Error(400, f"no output {str(name)[:60]!r}: the model's outputs are {', '.join(known)}")
        options = item.get("parameters") or {}
        binary = options.get("binary_data", binary_default) if isinstance(options, dict) else None
        if not isinstance(binary, bool):
            raise V2Error(400, f"output {name!r}: binary_data must be true or false")
        chosen.append(known[name]._replace(binary=binary))
    return chosen


def write_answer(head: dict[str, Any], outputs: list[Output], answered: dict[str, Any]) -> tuple[bytes, int | None]:
    """The answer's body, each output's values taken from `answered` (POST /predict's answer, which names
    them alike), and its JSON header's length when some output is binary (None: all JSON)."""
    tensors, blobs = [], []
    for name, datatype, width, binary in outputs:
        values = answered[name]  # FP32 numbers as an array, or BYTES as a list of text
        shape = [len(values)] if width is None else [len(values), width]
        if binary:
            blob = values.tobytes() if datatype == "FP32" else elements(values)  # float32 is little-endian here
            tensors.append({"name": name, "datatype": datatype, "shape": shape,
                            "parameters": {"binary_data_size": len(blob)}})  # fmt: skip
            blobs.append(blob)
        else:
            data = values.ravel() if datatype == "FP32" else values
            tensors.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
    head["outputs"] = tensors
    header = orjson.dumps(head, option=orjson.OPT_SERIALIZE_NUMPY)
    return (header + b"".join(blobs), len(header)) if blobs else (header, None)


def elements(texts: list[str]) -> bytes:
    """BYTES elements: each text's 4-byte little-endian length, then its UTF-8."""
    return b"".join([ELEMENT_LENGTH(len(item)) + item for item in map(str.encode, texts)])
