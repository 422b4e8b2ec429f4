"""History: the figures of every epoch, and the summary the model card keeps."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """What fit returns: the figures of every epoch and the epoch early stopping kept."""

    # One record per epoch: epoch, train_loss, val_loss, val_<metric>..., lr (at the epoch's first step), seconds.
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; the weights fit returns when early stopping is on
    stopped_early: bool = False
    metric: str = "val_loss"  # the figure early stopping watches

    def summary(self) -> dict[str, Any]:
        """best_epoch, epochs_run, stopped_early, and the validation figures of the best and the last epoch."""
        figures = [{key: value for key, value in epoch.items() if key.startswith("val_")} for epoch in self.epochs]
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.epochs),
            "stopped_early": self.stopped_early,
            "early_stopping_metric": self.metric,
            "best": figures[self.best_epoch - 1] if self.best_epoch else {},
            "final": figures[-1] if figures else {},
        }
