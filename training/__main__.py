"""The training job: the same entrypoint on AWS Batch, SageMaker and a laptop's CPU.

python -m training --data examples/data/digits.csv --target label --out build/bundle
python -m training --help
"""

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from training.config import ConfigError, TrainConfig, parse_config
from training.data import DataError, load_splits
from training.export import ExportError, export_bundle
from training.loop import EXIT_INTERRUPTED, Interrupted, fit
from training.models import build_model, serving_model
from training.plots import write_curves

EXIT_USER_ERROR = 2
EXIT_EXPORT_REFUSED = 3

logger = logging.getLogger("training")


def train(config: TrainConfig) -> dict[str, Any]:
    """Data -> model -> train -> export a verified bundle; returns the model card."""
    torch.manual_seed(config.seed)
    device = choose_device(config)

    splits = load_splits(config)
    model = build_model(config, splits).to(device)
    history = fit(model, splits, config, device)
    out_dir = Path(config.out)
    card = export_bundle(serving_model(model.cpu()), splits, config, history.summary(), out_dir)
    write_curves(history, out_dir / "curves.png")
    return card


def choose_device(config: TrainConfig) -> torch.device:
    if config.dry_run or config.device == "cpu":
        return torch.device("cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible; use --device auto or cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def main(argv: Sequence[str] | None = None) -> int:
    # Our own progress at INFO; the exporter's and quantiser's chatter only when it matters.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)
    try:
        config = parse_config(argv)
        card = train(config)
    except (ConfigError, DataError) as error:
        print(f"training: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ExportError as error:
        print(f"training: export refused: {error}", file=sys.stderr)
        return EXIT_EXPORT_REFUSED
    except Interrupted as interrupted:
        print(f"training: interrupted, checkpoint written; rerun with --resume to continue ({interrupted})", file=sys.stderr)
        return EXIT_INTERRUPTED
    figures = {key: value for key, value in card["metrics"]["test"].items() if isinstance(value, int | float)}
    summary = {"bundle": config.out, "name": card["name"], "version": card["version"], "test": figures}
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
