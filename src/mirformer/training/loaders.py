"""Data loaders that are right in one process and under DDP.

``batch_size`` is always the global batch: under DDP each of the ``world_size`` processes reads
``batch_size / world_size`` items a step, so a stage optimises the same way whatever the number
of devices (and its learning rate needs no scaling). Training data is shuffled and split over
the ranks by a ``DistributedSampler`` (which repeats a few items so every rank takes the same
number of steps); evaluation data is split without repeating or dropping any item, so every
window is scored exactly once.
"""

from __future__ import annotations

from torch.utils.data import DataLoader, DistributedSampler

from mirformer import distributed
from mirformer.errors import ConfigError


def per_device_batch(batch_size: int) -> int:
    """The batch each process reads for a global ``batch_size``; it must divide evenly."""
    world = distributed.world_size()
    if batch_size % world:
        raise ConfigError(f"batch size {batch_size} is the global batch and must divide by the {world} processes")
    return batch_size // world


def make_loader(dataset, batch_size: int, *, train: bool, seed: int = 0, num_workers: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A training (shuffled) or evaluation loader over ``dataset`` with the global ``batch_size``."""
    persistent = num_workers > 0
    if distributed.world_size() == 1:
        return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=drop_last,
                          num_workers=num_workers, persistent_workers=persistent)
    if train:
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=drop_last)
    else:
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
    return DataLoader(dataset, batch_size=per_device_batch(batch_size) if train else batch_size, sampler=sampler,
                      drop_last=drop_last, num_workers=num_workers, persistent_workers=persistent)
