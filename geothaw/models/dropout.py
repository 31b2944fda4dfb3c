"""Dropout with a cheaper random mask: ``nn.Dropout``'s ``bernoulli_`` was 20-30 % of a TCN or transformer
training step on this CPU (docs/results.md §9i).

The mask comes from 15-bit slices of 64-bit random words: four slices per word, so the generator runs a quarter
as often as ``bernoulli_``'s once per element. A value is kept with probability 1 − round(p·2¹⁵)/2¹⁵ (p = 0.1:
0.89999) and scaled by 1/(1 − p), as ``nn.Dropout`` does. It draws from torch's default generator, so a seeded
run is reproducible, but the masks, and so the trained weights, differ from ``nn.Dropout``'s.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_SLICE_BITS = 15  # of each 16-bit slice: int64 ``random_()`` leaves the word's top bit 0


def keep_mask(like: Tensor, p: float) -> Tensor:
    """0/1 (int16) of ``like``'s shape, 1 with probability 1 − round(p·2¹⁵)/2¹⁵."""
    n = like.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_()
    slices = words.view(torch.int16)[:n].view(like.shape)
    return slices.bitwise_and_((1 << _SLICE_BITS) - 1).ge_(round(p * (1 << _SLICE_BITS)))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same scaling, identity in eval mode) with the mask of :func:`keep_mask`."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        return x * keep_mask(x, self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
