"""Training under torchrun: process group setup, all-reduces, and decisions every rank takes alike.

DistributedDataParallel runs on gloo (CPU) or NCCL (GPU), rank 0 writes files. Every decision that
changes the sequence of collectives (leaving stage 1) is taken on all-reduced values and broadcast
from rank 0 (:func:`same_decision`), so the processes cannot desynchronise. Without torchrun every
helper here is a no-op on one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from .config import TrainConfig


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_mean(value: torch.Tensor, dist_info: DistInfo) -> torch.Tensor:
    if dist_info.world > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
        value /= dist_info.world
    return value


def mean_over_ranks(value: torch.Tensor | None, device: torch.device, dist_info: DistInfo) -> float | None:
    """Mean of a scalar over the processes that have one (None where none has); the same on every rank."""
    local = torch.tensor([0.0 if value is None else float(value.detach()), 0.0 if value is None else 1.0],
                         dtype=torch.float64, device=device)
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.all_reduce(local)
    total, count = local.tolist()
    return total / count if count else None


def same_decision(flag: bool, device: torch.device, dist_info: DistInfo) -> bool:
    """Rank 0's `flag` on every rank (floating-point sums could differ between ranks in the last bit)."""
    if dist_info.world <= 1:
        return flag
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def per_process_batch(config: TrainConfig, world: int) -> int:
    """Images per step and process: --per-device-batch, else the global batch split over the processes."""
    if config.per_device_batch > 0:
        return config.per_device_batch
    return max(1, config.batch_size // world)


def use_sync_batchnorm(device: torch.device, world: int) -> bool:
    # PyTorch's SyncBatchNorm runs on accelerators only; CPU (gloo) processes keep per-process statistics.
    return world > 1 and device.type != "cpu"


def all_reduce_gradients(parameters: list[nn.Parameter], dist_info: DistInfo) -> None:
    """Average gradients of parameters that live outside DistributedDataParallel (the learned temperature)."""
    if dist_info.world <= 1:
        return
    import torch.distributed as dist

    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= dist_info.world
