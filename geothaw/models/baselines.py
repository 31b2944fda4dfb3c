"""Closed-form baselines behind the same ``forward(batch) -> {"y_hat"}`` contract as the sequence models.

* ``climatology``: per-cell monthly mean of the training period per depth, fitted (in training) on one sample per
  cell outside the held-out blocks (``training.climatology_samples``); cells it has not seen (the spatial
  hold-out) fall back to their latitude band's monthly mean, so it never uses held-out targets. Its validation
  score is in-sample (the validation cells' training years are in its table); it is never a best-model candidate.
* ``linear``: ridge regression from the flattened window + statics + band one-hot to the 48 outputs.

Both keep their fitted state in buffers, so they checkpoint as a plain ``state_dict`` like the others.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from . import register
from .base import N_DEPTHS, N_MONTHS, ModelSpec
from .ridge import ridge_solution


def cell_keys(coords: Tensor) -> Tensor:
    """An exact int64 key per (lat, lon) cell centre (0.1 mdeg precision)."""
    c = torch.round(coords.double() * 1e4).long()
    return c[:, 0] * 100_000_000 + c[:, 1]


class _Baseline(nn.Module):
    kind = "baseline"
    fits_cell_means = False  # fitted on one climatology sample per training cell instead of the sampled windows
    bidirectional = False
    uses_static = True
    module_parts: tuple[str, ...] = ()

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec

    def resize_buffers(self, state: dict[str, Tensor]) -> None:
        """Fitted buffers have data-dependent shapes: match them to a checkpoint before loading it."""
        for name, buf in list(self.named_buffers()):
            if name in state and state[name].shape != buf.shape:
                self.register_buffer(name, torch.empty_like(state[name]))

    def fit(self, batch: dict[str, np.ndarray]) -> "_Baseline":  # pragma: no cover - interface
        raise NotImplementedError


@register("climatology")
class Climatology(_Baseline):
    fits_cell_means = True

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self.register_buffer("keys", torch.zeros(0, dtype=torch.long))
        self.register_buffer("table", torch.zeros(0, N_MONTHS, N_DEPTHS))
        self.register_buffer("band_table", torch.zeros(spec.n_bands, N_MONTHS, N_DEPTHS))

    def fit(self, batch: dict[str, np.ndarray]) -> "Climatology":
        keys = cell_keys(torch.as_tensor(batch["coords"])).numpy()
        y = np.asarray(batch["target"], dtype="float64")
        uniq, inv = np.unique(keys, return_inverse=True)
        sums = np.zeros((uniq.size, N_MONTHS, N_DEPTHS))
        np.add.at(sums, inv, y)
        table = sums / np.bincount(inv, minlength=uniq.size)[:, None, None]
        band = np.asarray(batch["band"])
        bsum = np.zeros((self.spec.n_bands, N_MONTHS, N_DEPTHS))
        np.add.at(bsum, band, y)
        bcount = np.bincount(band, minlength=self.spec.n_bands)[:, None, None]
        overall = y.mean(axis=0)
        band_table = np.where(bcount > 0, bsum / np.maximum(bcount, 1), overall)  # empty band → overall mean
        self.keys = torch.as_tensor(uniq, dtype=torch.long)
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.band_table = torch.as_tensor(band_table, dtype=torch.float32)
        return self

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        out = self.band_table[batch["band"]]
        if "coords" in batch and self.keys.numel():
            k = cell_keys(batch["coords"])
            pos = torch.searchsorted(self.keys, k).clamp(max=self.keys.numel() - 1)
            hit = self.keys[pos] == k
            out = torch.where(hit[:, None, None], self.table[pos], out)
        return {"y_hat": out}


@register("linear")
class Ridge(_Baseline):
    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        d = spec.window_months * spec.n_dynamic + spec.n_static + spec.n_bands
        self.register_buffer("weight", torch.zeros(d, N_MONTHS * N_DEPTHS))
        self.register_buffer("bias", torch.zeros(N_MONTHS * N_DEPTHS))

    def _design(self, dynamic, static, band) -> Tensor:
        onehot = nn.functional.one_hot(torch.as_tensor(band), self.spec.n_bands).float()
        dyn = torch.as_tensor(dynamic)
        return torch.cat([dyn.reshape(dyn.shape[0], -1), torch.as_tensor(static), onehot], dim=1)

    def fit(self, batch: dict[str, np.ndarray], rows: int = 16384) -> "Ridge":
        n = len(batch["target"])

        def blocks():
            for i in range(0, n, rows):
                part = slice(i, i + rows)
                x = self._design(batch["dynamic"][part], batch["static"][part], batch["band"][part]).numpy()
                yield x, np.asarray(batch["target"][part]).reshape(len(x), -1)

        weight, bias = ridge_solution(blocks(), self.spec.ridge_alpha)
        self.weight = torch.as_tensor(weight, dtype=torch.float32)
        self.bias = torch.as_tensor(bias, dtype=torch.float32)
        return self

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        X = self._design(batch["dynamic"], batch["static"], batch["band"])
        return {"y_hat": (X @ self.weight + self.bias).reshape(-1, N_MONTHS, N_DEPTHS)}
