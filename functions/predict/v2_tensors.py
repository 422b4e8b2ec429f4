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
from predict import ApiError, holds_boolean, parse_json


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


class InferRequest(NamedTuple):
    document: dict[str, Any]  # the JSON request, checked to be an object with a list of inputs
    header: bytes  # its text, which holds_boolean searches
    blobs: dict[int, memoryview]  # input index -> its binary data


def split_body(body: bytes, header_length: str | None) -> InferRequest:
    """The request's JSON and the binary data of its inputs, every size checked against the body."""
    if header_length is None:
        header, rest = body, memoryview(b"")
    else:
        digits = header_length.strip()
        if not (digits.isascii() and digits.isdecimal() and len(digits) <= 12 and 0 < int(digits) <= len(body)):
            raise V2Error(400, f"Inference-Header-Content-Length {header_length[:20]!r} must be between 1 and the "
                               f"body's {len(body)} bytes")  # fmt: skip
        length = int(digits)
        header, rest = body[:length], memoryview(body)[length:]
    document = parse(header)
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error(400, 'send {"inputs": [{"name", "shape", "datatype", "data"}]}: a non-empty list of tensors')
    blobs, offset = {}, 0
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise V2Error(400, f"input {index} must be an object: {{name, shape, datatype, data}}")
        if "parameters" not in tensor or (size := parameters(tensor).get("binary_data_size")) is None:
            continue
        if header_length is None:
            raise V2Error(400, "binary_data_size needs the Inference-Header-Content-Length header")
        if type(size) is not int or size < 0:
            raise V2Error(400, f"input {index}: binary_data_size must be a non-negative integer")
        if offset + size > len(rest):
            raise V2Error(400, f"input {index}: binary_data_size {size} runs past the body's end "
                               f"({len(rest) - offset} bytes left)")  # fmt: skip
        blobs[index], offset = rest[offset : offset + size], offset + size
    if offset != len(rest):
        raise V2Error(400, f"the body holds {len(rest) - offset} bytes beyond the inputs' binary_data_size")
    return InferRequest(document, header, blobs)


def parse(text: bytes) -> dict[str, Any]:
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


def read_input(request: InferRequest, index: int, spec: TensorSpec, max_batch: int) -> Float32Array:
    """The request's input `index` as an array of `spec`'s shape, with a batch of 1 to max_batch rows."""
    tensor, blob = request.document["inputs"][index], request.blobs.get(index)
    if tensor.get("datatype") != spec.datatype:
        raise V2Error(400, f"input {spec.name!r} has datatype {spec.datatype}, not {str(tensor.get('datatype'))[:20]}")
    shape = tensor.get("shape")
    # Equal to the spec's sizes past the batch axis, so only the batch size's type is left to check.
    if not (isinstance(shape, list) and len(shape) == len(spec.shape) and shape[1:] == list(spec.shape[1:])
            and type(shape[0]) is int and shape[0] >= 1):  # fmt: skip
        raise V2Error(
            400, f"input {spec.name!r} has shape {list(spec.shape)} with at least 1 row, got {str(shape)[:60]}"
        )
    if shape[0] > max_batch:
        raise V2Error(413, f"at most {max_batch} rows per request, got {shape[0]}")
    size = math.prod(shape)
    if blob is not None:
        if len(blob) != 4 * size:
            raise V2Error(400, f"input {spec.name!r}: binary_data_size {len(blob)} is not {4 * size}, "
                               f"4 bytes for each of shape {shape}'s values")  # fmt: skip
        batch = np.frombuffer(blob, dtype="<f4").reshape(shape)  # Lambda's CPUs are little-endian: no copy
        # One reduction: a float64 sum of finite float32 values stays finite; NaN and infinity carry through.
        if not math.isfinite(batch.sum(dtype=np.float64)):
            raise V2Error(400, f"input {spec.name!r} holds a value that is not a finite float32 number")
        return batch
    return fp32_from_json(spec.name, tensor.get("data"), shape, request.header)


def fp32_from_json(name: str, data: Any, shape: list[int], text: bytes) -> Float32Array:
    """`data`, nested or flat in row-major order, as float32 of `shape`: numbers only, finite in float32."""
    if not isinstance(data, list):
        raise V2Error(400, f"input {name!r} needs data: a list of numbers, or binary_data_size")
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
    spec: TensorSpec
    values: Float32Array | list[str]  # FP32 numbers, or BYTES as text
    binary: bool  # sent after the JSON (binary tensor data extension), else as JSON data


def write_answer(head: dict[str, Any], outputs: list[Output]) -> tuple[bytes, int | None]:
    """The answer's body, and its JSON header's length when some output is binary (None: all JSON)."""
    tensors, blobs = [], []
    for spec, values, binary in outputs:
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": [len(values), *spec.shape[1:]]}
        if binary:
            blob = to_bytes(values)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values.ravel() if isinstance(values, np.ndarray) else values
        tensors.append(tensor)
    head["outputs"] = tensors
    header = orjson.dumps(head, option=orjson.OPT_SERIALIZE_NUMPY)
    return (header + b"".join(blobs), len(header)) if blobs else (header, None)


def to_bytes(values: Float32Array | list[str]) -> bytes:
    if isinstance(values, np.ndarray):
        return np.asarray(values, dtype="<f4").tobytes()  # no copy: float32 is little-endian here
    encoded = [text.encode() for text in values]
    return b"".join(struct.pack("<I", len(item)) + item for item in encoded)
