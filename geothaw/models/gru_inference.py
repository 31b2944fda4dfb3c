"""A faster CPU forward pass of a trained ``nn.GRU`` for inference (projection, evaluation).

``nn.GRU`` on CPU spends most of its time outside arithmetic: for the projection's batches (hidden 32, 24
months, 512–1024 windows) each layer and month is a 512 × 32 × 96 matmul followed by about ten element-wise
kernels on strided column slices, and ``tanh`` alone costs three times ``sigmoid`` here (75 µs against 23 µs
for 16,384 floats on one core). This pass computes the same recurrence with four element-wise kernels:

* one matmul per layer and month, ``W @ [x_t; h_{t-1}; 1]``: input and recurrent weights and both biases packed
  into one matrix whose row blocks are the reset and update gates, the candidate's input part and its
  recurrent part. Operands are feature-major (``[features, batch]``), so every gate is a contiguous row block
  and no ``[B, T, 3H]`` input projection is built;
* ``tanh(a) = 2·sigmoid(2a) − 1``, with the factor 2 folded into the candidate's rows;
* the state is carried as ``g = (h + 1) / 2``: then ``h' = (1 − z)·tanh(a) + z·h`` becomes
  ``g' = lerp(sigmoid(2a), g, z)``, one kernel, and ``h = 2g − 1`` is folded into the weights that read it;
* the layers advance together month by month (layer ``l``'s state is copied straight into layer ``l + 1``'s
  input rows).

These are the GRU's own equations (PyTorch's gate order r, z, n and ``n = tanh(W_in x + b_in + r ⊙ (W_hn h +
b_hn))``), equal to ``nn.GRU`` to float32 rounding (tests compare them). Training keeps ``nn.GRU`` and its autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def can_use(rnn: nn.Module, x: Tensor) -> bool:
    """Whether :func:`gru_forward` applies: an evaluating, unidirectional, batch-first CPU ``nn.GRU`` with
    biases, called without autograd."""
    return (isinstance(rnn, nn.GRU) and not rnn.training and not rnn.bidirectional and rnn.batch_first
            and rnn.bias and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 3
            and not torch.is_grad_enabled())


def packed_weights(rnn: nn.GRU) -> list[Tensor]:
    """Per layer, ``W`` of shape ``[4H, I + H + 1]`` with ``W @ [x; g; 1] = [r_pre; z_pre; 2·(W_in x + b_in);
    2·(W_hn h + b_hn)]``, where ``g = (h + 1) / 2`` is the layer's carried state and, above layer 0, ``x`` is
    the lower layer's ``g``."""
    h = rnn.hidden_size
    packed = []
    for layer in range(rnn.num_layers):
        w_ih = getattr(rnn, f"weight_ih_l{layer}").detach()
        w_hh = getattr(rnn, f"weight_hh_l{layer}").detach()
        b_ih = getattr(rnn, f"bias_ih_l{layer}").detach()
        b_hh = getattr(rnn, f"bias_hh_l{layer}").detach()
        if layer > 0:  # W x + b with x = 2g − 1  →  (2W) g + (b − W·1)
            w_ih, b_ih = 2 * w_ih, b_ih - w_ih.sum(1)
        w_hh, b_hh = 2 * w_hh, b_hh - w_hh.sum(1)
        n_in = w_ih.shape[1]
        w = w_ih.new_zeros(4 * h, n_in + h + 1)
        w[:2 * h, :n_in] = w_ih[:2 * h]
        w[:2 * h, n_in:n_in + h] = w_hh[:2 * h]
        w[:2 * h, -1] = b_ih[:2 * h] + b_hh[:2 * h]
        w[2 * h:3 * h, :n_in] = 2 * w_ih[2 * h:]
        w[2 * h:3 * h, -1] = 2 * b_ih[2 * h:]
        w[3 * h:, n_in:n_in + h] = 2 * w_hh[2 * h:]
        w[3 * h:, -1] = 2 * b_hh[2 * h:]
        packed.append(w)
    return packed


def gru_forward(rnn: nn.GRU, x: Tensor) -> Tensor:
    """The output sequence ``[B, T, H]`` of ``rnn(x)[0]`` for a batch-first ``x`` (zero initial state)."""
    batch, steps, n_in = x.shape
    h = rnn.hidden_size
    weights = packed_weights(rnn)
    x_fm = x.permute(1, 2, 0).contiguous()  # [T, I, B]
    # per layer: its operand [input; g; 1] and its gate pre-activations, both [features, B]
    layers = []
    for layer in range(rnn.num_layers):
        width = n_in if layer == 0 else h
        operand = x.new_empty(width + h + 1, batch)
        operand[width:width + h] = 0.5  # h = 0
        operand[-1] = 1.0
        layers.append((operand, width, x.new_empty(4 * h, batch)))
    out = x.new_empty(steps, h, batch)
    for t in range(steps):
        layers[0][0][:n_in].copy_(x_fm[t])
        for layer, (operand, width, gates) in enumerate(layers):
            torch.mm(weights[layer], operand, out=gates)
            rz = gates[:2 * h].sigmoid_()
            s = gates[3 * h:].mul_(rz[:h]).add_(gates[2 * h:3 * h]).sigmoid_()  # (tanh(candidate) + 1) / 2
            state = operand[width:width + h]
            torch.lerp(s, state, rz[h:], out=state)
            (layers[layer + 1][0][:h] if layer + 1 < len(layers) else out[t]).copy_(state)
    return out.mul_(2.0).sub_(1.0).permute(2, 0, 1)  # g → h, [B, T, H]
