"""Shared pieces of every model: the spec, the input layer, the output head and the base class.

Architectures differ only in their *sequence core* (``[B, T, H] → [B, T, H]``); the input embedding
(dynamic + static + latitude-band embedding) and the head that reads the last 12 steps are shared, so
the comparison between TCN, Transformer, Conv1D-LSTM, GRU and BiLSTM stays fair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .dropout import FastDropout

N_MONTHS = 12
N_DEPTHS = 4


@dataclass(frozen=True)
class ModelSpec:
    """Validated sizes a model is built from (derived from the run config + the feature spec)."""

    n_dynamic: int
    n_static: int
    n_bands: int
    window_months: int = 24
    hidden_size: int = 64
    n_layers: int = 2
    dropout: float = 0.1
    band_embedding: int = 4
    ridge_alpha: float = 1.0

    @classmethod
    def from_config(cls, cfg, feature_spec) -> "ModelSpec":
        return cls(n_dynamic=feature_spec.n_dynamic, n_static=feature_spec.n_static, n_bands=feature_spec.n_bands,
                   window_months=feature_spec.window_months, hidden_size=cfg.training.hidden_size,
                   n_layers=cfg.training.n_layers, dropout=cfg.training.dropout, ridge_alpha=cfg.training.ridge_alpha)

    def to_dict(self) -> dict:
        return asdict(self)


class InputLayer(nn.Module):
    """Per-time-step embedding of dynamic inputs, statics and the latitude-band embedding → ``[B, T, H]``."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.band = nn.Embedding(spec.n_bands, spec.band_embedding)
        self.proj = nn.Linear(spec.n_dynamic + spec.n_static + spec.band_embedding, spec.hidden_size)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        dyn = batch["dynamic"]
        B, T, _ = dyn.shape
        ctx = torch.cat([batch["static"], self.band(batch["band"])], dim=-1)  # statics repeat along time
        return torch.relu(self.proj(torch.cat([dyn, ctx.unsqueeze(1).expand(B, T, ctx.shape[-1])], dim=-1)))


class OutputHead(nn.Module):
    """Reads the last 12 steps of the core's output (the months of year Y) → ``[B, 12, 4]``."""

    def __init__(self, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(FastDropout(dropout), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, N_DEPTHS))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h[:, -N_MONTHS:, :])


class LinearResponse(nn.Module):
    """A linear map from the whole input window + statics to the 12 × 4 outputs, added to the network's output.

    Soil temperature responds almost linearly to air temperature outside the freeze–thaw range, but a network
    with saturating units flattens out beyond the training range: without this path the nets reproduced the
    source paper's failure (RCP8.5 − RCP4.5 2071–2100 soil divergence ≈ 0 °C against ≈ 1.6 °C in the physics).
    The network then learns only the nonlinear remainder (snow, zero curtain).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.proj = nn.Linear(spec.window_months * spec.n_dynamic + spec.n_static, N_MONTHS * N_DEPTHS)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        dyn = batch["dynamic"]
        flat = torch.cat([dyn.reshape(dyn.shape[0], -1), batch["static"]], dim=-1)
        return self.proj(flat).view(-1, N_MONTHS, N_DEPTHS)


class BaseModel(nn.Module):
    """Base of the sequence models. Subclasses set ``self.core`` (``[B, T, H] → [B, T, H]``) only.

    ``module_parts`` names the sub-modules that fine-tuning may freeze.
    """

    name: str = "base"
    kind: str = "neural"
    bidirectional: bool = False
    uses_static: bool = True
    module_parts: tuple[str, ...] = ("input_layer", "core", "head", "linear_response")

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.input_layer = InputLayer(spec)
        self.core: nn.Module = nn.Identity()
        self.head = OutputHead(spec.hidden_size, spec.dropout)
        self.linear_response = LinearResponse(spec)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = self.input_layer(batch)
        return {"y_hat": self.head(self.core(x)) + self.linear_response(batch)}
