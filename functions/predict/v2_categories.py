"""A categorical model's BYTES inputs: one tensor per categorical feature, named as in the card, shape [rows].

Each element is the row's category as text, in JSON a string and in the binary tensor data extension a
4-byte little-endian length, then that many bytes of UTF-8. An empty string is the missing category and a
category the model never saw goes to its unseen bucket, as in POST /predict; records.py owns those rules
and the length cap. v2.py loads this module only for a model whose card lists categorical features.
"""

import struct
from typing import Any

import numpy as np
from records import MAX_CATEGORY_CHARS, MISSING, Schema
from v2_tensors import Inputs, TensorSpec, V2Error

ELEMENT = "each BYTES element is a 4-byte little-endian length, then that many bytes of UTF-8"


def category_specs(schema: Schema) -> list[TensorSpec]:
    """The BYTES inputs for the card's categorical features, in card order."""
    return [TensorSpec(name, "BYTES", (-1,)) for name, kind in zip(schema.names, schema.categorical, strict=True)
            if kind]  # fmt: skip


def read_categories(inputs: Inputs, specs: list[TensorSpec], rows: int) -> np.ndarray:
    """The graph's `categories` input: str (rows, categorical features), from the request's BYTES inputs.

    `specs` are the model's inputs (input_specs in v2.py): the numeric features, then one per categorical feature.
    """
    categories = np.empty((rows, len(specs) - 1), dtype=object)
    for column, spec in enumerate(specs[1:]):
        categories[:, column] = read_texts(inputs[column + 1], spec.name, rows)
    return categories


def read_texts(given: tuple[dict[str, Any], memoryview | None], name: str, rows: int) -> list[str]:
    """An input's `rows` categories, JSON or binary, each at most MAX_CATEGORY_CHARS characters."""
    tensor, blob = given
    if tensor.get("datatype") != "BYTES":
        raise V2Error(
            400, f"input {name!r} is categorical: its datatype is BYTES, not {str(tensor.get('datatype'))[:20]}"
        )
    if tensor.get("shape") != [rows]:
        raise V2Error(400, f"input {name!r} has shape [rows], one category per row of features ({rows}), "
                           f"got {str(tensor.get('shape'))[:60]}")  # fmt: skip
    texts = split_elements(blob, name, rows) if blob is not None else json_texts(tensor.get("data"), name, rows)
    longest = max(map(len, texts))
    if longest > MAX_CATEGORY_CHARS:
        raise V2Error(400, f"input {name!r} holds a category of {longest} characters; a category has at most "
                           f"{MAX_CATEGORY_CHARS}")  # fmt: skip
    return [text or MISSING for text in texts]


def json_texts(data: object, name: str, rows: int) -> list[str]:
    if not (isinstance(data, list) and len(data) == rows and all(type(text) is str for text in data)):
        raise V2Error(400, f'input {name!r} is BYTES: data must be a list of {rows} strings ("" for a missing '
                           f"category), got {str(data)[:60]}")  # fmt: skip
    return data


def split_elements(blob: memoryview, name: str, rows: int) -> list[str]:
    """The binary data's `rows` elements as text: the lengths must fit the data exactly."""
    texts, at = [], 0
    for element in range(rows):
        if at + 4 > len(blob):
            raise V2Error(400, f"input {name!r}: binary data ends before element {element} of {rows}; {ELEMENT}")
        (length,) = struct.unpack_from("<I", blob, at)
        if at + 4 + length > len(blob):
            raise V2Error(400, f"input {name!r}: element {element}'s length {length} runs past its binary data; "
                               f"{ELEMENT}")  # fmt: skip
        try:
            texts.append(str(blob[at + 4 : at + 4 + length], "utf-8"))
        except UnicodeDecodeError:
            raise V2Error(400, f"input {name!r}: element {element} is not UTF-8 text") from None
        at += 4 + length
    if at != len(blob):
        raise V2Error(400, f"input {name!r}: binary data holds {len(blob) - at} bytes beyond its {rows} elements; "
                           f"{ELEMENT}")  # fmt: skip
    return texts
