"""Kernels for sampling fast on a CPU or a GPU, the same function as the model up to rounding
(summed up in 06, "A faster copy to sample from").

``fast_sampler`` is what ``slamp.evaluate.evaluate`` samples from: a copy of a model with every
BatchNorm folded into the convolution before it (``fold_batchnorm``: in evaluation mode BatchNorm
is a fixed affine map per channel, PyTorch's ``fuse_conv_bn_eval``), on a CPU in channels-last
layout (oneDNN's convolutions run faster on it) and with the thin layers (the decoders' output
layers to 1-3 channels, their head from the 1x1 features, the mask net's last convolution) as one
matrix product and a ``fold`` each (``FoldedTransposedConv``), which oneDNN runs far below its
speed on wide layers. ``benchmarks/evaluation_kernels.py`` times each piece; ``MAX_BATCH`` is the
number of futures per ``generate`` call (``benchmarks/evaluation.py`` chose it: large batches pay
on a GPU, on a CPU they only spill the caches).

Plain Python, tested in ``tests/test_evaluate.py``.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F


MAX_BATCH = {"cuda": 2048, "cpu": 64}  # futures per generate call by default


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """An evaluation-mode copy of ``model`` in which every BatchNorm that directly follows a
    convolution in an ``nn.Sequential`` is folded into it (and replaced by ``nn.Identity``)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for block in [m for m in folded.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in range(len(block) - 1):
            conv, norm = block[i], block[i + 1]
            if isinstance(conv, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and isinstance(norm, torch.nn.BatchNorm2d):
                block[i] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, torch.nn.ConvTranspose2d))
                block[i + 1] = torch.nn.Identity()
    return folded


class FoldedTransposedConv(torch.nn.Module):
    """A transposed convolution as one matrix product and ``F.fold`` (col2im): the weights times
    each input pixel's ``C_in`` values give its ``C_out × k × k`` contributions to the output, and
    ``fold`` adds up the overlapping ones. Faster than oneDNN's transposed convolution on a CPU at
    1 or 2 output channels, slower for wide outputs (``benchmarks/README.md``)."""

    def __init__(self, conv: torch.nn.ConvTranspose2d):
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError(f"only plain transposed convolutions can be folded, found {conv}")
        self.kernel, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.output_padding = conv.output_padding
        weight = conv.weight.detach().flatten(1).t().contiguous()  # (C_out·k·k, C_in)
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.bias = None if conv.bias is None else torch.nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x, output_size=None):
        height, width = x.shape[-2:]
        if output_size is None:
            output_size = [(n - 1) * s - 2 * p + k + o for n, s, p, k, o in
                           zip((height, width), self.stride, self.padding, self.kernel, self.output_padding)]
        output_size = tuple(output_size)[-2:]
        if height == width == 1 and self.padding == (0, 0) and output_size == self.kernel:
            # One pixel in (a decoder's head): each frame's output is its k × k block, a linear layer.
            out = F.linear(x.flatten(1), self.weight).view(len(x), -1, *self.kernel)
            out = out.contiguous(memory_format=torch.channels_last)  # as the convolutions after it read it
        else:
            columns = torch.matmul(self.weight, x.flatten(2))  # (B, C_out·k·k, H·W), one product per frame
            out = F.fold(columns, output_size, self.kernel, padding=self.padding, stride=self.stride)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def folded_convolution(conv: torch.nn.Conv2d) -> FoldedTransposedConv:
    """A stride-1 convolution as a :class:`FoldedTransposedConv`: it is the transposed convolution
    with the kernel flipped, input and output channels swapped and padding ``k - 1 - p``."""
    if conv.stride != (1, 1) or isinstance(conv.padding, str):
        raise ValueError(f"only stride-1 convolutions with numeric padding can be folded, found {conv}")
    transposed = torch.nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                          padding=tuple(k - 1 - p for k, p in zip(conv.kernel_size, conv.padding)),
                                          bias=conv.bias is not None, groups=conv.groups, dilation=conv.dilation,
                                          dtype=conv.weight.dtype, device=conv.weight.device)
    with torch.no_grad():
        transposed.weight.copy_(conv.weight.flip(-2, -1).transpose(0, 1))
        if conv.bias is not None:
            transposed.bias.copy_(conv.bias)
    return FoldedTransposedConv(transposed)



def fast_sampler(model: torch.nn.Module, device) -> torch.nn.Module:
    """What :func:`evaluate` samples from: ``model`` with BatchNorm folded and, on a CPU, its
    weights in channels-last layout (oneDNN's convolutions run faster on it) and the output layers
    of its decoders (and of a mask net of 16 channels or more) as a matrix product and a fold
    (:class:`FoldedTransposedConv`). The same function, up to rounding."""
    sampler = fold_batchnorm(model)
    if torch.device(device).type == "cpu":
        sampler = sampler.to(memory_format=torch.channels_last)
        for decoder in (getattr(sampler, name, None) for name in ("pixel_decoder", "flow_decoder")):
            if decoder is None:
                continue
            decoder.out = FoldedTransposedConv(decoder.out)  # the output layer, to 1-3 channels
            if isinstance(decoder.head[0], torch.nn.ConvTranspose2d):  # DCGAN, VGG: from the 1x1 features
                decoder.head[0] = FoldedTransposedConv(decoder.head[0])
        mask_net = getattr(sampler, "mask_net", None)
        if mask_net is not None and mask_net.net[-2].in_channels >= 16:  # to one channel: faster folded
            mask_net.net[-2] = folded_convolution(mask_net.net[-2])    # from 16 channels, slower at 8
    return sampler

