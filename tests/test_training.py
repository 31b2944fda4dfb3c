"""Training: reproducibility, learning beyond climatology, checkpoints (weights_only), progress, every model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rich.progress import Progress
from test_features import make_toy_dataset, tiny_config

from geothaw.errors import ConfigError
from geothaw.evaluation import evaluate_run
from geothaw.training import CheckpointError, load_checkpoint, predict, prepare_training_data, train_all, train_model


@pytest.fixture(scope="module")
def toy():
    return make_toy_dataset()


@pytest.fixture(scope="module")
def prepared(toy):
    return prepare_training_data(tiny_config(), toy)


def test_same_seed_gives_identical_weights_and_predictions(toy, tmp_path):
    cfg = tiny_config(epochs=2)
    a = train_model(cfg, toy, "gru", tmp_path / "a")
    b = train_model(cfg, toy, "gru", tmp_path / "b")
    sa, sb = torch.load(a.checkpoint, weights_only=True), torch.load(b.checkpoint, weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.metrics["val_rmse_by_depth"] == b.metrics["val_rmse_by_depth"]
    # A different seed changes the initial weights, so the result differs.
    c = train_model(tiny_config(epochs=2).model_copy(update={"seed": 8}), toy, "gru", tmp_path / "c")
    sc = torch.load(c.checkpoint, weights_only=True)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    # training.seed reseeds the networks only: the samples stay those of the run's seed, the weights change,
    # and setting it to the run's seed changes nothing.
    def with_training_seed(seed):
        return cfg.model_copy(update={"training": cfg.training.model_copy(update={"seed": seed})})
    assert prepare_training_data(with_training_seed(8), toy).fingerprint() == prepare_training_data(cfg, toy).fingerprint()
    d = train_model(with_training_seed(8), toy, "gru", tmp_path / "d")
    sd = torch.load(d.checkpoint, weights_only=True)
    assert not all(torch.equal(sa[k], sd[k]) for k in sa)
    e = train_model(with_training_seed(cfg.seed), toy, "gru", tmp_path / "e")
    se = torch.load(e.checkpoint, weights_only=True)
    assert all(torch.equal(sa[k], se[k]) for k in sa)
    assert with_training_seed(8).hash("training") != cfg.hash("training")


def test_gru_beats_climatology_on_held_out_years(toy, prepared, tmp_path):
    cfg = tiny_config()
    for name in ("climatology", "gru"):
        train_model(cfg, None, name, tmp_path, prepared=prepared)
    table = evaluate_run(cfg, toy, tmp_path, plots=False)
    sel = table[(table["band"] == "all") & (table["season"] == "annual") & (table["holdout"] == "time")]
    rmse = sel.groupby("model")["rmse"].mean()
    # Interannual anomalies are learnable from air temperature; climatology cannot know them.
    assert rmse["gru"] < 0.75 * rmse["climatology"], rmse.to_dict()
    assert (tmp_path / "evaluation" / "metrics.csv").exists() and (tmp_path / "evaluation" / "metrics.md").exists()


def test_every_model_trains_checkpoints_and_reloads(toy, prepared, tmp_path):
    cfg = tiny_config(epochs=1)
    with Progress(disable=True) as progress:
        results = train_all(cfg, toy, tmp_path, progress=progress)
        assert all(t.completed > 0 for t in progress.tasks) and len(progress.tasks) == 5
    assert set(results) == {"climatology", "linear", "gru", "tcn", "transformer", "conv1dlstm", "bilstm"}
    for name, res in results.items():
        meta = json.loads(res.checkpoint.with_suffix(".json").read_text())
        assert meta["model"] == name and meta["features"]["norm"]["target"]["mean"]
        assert meta["config"]["features"]["window_months"] == 24 and "torch" in meta["versions"]
        loaded = load_checkpoint(res.checkpoint)
        # Fresh model from disk predicts exactly what the trained one reported on validation.
        pred = predict(loaded.model, loaded.features, prepared.val)
        truth = loaded.features.denormalize_target(prepared.val["target"])
        rmse = np.sqrt(((pred - truth) ** 2).mean(axis=(0, 1)))
        np.testing.assert_allclose(rmse, list(res.metrics["val_rmse_by_depth"].values()), rtol=1e-5)
        assert pred.shape == (len(prepared.val["band"]), 12, 4)


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_checkpoint_loading_refuses_pickled_objects(toy, prepared, tmp_path):
    res = train_model(tiny_config(), None, "linear", tmp_path, prepared=prepared)
    assert load_checkpoint(res.checkpoint).meta["model"] == "linear"
    torch.save({"weight": _Evil()}, res.checkpoint)  # arbitrary object where tensors should be
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(res.checkpoint)
    torch.save([torch.zeros(2)], res.checkpoint)  # loadable, but not a state_dict
    with pytest.raises(CheckpointError, match="state_dict"):
        load_checkpoint(res.checkpoint)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_unknown_model_fails_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="valid names"):
        train_model(tiny_config(), None, "lstm", tmp_path)


def test_training_restores_torch_settings(prepared, tmp_path):
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    train_model(tiny_config(), None, "climatology", tmp_path, prepared=prepared)
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det


@pytest.mark.parametrize("options", [{"ema_epochs": 0.0}, {"ema_epochs": 1.0}], ids=["raw", "averaged"])
def test_killed_training_resumes_from_its_last_epoch_with_identical_weights(prepared, tmp_path, monkeypatch, options):
    import geothaw.training as T

    cfg = tiny_config(epochs=4, patience=10, **options)
    whole = train_model(cfg, None, "gru", tmp_path / "whole", prepared=prepared)

    real_val_loss, calls = T._val_loss, []

    def dies_in_epoch_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands in for kill -9 after epoch 2 was saved
        return real_val_loss(*args)

    monkeypatch.setattr(T, "_val_loss", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, None, "gru", tmp_path / "killed", prepared=prepared)
    resume_file = tmp_path / "killed" / "checkpoints" / "gru.resume.pt"
    assert resume_file.exists() and not (tmp_path / "killed" / "checkpoints" / "gru.pt").exists()

    calls.clear()
    monkeypatch.setattr(T, "_val_loss", lambda *a: (calls.append(1), real_val_loss(*a))[1])
    resumed = train_model(cfg, None, "gru", tmp_path / "killed", prepared=prepared)
    assert len(calls) == 2  # only epochs 3 and 4 ran again
    assert not resume_file.exists()
    sa, sb = (torch.load(r.checkpoint, weights_only=True) for r in (whole, resumed))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ha, hb = (_losses(r) for r in (whole, resumed))
    assert ha == hb


def _losses(result) -> list[dict]:
    """A checkpoint's training history without the epochs' wall times."""
    history = json.loads(result.checkpoint.with_suffix(".json").read_text())["history"]
    assert all(h["seconds"] > 0 for h in history)
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_weight_average_is_what_training_keeps(prepared, tmp_path):
    raw = train_model(tiny_config(epochs=3, patience=10, ema_epochs=0.0), None, "gru", tmp_path / "raw", prepared=prepared)
    avg = train_model(tiny_config(epochs=3, patience=10, ema_epochs=1.0), None, "gru", tmp_path / "avg",
                      prepared=prepared)
    sa, sb = (torch.load(r.checkpoint, weights_only=True) for r in (raw, avg))
    assert sa.keys() == sb.keys() and not all(torch.equal(sa[k], sb[k]) for k in sa)
    # The kept (averaged) weights are the ones that were validated: the recorded best loss is theirs.
    import geothaw.training as T

    loaded = load_checkpoint(avg.checkpoint)
    val = T.to_tensors(prepared.val, (*T.BATCH_KEYS, "target"))
    assert T._val_loss(loaded.model.eval(), val, torch.nn.MSELoss()) == pytest.approx(avg.metrics["val_loss"], rel=1e-5)


def test_resume_state_from_other_data_or_config_is_ignored(prepared, tmp_path):
    cfg = tiny_config(epochs=2)
    res = train_model(cfg, None, "gru", tmp_path, prepared=prepared)
    # A stale mid-training state of another configuration must not be picked up.
    import geothaw.training as T

    stale = T.training_key(tiny_config(epochs=3), "gru", prepared)
    assert stale != T.training_key(cfg, "gru", prepared)
    assert T._load_resume_state(res.checkpoint.with_suffix(".resume.pt"), stale) is None
    torch.save({"key": stale, "model": {}}, res.checkpoint.with_suffix(".resume.pt"))
    assert T._load_resume_state(res.checkpoint.with_suffix(".resume.pt"), T.training_key(cfg, "gru", prepared)) is None


def test_train_all_keeps_models_already_trained_on_the_same_data(toy, tmp_path):
    cfg = tiny_config(epochs=1, batch_size=64)
    first = train_all(cfg, toy, tmp_path, models=["linear", "gru", "tcn"])
    mtimes = {n: r.checkpoint.stat().st_mtime_ns for n, r in first.items()}
    (tmp_path / "checkpoints" / "tcn.pt").unlink()  # as if the run died while training tcn
    with Progress(disable=True) as progress:
        again = train_all(cfg, toy, tmp_path, progress=progress, models=["linear", "gru", "tcn"])
        kept = [t.description for t in progress.tasks if "kept" in t.description]
    assert kept == ["linear (trained earlier, kept)", "gru (trained earlier, kept)"]
    assert again["gru"].checkpoint.stat().st_mtime_ns == mtimes["gru"]
    assert again["linear"].checkpoint.stat().st_mtime_ns == mtimes["linear"]
    assert again["tcn"].checkpoint.exists() and again["gru"].metrics == first["gru"].metrics
    # Another configuration retrains everything.
    other = train_all(tiny_config(epochs=1, batch_size=64, learning_rate=1e-3), toy, tmp_path, models=["gru"])
    assert other["gru"].checkpoint.stat().st_mtime_ns != mtimes["gru"]


def test_networks_trained_in_parallel_processes_have_the_same_weights(toy, tmp_path):
    cfg = tiny_config(epochs=2, batch_size=64)
    serial = train_all(cfg.model_copy(update={"training": cfg.training.model_copy(update={"workers": 1})}), toy,
                       tmp_path / "serial", models=["linear", "gru", "tcn"])
    par_cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"workers": 2})})
    assert par_cfg.hash() == cfg.hash()  # how many processes train is not part of what is computed
    with Progress(disable=True) as progress:
        parallel = train_all(par_cfg, toy, tmp_path / "parallel", progress=progress, models=["linear", "gru", "tcn"])
        shown = {t.description.split()[0]: t.completed for t in progress.tasks}
    assert list(parallel) == ["linear", "gru", "tcn"]
    assert shown["gru"] > 0 and shown["tcn"] > 0  # the workers' progress reached the parent's display
    for name in ("gru", "tcn"):
        a = torch.load(serial[name].checkpoint, weights_only=True)
        b = torch.load(parallel[name].checkpoint, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert serial[name].metrics["val_rmse_by_depth"] == parallel[name].metrics["val_rmse_by_depth"]


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "processes"])
def test_shortlist_trains_only_the_best_networks_on_and_they_end_as_if_never_paused(toy, tmp_path, workers):
    models = ["linear", "gru", "tcn", "conv1dlstm"]
    full_cfg = tiny_config(epochs=4, patience=10, batch_size=64)
    full = train_all(full_cfg, toy, tmp_path / "full", models=models)
    cfg = tiny_config(epochs=4, patience=10, batch_size=64, shortlist_epochs=2, shortlist_size=1, workers=workers)
    assert cfg.hash() != full_cfg.hash()
    short = train_all(cfg, toy, tmp_path / "short", models=models)

    # The one with the lowest validation loss over epochs 1-2 went on to epoch 4, with the uninterrupted weights.
    first_two = {n: min(h["val_loss"] for h in _losses(full[n])[:2]) for n in models[1:]}
    (winner,) = [n for n in models[1:] if short[n].metrics["epochs_run"] == 4]
    assert winner == min(first_two, key=first_two.get)
    a, b = (torch.load(r[winner].checkpoint, weights_only=True) for r in (full, short))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(short[winner]) == _losses(full[winner])
    assert not short[winner].metrics["paused"]
    # The others kept their best weights of two epochs, and no saved training state is left behind.
    for n in set(models[1:]) - {winner}:
        assert short[n].metrics["paused"] and short[n].metrics["epochs_run"] == 2
        assert _losses(short[n]) == _losses(full[n])[:2]
    assert not list((tmp_path / "short" / "checkpoints").glob("*.resume.pt"))
    # A finished shortlist is kept as it is; the comparison says which networks it stopped.
    mtimes = {n: r.checkpoint.stat().st_mtime_ns for n, r in short.items()}
    again = train_all(cfg, toy, tmp_path / "short", models=models)
    assert {n: r.checkpoint.stat().st_mtime_ns for n, r in again.items()} == mtimes
    evaluate_run(cfg, toy, tmp_path / "short", plots=False)
    note = (tmp_path / "short" / "evaluation" / "metrics.md").read_text()
    stopped = ", ".join(sorted(set(models[1:]) - {winner}))
    assert f"Trained to the end: {winner} 4 epochs" in note and f"after 2 epochs (`training.shortlist_epochs`): {stopped}" in note


def test_ridge_linear_path_is_fitted_first_and_stays_frozen(prepared, tmp_path):
    import geothaw.training as T
    from geothaw.models import build_model
    from geothaw.models.base import ModelSpec

    cfg = tiny_config(epochs=2, linear_path="ridge")
    model = build_model("gru", ModelSpec.from_config(cfg, prepared.spec))
    # On an exactly linear target the fitted path reproduces it (normal equations accumulated in pieces).
    rng = np.random.default_rng(0)
    train = {k: prepared.train[k] for k in ("dynamic", "static")}
    d = train["dynamic"].shape[1] * train["dynamic"].shape[2] + train["static"].shape[1]
    w_true = rng.normal(size=(d, 48))
    x = np.concatenate([train["dynamic"].reshape(len(train["static"]), -1), train["static"]], axis=1)
    train["target"] = (x @ w_true + 0.5).reshape(-1, 12, 4).astype("float32")
    T.fit_linear_path(model, train, alpha=1e-6, rows=100)
    batch = T.to_tensors({**prepared.train, "target": train["target"]}, ("dynamic", "static", "band"))
    with torch.no_grad():
        lin = model.linear_response(batch).numpy()
    np.testing.assert_allclose(lin, train["target"], atol=2e-3)
    # In training the fitted path is frozen: the checkpoint holds the ridge solution, the network moved.
    res = train_model(cfg, None, "gru", tmp_path, prepared=prepared)
    fitted = build_model("gru", ModelSpec.from_config(cfg, prepared.spec))
    T.fit_linear_path(fitted, prepared.train, cfg.training.ridge_alpha)
    state = torch.load(res.checkpoint, weights_only=True)
    assert torch.equal(state["linear_response.proj.weight"], fitted.linear_response.proj.weight)
    # ... and, started at zero, the network on top does not lose what the linear path gets (the toy target is
    # almost linear; a network starting from random output ended 3.5 % worse than ridge alone here).
    val = T.to_tensors(prepared.val, ("dynamic", "static", "band"))
    with torch.no_grad():
        lin_only = prepared.spec.denormalize_target(fitted.linear_response(val).numpy())
    truth = prepared.spec.denormalize_target(prepared.val["target"])
    lin_rmse = np.sqrt(((lin_only - truth) ** 2).mean(axis=(0, 1)))
    assert np.mean(list(res.metrics["val_rmse_by_depth"].values())) <= 1.01 * lin_rmse.mean()


def test_shuffled_batches_are_the_batches_dataloader_gives():
    """The trained weights (and every accuracy figure measured with DataLoader) stay the same."""
    from torch.utils.data import DataLoader, TensorDataset

    from geothaw.training import shuffled_batches

    x, y = torch.randn(1003, 3, 2), torch.randn(1003, 5)
    ours_gen, theirs_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, generator=theirs_gen, num_workers=0)
    for _epoch in range(3):
        ours = list(shuffled_batches([x, y], 128, ours_gen))
        theirs = list(loader)
        assert len(ours) == len(theirs) == 8
        for a, b in zip(ours, theirs):
            assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert torch.equal(ours_gen.get_state(), theirs_gen.get_state())


def test_an_early_stop_finishes_the_progress_bar(prepared, tmp_path):
    # a learning rate this small leaves the validation loss where it was: patience 1 stops at epoch 2 of 5
    cfg = tiny_config(epochs=5, patience=1, learning_rate=1e-12, ema_epochs=0.0)
    with Progress(disable=True) as progress:
        res = train_model(cfg, None, "gru", tmp_path, progress, prepared=prepared)
        (task,) = progress.tasks
    assert res.metrics["epochs_run"] == 2 and res.metrics["best_epoch"] == 1
    assert task.finished and task.completed == task.total and "stopped at ep 2, best ep 1" in task.description


def test_climatology_knows_every_training_cell_not_only_the_sampled_ones(toy, tmp_path):
    from geothaw.features import TARGETS, make_inputs, prepare

    cfg = tiny_config(max_train_cells=4)
    data = prepare_training_data(cfg, toy)
    rows, cols = data.split.train_cells()
    assert rows.size > 10 and len(np.unique(data.train["coords"], axis=0)) <= 4  # most cells unsampled
    loaded = load_checkpoint(train_model(cfg, None, "climatology", tmp_path, prepared=data).checkpoint)
    ds = prepare(toy)
    raw = make_inputs(ds, data.split.holdout_years, loaded.features, cells=(rows, cols), with_target=True,
                      normalize=False)
    pred = predict(loaded.model, loaded.features, loaded.features.normalize(raw))
    in_training = np.isin(ds["time"].dt.year.values, data.split.train_years)
    own = ds[list(TARGETS)].isel(time=np.flatnonzero(in_training)).groupby("time.month").mean()
    expected = np.stack([own[v].transpose("month", "latitude", "longitude").values[:, raw["row"], raw["col"]]
                         for v in TARGETS], axis=-1).transpose(1, 0, 2)
    np.testing.assert_allclose(pred, expected, atol=2e-3)  # each cell's own training-period monthly means
