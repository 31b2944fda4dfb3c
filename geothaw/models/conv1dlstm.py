"""Conv1D-LSTM core: a short temporal convolution extracts local (few-month) patterns, an LSTM integrates them."""

from __future__ import annotations

from torch import Tensor, nn

from . import register
from .base import BaseModel, ModelSpec
from .convolution import conv1d_channels_last
from .dropout import FastDropout


class _ConvLSTM(nn.Module):
    def __init__(self, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=max(1, layers - 1), batch_first=True)
        self.drop = FastDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(nn.functional.relu(conv1d_channels_last(self.conv, x, self.conv.padding[0])))
        return self.lstm(h)[0]


@register("conv1dlstm")
class Conv1DLSTMModel(BaseModel):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.core = _ConvLSTM(spec.hidden_size, spec.n_layers, spec.dropout)
