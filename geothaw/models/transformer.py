"""Transformer encoder core with a learned positional embedding (one per month of the window)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import register
from .base import BaseModel, ModelSpec
from .dropout import FastDropout


class _Encoder(nn.Module):
    def __init__(self, hidden: int, layers: int, dropout: float, window: int):
        super().__init__()
        heads = 4 if hidden % 4 == 0 else 1
        self.pos = nn.Parameter(torch.zeros(1, window, hidden))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=dropout,
                                           batch_first=True, norm_first=True)
        for name in ("dropout", "dropout1", "dropout2"):
            setattr(layer, name, FastDropout(dropout))
        # No dropout on the attention weights: it drew a mask as large as the rest together and kept the attention
        # off its fused kernel, ~1/4 of a training step on this CPU (docs/results.md §9i).
        layer.self_attn.dropout = 0.0
        self.enc = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.enc(x + self.pos[:, : x.shape[1]])


@register("transformer")
class TransformerModel(BaseModel):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.core = _Encoder(spec.hidden_size, spec.n_layers, spec.dropout, spec.window_months)
