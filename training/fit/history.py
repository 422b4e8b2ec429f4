"""History: the figures of every epoch, the summary the model card keeps, and its curves as a PNG."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.fit.early_stopping import EarlyStopping


@dataclass
class History:
    """What fit returns: the figures of every epoch and the epoch early stopping kept."""

    stopping: EarlyStopping  # the one tracker of the best epoch
    # One record per epoch: epoch, train_loss, val_loss, val_<metric>..., lr (at the epoch's first step), seconds.
    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    processes: int = 1  # the world size that trained the model (data-parallel processes over every machine)

    @property
    def best_epoch(self) -> int:
        """1-based; the weights fit returns when early stopping is on (0 before the first epoch)."""
        return self.stopping.best_epoch

    @property
    def metric(self) -> str:
        """The figure early stopping watches, e.g. val_loss."""
        return self.stopping.metric

    def summary(self) -> dict[str, Any]:
        """best_epoch, epochs_run, stopped_early, processes, and the validation figures of the best and last epoch."""
        figures = [{key: value for key, value in epoch.items() if key.startswith("val_")} for epoch in self.epochs]
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.epochs),
            "stopped_early": self.stopped_early,
            "processes": self.processes,
            "early_stopping_metric": self.metric,
            "best": figures[self.best_epoch - 1] if self.best_epoch else {},
            "final": figures[-1] if figures else {},
        }


def write_curves(history: History, path: Path) -> None:
    """Plot train/val loss and the validation metric per epoch; the best epoch is marked."""
    from matplotlib.figure import Figure  # imported here so that importing training stays fast

    epochs = [record["epoch"] for record in history.epochs]
    metric = "val_accuracy" if history.epochs and "val_accuracy" in history.epochs[0] else "val_r2"
    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, metric_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [record["train_loss"] for record in history.epochs], label="train")
    loss_axes.plot(epochs, [record["val_loss"] for record in history.epochs], label="validation")
    loss_axes.set(title="loss", xlabel="epoch")
    metric_axes.plot(epochs, [record.get(metric, float("nan")) for record in history.epochs], color="tab:green")
    metric_axes.set(title=metric.replace("_", " "), xlabel="epoch")
    for axes in (loss_axes, metric_axes):
        if history.best_epoch:
            axes.axvline(history.best_epoch, color="grey", linestyle="--", label=f"best epoch ({history.best_epoch})")
    loss_axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
