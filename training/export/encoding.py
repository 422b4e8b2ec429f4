"""The categorical encoding inside the exported graph: string categories become one-hot floats ahead of the network.

The network's graph takes one float input; this puts in front of it a graph with two inputs, `features`
(the numeric columns) and `categories` (the categorical ones, as strings). Per categorical column, an
ai.onnx.ml LabelEncoder maps each known value to its index, the empty string (missing) to the missing
bucket and any other string to the unseen bucket; a Gather on an identity matrix makes that index one-hot.
training/data/categories.py's one_hot is the twin; the parity gate runs both, also on `probe_rows`.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.data.categories import CATEGORIES, FEATURES, MISSING, bucket_count, one_hot
from training.data.splits import Split, Splits

ML_DOMAIN, ML_OPSET = "ai.onnx.ml", 2  # LabelEncoder-2: string keys to int64 values, with a default
ENCODED = "categorical/encoded"  # the network's input once the categories are encoded
PROBE_ROWS = 8  # test rows repeated with each categorical column made unseen, then missing


def add_categorical_inputs(path: Path, splits: Splits) -> None:
    """Rewrite the network's ONNX file at `path` to take `features` and `categories` and encode the latter."""
    model = onnx.load(path)
    graph = model.graph
    (network_input,) = graph.input
    batch = network_input.type.tensor_type.shape.dim[0].dim_param or "batch"
    for node in graph.node:
        node.input[:] = [ENCODED if name == network_input.name else name for name in node.input]
    nodes, initializers, parts = [], [], [FEATURES]
    for at, values in enumerate(splits.vocabularies.values()):
        prefix = f"categorical/{at}"
        initializers += [
            numpy_helper.from_array(np.array(at, dtype=np.int64), f"{prefix}/column"),
            numpy_helper.from_array(np.eye(bucket_count(values), dtype=np.float32), f"{prefix}/identity"),
        ]
        nodes += [
            helper.make_node("Gather", [CATEGORIES, f"{prefix}/column"], [f"{prefix}/text"], axis=1),
            helper.make_node(
                "LabelEncoder",
                [f"{prefix}/text"],
                [f"{prefix}/index"],
                domain=ML_DOMAIN,
                keys_strings=[*values, MISSING],
                values_int64s=[*range(len(values)), len(values) + 1],
                default_int64=len(values),  # the unseen bucket
            ),
            helper.make_node("Gather", [f"{prefix}/identity", f"{prefix}/index"], [f"{prefix}/one_hot"], axis=0),
        ]
        parts.append(f"{prefix}/one_hot")
    nodes.append(helper.make_node("Concat", parts, [ENCODED], axis=1))
    nodes += list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    del graph.input[:]
    graph.input.extend(
        [
            helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [batch, len(splits.numeric_names)]),
            helper.make_tensor_value_info(CATEGORIES, TensorProto.STRING, [batch, len(splits.vocabularies)]),
        ]
    )
    model.opset_import.append(helper.make_opsetid(ML_DOMAIN, ML_OPSET))
    onnx.save(model, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)


def graph_inputs(split: Split, splits: Splits) -> np.ndarray | dict[str, np.ndarray]:
    """What the exported graph takes for `split`'s rows: the float features, and the raw categories if any."""
    if split.categories is None:
        return split.x
    return {FEATURES: split.x[:, : len(splits.numeric_names)], CATEGORIES: split.categories}


def probe_rows(splits: Splits) -> Split:
    """The first test rows again with each categorical column in turn unseen, then missing, encoded in Python."""
    test = splits.test
    assert test.categories is not None  # only models with categorical inputs are probed
    rows = min(len(test.y), PROBE_ROWS)
    numbers = test.x[:rows, : len(splits.numeric_names)]
    vocabularies = list(splits.vocabularies.values())
    texts = []
    for at, values in enumerate(vocabularies):
        for replacement in (unseen_value(values), MISSING):
            changed = test.categories[:rows].copy()
            changed[:, at] = replacement
            texts.append(changed)
    categories = np.concatenate(texts)
    x = np.concatenate([np.tile(numbers, (len(texts), 1)), one_hot(categories, vocabularies)], axis=1)
    return Split(x=x, y=np.zeros(len(x), dtype=test.y.dtype), categories=categories)


def unseen_value(values: list[str]) -> str:
    text = "never seen in training"
    while text in values:
        text += "!"
    return text
