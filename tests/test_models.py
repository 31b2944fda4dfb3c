"""Model registry and the shared contract: names, shapes, shared layers, causal TCN, closed-form baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geothaw.errors import ConfigError
from geothaw.models import available_models, build_model, get_model_class, register
from geothaw.models.base import BaseModel, InputLayer, ModelSpec, OutputHead
from geothaw.models.ridge import ridge_solution

NEURAL = ["bilstm", "conv1dlstm", "gru", "tcn", "transformer"]
SPEC = ModelSpec(n_dynamic=7, n_static=13, n_bands=5, hidden_size=16)


def _batch(n: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"dynamic": torch.randn(n, 24, 7, generator=g), "static": torch.randn(n, 13, generator=g),
            "band": torch.randint(0, 5, (n,), generator=g), "coords": torch.rand(n, 2, generator=g) * 10 + 60}


def test_registry_lists_every_model():
    assert available_models("neural") == NEURAL
    assert available_models("baseline") == ["climatology", "linear"]


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'lstm'.*bilstm.*climatology.*gru.*transformer"):
        build_model("lstm", SPEC)


def test_duplicate_registration_is_an_error():
    with pytest.raises(ConfigError, match="registered twice"):
        @register("gru")
        class Other(BaseModel):  # noqa: F841 - the decorator is what is tested
            pass


@pytest.mark.parametrize("name", NEURAL + ["climatology", "linear"])
def test_every_model_constructs_and_outputs_b_12_4(name):
    torch.manual_seed(0)
    model = build_model(name, SPEC)
    out = model(_batch())
    assert set(out) >= {"y_hat"} and out["y_hat"].shape == (6, 12, 4)
    assert torch.isfinite(out["y_hat"]).all()


@pytest.mark.parametrize("name", NEURAL)
def test_architectures_share_input_layer_and_head(name):
    model = build_model(name, SPEC)
    assert isinstance(model.input_layer, InputLayer) and isinstance(model.head, OutputHead)
    assert model.module_parts == ("input_layer", "core", "head", "linear_response")
    # Same shapes for the shared parts, so they could even be transferred between architectures.
    ref = build_model("gru", SPEC)
    assert {k: v.shape for k, v in model.input_layer.state_dict().items()} == \
           {k: v.shape for k, v in ref.input_layer.state_dict().items()}
    assert get_model_class(name).kind == "neural"


def test_tcn_core_is_causal():
    model = build_model("tcn", SPEC).eval()
    x = torch.randn(2, 24, SPEC.hidden_size)
    y0 = model.core(x)
    x2 = x.clone()
    x2[:, 20:] += 5.0
    y1 = model.core(x2)
    torch.testing.assert_close(y0[:, :20], y1[:, :20])
    assert not torch.allclose(y0[:, 20:], y1[:, 20:])


@pytest.mark.parametrize(("dilation", "pad_left"), [(1, 2), (2, 4), (8, 16), (1, 1)])
def test_matmul_convolution_equals_padded_conv1d(dilation, pad_left):
    from geothaw.models.convolution import conv1d_channels_last

    torch.manual_seed(dilation)
    conv = torch.nn.Conv1d(5, 7, 3, dilation=dilation)
    x = torch.randn(4, 24, 5)
    padded = torch.nn.functional.pad(x.transpose(1, 2), (pad_left, 2 * dilation - pad_left))
    torch.testing.assert_close(conv1d_channels_last(conv, x, pad_left), conv(padded).transpose(1, 2))


def test_fast_dropout_keeps_nine_in_ten_scaled_and_is_seeded():
    from geothaw.models.dropout import FastDropout

    drop = FastDropout(0.1).train()
    x = torch.ones(400_000)
    torch.manual_seed(3)
    y = drop(x)
    assert torch.unique(y).tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert abs((y > 0).float().mean().item() - 0.9) < 0.002  # 0.9 ± 4 binomial standard deviations
    assert abs(y.mean().item() - 1.0) < 0.003
    torch.manual_seed(3)
    torch.testing.assert_close(drop(x), y)
    assert drop.eval()(x) is x


def test_climatology_is_per_cell_monthly_mean_with_band_fallback():
    spec = ModelSpec(n_dynamic=7, n_static=13, n_bands=2)
    coords = np.array([[64.0, 200.0], [64.0, 200.0], [65.5, 201.0]], "float32")
    target = np.zeros((3, 12, 4), "float32")
    target[0], target[1], target[2] = 1.0, 3.0, 10.0
    target[1, 6, 2] = 7.0
    model = build_model("climatology", spec).fit({"coords": coords, "target": target, "band": np.array([0, 0, 1])})
    b = {"dynamic": torch.zeros(3, 24, 7), "static": torch.zeros(3, 13), "band": torch.tensor([0, 1, 0]),
         "coords": torch.tensor([[64.0, 200.0], [65.5, 201.0], [60.0, 190.0]])}
    y = model(b)["y_hat"]
    assert y[0, 0, 0] == 2.0 and y[0, 6, 2] == 4.0   # mean of the two samples of that cell
    assert y[1, 3, 1] == 10.0                       # the other training cell
    assert y[2, 0, 0] == 2.0 and y[2, 6, 2] == 4.0   # unseen cell → its band's mean (band 0)


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    spec = ModelSpec(n_dynamic=3, n_static=2, n_bands=2, window_months=6, ridge_alpha=1e-6)
    n = 400
    batch = {"dynamic": rng.normal(size=(n, 6, 3)).astype("float32"), "static": rng.normal(size=(n, 2)).astype("float32"),
             "band": rng.integers(0, 2, n)}
    w = rng.normal(size=(6 * 3, 48))
    batch["target"] = (batch["dynamic"].reshape(n, -1) @ w + 0.5).reshape(n, 12, 4).astype("float32")
    model = build_model("linear", spec).fit(batch)
    pred = model({k: torch.as_tensor(v) for k, v in batch.items()})["y_hat"].numpy()
    np.testing.assert_allclose(pred, batch["target"], atol=1e-3)
    # fitted in row blocks (bounded memory) it is the same solution
    blockwise = build_model("linear", spec).fit(batch, rows=37)
    np.testing.assert_allclose(blockwise.weight.numpy(), model.weight.numpy(), atol=1e-5)


def test_ridge_solution_matches_the_closed_form_and_shrinks_with_alpha():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    y = x @ rng.normal(size=(5, 2)) + np.array([1.0, -2.0]) + 0.1 * rng.normal(size=(300, 2))
    blocks = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 300, 64)]
    w, b = ridge_solution(blocks, alpha=3.0)
    xc, yc = x - x.mean(0), y - y.mean(0)
    w_ref = np.linalg.solve(xc.T @ xc + 3.0 * np.eye(5), xc.T @ yc)
    np.testing.assert_allclose(w, w_ref, rtol=1e-10)
    np.testing.assert_allclose(b, y.mean(0) - x.mean(0) @ w_ref, rtol=1e-10)
    w_big, _ = ridge_solution(blocks, alpha=1e4)
    assert np.abs(w_big).sum() < 0.2 * np.abs(w).sum()
    with pytest.raises(ValueError, match="at least one sample"):
        ridge_solution([], alpha=1.0)


def test_linear_response_keeps_growing_beyond_the_training_range():
    """Far outside the training range the saturating network flattens out; the linear path keeps the
    response to a warmer window proportional, which is what lets scenarios diverge."""
    torch.manual_seed(0)
    model = build_model("gru", SPEC).eval()
    batch = {"dynamic": torch.zeros(1, SPEC.window_months, SPEC.n_dynamic), "static": torch.zeros(1, SPEC.n_static),
             "band": torch.zeros(1, dtype=torch.long)}
    with torch.no_grad():
        model.linear_response.proj.weight.zero_()
        model.linear_response.proj.weight[:, 0] = 0.1  # respond to the first dynamic channel at the first step
        model.linear_response.proj.bias.zero_()
        outs = []
        for shift in (20.0, 40.0, 60.0):
            b = dict(batch, dynamic=batch["dynamic"].clone())
            b["dynamic"][..., 0] = shift
            outs.append(model(b)["y_hat"])
    step1, step2 = outs[1] - outs[0], outs[2] - outs[1]
    assert torch.allclose(step1, step2, atol=0.05)  # the network part has (nearly) saturated; the rest is linear
    assert float(step1.mean()) == pytest.approx(2.0, rel=0.02)


@pytest.mark.parametrize("layers,n_in,hidden,batch,keep", [(2, 32, 32, 64, 24), (1, 7, 16, 1, 12), (3, 12, 8, 5, 3)])
def test_gru_inference_recurrence_equals_nn_gru(layers, n_in, hidden, batch, keep):
    """The packed-weight recurrence computes nn.GRU's states (to float32 rounding)."""
    from geothaw.models.gru_inference import top_layer_states

    torch.manual_seed(layers)
    rnn = torch.nn.GRU(n_in, hidden, num_layers=layers, batch_first=True).eval()
    x = 3.0 * torch.randn(batch, 24, n_in)  # large inputs drive the gates into saturation too
    with torch.inference_mode():
        g = top_layer_states(rnn, x.permute(1, 2, 0).contiguous(), keep=keep)  # (h + 1) / 2, feature-major
        torch.testing.assert_close((2 * g - 1).permute(2, 0, 1), rnn(x)[0][:, -keep:], rtol=0, atol=2e-6)


