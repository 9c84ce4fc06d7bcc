"""Data-parallel training under torchrun: PyTorch's own DDP, NCCL on GPUs and gloo on CPUs.

Every rank holds the whole (small) dataset and draws the same seeded permutation and augmentation
for each *global* batch, then keeps its slice ``batch[rank::world]``. So with ``--sync-bn`` a
world of N processes takes the same steps as one process with the same global batch, up to float
rounding in the gradient all-reduce. Without it, BN normalizes each rank's slice on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from edgecls.errors import EdgeclsError

# A rank that dies mid-collective leaves the others waiting; torchrun's agent normally tears the
# job down at once, and this bounds the wait when it cannot.
COLLECTIVE_TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch (every rank computes the whole batch's randomness)."""
        return x[self.rank::self.size] if self.active else x

    def chunks(self, n: int, size: int) -> list[tuple[int, int]]:
        """This rank's (start, stop) share of ``range(n)`` cut every ``size`` items, slice i going to
        rank i % world size: each item lands in the batch a single process would give it."""
        return [(start, min(start + size, n)) for start in range(self.rank * size, n, self.size * size)]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.active:
            value = value.clone()
            dist.all_reduce(value)
        return value

    def broadcast(self, obj):
        """Rank 0's value of a picklable object, on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_world(device: str) -> World:
    """Join the process group torchrun describes in the environment; a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return World(rank, size, local_rank)


def close_world(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise EdgeclsError(f"--batch-size {batch_size} is the global batch and must be divisible by the "
                           f"{world.size} processes")


def wrap_model(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """DDP around the model; with --sync-bn its BN layers were converted when it was built."""
    if not world.active:
        return model
    ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside torch.compile and DDP wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model) if isinstance(model, nn.parallel.DistributedDataParallel) else model
