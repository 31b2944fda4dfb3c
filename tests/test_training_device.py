"""training.device: the CPU default, ``auto``, a clear error without a GPU, and (where torch sees one) GPU
training whose checkpoints load and predict on the CPU and resume after a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_features import make_toy_dataset, tiny_config

import geothaw.training as T
from geothaw.errors import ConfigError
from geothaw.training import load_checkpoint, predict, prepare_training_data, train_model

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


@pytest.fixture(scope="module")
def prepared():
    return prepare_training_data(tiny_config(), make_toy_dataset())


def test_auto_picks_the_gpu_only_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert T.resolve_device("auto") == "cpu" and T.resolve_device("cpu") == "cpu"
    assert T.training_device(tiny_config(device="auto")).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert T.resolve_device("auto") == "cuda"


def test_cuda_without_a_gpu_is_one_clear_error_before_any_training(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="training.device is 'cuda' but torch .* sees no CUDA GPU") as err:
        train_model(tiny_config(device="cuda"), None, "gru", tmp_path, prepared=prepared)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "checkpoints").exists()
    # baselines never need the GPU
    assert train_model(tiny_config(device="cuda"), None, "linear", tmp_path, prepared=prepared).checkpoint.exists()


def test_the_device_is_part_of_the_training_key(prepared, monkeypatch):
    """GPU weights differ from CPU weights in rounding, so one must not be kept in place of the other."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu, auto = (T.training_key(tiny_config(device=d), "gru", prepared) for d in ("cpu", "auto"))
    assert cpu == auto  # auto on a machine without a GPU is the CPU
    assert T.training_key(tiny_config(device="cuda"), "gru", prepared) != cpu


@needs_gpu
def test_gpu_trained_checkpoint_loads_and_predicts_on_the_cpu(prepared, tmp_path):
    cfg = tiny_config(epochs=4, device="cuda")
    gpu = train_model(cfg, None, "gru", tmp_path / "gpu", prepared=prepared)
    cpu = train_model(tiny_config(epochs=4), None, "gru", tmp_path / "cpu", prepared=prepared)
    assert gpu.metrics["device"] == "cuda" and cpu.metrics["device"] == "cpu"
    state = torch.load(gpu.checkpoint, weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())
    loaded = load_checkpoint(gpu.checkpoint)
    y = prepared.spec.denormalize_target(prepared.val["target"])
    rmse = np.sqrt(np.mean((predict(loaded.model, loaded.features, prepared.val) - y) ** 2, axis=(0, 1)))
    # the CPU rerun of the GPU weights reproduces the GPU's own validation score
    np.testing.assert_allclose(rmse, list(gpu.metrics["val_rmse_by_depth"].values()), rtol=1e-3)
    # same samples, order and starting weights: the GPU learns as well as the CPU (rounding differs)
    gpu_mean, cpu_mean = (np.mean(list(r.metrics["val_rmse_by_depth"].values())) for r in (gpu, cpu))
    assert gpu_mean < 1.15 * cpu_mean, (gpu_mean, cpu_mean)


@needs_gpu
def test_killed_gpu_training_resumes_from_its_last_epoch(prepared, tmp_path, monkeypatch):
    cfg = tiny_config(epochs=4, patience=10, device="cuda")
    whole = train_model(cfg, None, "gru", tmp_path / "whole", prepared=prepared)
    real_val_loss, calls = T._val_loss, []

    def dies_in_epoch_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_val_loss(*args)

    monkeypatch.setattr(T, "_val_loss", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, None, "gru", tmp_path / "killed", prepared=prepared)
    monkeypatch.setattr(T, "_val_loss", real_val_loss)
    resumed = train_model(cfg, None, "gru", tmp_path / "killed", prepared=prepared)
    ha, hb = (json.loads(r.checkpoint.with_suffix(".json").read_text())["history"] for r in (whole, resumed))
    assert [h["epoch"] for h in hb] == [1, 2, 3, 4]
    # the first two epochs are the saved ones; the resumed two agree to GPU rounding
    np.testing.assert_allclose([h["val_loss"] for h in hb], [h["val_loss"] for h in ha], rtol=1e-3)
