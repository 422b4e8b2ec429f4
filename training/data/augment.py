"""Training-batch augmentation on the device: random shifts, Gaussian noise and mixup, all from seeded generators."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from training.config import ConfigError, TrainConfig


def shift_images(x: Tensor, input_shape: tuple[int, ...], max_shift: int, generator: torch.Generator) -> Tensor:
    """Move each image by its own (dy, dx) in [-max_shift, max_shift]; pixels moved in are 0 (raw units)."""
    channels, height, width = input_shape
    batch = x.shape[0]
    padded = F.pad(x.reshape(batch, channels, height, width), (max_shift,) * 4).permute(0, 2, 3, 1)
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, batch, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(height, device=x.device).view(1, height, 1) + max_shift - dy
    cols = torch.arange(width, device=x.device).view(1, 1, width) + max_shift - dx
    shifted = padded[torch.arange(batch, device=x.device).view(batch, 1, 1), rows, cols]  # (batch, H, W, C)
    return shifted.permute(0, 3, 1, 2).reshape(batch, -1)


def add_noise(x: Tensor, feature_std: Tensor, noise_std: float, generator: torch.Generator) -> Tensor:
    """Gaussian noise of `noise_std` standard deviations of each feature."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise * (noise_std * feature_std)


def mixup(
    x: Tensor, targets: Tensor, alpha: float, generator: torch.Generator, numpy_rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """Blend each row and its float target with another row of the batch, weighted by a Beta(alpha, alpha) draw."""
    weight = float(numpy_rng.beta(alpha, alpha))  # torch's Beta cannot take a generator; numpy's is checkpointed too
    partner = torch.randperm(x.shape[0], generator=generator, device=x.device)
    return weight * x + (1 - weight) * x[partner], weight * targets + (1 - weight) * targets[partner]


class Augmenter:
    """The configured augmentations, applied in order shift -> noise -> mixup to raw-unit training batches."""

    def __init__(
        self,
        config: TrainConfig,
        feature_std: Tensor,
        n_classes: int,
        generator: torch.Generator,
        numpy_rng: np.random.Generator,
    ) -> None:
        if config.shift_pixels and math.prod(config.input_shape) != feature_std.numel():
            raise ConfigError(f"--input-shape {config.input_shape} does not match the {feature_std.numel()} features")
        self.config = config
        self.feature_std = feature_std
        self.n_classes = n_classes  # 0 for regression
        self.generator = generator
        self.numpy_rng = numpy_rng

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """A batch and its targets: class indices, or soft class probabilities when mixup is on."""
        config = self.config
        if config.shift_pixels:
            x = shift_images(x, config.input_shape, config.shift_pixels, self.generator)
        if config.noise_std:
            x = add_noise(x, self.feature_std, config.noise_std, self.generator)
        if config.mixup_alpha:
            targets = F.one_hot(y, self.n_classes).to(x.dtype) if self.n_classes else y
            x, y = mixup(x, targets, config.mixup_alpha, self.generator, self.numpy_rng)
        return x, y
