"""GRU core (the paper's best model): stacked unidirectional GRU over the window."""

from __future__ import annotations

from torch import Tensor, nn

from . import gru_inference, register
from .base import BaseModel, ModelSpec


class _RNNOut(nn.Module):
    """Wraps a torch RNN so the core returns only the output sequence."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


@register("gru")
class GRUModel(BaseModel):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.core = _RNNOut(nn.GRU(spec.hidden_size, spec.hidden_size, num_layers=spec.n_layers, batch_first=True,
                                   dropout=spec.dropout if spec.n_layers > 1 else 0.0))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        # evaluated on CPU without autograd (projection, evaluation): the faster pass of the same equations
        if gru_inference.can_use(self, batch["dynamic"]):
            return {"y_hat": gru_inference.model_forward(self, batch)}
        return super().forward(batch)