@pytest.mark.parametrize("layers,n_in,hidden,batch,keep,bidirectional",
                         [(2, 32, 16, 64, 12, True), (1, 7, 16, 1, 12, True), (3, 12, 8, 5, 3, True),
                          (2, 9, 8, 4, 24, False)])
def test_lstm_inference_equals_nn_lstm(layers, n_in, hidden, batch, keep, bidirectional):
    """The LSTM pass computes nn.LSTM's top-layer outputs, both directions (to float32 rounding)."""
    from geothaw.models.lstm_inference import top_layer_outputs

    torch.manual_seed(layers)
    rnn = torch.nn.LSTM(n_in, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional).eval()
    x = 3.0 * torch.randn(batch, 24, n_in)  # large inputs drive the gates into saturation too
    with torch.inference_mode():
        out = top_layer_outputs(rnn, x.permute(1, 2, 0).contiguous(), keep=keep)  # feature-major
        torch.testing.assert_close(out.permute(2, 0, 1), rnn(x)[0][:, -keep:], rtol=0, atol=2e-6)


@pytest.mark.parametrize("name,module,layers,hidden", [("gru", "gru_inference", 2, 32), ("gru", "gru_inference", 1, 8),
                                                        ("gru", "gru_inference", 3, 16),
                                                        ("bilstm", "lstm_inference", 2, 32),
                                                        ("bilstm", "lstm_inference", 1, 8),
                                                        ("bilstm", "lstm_inference", 3, 17)])
def test_model_uses_the_inference_pass_only_without_autograd(name, module, layers, hidden):
    import importlib

    fast_pass = importlib.import_module(f"geothaw.models.{module}")
    spec = ModelSpec(n_dynamic=SPEC.n_dynamic, n_static=SPEC.n_static, n_bands=SPEC.n_bands, hidden_size=hidden,
                     n_layers=layers)
    torch.manual_seed(layers)
    model = build_model(name, spec).eval()
    batch = _batch()
    batch["dynamic"] = 3.0 * batch["dynamic"]
    with torch.inference_mode():
        assert fast_pass.can_use(model, batch["dynamic"])
        fast = model(batch)["y_hat"]
    assert not fast_pass.can_use(model, batch["dynamic"])  # autograd on here: the torch module
    slow = model(batch)["y_hat"]
    assert slow.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-5)
    model.train()
    with torch.inference_mode():
        assert not fast_pass.can_use(model, batch["dynamic"])
