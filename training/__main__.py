"""The training job: the same entrypoint on a laptop's CPU, AWS Batch, SageMaker and torchrun.

    python -m training --data examples/data/digits.csv --target label --out build/bundle
    python -m training --help                  # every setting, with its default
    python -m training --data s3://BUCKET/data/digits.csv --out s3://BUCKET/bundles/JOB/ \\
        --checkpoint-dir s3://BUCKET/checkpoints/JOB/       # AWS Batch (also TRAIN_* variables: cloud/batch.py)
    python -m training train                   # SageMaker: settings and data under /opt/ml (cloud/sagemaker.py)
    torchrun --nproc-per-node 2 -m training --data ...       # data parallel (fit/distributed.py)

Exit codes: 0 done; 2 bad settings or data (a retry cannot help); 3 export refused by the parity gate;
130 stopped by SIGINT, 143 by SIGTERM (during training after writing a checkpoint: a retry resumes from it);
a stopped job leaves no bundle and no staging folder.
"""

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.cloud.batch import batch_config, batch_rendezvous
from training.cloud.contract import (
    EXIT_EXPORT_REFUSED,
    EXIT_INTERRUPTED,
    EXIT_SIGINT,
    EXIT_USER_ERROR,
    EXPORT_REFUSED_PREFIX,
    INTERRUPTED_PREFIX,
    USER_ERROR_PREFIX,
)
from training.cloud.s3 import StorageError, check_writable_prefix, is_s3, upload_bundle
from training.cloud.sagemaker import (
    SageMakerPaths,
    network_interface,
    sagemaker_config,
    sagemaker_rendezvous,
    write_failure,
)
from training.config import ConfigError, TrainConfig, check_local_destinations
from training.console import for_people, summary_text, use_format
from training.data.splits import DataError, load_splits
from training.export.export import CARD_FILE, CURVES_FILE, ONNX_FILE, ExportError, copy_bundle, export_bundle
from training.fit.checkpoint import clear_checkpoints, open_store
from training.fit.distributed import Rendezvous, Worker, launch, process_group
from training.fit.history import write_curves
from training.fit.interrupt import Interrupted, Terminated, sigterm_raises
from training.fit.loop import fit
from training.models import build_model, serving_model

logger = logging.getLogger("training")


@dataclass(frozen=True)
class Job:
    config: TrainConfig
    rendezvous: Rendezvous
    model_dir: Path | None = None  # SageMaker's model folder: the bundle is delivered there


SINGLE_PROCESS = Worker()


def train(config: TrainConfig, worker: Worker = SINGLE_PROCESS, model_dir: Path | None = None) -> dict[str, Any] | None:
    """Data -> model -> train (every rank) -> export a verified bundle (rank 0); returns the card on rank 0."""
    check_local_destinations(config)
    device = choose_device(config, worker.local_rank)
    check_compiler(config, device)
    if worker.rank == 0 and is_s3(config.out) and CARD_FILE in check_writable_prefix(config.out):
        logger.warning("%s already holds a bundle; its files are replaced, %s last", config.out, CARD_FILE)
    with process_group(worker, device):
        torch.manual_seed(config.seed)
        splits = load_splits(config)
        model = build_model(config, splits).to(device)
        history = fit(model, splits, config, device)
    if worker.rank != 0:
        return None
    # A bundle for S3 or SageMaker is built in a scratch folder, then delivered whole, its card last.
    with tempfile.TemporaryDirectory(prefix="training-") as scratch:
        curves = Path(scratch) / CURVES_FILE
        write_curves(history, curves)
        delivered = model_dir is not None or is_s3(config.out)
        out_dir = Path(scratch) / "bundle" if delivered else Path(config.out)
        serving = serving_model(model.cpu())
        card = export_bundle(serving, splits, config, history.summary(), out_dir, {CURVES_FILE: curves})
        if model_dir is not None:
            copy_bundle(out_dir, model_dir)
        if is_s3(config.out):
            upload_bundle(out_dir, config.out, CARD_FILE)
    remove_finished_checkpoints(config)
    return card


def remove_finished_checkpoints(config: TrainConfig) -> None:
    """The default checkpoints beside the bundle go once it is written: a finished run has nothing to resume.

    Those in a --checkpoint-dir stay (SageMaker and Batch jobs name theirs); an interrupted run keeps its own.
    """
    location = config.checkpoint_location
    if config.checkpoint_dir:
        logger.info("checkpoints: kept in %s (--checkpoint-dir)", location)
        return
    clear_checkpoints(open_store(location))
    if not is_s3(location):
        with contextlib.suppress(OSError):  # a folder the user put other files into stays
            Path(location).rmdir()
    logger.info("checkpoints: removed from %s now that the bundle is written", location)


def choose_device(config: TrainConfig, local_rank: int = 0) -> torch.device:
    if config.dry_run or config.device == "cpu":
        return torch.device("cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible; use --device auto or cpu")
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def check_compiler(config: TrainConfig, device: torch.device) -> None:
    """--compile on CUDA has Triton build its launchers with a C compiler: without one, refuse it before any work."""
    if config.compile and device.type == "cuda" and not any(map(shutil.which, (os.environ.get("CC", "gcc"), "clang"))):
        raise ConfigError(
            "--compile: torch.compile on a GPU needs a C compiler (gcc, clang or $CC) and none is on PATH; "
            "install one (training/Dockerfile does) or drop --compile"
        )


