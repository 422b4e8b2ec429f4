"""Export a trained model as a verified bundle: ONNX, onnxruntime parity gate, optional int8, model card."""

import logging
import shutil
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx.external_data_helper import _get_all_tensors, uses_external_data
from torch import nn

from training.config import TrainConfig
from training.data.categories import FEATURES
from training.data.splits import Splits
from training.export.card import OUTPUT_BY_TASK, SAMPLE_ROWS, CardTooLarge, build_card, write_card
from training.export.encoding import add_categorical_inputs, graph_inputs, probe_rows
from training.export.features import mixed_sample
from training.export.onnx_int8 import quantize_int8
from training.export.onnx_run import PARITY_BATCHES, measure_latency, open_session, run_session, test_metrics
from training.export.publish import publish
from training.export.sample import synthetic_sample
from training.fit.interrupt import signals_held

# Twins of functions/predict/contract.py's file names (tests/unit/test_bundle_contract.py).
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CARD_FILE = "model.json"
CURVES_FILE = "curves.png"

logger = logging.getLogger("training")
# torch's exporter lists each torchvision operator it skips when torchvision is absent; we use none.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


class ExportError(RuntimeError):
    """The exported model failed a check (parity, shape); no bundle was written."""


def export_bundle(
    serving: nn.Module,
    splits: Splits,
    config: TrainConfig,
    training_summary: dict[str, Any],
    out_dir: Path,
    attachments: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Export `serving` (raw features -> outputs), verify it and write the bundle into `out_dir`.

    Everything, `attachments` (name -> file to copy in, e.g. curves.png) included, is written into a
    sibling staging folder first and moved into `out_dir` only after every check passed, so `out_dir`
    never holds a half-written bundle. Returns the model card.

    Raises:
        ExportError: onnxruntime disagrees with PyTorch beyond `config.parity_tolerance`.
    """
    serving = serving.cpu().eval()  # the parity reference runs where Lambda will: on a CPU
    output_name = OUTPUT_BY_TASK[splits.task]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.staging-{uuid.uuid4().hex[:8]}"
    try:  # the folder is made inside: a signal (SIGINT, SIGTERM: training.fit.interrupt) anywhere still removes it
        staging.mkdir()
        logger.info("export: exporting to ONNX and checking parity in %s", staging)
        onnx_path = export_onnx(serving, splits.n_features, output_name, config.opset, staging / ONNX_FILE)
        if splits.vocabularies:
            add_categorical_inputs(onnx_path, splits)
        test_inputs = graph_inputs(splits.test, splits)
        expected = torch_outputs(serving, splits.test.x)
        check_shape(expected, splits)
        session = open_session(onnx_path)
        parity, outputs = check_parity(session, test_inputs, expected, config.parity_tolerance)
        if splits.vocabularies:  # the unseen and missing buckets, which the test rows may never reach
            probes = probe_rows(splits)
            probed, _ = check_parity(
                session, graph_inputs(probes, splits), torch_outputs(serving, probes.x), config.parity_tolerance
            )
            parity = {key: max(value, probed[key]) for key, value in parity.items()}
        sample: tuple[np.ndarray | list[list[Any]], np.ndarray]
        try:
            if splits.vocabularies:
                sample = mixed_sample(session, splits, SAMPLE_ROWS, config.seed)
            else:
                data = (splits.train.x, splits.val.x, splits.test.x)
                sample = synthetic_sample(session, splits.train.x, data, SAMPLE_ROWS, config.seed)
        except ValueError as error:
            raise ExportError(f"no synthetic sample for the model card: {error}") from None
        card = build_card(
            splits=splits,
            config=config,
            training_summary=training_summary,
            onnx_path=onnx_path,
            metrics=test_metrics(outputs, splits),
            sample=sample,
            parity=parity,
            latency_ms=measure_latency(session, test_inputs),
        )
        if config.quantize == "int8":
            card["int8"] = quantize_int8(onnx_path, staging / INT8_FILE, splits, expected, card["metrics"]["test"])
        for name, path in (attachments or {}).items():
            shutil.copyfile(path, staging / name)
        try:
            write_card(staging / CARD_FILE, card)
        except CardTooLarge as error:
            raise ExportError(str(error)) from None
        with signals_held():  # out_dir is never left half-swapped
            publish(staging, out_dir, (ONNX_FILE, INT8_FILE), CARD_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "export: parity passed: onnxruntime matches PyTorch on %d test rows at batch %s within %.2g "
        "(absolute up to 1, relative beyond), tolerance %g (--parity-tolerance)",
        len(splits.test.x), " and ".join(map(str, PARITY_BATCHES)), parity["parity_max_scaled_error"],
        config.parity_tolerance,
    )  # fmt: skip
    logger.info("export: bundle %s written to %s", card["version"], out_dir)
    return card


def export_onnx(serving: nn.Module, n_features: int, output_name: str, opset: int, path: Path) -> Path:
    """One self-contained ONNX file: input `features` [batch, n_features] with a dynamic batch axis."""
    example = torch.zeros(2, n_features)  # batch 2, not 1: torch.export specialises size-1 dimensions
    with warnings.catch_warnings():
        # torch's exporter warns about its own internals (pytree's LeafSpec): nothing a user can act on.
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            serving,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[FEATURES],
            output_names=[output_name],
            dynamic_shapes=({0: "batch"},),
            external_data=False,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program; it needs dynamo=True")
    program.save(path, external_data=False)
    inline_external_data(path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return path


def inline_external_data(path: Path) -> None:
    """Fold any weights the exporter wrote beside the model back into it: a bundle is one file per model, and
    the function refuses a model.onnx that refers to external data (functions/predict/contract.py)."""
    strays = [file for file in path.parent.iterdir() if file != path]
    if strays:
        model = onnx.load(path, load_external_data=True)
        try:
            onnx.save(model, path, save_as_external_data=False)
        except ValueError as error:
            raise ExportError(f"the model does not fit in one ONNX file (2 GB protobuf limit): {error}") from None
        for file in strays:
            file.unlink()
    if any(uses_external_data(tensor) for tensor in _get_all_tensors(onnx.load(path, load_external_data=False))):
        raise ExportError(f"{path.name} still refers to external data; a bundle's model must be one file")


@torch.no_grad()
def torch_outputs(serving: nn.Module, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """PyTorch's outputs for `x`: the reference side of the parity gate."""
    parts = [serving(torch.from_numpy(x[start : start + batch_size])) for start in range(0, len(x), batch_size)]
    return torch.cat(parts).float().numpy()


def check_shape(outputs: np.ndarray, splits: Splits) -> None:
    expected = (len(splits.test.x), splits.n_outputs) if splits.task == "classification" else (len(splits.test.x),)
    if outputs.shape != expected:
        raise ExportError(f"the serving model returns shape {outputs.shape}; a {splits.task} bundle needs {expected}")


def check_parity(
    session: ort.InferenceSession, x: np.ndarray | dict[str, np.ndarray], expected: np.ndarray, tolerance: float
) -> tuple[dict[str, float], np.ndarray]:
    """Compare onnxruntime with PyTorch over `x` (the graph's inputs) at each batch size; return the error
    figures and the batch-64 outputs.

    The tolerance is absolute for values up to 1 (probabilities) and relative beyond, because a float32
    prediction of 300 cannot be closer than its rounding step of 3e-5, whichever runtime computes it.

    Raises:
        ExportError: some output differs by more than `tolerance` (or is not finite) at some batch size.
    """
    worst = {"parity_max_abs_error": 0.0, "parity_max_scaled_error": 0.0}
    outputs = expected
    for batch_size in PARITY_BATCHES:
        outputs = run_session(session, x, batch_size)
        difference = np.abs(outputs.astype(np.float64) - expected)
        scaled = float(np.max(difference / np.maximum(1.0, np.abs(expected))))
        if not scaled <= tolerance:
            raise ExportError(
                f"parity check failed: onnxruntime differs from PyTorch by up to {float(np.max(difference)):.3g} "
                f"({scaled:.3g} relative to values above 1) at batch {batch_size} over {len(expected)} test rows, "
                f"more than --parity-tolerance {tolerance:g}; no bundle written"
            )
        worst["parity_max_abs_error"] = max(worst["parity_max_abs_error"], float(np.max(difference)))
        worst["parity_max_scaled_error"] = max(worst["parity_max_scaled_error"], scaled)
    return worst, outputs


def copy_bundle(bundle: Path, out_dir: Path) -> None:
    """Copy a finished bundle into `out_dir` (another file system, e.g. SageMaker's model folder), the card last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(path.name for path in bundle.iterdir() if path.name != CARD_FILE)
    for name in [*names, CARD_FILE]:
        shutil.copyfile(bundle / name, out_dir / name)
