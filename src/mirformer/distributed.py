"""Multi-process runs (Lightning's DDP): one launch per command, then every rank in lockstep.

``launch`` starts the worker processes before anything else happens, as Lightning's DDP would at
the first ``fit`` (each re-runs the same command line), or joins the processes SLURM or torchrun
started, and initialises the process group. From then on every rank runs the whole command:
preparation is split over the ranks (``shard_spec``) or done by rank 0 while the others wait
(``main_first``, ``barrier``), run-folder files are written by rank 0 only (``is_main``), and every
``lightning.Trainer`` built later joins the same group instead of starting processes again.
In one process, every function here is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist


def launch(trainer_cfg) -> None:
    """Start (or join) the processes ``trainer_cfg`` asks for and initialise the process group.

    ``trainer_cfg`` is a ``TrainerConfig``: accelerator, devices, num_nodes and strategy resolve
    as Lightning resolves them, so ``--devices 2 --strategy ddp`` (CPU: gloo) and a multi-GPU
    ``auto`` both launch, and a single device does nothing.
    """
    if dist.is_available() and dist.is_initialized():
        return
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator=trainer_cfg.accelerator, devices=trainer_cfg.devices,
                    num_nodes=trainer_cfg.num_nodes, strategy=trainer_cfg.strategy)
    if fabric.world_size > 1:
        fabric.launch()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes run-folder files and prints (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written what the others read)."""
    if world_size() > 1:
        dist.barrier()


def broadcast(obj):
    """``obj`` as rank 0 has it, on every rank (picklable; itself when alone)."""
    if world_size() > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return obj


def shard_spec() -> tuple[int, int] | None:
    """``(rank, world_size)`` for work split over the ranks (``FeatureStore.extract``'s shard); None alone."""
    return (rank(), world_size()) if world_size() > 1 else None


@contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the others: for steps whose results are cached on
    disk (rendering, statistics), which rank 0 computes and the others then find done."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