def local_processes(config: TrainConfig) -> int:
    """Processes on this machine: --processes, else one per visible GPU, else one."""
    on_gpu = not (config.dry_run or config.device == "cpu") and torch.cuda.is_available()
    gpus = torch.cuda.device_count() if on_gpu else 0
    if on_gpu and config.processes > gpus:
        raise ConfigError(f"--processes {config.processes}: this machine has {gpus} GPUs; one process per GPU")
    return config.processes or gpus or 1


def load_job(arguments: Sequence[str], environ: Mapping[str, str], sagemaker: SageMakerPaths | None) -> Job:
    if sagemaker is not None:
        config = sagemaker_config(sagemaker, arguments[1:])
        rendezvous = sagemaker_rendezvous(sagemaker, environ, local_processes(config))
        return Job(config, rendezvous, model_dir=sagemaker.model)
    config = batch_config(arguments, environ)
    return Job(config, batch_rendezvous(environ, local_processes(config)))


def launch_environment(environ: Mapping[str, str], sagemaker: SageMakerPaths | None) -> dict[str, str]:
    """The workers' environment; on SageMaker, collectives go over the interface it names for host traffic."""
    interface = network_interface(sagemaker) if sagemaker is not None else None
    extra = {"NCCL_SOCKET_IFNAME": interface, "GLOO_SOCKET_IFNAME": interface} if interface else {}
    return extra | dict(environ)


def main(argv: Sequence[str] | None = None) -> int:
    # Our own progress at INFO; the exporter's and quantiser's chatter only when it matters.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    arguments = list(sys.argv[1:] if argv is None else argv)
    sagemaker = SageMakerPaths.from_environment(os.environ) if arguments[:1] == ["train"] else None
    worker = Worker.from_environment(os.environ)  # set when torchrun or our own launcher started this process
    # Every rank reads the same data and settings and fails alike: rank 0 alone reports progress and errors.
    speaks = worker is None or worker.rank == 0
    logger.setLevel(logging.INFO if speaks else logging.WARNING)
    try:
        job = load_job(arguments, os.environ, sagemaker)
        people = for_people(job.config, on_cloud=sagemaker is not None or "AWS_BATCH_JOB_ID" in os.environ)
        use_format(people, 1 if job.config.dry_run else job.config.epochs)
        if worker is None and job.rendezvous.world_size > 1:
            command = [sys.executable, "-m", "training", *arguments]
            code = launch(job.rendezvous, command, launch_environment(os.environ, sagemaker))
            if sagemaker is not None and code not in (0, EXIT_INTERRUPTED) and not sagemaker.failure.exists():
                write_failure(sagemaker, f"a training process exited with code {code}")
            return code
        with sigterm_raises():
            card = train(job.config, worker or SINGLE_PROCESS, job.model_dir)
    except (ConfigError, DataError, StorageError) as error:
        return report(f"{USER_ERROR_PREFIX} {error}", EXIT_USER_ERROR, sagemaker, speaks)
    except ExportError as error:
        return report(f"{EXPORT_REFUSED_PREFIX} {error}", EXIT_EXPORT_REFUSED, sagemaker, speaks)
    except Interrupted as interrupted:
        if speaks:
            print(
                f"{INTERRUPTED_PREFIX}, checkpoint written; rerun with --resume to continue ({interrupted})",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    except (KeyboardInterrupt, Terminated) as stopped:  # outside the loop (it stops on SIGTERM by itself)
        sigint = isinstance(stopped, KeyboardInterrupt)
        if speaks:
            print(
                f"{INTERRUPTED_PREFIX} by {'SIGINT' if sigint else 'SIGTERM'}; no bundle written "
                "(a rerun with --resume continues from the last checkpoint, if any)",
                file=sys.stderr,
            )
        return EXIT_SIGINT if sigint else EXIT_INTERRUPTED
    except Exception as error:
        if sagemaker is not None:
            write_failure(sagemaker, f"{type(error).__name__}: {error}")
        raise
    if card is None:
        return 0
    if people:
        print(summary_text(card, job.config.out, bundle_files(job.config.out)))
        return 0
    figures = {key: value for key, value in card["metrics"]["test"].items() if isinstance(value, int | float)}
    summary = {"bundle": job.config.out, "name": card["name"], "version": card["version"], "test": figures}
    print(json.dumps(summary, default=str))
    return 0


def bundle_files(out: str) -> list[str]:
    """The files of the bundle just written: those in a local --out; an s3:// prefix got the same."""
    if is_s3(out) or not Path(out).is_dir():
        return [ONNX_FILE, CARD_FILE, CURVES_FILE]
    return sorted(path.name for path in Path(out).iterdir())


def report(message: str, code: int, sagemaker: SageMakerPaths | None, speaks: bool) -> int:
    """One line on stderr (and SageMaker's failure file); returns the exit code."""
    if speaks:
        print(message, file=sys.stderr)
        if sagemaker is not None:
            write_failure(sagemaker, message)
    return code


if __name__ == "__main__":
    sys.exit(main())
