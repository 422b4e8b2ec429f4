"""Checkpoints: atomic writes behind a small storage interface (a folder or an S3 prefix), loaded with
torch.load(weights_only=True)."""

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from training.config import ConfigError, TrainConfig, flag

CHECKPOINT_NAME = re.compile(r"epoch-(\d+)-step-(\d+)\.pt")
KEEP = 2  # the newest two, so a store never holds only the checkpoint being written
# Settings a resumed run may change; any other difference would make it a different run.
RESUMABLE_CHANGES = {
    "resume",
    "progress",
    "log_format",
    "out",
    "checkpoint_dir",
    "device",
    "name",
    "quantize",
    "parity_tolerance",
    "opset",
    "processes",
    "data_placement",
    "compile",
}


class CheckpointStore(Protocol):
    """Where checkpoints live; a store for S3 needs only these four operations."""

    def save(self, name: str, data: bytes) -> None: ...  # all or nothing: readers never see part of it
    def load(self, name: str) -> bytes: ...
    def names(self) -> list[str]: ...
    def delete(self, name: str) -> None: ...


class LocalStore:
    """A folder of checkpoint files (SageMaker syncs /opt/ml/checkpoints to S3 by itself)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())  # the bytes reach the disk before the name does
            Path(temporary).replace(self.directory / name)  # atomic: readers see the old file or the new one
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self, name: str) -> bytes:
        return (self.directory / name).read_bytes()

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(path.name for path in self.directory.iterdir() if not path.name.startswith("."))

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


def open_store(location: str) -> CheckpointStore:
    """The store at `location`: an s3:// prefix (AWS Batch) or a folder (SageMaker syncs its own to S3)."""
    if location.startswith("s3://"):
        from training.cloud.s3 import S3Store  # boto3 only for jobs that use S3

        return S3Store(location)
    return LocalStore(Path(location))


def checkpoint_name(epoch: int, step: int) -> str:
    """The name of a checkpoint taken before `step` of the 0-based `epoch` (step 0: at the epoch boundary)."""
    return f"epoch-{epoch:04d}-step-{step:06d}.pt"


def _positions(store: CheckpointStore) -> list[tuple[tuple[int, int], str]]:
    matches = ((CHECKPOINT_NAME.fullmatch(name), name) for name in store.names())
    return sorted(((int(match[1]), int(match[2])), name) for match, name in matches if match)


def save_checkpoint(store: CheckpointStore, state: dict[str, Any], epoch: int, step: int) -> str:
    """Write `state` (tensors and plain containers only) atomically, then prune older checkpoints."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    name = checkpoint_name(epoch, step)
    store.save(name, buffer.getvalue())
    for _, old in _positions(store)[:-KEEP]:
        store.delete(old)
    return name


def has_checkpoint(store: CheckpointStore) -> bool:
    return bool(_positions(store))


def load_latest_checkpoint(store: CheckpointStore) -> dict[str, Any] | None:
    """The newest checkpoint, or None when the store holds none."""
    positions = _positions(store)
    if not positions:
        return None
    # On the CPU first: the caller moves what it needs, so a GPU run's checkpoint loads anywhere.
    data = io.BytesIO(store.load(positions[-1][1]))
    state: dict[str, Any] = torch.load(data, map_location="cpu", weights_only=True)
    return state


def clear_checkpoints(store: CheckpointStore) -> int:
    """Delete every checkpoint, so a fresh run never resumes from an older one; returns how many."""
    positions = _positions(store)
    for _, name in positions:
        store.delete(name)
    return len(positions)


def rng_state(generator: torch.Generator, numpy_rng: np.random.Generator) -> dict[str, Any]:
    """The random streams of one process, as tensors and plain values that weights_only can load."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "generator_device": generator.device.type,
        "numpy": numpy_rng.bit_generator.state,
    }


def restore_rng(state: dict[str, Any], generator: torch.Generator, numpy_rng: np.random.Generator) -> bool:
    """Put every stream back; False when some could not be (the checkpoint is from another kind of device)."""
    if state["generator_device"] != generator.device.type:  # a CUDA generator's state does not fit a CPU one
        return False
    torch.set_rng_state(state["torch"])
    numpy_rng.bit_generator.state = state["numpy"]
    generator.set_state(state["generator"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    return True


def check_resumable(config: TrainConfig, saved: dict[str, Any]) -> None:
    """Refuse a checkpoint of a run with other settings than `config`'s (beyond RESUMABLE_CHANGES)."""
    changed = {
        key: (value, saved.get(key))
        for key, value in config.to_dict().items()
        if key not in RESUMABLE_CHANGES and saved.get(key) != value
    }
    if changed:
        differences = "; ".join(f"{flag(key)} {old!r} -> {new!r}" for key, (new, old) in changed.items())
        raise ConfigError(
            f"--resume: the checkpoint in {config.checkpoint_location} is from a run with other settings "
            f"({differences}); use the same settings or another --checkpoint-dir"
        )
