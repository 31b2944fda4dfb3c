"""A faster CPU forward pass of a trained bidirectional-LSTM model for inference (projection, evaluation).

The same idea as :mod:`.gru_inference`, for ``nn.LSTM`` (the BiLSTM model, the full default's best network):

* feature-major throughout (``[features, batch]`` operands), so every gate is a contiguous row block;
* per month two small matmuls into one gate buffer (input part with both biases, then the recurrent part
  in place): the whole sequence's input part in one matmul was slower, its ``[T, 4H, B]`` buffer leaves the
  cache (and ran 10–25× slower than its FLOPs with the physics solver on the other core);
* one ``sigmoid`` over all four gates: ``tanh(a) = 2·sigmoid(2a) − 1`` with the factor 2 folded into the cell
  candidate's rows, so ``c' = f·c + i·(2s − 1)`` is three in-place kernels and needs no temporary; ``tanh(c')``
  is computed the same way (one ``tanh`` costs about three ``sigmoid`` kernels on one core);
* the hidden state is written straight into the layer's output buffer, which the next month's ``addmm`` reads;
* the top layer's backward direction starts at the window's end and only its last 12 months are read, so it
  runs 12 months instead of 24.

These are PyTorch's LSTM equations (gate order i, f, g, o; ``c' = f ⊙ c + i ⊙ g``, ``h' = o ⊙ tanh(c')``),
equal to ``nn.LSTM`` to float32 rounding (tests compare them). Training keeps ``nn.LSTM`` and its autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import N_MONTHS
from .inference import feature_major_inputs, head_forward, is_plain_evaluation, per_month_matmul


def can_use(model: nn.Module, dynamic: Tensor) -> bool:
    """Whether :func:`model_forward` applies: an evaluating BiLSTM model (``core`` = an ``nn.LSTM`` wrapper and a
    linear map, batch-first with biases, no projection) on CPU float32 inputs, called without autograd."""
    core = getattr(model, "core", None)
    if not (isinstance(core, nn.Sequential) and len(core) == 2 and isinstance(core[1], nn.Linear)):
        return False
    rnn = getattr(core[0], "rnn", None)
    return (isinstance(rnn, nn.LSTM) and rnn.batch_first and rnn.bias and rnn.proj_size == 0
            and is_plain_evaluation(model, dynamic))


def _direction_weights(rnn: nn.LSTM, layer: int, reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Input weights ``[4h, I]``, summed biases ``[4h, 1]`` and recurrent weights ``[4h, h]`` of one direction,
    the cell candidate's rows doubled (its ``tanh`` is computed as ``2·sigmoid(2a) − 1``)."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = getattr(rnn, f"weight_ih{suffix}").detach()
    w_hh = getattr(rnn, f"weight_hh{suffix}").detach()
    bias = getattr(rnn, f"bias_ih{suffix}").detach() + getattr(rnn, f"bias_hh{suffix}").detach()
    h = rnn.hidden_size
    scale = torch.ones(4 * h, 1, dtype=w_ih.dtype)
    scale[2 * h:3 * h] = 2.0
    return (w_ih * scale).contiguous(), (bias[:, None] * scale).contiguous(), (w_hh * scale).contiguous()


def _run_direction(weights: tuple[Tensor, Tensor, Tensor], x_fm: Tensor, months: range, out: Tensor) -> None:
    """Run one direction over ``months`` (in that order) of ``x_fm`` ``[T, I, B]``, writing ``h`` of each month
    into ``out[t]`` (``[h, B]`` views of the layer's output)."""
    w_x, bias, w_h = weights
    h = w_h.shape[1]
    batch = x_fm.shape[2]
    gates = x_fm.new_empty(4 * h, batch)
    i, f, s, o = gates[:h], gates[h:2 * h], gates[2 * h:3 * h], gates[3 * h:]
    c = x_fm.new_zeros(h, batch)
    squashed = x_fm.new_empty(h, batch)
    bias = bias.expand(4 * h, batch)
    previous = None
    for t in months:
        torch.addmm(bias, w_x, x_fm[t], out=gates)
        if previous is not None:  # h = 0 before the first month
            gates.addmm_(w_h, previous)
        gates.sigmoid_()
        c.mul_(f).addcmul_(i, s, value=2.0).sub_(i)  # f·c + i·(2s − 1)
        # h = o·tanh(c) = o·(2·sigmoid(2c) − 1): two sigmoid-cost kernels are cheaper than one tanh here
        torch.mul(c, 2.0, out=squashed).sigmoid_()
        previous = torch.mul(o, squashed, out=out[t]).mul_(2.0).sub_(o)


def top_layer_outputs(rnn: nn.LSTM, x_fm: Tensor, keep: int) -> Tensor:
    """The top layer's output (both directions stacked, as ``nn.LSTM`` returns it) for the last ``keep``
    months, ``[keep, D·h, B]``, of a feature-major input sequence ``x_fm`` ``[T, I, B]`` (zero initial state)."""
    steps, _, batch = x_fm.shape
    h = rnn.hidden_size
    directions = 2 if rnn.bidirectional else 1
    layer_in = x_fm
    for layer in range(rnn.num_layers):
        top = layer == rnn.num_layers - 1
        out = x_fm.new_empty(steps, directions * h, batch)
        _run_direction(_direction_weights(rnn, layer, False), layer_in, range(steps), out[:, :h])
        if directions == 2:  # the top layer's backward pass: only the kept months, from the window's end
            first = steps - keep if top else 0
            _run_direction(_direction_weights(rnn, layer, True), layer_in, range(steps - 1, first - 1, -1), out[:, h:])
        layer_in = out
    return layer_in[steps - keep:]


def model_forward(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """``model(batch)["y_hat"]`` ``[B, 12, 4]`` of a BiLSTM model (see :func:`can_use`), feature-major throughout."""
    rnn_out, linear = model.core
    x_fm = feature_major_inputs(model, batch)  # [T, H, B]
    states = top_layer_outputs(rnn_out.rnn, x_fm, keep=N_MONTHS)  # [12, 2h, B]
    hidden = per_month_matmul(linear.weight, states).add_(linear.bias[:, None])  # [12, H, B]
    return head_forward(model, hidden) + model.linear_response(batch)
