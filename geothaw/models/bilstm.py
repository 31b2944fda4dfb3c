"""Bidirectional LSTM core: each direction has H/2 units so the output width (and head) match the others."""

from __future__ import annotations

from torch import Tensor, nn

from . import lstm_inference, register
from .base import BaseModel, ModelSpec
from .gru import _RNNOut


@register("bilstm")
class BiLSTMModel(BaseModel):
    bidirectional = True

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        h = max(1, spec.hidden_size // 2)
        lstm = nn.LSTM(spec.hidden_size, h, num_layers=spec.n_layers, batch_first=True, bidirectional=True,
                       dropout=spec.dropout if spec.n_layers > 1 else 0.0)
        # Project 2·h back to H (a no-op width change when H is even, but keeps odd H valid).
        self.core = nn.Sequential(_RNNOut(lstm), nn.Linear(2 * h, spec.hidden_size))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        # evaluated on CPU without autograd (projection, evaluation): the faster pass of the same equations
        if lstm_inference.can_use(self, batch["dynamic"]):
            return {"y_hat": lstm_inference.model_forward(self, batch)}
        return super().forward(batch)
