"""What the job prints: aligned text lines for a person at a terminal, JSON lines where logs are collected.

SageMaker's metric definitions (training/cloud/contract.py) parse the JSON lines, so a run whose stderr is
not a terminal, and every SageMaker or AWS Batch job, prints those unchanged.
"""

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from training.config import TrainConfig

EPOCH_FIGURES = "epoch_figures"  # the `extra` key under which the loop logs each epoch's record
# Shown on a terminal, in this order, when the epoch has them; the JSON line keeps every figure.
SHOWN = ("train_loss", "val_loss", "val_accuracy", "val_f1_macro", "val_r2", "val_mae")


def for_people(config: TrainConfig, on_cloud: bool) -> bool:
    """--log-format text or json; auto: text when stderr is a terminal and the job is not on SageMaker or Batch."""
    if config.log_format != "auto":
        return config.log_format == "text"
    return not on_cloud and sys.stderr.isatty()


class ConsoleFormatter(logging.Formatter):
    """Formats the loop's epoch records as one aligned text line (for people) or one JSON line (for machines)."""

    def __init__(self, people: bool, epochs: int) -> None:
        super().__init__("%(message)s")
        self.people, self.epochs = people, epochs

    def format(self, record: logging.LogRecord) -> str:
        figures = getattr(record, EPOCH_FIGURES, None)
        if figures is None:
            return super().format(record)
        return epoch_line(figures, self.epochs) if self.people else json.dumps(figures)


def epoch_line(figures: Mapping[str, float], epochs: int) -> str:
    """`epoch  3/40  train_loss 0.2134  val_loss 0.1987  val_accuracy 0.9630  lr 1.00e-03  0.41 s`."""
    width = len(str(epochs))
    parts = [f"epoch {int(figures['epoch']):>{width}}/{epochs}"]
    parts += [f"{name} {figures[name]:.4f}" for name in SHOWN if name in figures]
    parts += [f"lr {figures['lr']:.2e}", f"{figures['seconds']:.2f} s"]
    return "  ".join(parts)


def use_format(people: bool, epochs: int) -> None:
    """Give every handler of the root logger (basicConfig's stderr handler) the console's formatter."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ConsoleFormatter(people, epochs))


def summary_text(card: Mapping[str, Any], bundle: str, files: list[str]) -> str:
    """The end of a run, for a terminal: what was written where, and the test figures."""
    figures = card["metrics"]["test"]
    shown = "  ".join(f"{key} {value:.4f}" for key, value in figures.items() if isinstance(value, int | float))
    return "\n".join(
        [
            f"bundle   {card['name']} {card['version']} in {bundle} ({', '.join(files)})",
            f"test     {shown}",
            f"curves   {bundle.rstrip('/')}/curves.png" if "curves.png" in files else "curves   none",
            f"next     sml promote {bundle}",
        ]
    )
