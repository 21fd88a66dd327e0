"""Several processes, one run: ``torchrun`` places, BatchNorm over the global batch, and the
latent noise of the global batch shared out, so that N processes compute what one would.

Plain Python; 05 explains why each is needed, ``tests/test_train.py`` runs two CPU processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from slamp.runtime import select_device


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of a CPU (gloo) DDP run, ``(N, C, ...)`` → same shape: the
    per-channel sums of all processes are combined with a differentiable all-reduce, two passes
    (mean, then centred squares) for accuracy. Outside a multi-process run, plain BatchNorm."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected (N, C, ...) input, found {input.dim()}D")

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce  # sums, and sums the gradients back

        dims, shape = [0, *range(2, x.dim())], (1, -1, *[1] * (x.dim() - 2))
        count = all_reduce(x.new_tensor(float(x.numel() // x.shape[1])))
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / max(count.item() - 1, 1), momentum)  # unbiased
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` normalising over the global batch: ``nn.SyncBatchNorm`` on
    GPUs, :class:`GlobalBatchNorm` on CPUs. Parameters and buffers are kept (same state dict)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            if child.affine:  # keep the Parameter objects themselves
                replacement.weight, replacement.bias = child.weight, child.bias
            setattr(model, name, replacement)
        else:
            synchronise_batchnorm(child, device)
    return model


def global_noise(model: nn.Module, batch: int, steps: int, rank: int = 0, world_size: int = 1,
                 device="cpu") -> dict:
    """The latent noise ε of this process's ``batch`` rows of the global batch: every process
    draws the noise of all ``batch * world_size`` rows (one seed everywhere: the same numbers) and
    keeps rows ``rank*batch .. (rank+1)*batch - 1``, so that the processes together use exactly
    the noise of a one-process run. ``{stream: (batch, steps, *latent_shape)}``."""
    everything = model.draw_noise(batch * world_size, steps, device)
    return {stream: eps[rank * batch:(rank + 1) * batch] for stream, eps in everything.items()}


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str = "auto") -> tuple[Distributed, torch.device, bool]:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``): NCCL on GPUs, gloo on CPUs. Returns the process's place, its device
    and whether this call created the group (and must destroy it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    place = Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = select_device(device_name, place.local_rank)
    created = False
    if place.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return place, device, created


__all__ = ["GlobalBatchNorm", "synchronise_batchnorm", "global_noise", "Distributed", "init_distributed"]
