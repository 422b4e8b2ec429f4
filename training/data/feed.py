"""Where the training rows live: in GPU memory when they fit, else in pinned host memory copied per batch.

Kept on the device, a batch is one gather with no host-to-device copy; that is the fast path and the
usual case for tabular data. A split too large for the GPU stays in page-locked (pinned) host memory
and each batch is gathered there and copied with non_blocking=True, so the copy overlaps the GPU work
still queued. On a CPU the host is the device and there is nothing to choose.
"""

import torch
from torch import Tensor

DEVICE_SHARE = 0.5  # the data may take up to half the free GPU memory; the rest is for weights and activations


def keep_on_device(placement: str, device: torch.device, nbytes: int) -> bool:
    """Whether `nbytes` of data go to the device: `placement` device|host, or auto (when they fit)."""
    if device.type != "cuda" or placement == "device":
        return True
    if placement == "host":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


class Rows:
    """Features and targets of one split, where `keep_on_device` put them; `take` returns rows on the device."""

    def __init__(self, x: Tensor, y: Tensor, device: torch.device, on_device: bool) -> None:
        self.device = device
        if on_device:
            self.x, self.y = x.to(device), y.to(device)
        else:
            self.x, self.y = x.pin_memory(), y.pin_memory()

    def __len__(self) -> int:
        return len(self.x)

    @property
    def index_device(self) -> torch.device:
        """Where row indices must be for `take`."""
        return self.x.device

    def take(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        x, y = self.x[rows], self.y[rows]
        if x.device != self.device:
            x = x.pin_memory().to(self.device, non_blocking=True)
            y = y.pin_memory().to(self.device, non_blocking=True)
        return x, y
