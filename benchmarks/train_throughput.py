"""Training throughput: our fit loop against an idiomatic DataLoader loop, measured in the same run.

Both train the same model from the same initial weights on the digits training split with the same
optimiser, batch size and number of epochs, and both score the validation split after every epoch;
ours also writes a checkpoint every epoch. The sides take turns --repeats times; each keeps its best time.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --model cnn --input-shape 1,8,8 --epochs 10
"""

import argparse
import dataclasses
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from training.config import TrainConfig
from training.config_loading import parse_config
from training.data.splits import Splits, load_splits
from training.fit.loop import fit
from training.fit.optim import make_optimizer
from training.models import Pipeline, build_model


def time_ours(config: TrainConfig, splits: Splits, device: torch.device) -> float:
    model = build_model(config, splits).to(device)
    with tempfile.TemporaryDirectory() as checkpoints:
        started = time.perf_counter()
        fit(model, splits, dataclasses.replace(config, checkpoint_dir=checkpoints), device)
        return time.perf_counter() - started


def train_baseline(model: Pipeline, splits: Splits, config: TrainConfig, device: torch.device) -> None:
    """The loop most tutorials show: TensorDataset + DataLoader(shuffle=True), batches moved to the device."""
    train = TensorDataset(torch.from_numpy(splits.train.x), torch.from_numpy(splits.train.y))
    val = TensorDataset(torch.from_numpy(splits.val.x), torch.from_numpy(splits.val.y))
    train_loader = DataLoader(train, batch_size=config.batch_size, shuffle=True)
    val_loader = DataLoader(val, batch_size=config.batch_size)
    optimizer = make_optimizer(model, config)
    for _ in range(config.epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            sum(F.cross_entropy(model(x.to(device)), y.to(device), reduction="sum").item() for x, y in val_loader)


def time_baseline(config: TrainConfig, splits: Splits, device: torch.device) -> float:
    model = build_model(config, splits).to(device)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    train_baseline(model, splits, config, device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args, training_args = parser.parse_known_args()
    # Early stopping off: both sides must run the same number of epochs.
    defaults = {"batch_size": 256, "epochs": 20, "progress": "none", "early_stopping_patience": 0}
    config = parse_config(training_args, base=defaults)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    splits = load_splits(config)
    warm_up = dataclasses.replace(config, epochs=1)
    time_ours(warm_up, splits, device)
    time_baseline(warm_up, splits, device)

    ours_times, baseline_times = [], []
    for _ in range(args.repeats):  # interleaved, so a busy moment on the machine hits both sides
        ours_times.append(time_ours(config, splits, device))
        baseline_times.append(time_baseline(config, splits, device))
    ours, baseline = min(ours_times), min(baseline_times)

    samples = len(splits.train.x) * config.epochs
    print(f"{config.model} on {config.data}: {len(splits.train.x)} training rows x {config.epochs} epochs, ", end="")
    print(f"batch {config.batch_size}, {config.optimizer}, {device}, {torch.get_num_threads()} threads")
    print(f"{'loop':<34}{'seconds':>10}{'samples/s':>14}")
    print(f"{'ours (tensors on device)':<34}{ours:>10.3f}{samples / ours:>14,.0f}")
    print(f"{'baseline (DataLoader, shuffle)':<34}{baseline:>10.3f}{samples / baseline:>14,.0f}")
    print(f"speed-up: {baseline / ours:.2f}x")


if __name__ == "__main__":
    main()
