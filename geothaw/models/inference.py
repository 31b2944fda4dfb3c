"""What the faster CPU inference passes (:mod:`.gru_inference`, :mod:`.lstm_inference`) share: the check that a
model is evaluating plainly, the shared input layer computed feature-major, and the shared output head."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def is_plain_evaluation(model: nn.Module, dynamic: Tensor) -> bool:
    """An evaluating model with the shared output head, on CPU float32 inputs, called without autograd."""
    head = getattr(getattr(model, "head", None), "net", None)
    return (not model.training and isinstance(head, nn.Sequential) and len(head) == 4
            and all(isinstance(m, kind) for m, kind in zip(head, (nn.Dropout, nn.Linear, nn.GELU, nn.Linear)))
            and dynamic.device.type == "cpu" and dynamic.dtype == torch.float32 and not torch.is_grad_enabled())


def feature_major_inputs(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The shared input layer's output as ``[T, H, B]``; the statics' part is computed once per window, not once
    per month."""
    dyn = batch["dynamic"]
    proj = model.input_layer.proj
    n_dyn = dyn.shape[-1]
    ctx = torch.cat([batch["static"], model.input_layer.band(batch["band"])], dim=-1)
    # relu(W [dyn; ctx] + b): the statics' part is the same for every month of a window
    ctx_term = torch.addmm(proj.bias[:, None], proj.weight[:, n_dyn:], ctx.t())  # [H, B]
    return per_month_matmul(proj.weight[:, :n_dyn], dyn.permute(1, 2, 0)).add_(ctx_term).relu_()


def per_month_matmul(weight: Tensor, x: Tensor) -> Tensor:
    """``weight @ x[t]`` for every month of ``x`` ``[T, I, B]`` → ``[T, O, B]``, as one batched matmul over the
    months (``torch.matmul`` would fold the months into the batch, which costs two transposing copies)."""
    return torch.bmm(weight.expand(x.shape[0], *weight.shape), x)


def head_forward(model: nn.Module, states: Tensor, first_weight: Tensor | None = None,
                 first_bias: Tensor | None = None) -> Tensor:
    """The shared output head on feature-major states ``[12, H, B]`` → ``[B, 12, 4]``. ``first_weight`` and
    ``first_bias`` replace the head's first layer where a pass carries its states transformed."""
    _, first, gelu, second = model.head.net
    w = first.weight if first_weight is None else first_weight
    b = first.bias if first_bias is None else first_bias
    hidden = per_month_matmul(w, states).add_(b[:, None])
    y = per_month_matmul(second.weight, gelu(hidden)).add_(second.bias[:, None])  # [12, 4, B]
    return y.permute(2, 0, 1)
