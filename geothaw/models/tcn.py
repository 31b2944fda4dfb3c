"""Temporal convolutional network: causal dilated residual blocks (dilations 1, 2, 4, 8 → 31-month receptive field)."""

from __future__ import annotations

from torch import Tensor, nn

from . import register
from .base import BaseModel, ModelSpec
from .convolution import conv1d_channels_last
from .dropout import FastDropout


class _CausalBlock(nn.Module):
    def __init__(self, hidden: int, dilation: int, dropout: float, kernel: int = 3):
        super().__init__()
        self.pad = (kernel - 1) * dilation  # left padding only: month t never sees t+1
        self.conv1 = nn.Conv1d(hidden, hidden, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel, dilation=dilation)
        self.drop = FastDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # x: [B, T, H]
        h = self.drop(nn.functional.relu(conv1d_channels_last(self.conv1, x, self.pad)))
        h = self.drop(nn.functional.relu(conv1d_channels_last(self.conv2, h, self.pad)))
        return nn.functional.relu(x + h)


class _TCN(nn.Module):
    def __init__(self, hidden: int, dropout: float, dilations=(1, 2, 4, 8)):
        super().__init__()
        self.blocks = nn.Sequential(*[_CausalBlock(hidden, d, dropout) for d in dilations])

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


@register("tcn")
class TCNModel(BaseModel):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.core = _TCN(spec.hidden_size, spec.dropout)
