"""GRU core (the paper's best model): stacked unidirectional GRU over the window."""

from __future__ import annotations

from torch import Tensor, nn

from . import register
from .base import BaseModel, ModelSpec
from .gru_inference import can_use, gru_forward


class _RNNOut(nn.Module):
    """Wraps a torch RNN so the core returns only the output sequence (a GRU evaluated on CPU without
    autograd takes the faster inference pass of :mod:`.gru_inference`)."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn

    def forward(self, x: Tensor) -> Tensor:
        if can_use(self.rnn, x):
            return gru_forward(self.rnn, x)
        return self.rnn(x)[0]


@register("gru")
class GRUModel(BaseModel):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.core = _RNNOut(nn.GRU(spec.hidden_size, spec.hidden_size, num_layers=spec.n_layers, batch_first=True,
                                   dropout=spec.dropout if spec.n_layers > 1 else 0.0))
