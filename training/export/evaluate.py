"""Validation figures: loss and the task's metrics, from sums that add up across every rank's rows."""

import torch
import torch.nn.functional as F
from torch import Tensor

from training.fit.distributed import all_reduce_sum
from training.models import Pipeline

EVAL_BATCH = 4096


@torch.no_grad()
def evaluate(model: Pipeline, x: Tensor, y: Tensor, n_classes: int) -> dict[str, float]:
    """val_loss (as trained: cross-entropy, or MSE of the standardised target) and the task's metrics.

    `x`, `y` are this rank's validation rows (anywhere; batches move to the model's device); the figures
    are the same on every rank and equal to those of one process scoring every row.
    """
    device = model.mean.device
    was_training = model.training
    model.eval()
    parts = [
        model(x[start : start + EVAL_BATCH].to(device, non_blocking=True)) for start in range(0, len(x), EVAL_BATCH)
    ]
    model.train(was_training)
    outputs = torch.cat(parts) if parts else torch.empty((0, n_classes) if n_classes else (0,), device=device)
    y = y.to(device, non_blocking=True)
    if n_classes:
        return classification_figures(outputs.float(), y, n_classes)
    return regression_figures(outputs.float(), y, model.target_std)


def classification_figures(logits: Tensor, y: Tensor, n_classes: int) -> dict[str, float]:
    confusion = torch.bincount(y * n_classes + logits.argmax(dim=1), minlength=n_classes**2)
    sums = torch.cat([F.cross_entropy(logits, y, reduction="sum").reshape(1).double(), confusion.double()])
    all_reduce_sum(sums)
    loss_sum, confusion = sums[0], sums[1:].view(n_classes, n_classes)
    hits = confusion.diag()
    f1 = 2 * hits / (confusion.sum(0) + confusion.sum(1)).clamp(min=1)  # a class with no support: 0, as sklearn
    rows = confusion.sum().clamp(min=1)
    return {
        "val_loss": (loss_sum / rows).item(),
        "val_accuracy": (hits.sum() / rows).item(),
        "val_f1_macro": f1.mean().item(),
    }


def regression_figures(predicted: Tensor, y: Tensor, target_std: Tensor) -> dict[str, float]:
    """`predicted` and `y` are standardised; errors are reported in target units."""
    errors = ((predicted - y) * target_std).double()
    # The target minus the training mean: the sums of squares below stay exact in float64.
    centred = (y * target_std).double()
    sums = torch.stack(
        [
            F.mse_loss(predicted, y, reduction="sum").double(),
            errors.square().sum(),
            errors.abs().sum(),
            centred.sum(),
            centred.square().sum(),
            torch.tensor(float(len(y)), dtype=torch.float64, device=y.device),
        ]
    )
    loss_sum, squared, absolute, total, total_squares, rows = all_reduce_sum(sums).tolist()
    rows = max(rows, 1.0)
    spread = max(total_squares - total * total / rows, 1e-12)
    return {
        "val_loss": loss_sum / rows,
        "val_mse": squared / rows,
        "val_mae": absolute / rows,
        "val_r2": 1 - squared / spread,
    }
