"""A faster CPU forward pass of a trained ``nn.GRU`` for inference (projection, evaluation).

``nn.GRU`` on CPU spends most of its time outside arithmetic: for the projection's batches (hidden 32, 24
months, 512–1024 windows) each layer and month is a 512 × 32 × 96 matmul followed by about ten element-wise
kernels on strided column slices, and ``tanh`` alone costs three times ``sigmoid`` here (75 µs against 23 µs
for 16,384 floats on one core). This pass computes the same recurrence with four element-wise kernels:

* three matmuls per layer and month on one operand ``[x_t; 1; state]`` (input and recurrent weights and
  both biases packed): the reset and update gates read all of it, the candidate's input part ``[x_t; 1]`` and
  its recurrent part ``[1; state]`` (one matmul for all four row blocks multiplies a quarter zeros; the
  recurrence ran 6 % slower with it). Operands are feature-major (``[features, batch]``), so every gate is a
  contiguous row block and no ``[B, T, 3H]`` input projection is built;
* ``tanh(a) = 2·sigmoid(2a) − 1``, with the factor 2 folded into the candidate's rows;
* the state is carried as ``g = (h + 1) / 2``: then ``h' = (1 − z)·tanh(a) + z·h`` becomes
  ``g' = lerp(sigmoid(2a), g, z)``, one kernel, and ``h = 2g − 1`` is folded into the weights that read it;
* the layers advance together month by month (layer ``l``'s state is copied straight into layer ``l + 1``'s
  input rows);
* the whole model stays feature-major (:func:`model_forward`): the shared input layer is computed as
  ``[T, H, B]`` directly (the statics' part once per window, not once per month), and the output head reads
  the last 12 months' states without transposing them back (``h = 2g − 1`` folded into its first layer).

These are the GRU's own equations (PyTorch's gate order r, z, n and ``n = tanh(W_in x + b_in + r ⊙ (W_hn h +
b_hn))``), equal to ``nn.GRU`` to float32 rounding (tests compare them). Training keeps ``nn.GRU`` and its autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import N_MONTHS
from .inference import feature_major_inputs, head_forward, is_plain_evaluation


def can_use(model: nn.Module, dynamic: Tensor) -> bool:
    """Whether :func:`model_forward` applies: an evaluating GRU model (unidirectional, batch-first ``nn.GRU``
    with biases; the shared head) on CPU float32 inputs, called without autograd."""
    rnn = getattr(getattr(model, "core", None), "rnn", None)
    return (isinstance(rnn, nn.GRU) and not rnn.bidirectional and rnn.batch_first and rnn.bias
            and is_plain_evaluation(model, dynamic))


def packed_weights(rnn: nn.GRU) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Per layer, the weights that multiply its operand ``[x; 1; g]`` (``g = (h + 1) / 2`` is the layer's
    carried state and, above layer 0, ``x`` is the lower layer's ``g``):

    * ``[2H, I + 1 + H]`` → reset and update gate pre-activations (from all of the operand);
    * ``[H, I + 1]`` → ``2·(W_in x + b_in)`` (from ``[x; 1]``);
    * ``[H, 1 + H]`` → ``2·(W_hn h + b_hn)`` (from ``[1; g]``).
    """
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
        gates = torch.cat([w_ih[:2 * h], (b_ih[:2 * h] + b_hh[:2 * h])[:, None], w_hh[:2 * h]], dim=1)
        cand_x = 2 * torch.cat([w_ih[2 * h:], b_ih[2 * h:, None]], dim=1)
        cand_h = 2 * torch.cat([b_hh[2 * h:, None], w_hh[2 * h:]], dim=1)
        packed.append((gates.contiguous(), cand_x.contiguous(), cand_h.contiguous()))
    return packed


def top_layer_states(rnn: nn.GRU, x_fm: Tensor, keep: int) -> Tensor:
    """``g = (h + 1) / 2`` of the top layer for the last ``keep`` months, ``[keep, H, B]``, of a feature-major
    input sequence ``x_fm`` ``[T, I, B]`` (zero initial state)."""
    steps, n_in, batch = x_fm.shape
    h = rnn.hidden_size
    layers = []
    for layer, weights in enumerate(packed_weights(rnn)):
        width = n_in if layer == 0 else h
        operand = x_fm.new_empty(width + 1 + h, batch)  # [input; 1; g]
        operand[width] = 1.0
        operand[width + 1:] = 0.5  # h = 0
        gates = x_fm.new_empty(4 * h, batch)
        # views made once: per month only the kernels run (each torch call also re-takes the interpreter lock)
        layers.append((weights, operand, operand[:width + 1], operand[width:], operand[width + 1:], gates[:2 * h],
                       gates[:h], gates[h:2 * h], gates[2 * h:3 * h], gates[3 * h:]))
    inputs = [layers[i + 1][1][:h] for i in range(len(layers) - 1)]
    out = x_fm.new_empty(keep, h, batch)
    for t in range(steps):
        layers[0][1][:n_in].copy_(x_fm[t])
        for layer, ((w_rz, w_cx, w_ch), operand, x_one, one_g, state, rz, r, z, cand_x, cand_h) in enumerate(layers):
            torch.mm(w_rz, operand, out=rz)
            torch.mm(w_cx, x_one, out=cand_x)
            torch.mm(w_ch, one_g, out=cand_h)
            rz.sigmoid_()
            # sigmoid(2·(W_in x + b_in) + r ⊙ 2·(W_hn h + b_hn)) = (tanh(candidate) + 1) / 2
            cand = cand_h.mul_(r).add_(cand_x).sigmoid_()
            torch.lerp(cand, state, z, out=state)  # g' = (1 − z)·s + z·g
            if layer < len(inputs):
                inputs[layer].copy_(state)
            elif t >= steps - keep:
                out[t - (steps - keep)].copy_(state)
    return out


def model_forward(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """``model(batch)["y_hat"]`` ``[B, 12, 4]`` of a GRU model (see :func:`can_use`), feature-major throughout."""
    x_fm = feature_major_inputs(model, batch)  # [T, H, B]
    g = top_layer_states(model.core.rnn, x_fm, keep=N_MONTHS)  # [12, H, B]
    first = model.head.net[1]
    # first(h) with h = 2g − 1:  (2W) g + (b − W·1)
    y = head_forward(model, g, 2.0 * first.weight, first.bias - first.weight.sum(1))
    return y + model.linear_response(batch)
