"""Data-parallel training through ``torch.distributed`` (launch with ``torchrun``; gloo on CPU, nccl on CUDA).

Gradients are averaged by ONE explicit all-reduce of the flattened gradients after ``backward`` instead of the
``DistributedDataParallel`` wrapper: every defense runs several forwards per step (attack iterations with
``autograd.grad`` w.r.t. the inputs only, clean and adversarial passes, double backprop for OTJR), which the DDP
reducer does not support (it expects one forward and one backward touching each parameter once). The numbers are
those of DDP: parameters broadcast from rank 0 at start, gradient = mean over processes of the per-process mean,
i.e. the mean over the global batch; BatchNorm buffers broadcast from rank 0 after each step (DDP's
``broadcast_buffers``). The price is no overlap of communication with the backward pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..core.utils import all_reduce_mean_


@dataclass
class DistInfo:
    """This process's place in the group: ``rank`` in ``0..world_size-1``; ``owns_group``: we initialised it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather_with_grad(self, t: Tensor) -> Tensor:
        """Concatenate every process's ``t`` (same shape on all) along dim 0; this process's slice keeps its
        gradient (the others are constants here: their inputs live in other processes). Used for FS "global"
        coupling: d D(all clean, all perturbed) / d x_local flows only through the local perturbed logits."""
        if not self.enabled:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t.detach().contiguous())
        parts[self.rank] = t
        return torch.cat(parts, 0)

    def all_reduce_grads(self, params: Iterable[nn.Parameter]) -> None:
        """Average the gradients over processes (one flattened all-reduce)."""
        if self.enabled:
            all_reduce_mean_([p.grad for p in params if p.grad is not None])

    def broadcast_module(self, module: nn.Module, buffers_only: bool = False) -> None:
        """Copy rank 0's parameters (unless ``buffers_only``) and buffers to every process."""
        if not self.enabled:
            return
        tensors = list(module.buffers()) + ([] if buffers_only else list(module.parameters()))
        for t in tensors:
            dist.broadcast(t.data, 0)

    def all_sum(self, values: list[float], device) -> list[float]:
        """Sum a list of floats over processes."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def gather_object(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (a list, on every rank)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(ddp: Optional[bool], backend: Optional[str], device_type: str) -> DistInfo:
    """Join (or create from torchrun's ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``) the process group.

    ``ddp=None`` enables it when ``WORLD_SIZE > 1`` or a group is already initialised; ``False`` forces a single
    process; ``True`` without the environment raises ValueError. ``backend`` None -> nccl on CUDA, gloo otherwise.
    """
    if ddp is False:
        return DistInfo()
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        if ddp:
            raise ValueError("ddp=True but WORLD_SIZE is not set above 1: launch with "
                             "`torchrun --nproc_per_node=N -m ot_robust train ...`")
        return DistInfo()
    backend = backend or ("nccl" if device_type == "cuda" else "gloo")
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)
