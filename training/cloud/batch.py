"""AWS Batch's side of the job: settings as flags or TRAIN_* variables, retries that resume, several nodes.

A Batch job runs the image with a command of flags (`--data s3://... --out s3://... --checkpoint-dir
s3://...`, see training/cloud/s3.py); any setting may also come as an environment variable TRAIN_<SETTING>
(TRAIN_EPOCHS=10, TRAIN_HIDDEN_SIZE=64), and flags win. An unknown TRAIN_ variable fails the job, as an
unknown flag does: a misspelt setting would otherwise be ignored for hours of GPU time.

Batch sets AWS_BATCH_JOB_ATTEMPT; from the second attempt on (a Spot reclaim, a SIGTERM after a
checkpoint: exit 143), the job resumes from the latest checkpoint. A multi-node parallel job names its
nodes in AWS_BATCH_JOB_NUM_NODES / AWS_BATCH_JOB_NODE_INDEX and the main node's address; those become
the torch.distributed rendezvous.
"""

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from training.config import ConfigError, TrainConfig
from training.config_loading import config_from_mapping, parse_config
from training.fit.distributed import DEFAULT_MASTER_PORT, Rendezvous

PREFIX = "TRAIN_"

logger = logging.getLogger("training")


def settings_from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """TRAIN_<SETTING> variables as settings; refuses one that names no setting."""
    settings = {name.removeprefix(PREFIX).lower(): value for name, value in environ.items() if name.startswith(PREFIX)}
    for name, value in settings.items():
        try:
            config_from_mapping({name: value})
        except ConfigError as error:
            raise ConfigError(f"environment variable {PREFIX}{name.upper()}={value!r}: {error}") from None
    return settings


def batch_config(argv: Sequence[str], environ: Mapping[str, str]) -> TrainConfig:
    """Defaults < TRAIN_* variables < --config file < flags; resume on a retry."""
    config = parse_config(argv, base=settings_from_environment(environ), require_data=True)
    attempt = int(environ.get("AWS_BATCH_JOB_ATTEMPT", "1"))
    if attempt > 1 and not config.resume:
        logger.info("AWS Batch attempt %d: resuming from the latest checkpoint", attempt)
        config = dataclasses.replace(config, resume=True)
    return config


def batch_rendezvous(environ: Mapping[str, str], processes: int) -> Rendezvous:
    """One node, or the nodes of a multi-node parallel job with the main node as the rendezvous."""
    port = int(environ.get("MASTER_PORT", DEFAULT_MASTER_PORT))
    nodes = int(environ.get("AWS_BATCH_JOB_NUM_NODES", "1"))
    if nodes <= 1:
        return Rendezvous(master_port=port, processes_per_node=processes)
    return Rendezvous(
        nodes=nodes,
        node_rank=int(environ["AWS_BATCH_JOB_NODE_INDEX"]),
        # Batch gives the main node's address to the other nodes only; the main node serves the rendezvous.
        master_addr=environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "127.0.0.1"),
        master_port=port,
        processes_per_node=processes,
    )
