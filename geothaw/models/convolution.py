"""A 1-D convolution on channels-last sequences as one matmul over stacked shifted copies.

It computes the same sums as ``nn.Conv1d`` on the zero-padded ``[B, H, T]`` sequence, but on this CPU the
convolution's backward pass took ~4x its forward and made the TCN the second most expensive network to train
(docs/results.md §9i); as a matmul, forward and backward are both plain GEMMs. The module keeps ``nn.Conv1d``'s
weights, so checkpoints are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv1d_channels_last(conv: nn.Conv1d, x: Tensor, pad_left: int) -> Tensor:
    """``conv`` over ``x`` [B, T, C] → [B, T, C_out], with ``pad_left`` zeros before the sequence and the rest of
    the ``(kernel − 1)·dilation`` padding after it (``pad_left`` = all of it: causal, month t never sees t+1)."""
    kernel, dilation, steps = conv.kernel_size[0], conv.dilation[0], x.shape[1]
    span = (kernel - 1) * dilation
    if not 0 <= pad_left <= span or conv.groups != 1 or conv.stride[0] != 1:
        raise ValueError(f"conv1d_channels_last needs 0 <= pad_left <= {span}, groups 1 and stride 1")
    padded = nn.functional.pad(x, (0, 0, pad_left, span - pad_left))
    taps = torch.cat([padded[:, k * dilation:k * dilation + steps] for k in range(kernel)], dim=-1)
    weight = conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1)  # [out, kernel · in], tap-major
    return nn.functional.linear(taps, weight, conv.bias)
