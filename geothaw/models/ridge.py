"""Ridge regression by accumulated normal equations: the ``linear`` baseline and the networks' ridge-fitted
linear path both solve it, on designs too large to hold in float64 at once."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def ridge_solution(blocks: Iterable[tuple[np.ndarray, np.ndarray]], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``[d, k]`` and bias ``[k]`` minimising ``|y - X W - b|² + alpha |W|²`` (the bias unpenalised).

    ``blocks`` yields ``(X [n_i, d], y [n_i, k])`` row blocks; sums are accumulated in float64, so memory is one
    block plus ``d × (d + k)``, whatever the sample count. Inputs are normalised upstream, so one alpha fits all.
    """
    xtx = xty = xsum = ysum = None
    n = 0
    for x, y in blocks:
        x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
        if xtx is None:
            xtx, xty = np.zeros((x.shape[1], x.shape[1])), np.zeros((x.shape[1], y.shape[1]))
            xsum, ysum = np.zeros(x.shape[1]), np.zeros(y.shape[1])
        xtx += x.T @ x
        xty += x.T @ y
        xsum += x.sum(axis=0)
        ysum += y.sum(axis=0)
        n += len(x)
    if n == 0:
        raise ValueError("ridge regression needs at least one sample")
    xm, ym = xsum / n, ysum / n
    # centring folded into the sums: X_cᵀX_c = XᵀX − n x̄x̄ᵀ
    weight = np.linalg.solve(xtx - n * np.outer(xm, xm) + alpha * np.eye(len(xm)), xty - n * np.outer(xm, ym))
    return weight, ym - xm @ weight
