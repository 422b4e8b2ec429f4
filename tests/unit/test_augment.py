"""Augmentation: shifts with zero fill, noise in feature standard deviations, mixup, reproducibility."""

import numpy as np
import torch
import torch.nn.functional as F

from training.config import TrainConfig
from training.data.augment import Augmenter, add_noise, mixup, shift_images


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shifted_reference(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved down by dy and right by dx, zeros where nothing moved in."""
    height, width = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
        max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    return out


def test_shift_images_moves_each_image_within_the_limit_and_fills_with_zeros() -> None:
    image = np.arange(1, 65, dtype=np.float32).reshape(8, 8)  # every pixel value tells where it came from
    batch = torch.from_numpy(np.tile(image.reshape(1, 64), (300, 1)))

    shifted = shift_images(batch, (1, 8, 8), 2, seeded()).numpy().reshape(300, 8, 8)

    seen = set()
    for out in shifted:
        row, col = np.argwhere(out > 0)[0]
        source = int(out[row, col]) - 1
        dy, dx = row - source // 8, col - source % 8
        assert abs(dy) <= 2 and abs(dx) <= 2
        np.testing.assert_array_equal(out, shifted_reference(image, dy, dx))
        seen.add((dy, dx))
    assert len(seen) == 25  # every shift in [-2, 2] x [-2, 2] occurs


def test_shift_images_keeps_channels_together() -> None:
    channels = torch.stack([torch.arange(16.0) + 1, -(torch.arange(16.0) + 1)]).reshape(1, 32).repeat(50, 1)

    shifted = shift_images(channels, (2, 4, 4), 1, seeded()).reshape(50, 2, 4, 4)

    torch.testing.assert_close(shifted[:, 1], -shifted[:, 0])


def test_add_noise_is_scaled_by_each_feature_std() -> None:
    feature_std = torch.tensor([1.0, 10.0, 100.0])

    noisy = add_noise(torch.full((40_000, 3), 5.0), feature_std, 0.5, seeded())

    torch.testing.assert_close(noisy.mean(dim=0), torch.full((3,), 5.0), atol=0.01 * 100, rtol=0)
    torch.testing.assert_close(noisy.std(dim=0), torch.tensor([0.5, 5.0, 50.0]), rtol=0.03, atol=0)


def test_mixup_blends_rows_and_targets_with_the_same_partner_and_weight() -> None:
    labels = torch.randint(0, 4, (64,), generator=seeded())
    one_hot = F.one_hot(labels, 4).float()

    mixed_x, mixed_targets = mixup(one_hot, one_hot, 0.4, seeded(), np.random.default_rng(0))

    torch.testing.assert_close(mixed_x, mixed_targets)
    torch.testing.assert_close(mixed_targets.sum(dim=1), torch.ones(64))
    assert not torch.equal(mixed_x, one_hot)
    assert int((mixed_targets > 0).sum(dim=1).max()) <= 2


def test_augmenter_gives_soft_targets_only_with_mixup() -> None:
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    std = torch.ones(4)
    plain = Augmenter(TrainConfig(noise_std=0.1), std, 3, seeded(), np.random.default_rng(0))
    mixing = Augmenter(TrainConfig(mixup_alpha=0.2), std, 3, seeded(), np.random.default_rng(0))

    _, hard = plain(x, y)
    _, soft = mixing(x, y)

    assert torch.equal(hard, y)
    assert soft.shape == (16, 3) and soft.dtype == torch.float32


def test_augmenter_is_reproducible_from_the_generator_state() -> None:
    config = TrainConfig(input_shape=(1, 4, 4), shift_pixels=1, noise_std=0.2, mixup_alpha=0.4)
    x, y = torch.rand(32, 16) * 16, torch.randint(0, 10, (32,))
    generator, numpy_rng = seeded(7), np.random.default_rng(7)
    augment = Augmenter(config, torch.full((16,), 3.0), 10, generator, numpy_rng)
    saved = generator.get_state(), numpy_rng.bit_generator.state

    first = augment(x, y)
    second = augment(x, y)
    generator.set_state(saved[0])
    numpy_rng.bit_generator.state = saved[1]
    replayed = augment(x, y)

    assert not torch.equal(first[0], second[0])
    assert torch.equal(first[0], replayed[0]) and torch.equal(first[1], replayed[1])
