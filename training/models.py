"""The networks (mlp, cnn, transformer), the Pipeline that carries standardisation, and the serving wrapper."""

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from training.config import ConfigError, TrainConfig
from training.data.splits import Splits


def mlp(config: TrainConfig, n_features: int, n_outputs: int) -> nn.Module:
    """`depth` hidden layers of `hidden_size` units, each ReLU then dropout."""
    layers: list[nn.Module] = []
    width = n_features
    for _ in range(config.depth):
        layers += [nn.Linear(width, config.hidden_size), nn.ReLU(), nn.Dropout(config.dropout)]
        width = config.hidden_size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """Two 3x3 convolution blocks over rows reshaped to `input_shape` (C, H, W), then a dense head.

    Each block halves maps of 8 pixels or more: 8x8 digits keep a 4x4 map, 28x28 images end at 7x7.
    """

    def __init__(self, config: TrainConfig, n_features: int, n_outputs: int) -> None:
        super().__init__()
        if math.prod(config.input_shape) != n_features:
            shape = ",".join(map(str, config.input_shape))
            raise ConfigError(
                f"--input-shape {shape} holds {math.prod(config.input_shape)} values but the data has {n_features} "
                "features; give the shape of one row"
            )
        self.input_shape = tuple(config.input_shape)
        channels, height, width = self.input_shape
        blocks: list[nn.Module] = []
        for out_channels in (config.channels, 2 * config.channels):
            blocks += [nn.Conv2d(channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            if min(height, width) >= 8:  # smaller maps lose the strokes that tell digits apart
                blocks.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(channels * height * width, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, n_outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        images = x.reshape(-1, *self.input_shape)
        return self.head(self.features(images))  # type: ignore[no-any-return]


class FeatureTransformer(nn.Module):
    """Each feature is a token (value * its embedding + a position embedding); encoder; mean-pool; linear head."""

    def __init__(self, config: TrainConfig, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.value_embedding = nn.Parameter(torch.randn(n_features, config.d_model) * 0.1)
        self.position_embedding = nn.Parameter(torch.randn(n_features, config.d_model) * 0.1)
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.heads,
            dim_feedforward=4 * config.d_model,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,  # pre-norm trains stably without a warm-up
        )
        # Nested tensors only help with padding masks, which feature tokens never have.
        self.encoder = nn.TransformerEncoder(
            layer, config.layers, norm=nn.LayerNorm(config.d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(config.d_model, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.unsqueeze(-1) * self.value_embedding + self.position_embedding
        pooled = self.encoder(tokens).mean(dim=1)
        return self.head(pooled)  # type: ignore[no-any-return]


MODELS: dict[str, Callable[[TrainConfig, int, int], nn.Module]] = {
    "mlp": mlp,
    "cnn": ConvNet,
    "transformer": FeatureTransformer,
}


class Pipeline(nn.Module):
    """Raw features -> standardised -> net: logits (classification) or the standardised target (regression)."""

    mean: Tensor
    std: Tensor
    target_mean: Tensor
    target_std: Tensor

    def __init__(self, net: nn.Module, task: str, splits: Splits) -> None:
        super().__init__()
        self.net = net
        self.task = task
        self.register_buffer("mean", torch.as_tensor(splits.mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(splits.std, dtype=torch.float32).clone())
        self.register_buffer("target_mean", torch.tensor(splits.target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(splits.target_std, dtype=torch.float32))

    def forward(self, features: Tensor) -> Tensor:
        outputs: Tensor = self.net((features - self.mean) / self.std)
        return outputs.squeeze(-1) if self.task == "regression" else outputs


class Serving(nn.Module):
    """What the bundle serves: probabilities (batch, classes) or predictions in target units (batch,)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline

    def forward(self, features: Tensor) -> Tensor:
        outputs: Tensor = self.pipeline(features)
        if self.pipeline.task == "classification":
            return torch.softmax(outputs, dim=-1)
        return outputs * self.pipeline.target_std + self.pipeline.target_mean


def build_model(config: TrainConfig, splits: Splits) -> Pipeline:
    """The configured network inside a Pipeline; the same seed always gives the same initial weights."""
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(config.seed)
        net = MODELS[config.model](config, splits.n_features, splits.n_outputs)
    return Pipeline(net, splits.task, splits)


def serving_model(model: Pipeline) -> nn.Module:
    """Wrap a trained Pipeline for export; puts it in eval mode (dropout off)."""
    return Serving(model).eval()
