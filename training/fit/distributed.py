"""Data-parallel training: one process per GPU (or a few CPU processes), on one machine or several.

Starting the processes: `torchrun --nproc-per-node N -m training ...` works, and so does plain
`python -m training ...`, which calls `launch` below by itself when the machine has several GPUs
(or `--processes N`), a SageMaker job several instances, or an AWS Batch job several nodes. `launch` is
torchrun's static rendezvous (it sets the same RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT) plus the exit codes the schedulers act on: torchrun ends with 1 after any failure and
after a SIGTERM too, which would turn a Spot reclaim (143: retry) into a failed job.

Inside the processes, `fit` trains with every process of the default process group
(DistributedDataParallel: nccl on CUDA, gloo on CPU). The helpers here are its collectives; with a
single process each is a no-op, so the loop reads the same either way.
"""

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

import torch
import torch.distributed as dist

DEFAULT_MASTER_PORT = 29500
STOP_GRACE_S = 30.0  # after one worker failed, how long the others get to stop before they are killed
T = TypeVar("T")


@dataclass(frozen=True)
class Rendezvous:
    """Where the processes of one job meet (torchrun's static rendezvous); the defaults are one process."""

    nodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT
    processes_per_node: int = 1

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


@dataclass(frozen=True)
class Worker:
    """This process's place in the job: torchrun's RANK, LOCAL_RANK and WORLD_SIZE."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "Worker | None":
        """The worker a launcher (ours or torchrun) started, or None in a process nobody launched."""
        if "RANK" not in environ:
            return None
        return cls(int(environ["RANK"]), int(environ.get("LOCAL_RANK", "0")), int(environ.get("WORLD_SIZE", "1")))


def launch(rendezvous: Rendezvous, command: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run `command` (e.g. python -m training ARGS) once per process of this node, wait for all; returns the
    job's exit code.

    SIGTERM and SIGINT are passed on to every worker; they agree on a step, rank 0 writes a checkpoint and
    all exit 143. When a worker fails, the others are stopped. Exit code: 128 + N after signal N (143 for
    SIGTERM); else that of the first worker that failed (killed by signal N: 128 + N); else 0.
    """
    workers = [
        subprocess.Popen(command, env=worker_environment(rendezvous, local_rank, environ))
        for local_rank in range(rendezvous.processes_per_node)
    ]
    signalled: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = {number: signal.signal(number, forward) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        first_failure = wait_for(workers)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    if signalled:
        return 128 + signalled[0]
    return first_failure or 0


def worker_environment(rendezvous: Rendezvous, local_rank: int, environ: Mapping[str, str]) -> dict[str, str]:
    """What torchrun sets for a worker: its ranks, the world size and where rank 0 serves the rendezvous."""
    per_node = rendezvous.processes_per_node
    return {
        **environ,
        "MASTER_ADDR": rendezvous.master_addr,
        "MASTER_PORT": str(rendezvous.master_port),
        "WORLD_SIZE": str(rendezvous.world_size),
        "RANK": str(rendezvous.node_rank * per_node + local_rank),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(per_node),
        "GROUP_RANK": str(rendezvous.node_rank),
        # CPU workers share the cores instead of each taking them all (torchrun sets 1).
        "OMP_NUM_THREADS": environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // per_node))),
    }


def wait_for(workers: list[subprocess.Popen[bytes]]) -> int | None:
    """Wait until every worker has exited; once one fails, stop the rest. Returns the first failure's code."""
    first_failure: int | None = None
    deadline = float("inf")
    while any(worker.poll() is None for worker in workers):
        failed = [exit_code(worker.returncode) for worker in workers if worker.returncode not in (None, 0)]
        if failed and first_failure is None:
            # The others would wait in their next collective until its timeout (30 minutes): stop them now.
            first_failure = failed[0]
            deadline = time.monotonic() + STOP_GRACE_S
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
        if time.monotonic() > deadline:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
        time.sleep(0.1)
    if first_failure is None:
        failed = [exit_code(worker.returncode) for worker in workers if worker.returncode]
        first_failure = failed[0] if failed else None
    return first_failure


def exit_code(returncode: int) -> int:
    """A Popen return code as a shell reports it: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


@contextmanager
def process_group(worker: Worker, device: torch.device) -> Iterator[None]:
    """Join the job's process group for the duration (nothing to join for a single process)."""
    if worker.world_size == 1:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)  # collectives of Python objects use the current device
    # MASTER_ADDR and MASTER_PORT come from the launcher's environment (env:// rendezvous).
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=worker.rank, world_size=worker.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over every rank, in place."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(tensor)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on some rank."""
    if rank_and_world()[1] == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_from_main(value: T) -> T:
    """Rank 0's `value`, on every rank (a pickled copy)."""
    if rank_and_world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_from_all(value: T) -> list[T]:
    """Every rank's `value`, in rank order, on every rank."""
    world = rank_and_world()[1]
    if world == 1:
        return [value]
    values: list[T | None] = [None] * world
    dist.all_gather_object(values, value)
    return values  # type: ignore[return-value]
