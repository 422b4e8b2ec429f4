"""Training curves: loss and the validation metric per epoch, as a PNG beside the bundle."""

from pathlib import Path

from training.fit.history import History


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
