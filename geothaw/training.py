"""Training: one entry function per model (:func:`train_model`) and one for the zoo (:func:`train_all`).

Data flow: canonical dataset → :func:`prepare_training_data` (evaluation hold-outs removed first, a seeded
subset of at most ``training.max_train_cells`` cells, a validation split *by cells* over training years,
normalisation fitted on the training cells only) → Adam + plateau LR schedule + a moving average of the
weights + early stopping on the validation loss → checkpoint ``<run_dir>/checkpoints/<model>.pt``
(``state_dict`` only) and ``<model>.json`` (model/feature spec, normalisation, config slice, versions,
metrics). Checkpoints load with ``torch.load(..., weights_only=True)`` only.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .config import drop_unset_training_keys
from .cpus import available_cpus
from .errors import CheckpointError, ConfigError, InputDataError
from .features import TARGETS, FeatureSpec, latitude_bands, make_inputs, prepare
from .io.atomic import atomic_path, write_text_atomic
from .models import build_model, get_model_class
from .models.base import BaseModel, ModelSpec
from .models.ridge import ridge_solution
from .versions import collect_versions

CHECKPOINT_DIR = "checkpoints"
BATCH_KEYS = ("dynamic", "static", "band", "coords")


@dataclass
class PreparedData:
    """Normalised training/validation samples plus what is needed to rebuild them."""

    spec: FeatureSpec
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    split: "Split"  # noqa: F821 - geothaw.evaluation.Split
    train_cells: tuple[np.ndarray, np.ndarray]
    val_cells: tuple[np.ndarray, np.ndarray]
    cell_means: dict[str, np.ndarray] | None = None  # per-cell training-period climatology (see climatology_samples)
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def fingerprint(self) -> str:
        """A digest of the normalised samples and feature spec (computed once): equal digests mean a checkpoint
        trained on them can be reused instead of retrained (training is deterministic for a seed)."""
        if self._digest is not None:
            return self._digest
        h = hashlib.sha256(json.dumps(self.spec.to_dict(), sort_keys=True, default=str).encode())
        for part in (self.train, self.val):
            for key in sorted(part):
                a = np.ascontiguousarray(part[key])
                h.update(f"{key}:{a.dtype}:{a.shape}".encode())
                h.update(memoryview(a).cast("B"))
        self._digest = h.hexdigest()[:16]
        return self._digest


@dataclass
class TrainResult:
    name: str
    checkpoint: Path
    metrics: dict = field(default_factory=dict)


@dataclass
class LoadedModel:
    model: torch.nn.Module
    features: FeatureSpec
    meta: dict


# ---- determinism / threads ------------------------------------------------------------------------
def resolve_device(requested: str) -> str:
    """``training.device`` as torch will use it: ``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def training_device(cfg) -> torch.device:
    """The device the networks train on, or a one-line error when ``cuda`` is asked for and torch sees none."""
    name = resolve_device(cfg.training.device)
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.device is 'cuda' but torch {torch.__version__} sees no CUDA GPU; "
                          "use 'cpu' or 'auto'")
    return torch.device(name)


@contextlib.contextmanager
def torch_runtime(seed: int, threads: int | None = None, device: torch.device | None = None
                  ) -> Iterator[torch.Generator]:
    """Seed torch, set the thread count and (on a GPU) switch on deterministic algorithms — restored
    afterwards, so library calls leave the caller's torch settings as they were.

    One thread by default: with small batches on a shared 2-core machine, 2 intra-op threads made a GRU
    training step ~10× *slower* (0.04 s → 0.45 s at batch 128) than one thread. On a GPU some backward kernels
    (the band embedding's) have no deterministic version, so there the deterministic switch only warns and the
    warning is silenced: GPU training is reproducible to floating-point rounding, not to the bit.

    On the CPU the switch is left alone: the CPU kernels these models use are deterministic at a fixed thread
    count (the determinism tests check it), and the switch imports torch's compiler config, ≈ 2.3 s per process.
    """
    gpu = device is not None and device.type == "cuda"
    if gpu:  # cuBLAS is deterministic only with a fixed workspace, set before its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads or 1)
    if gpu:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)  # seeds the GPU generators too
    try:
        with warnings.catch_warnings():
            if gpu:
                warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
                warnings.filterwarnings("ignore", message=".*defaults to a non-deterministic algorithm.*")
            yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(prev_threads)
        if gpu:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


def to_tensors(batch: dict[str, np.ndarray], keys=BATCH_KEYS) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.ascontiguousarray(batch[k])) for k in keys if k in batch}


# ---- data ------------------------------------------------------------------------------------------
def prepare_training_data(cfg, dataset: xr.Dataset) -> PreparedData:
    """Split off the evaluation hold-outs, subsample cells, split validation cells, fit normalisation."""
    from .evaluation import make_split

    ds = prepare(dataset)
    split = make_split(cfg, ds)
    rows, cols = split.train_cells()
    if rows.size < 2:
        raise InputDataError(f"only {rows.size} training cells left after the spatial hold-out; enlarge the domain")
    rng = np.random.default_rng(cfg.seed)
    if rows.size > cfg.training.max_train_cells:  # memory bound: windows for a seeded subset of cells
        keep = np.sort(rng.choice(rows.size, cfg.training.max_train_cells, replace=False))
        rows, cols = rows[keep], cols[keep]
    n_val = max(1, int(round(cfg.training.val_fraction * rows.size)))
    is_val = np.zeros(rows.size, bool)
    is_val[rng.choice(rows.size, n_val, replace=False)] = True
    years = split.train_years
    spec = FeatureSpec.from_dataset(ds, cfg.features, band_edges=cfg.domain.band_edges,
                                    static_years=(int(years.min()), int(years.max())))
    raw_tr = make_inputs(ds, years, spec, cells=(rows[~is_val], cols[~is_val]), with_target=True, normalize=False)
    raw_va = make_inputs(ds, years, spec, cells=(rows[is_val], cols[is_val]), with_target=True, normalize=False)
    if len(raw_tr["year"]) == 0 or len(raw_va["year"]) == 0:
        raise InputDataError("no complete training/validation samples (check targets stl1..stl4 and forcing for NaN)")
    spec.fit_normalization(raw_tr)  # training cells and years only: no hold-out statistics leak in
    return PreparedData(spec, spec.normalize(raw_tr), spec.normalize(raw_va), split,
                        (rows[~is_val], cols[~is_val]), (rows[is_val], cols[is_val]),
                        cell_means=climatology_samples(ds, split, spec))


def climatology_samples(ds: xr.Dataset, split, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """One normalised sample per land cell outside the held-out blocks: the cell's monthly mean of each layer
    over the training years. The climatology baseline fits on these, so it knows every cell the time hold-out
    scores, not only the few thousand whose windows were sampled for the networks (the others fell back to
    their latitude band's mean: an easier baseline to beat than a cell's own climatology). Only training
    years enter, and no held-out block."""
    rows, cols = split.train_cells()
    in_training = np.isin(ds["time"].dt.year.values, split.train_years)
    targets = ds[list(TARGETS)].isel(time=np.flatnonzero(in_training))
    means = targets.groupby("time.month").mean("time").transpose("month", "latitude", "longitude")
    table = np.stack([means[v].values[:, rows, cols] for v in TARGETS], axis=-1).transpose(1, 0, 2)  # cells, 12, 4
    ok = np.isfinite(table).all(axis=(1, 2))
    lat = ds["latitude"].values[rows[ok]].astype("float32")
    lon = ds["longitude"].values[cols[ok]].astype("float32")
    return spec.normalize({"target": table[ok].astype("float32"), "coords": np.stack([lat, lon], axis=-1),
                           "band": latitude_bands(spec, lat).astype("int64")})


# ---- prediction ------------------------------------------------------------------------------------
@torch.inference_mode()
def predict(model: torch.nn.Module, features: FeatureSpec, batch: dict[str, np.ndarray], batch_size: int = 4096
            ) -> np.ndarray:
    """Predictions in °C, ``[N, 12, 4]``, for a normalised ``make_inputs`` batch (batched to bound memory)."""
    model.eval()
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    n = len(batch["band"])
    out = np.empty((n, 12, len(TARGETS)), dtype="float32")
    for i in range(0, n, batch_size):
        part = to_tensors({k: v[i:i + batch_size] for k, v in batch.items() if k in BATCH_KEYS})
        out[i:i + batch_size] = model({k: v.to(device) for k, v in part.items()})["y_hat"].cpu().numpy()
    return features.denormalize_target(out)


def _rmse_by_depth(y: np.ndarray, y_hat: np.ndarray) -> list[float]:
    return [float(v) for v in np.sqrt(np.mean((y - y_hat) ** 2, axis=(0, 1)))]


# ---- training --------------------------------------------------------------------------------------
def shuffled_batches(tensors: list[torch.Tensor], batch_size: int, gen: torch.Generator) -> Iterator[list[torch.Tensor]]:
    """One epoch of shuffled mini-batches, each gathered with one index per tensor.

    Draws from ``gen`` as ``DataLoader(TensorDataset(*tensors), batch_size, shuffle=True, generator=gen)`` does
    in an epoch (an int64 for its worker base seed, the permutation, and a second permutation that its
    ``RandomSampler`` draws, for the remainder it never uses, when it runs out), so the batches, and the trained
    weights, are the ones DataLoader gives (tests/test_training.py checks it over several epochs). DataLoader
    gathers and collates sample by sample: ~30 µs per sample, 3 s of the quick run's 20 s of training and
    minutes of the full run's.
    """
    n = len(tensors[0])
    torch.empty((), dtype=torch.int64).random_(generator=gen)
    order = torch.randperm(n, generator=gen)
    torch.randperm(n, generator=gen)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield [t[idx] for t in tensors]


def _fit_neural(model: BaseModel, cfg, data: PreparedData, gen: torch.Generator, progress=None,
                resume_path: Path | None = None, resume_key: str = "", device: torch.device | None = None,
                pause_after: int | None = None) -> dict:
    """Adam + plateau schedule + early stopping. With ``training.ema_epochs`` > 0 the weights that are validated
    and kept are an exponential moving average of the trained ones (the large constant step leaves the raw
    weights noisy; docs/results.md §5i). With ``resume_path`` the full training state is saved after
    every epoch (atomically), and a state saved under the same ``resume_key`` is picked up: a killed run goes on
    from its last finished epoch and ends with the same weights as an uninterrupted one.

    The model is expected on ``device`` already; batches are shuffled on the CPU (the same order on any device)
    and moved there one at a time.

    With ``pause_after`` training stops after that epoch with its state saved (``paused`` in the result) unless
    it ended earlier; a later call without it goes on from there as if it had never stopped (the shortlist of
    :func:`train_all`)."""
    device = device or torch.device("cpu")
    tr = to_tensors(data.train, (*BATCH_KEYS, "target"))
    va = {k: v.to(device) for k, v in to_tensors(data.val, (*BATCH_KEYS, "target")).items()}
    keys = list(tr)
    n_batches = -(-len(tr[keys[0]]) // cfg.training.batch_size)
    if cfg.training.linear_path == "ridge" and hasattr(model, "linear_response"):
        fit_linear_path(model, data.train, cfg.training.ridge_alpha)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.training.learning_rate)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, cfg.training.patience // 2))
    ema = _weight_average(model, cfg.training.ema_epochs, n_batches)
    scored = ema.module if ema is not None else model  # the weights that are validated and kept
    loss_fn = torch.nn.MSELoss()
    best, best_state, best_epoch, bad, history = float("inf"), None, 0, 0, []
    first_epoch = 1
    state = _load_resume_state(resume_path, resume_key)
    if state is not None:
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None and state["cuda_rng"].numel():
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        best, best_epoch, bad, history = state["best"], state["best_epoch"], state["bad"], state["history"]
        best_state = state["best_state"] or None
        first_epoch = len(history) + 1
    last_epoch = cfg.training.epochs if pause_after is None else min(pause_after, cfg.training.epochs)
    task = progress.add_task(f"{model.name}", total=last_epoch * n_batches,
                             completed=min(first_epoch - 1, last_epoch) * n_batches) if progress is not None else None
    stopped = state is not None and bad >= cfg.training.patience
    earlier_seconds = sum(h.get("seconds", 0.0) for h in history)  # epochs trained before a kill or a pause
    for epoch in range(first_epoch, 0 if stopped else last_epoch + 1):
        t_epoch = time.perf_counter()
        model.train()
        run, nb = 0.0, 0
        for tensors in shuffled_batches([tr[k] for k in keys], cfg.training.batch_size, gen):
            b = {k: t.to(device, non_blocking=True) for k, t in zip(keys, tensors)}
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(b)["y_hat"], b["target"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # RNNs occasionally spike early on
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            run, nb = run + loss.item(), nb + 1
            if task is not None:
                progress.update(task, advance=1, description=f"{model.name} ep {epoch} loss {run / nb:.4f}")
        model.eval()
        scored.eval()
        val = _val_loss(scored, va, loss_fn)
        sched.step(val)
        history.append({"epoch": epoch, "train_loss": run / max(nb, 1), "val_loss": val,
                        "seconds": round(time.perf_counter() - t_epoch, 3)})
        if task is not None:
            progress.update(task, description=f"{model.name} ep {epoch} loss {run / max(nb, 1):.4f} val {val:.4f}")
        if val < best - 1e-6:
            best, best_state, best_epoch, bad = val, copy.deepcopy(scored.state_dict()), epoch, 0
        else:
            bad += 1
        if resume_path is not None:
            _save_resume_state(resume_path, resume_key, model, opt, sched, gen, best, best_state, best_epoch, bad,
                               history, device, ema)
        if bad >= cfg.training.patience:
            break
    paused = len(history) < cfg.training.epochs and bad < cfg.training.patience
    if task is not None and (paused or len(history) < cfg.training.epochs):  # end the bar there, not at its ETA
        how = "paused for the shortlist" if paused else "stopped"
        progress.update(task, total=len(history) * n_batches,
                        description=f"{model.name} {how} at ep {len(history)}, best ep {best_epoch} val {best:.4f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"best_epoch": best_epoch, "epochs_run": len(history), "val_loss": best, "history": history,
            "paused": paused, "earlier_seconds": earlier_seconds}


def fit_linear_path(model: BaseModel, train: dict[str, np.ndarray], alpha: float, rows: int = 16384) -> None:
    """Set the model's linear response path to the ridge solution on the training samples and freeze it.

    Trained jointly, the network takes over part of the response to warmer air inside the training climate and
    then saturates beyond it, so the models under-warmed late-century RCP8.5 (docs/results.md §5f). Fitted
    first, the linear path carries the whole linear response, as the ridge baseline does (which extrapolates
    the warming well), and the network learns only the nonlinear remainder; its output layer starts at zero, so
    training starts from the ridge model rather than from ridge plus noise. Normal equations are accumulated
    ``rows`` samples at a time, so memory does not grow with the sample count.
    """
    dyn, static, target = train["dynamic"], train["static"], train["target"]
    blocks = ((np.concatenate([dyn[p].reshape(len(dyn[p]), -1), static[p]], axis=1),
               target[p].reshape(len(target[p]), -1)) for p in (slice(i, i + rows) for i in range(0, len(target), rows)))
    weight, bias = ridge_solution(blocks, alpha)
    proj = model.linear_response.proj
    with torch.no_grad():
        proj.weight.copy_(torch.as_tensor(weight.T, dtype=proj.weight.dtype))
        proj.bias.copy_(torch.as_tensor(bias, dtype=proj.bias.dtype))
    model.linear_response.requires_grad_(False)
    last = model.head.net[-1]  # start as the ridge model: the network's share begins at zero, not at noise
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


def _weight_average(model: torch.nn.Module, ema_epochs: float, n_batches: int):
    """An exponential moving average of the weights over ``ema_epochs`` epochs of steps, or None when 0."""
    if ema_epochs <= 0:
        return None
    decay = 1.0 - 1.0 / max(ema_epochs * n_batches, 1.0)
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay),
                                               use_buffers=True)


def _save_resume_state(path: Path, key: str, model, opt, sched, gen, best, best_state, best_epoch, bad,
                       history, device: torch.device | None = None, ema=None) -> None:
    gpu = device is not None and device.type == "cuda"  # dropout on a GPU draws from the GPU's own generator
    state = {"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state(device) if gpu else torch.empty(0, dtype=torch.uint8),
             "best": float(best),
             "best_state": best_state or {}, "best_epoch": int(best_epoch), "bad": int(bad), "history": history,
             "ema": ema.state_dict() if ema is not None else {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_resume_state(path: Path | None, key: str) -> dict | None:
    """The saved mid-training state, or None when there is none, it is unreadable, or it belongs to other data or
    another configuration (then training starts over)."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn or foreign file just means: start this model over
        return None
    return state if isinstance(state, dict) and state.get("key") == key else None


@torch.inference_mode()
def _val_loss(model: torch.nn.Module, va: dict[str, torch.Tensor], loss_fn) -> float:
    n, tot = len(va["band"]), 0.0
    for i in range(0, n, 8192):
        part = {k: v[i:i + 8192] for k, v in va.items()}
        tot += float(loss_fn(model(part)["y_hat"], part["target"])) * len(part["band"])
    return tot / n


def training_key(cfg, model_name: str, data: PreparedData) -> str:
    """What a checkpoint's training depended on: the model name, the samples and the config slice."""
    slice_ = json.dumps(_config_slice(cfg), sort_keys=True, default=str)
    # a baseline fitted on every training cell's climatology is not the one fitted on the sampled windows
    fitted_on = "|cell-means" if getattr(get_model_class(model_name), "fits_cell_means", False) else ""
    return hashlib.sha256(f"{model_name}|{data.fingerprint()}|{slice_}{fitted_on}".encode()).hexdigest()[:16]


def train_model(cfg, dataset: xr.Dataset | None, model_name: str, run_dir: str | Path, progress=None, *,
                prepared: PreparedData | None = None, key: str | None = None,
                pause_after: int | None = None) -> TrainResult:
    """Train (or fit, for baselines) one registered model and write its checkpoint into ``run_dir``.

    ``progress`` is an optional ``rich.progress.Progress``; a task with the running loss is added to it.
    Pass ``prepared`` (from :func:`prepare_training_data`) to reuse samples across models. A neural model's
    training state is saved after every epoch next to the checkpoint (``<model>.resume.pt``) and picked up by a
    rerun with the same data and config, so a killed run loses at most one epoch. With ``pause_after`` a
    network stops after that many epochs: its checkpoint holds the best weights so far (``paused`` in its
    metrics) and its training state is kept, so training it again without the pause goes on from there.
    """
    cls = get_model_class(model_name)  # unknown names fail before any data work
    data = prepared if prepared is not None else prepare_training_data(cfg, dataset)
    key = key or training_key(cfg, model_name, data)
    mspec = ModelSpec.from_config(cfg, data.spec)
    path = Path(run_dir) / CHECKPOINT_DIR / f"{model_name}.pt"
    resume_path = path.with_suffix(".resume.pt")
    device = training_device(cfg) if cls.kind != "baseline" else torch.device("cpu")
    t0 = time.perf_counter()
    with torch_runtime(cfg.training_seed(), cfg.training.num_threads, device) as gen:
        model = cls(mspec)  # initialised on the CPU: the same starting weights on any device
        fit_on = data.cell_means if cls.kind == "baseline" and cls.fits_cell_means and data.cell_means else data.train
        if cls.kind == "baseline":
            model.fit(fit_on)
            fit_info: dict = {}
        else:
            model.to(device)
            fit_info = _fit_neural(model, cfg, data, gen, progress, resume_path=resume_path, resume_key=key,
                                   device=device, pause_after=pause_after)
        val_pred = predict(model, data.spec, data.val)
    val_true = data.spec.denormalize_target(data.val["target"])
    metrics = {
        **{k: v for k, v in fit_info.items() if k not in ("history", "earlier_seconds")},
        "val_rmse_by_depth": dict(zip(TARGETS, _rmse_by_depth(val_true, val_pred))),
        "train_seconds": round(time.perf_counter() - t0 + fit_info.get("earlier_seconds", 0.0), 3),
        "n_train_samples": int(len(fit_on["band"])),
        "n_val_samples": int(len(data.val["band"])),
        "device": device.type,
    }
    k = cfg.training.shortlist_epochs
    if k is not None and fit_info.get("history"):  # what the shortlist ranks by, whenever it is asked
        metrics["shortlist_val_loss"] = min(h["val_loss"] for h in fit_info["history"][:k])
    save_checkpoint(model, data.spec, path, cfg=cfg, metrics=metrics, split=data.split.summary(),
                    history=fit_info.get("history", []), training_key=key)
    if not fit_info.get("paused"):
        resume_path.unlink(missing_ok=True)
    return TrainResult(model_name, path, metrics)


def finished_checkpoint(run_dir: str | Path, model_name: str, key: str) -> TrainResult | None:
    """The checkpoint of ``model_name`` in ``run_dir`` if it was trained with ``key`` and loads; else None."""
    path = Path(run_dir) / CHECKPOINT_DIR / f"{model_name}.pt"
    try:
        loaded = load_checkpoint(path)
    except (CheckpointError, json.JSONDecodeError, KeyError, TypeError):
        return None
    if loaded.meta.get("training_key") != key:
        return None
    return TrainResult(model_name, path, loaded.meta.get("metrics", {}))


# Below this many sample-epochs a second training process is not worth its start-up (≈ 5 s to import torch and
# receive the samples, while this process already trains). Measured on the quick config: over the whole box
# (17,340) two processes were 2.5 s faster than one (18.6/19.2 s against 20.9/22.3 s); clipped to Alaska (12,240,
# its committed size) they were no faster (17.8/19.1 s against 17.5/19.2 s), so it trains in one, as do the tests.
PARALLEL_MIN_SAMPLE_EPOCHS = 15_000


def training_workers(cfg, data: PreparedData, n_networks: int) -> int:
    """How many networks to train at once: ``training.workers``, or one per core when there is enough work."""
    if resolve_device(cfg.training.device) == "cuda":  # one GPU: the networks take turns on it
        return 1
    if cfg.training.workers is not None:
        return max(1, min(cfg.training.workers, n_networks))
    big = len(data.train["band"]) * cfg.training.epochs >= PARALLEL_MIN_SAMPLE_EPOCHS
    return max(1, min(available_cpus() // max(1, cfg.training.num_threads), n_networks)) if big else 1


def train_all(cfg, dataset: xr.Dataset, run_dir: str | Path, progress=None,
              models: list[str] | None = None) -> dict[str, TrainResult]:
    """Train ``training.models`` + ``training.baselines`` on one shared set of prepared samples.

    A model whose checkpoint was already trained on the same samples with the same config is kept as it is
    (training is deterministic for a seed, so retraining would give the same weights): a run killed during the
    training stage resumes with the next unfinished model, from its last finished epoch. The networks train in
    parallel processes (``training.workers``), each with its own seed and ``training.num_threads`` threads, so
    their weights are the same as when trained one after the other.

    With ``training.shortlist_epochs`` (k) the networks train in two rounds: all of them k epochs, then only the
    ``training.shortlist_size`` with the lowest validation loss in those epochs go on, from where they paused,
    to ``training.epochs``. A network that goes on ends with the weights of an uninterrupted training; the
    others keep their best weights of the k epochs.
    """
    names = models if models is not None else [*cfg.training.baselines, *cfg.training.models]
    classes = {n: get_model_class(n) for n in names}
    data = prepare_training_data(cfg, dataset)
    results: dict[str, TrainResult] = {}
    todo: list[tuple[str, str]] = []
    keys = {n: training_key(cfg, n, data) for n in names}
    for n, key in keys.items():
        done = finished_checkpoint(run_dir, n, key)
        if done is not None:
            if progress is not None:
                how = "paused earlier for the shortlist" if done.metrics.get("paused") else "trained earlier, kept"
                progress.add_task(f"{n} ({how})", total=1, completed=1)
            results[n] = done
        elif classes[n].kind == "baseline":  # seconds: fit here, before any process starts
            results[n] = train_model(cfg, None, n, run_dir, progress, prepared=data, key=key)
        else:
            todo.append((n, key))
    k = cfg.training.shortlist_epochs
    results.update(_train_networks(cfg, data, todo, run_dir, progress, pause_after=k))
    if k is not None:
        networks = [n for n in names if classes[n].kind != "baseline"]
        go_on = shortlist({n: results[n].metrics for n in networks}, cfg.training.shortlist_size)
        todo = [(n, keys[n]) for n in go_on if results[n].metrics.get("paused")]
        results.update(_train_networks(cfg, data, todo, run_dir, progress))
        for n in set(networks) - set(go_on):  # their training ends here: its saved state is not needed
            (Path(run_dir) / CHECKPOINT_DIR / f"{n}.resume.pt").unlink(missing_ok=True)
    return {n: results[n] for n in names}


def shortlist(metrics: dict[str, dict], size: int) -> list[str]:
    """The ``size`` networks with the lowest validation loss over the shortlist's epochs (ties: by name)."""
    return sorted(metrics, key=lambda n: (metrics[n].get("shortlist_val_loss", float("inf")), n))[:size]


def _train_networks(cfg, data: PreparedData, todo: list[tuple[str, str]], run_dir: str | Path, progress,
                    pause_after: int | None = None) -> dict[str, TrainResult]:
    """Train the networks ``todo`` (name, key), in parallel processes when that gains (:func:`training_workers`)."""
    workers = training_workers(cfg, data, len(todo))
    if workers == 1:
        return {n: train_model(cfg, None, n, run_dir, progress, prepared=data, key=key, pause_after=pause_after)
                for n, key in todo}
    return _train_in_processes(cfg, data, todo, Path(run_dir), progress, workers, pause_after)


# Training cost of the full default's networks (docs/results.md §9i): transformer 1,009 s (stopped early after 19
# epochs; 30 take ≈ 1,600), TCN 1,190, GRU 877, BiLSTM 777, Conv1D-LSTM 559. The longest start first, so the
# processes finish close together: with the TCN last (an order from older costs), it once ran 31 minutes alone.
_TRAINING_COST_ORDER = ("transformer", "tcn", "bilstm", "gru", "conv1dlstm")


def _longest_first(todo: list[tuple[str, str]]) -> list[tuple[str, str]]:
    rank = {n: i for i, n in enumerate(_TRAINING_COST_ORDER)}
    return sorted(todo, key=lambda job: rank.get(job[0], -1))  # unknown (user) models first: cost unknown


def _train_in_processes(cfg, data: PreparedData, todo: list[tuple[str, str]], run_dir: Path, progress,
                        workers: int, pause_after: int | None = None) -> dict[str, TrainResult]:
    """Train ``todo`` on ``workers`` CPUs: this process and ``workers - 1`` spawned ones, each taking the next
    network when it is free. The parent trains too because it already holds torch and the samples, which a
    spawned process needs ≈ 5 s to import and receive; and its memory is one copy of the samples fewer."""
    # spawn, not fork: the parent holds threads (rich's refresh, dask) whose locks a fork would copy
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    jobs = _longest_first(todo)
    lock = threading.Lock()
    stop = threading.Event()
    failure: list[BaseException] = []
    results: dict[str, TrainResult] = {}
    tasks: dict[str, int] = {}

    def next_job() -> tuple[str, str] | None:
        with lock:
            return jobs.pop(0) if jobs and not stop.is_set() else None

    pool = ProcessPoolExecutor(workers - 1, mp_context=ctx, initializer=_init_training_worker,
                               initargs=(data, messages, os.getpid()))

    def feed_pool() -> None:
        """Keep every spawned process busy with the next network and replay their progress on our display."""
        running: dict = {}
        try:
            while True:
                while len(running) < workers - 1 and (job := next_job()) is not None:
                    running[pool.submit(_train_in_worker, cfg, job[0], str(run_dir), job[1], pause_after)] = job[0]
                if not running:
                    break
                finished, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                _forward_progress(messages, progress, tasks)
                for f in finished:
                    results[running.pop(f)] = f.result()  # a failed model stops the stage (see below)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            failure.append(exc)
            stop.set()
        finally:
            _forward_progress(messages, progress, tasks)

    # a daemon: after a failure or Ctrl-C here it may still be waiting for a network a process is training
    feeder = threading.Thread(target=feed_pool, name="geothaw-training-feeder", daemon=True)
    feeder.start()
    try:
        # a network that fails in a spawned process stops the stage once the one trained here is finished
        while (job := next_job()) is not None:
            results[job[0]] = train_model(cfg, None, job[0], run_dir, progress, prepared=data, key=job[1],
                                          pause_after=pause_after)
        feeder.join()
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    if failure:
        pool.shutdown(wait=False, cancel_futures=True)
        raise failure[0]
    pool.shutdown()
    return results


def _forward_progress(messages, progress, tasks: dict[str, int]) -> None:
    """Replay the workers' progress messages on the parent's rich display."""
    while True:
        try:
            kind, name, kw = messages.get_nowait()
        except queue_mod.Empty:
            return
        if progress is None:
            continue
        if kind == "add":
            tasks[name] = progress.add_task(**kw)
        elif name in tasks:
            progress.update(tasks[name], **kw)


class _ForwardedProgress:
    """What :func:`_fit_neural` needs of rich's ``Progress``, sent to the parent at most 4 times a second."""

    def __init__(self, messages, name: str):
        self.messages, self.name, self.pending, self.last = messages, name, {}, 0.0

    def add_task(self, description: str, total: float | None = None, completed: float = 0) -> str:
        self.messages.put(("add", self.name, {"description": description, "total": total, "completed": completed}))
        return self.name

    def update(self, task, advance: float = 0, **kw) -> None:
        self.pending["advance"] = self.pending.get("advance", 0) + advance
        self.pending.update(kw)
        if time.monotonic() - self.last >= 0.25 or "val" in kw.get("description", ""):
            self.messages.put(("update", self.name, self.pending))
            self.pending, self.last = {}, time.monotonic()


_WORKER: dict = {}


def _init_training_worker(data: PreparedData, messages, parent_pid: int) -> None:
    _WORKER.update(data=data, messages=messages)

    def exit_with_parent() -> None:  # a killed run must not leave orphans training on
        while True:
            time.sleep(2.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()


def _train_in_worker(cfg, name: str, run_dir: str, key: str, pause_after: int | None = None) -> TrainResult:
    progress = _ForwardedProgress(_WORKER["messages"], name)
    return train_model(cfg, None, name, run_dir, progress, prepared=_WORKER["data"], key=key,
                       pause_after=pause_after)


# ---- checkpoints -----------------------------------------------------------------------------------
def _config_slice(cfg) -> dict:
    if cfg is None:
        return {}
    d = cfg.model_dump(mode="json")
    d["training"].pop("workers", None)  # how many processes train, not what they compute
    drop_unset_training_keys(d["training"])
    d["training"]["device"] = resolve_device(d["training"]["device"])  # GPU weights differ from CPU ones in rounding
    return {"seed": d["seed"], "features": d["features"], "training": d["training"], "evaluation": d["evaluation"],
            "band_edges": d["domain"]["band_edges"]}


def save_checkpoint(model: torch.nn.Module, features: FeatureSpec, path: str | Path, *, cfg=None,
                    metrics: dict | None = None, split: dict | None = None, history: list | None = None,
                    training_key: str | None = None) -> Path:
    """Write ``<path>`` (state_dict) and ``<path>.json`` (everything else), both atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)  # loads without a GPU
    meta = {
        "model": model.name, "kind": model.kind, "model_spec": model.spec.to_dict(), "features": features.to_dict(),
        "config": _config_slice(cfg), "metrics": metrics or {}, "split": split or {}, "history": history or [],
        "versions": collect_versions(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "state_dict": path.name, "training_key": training_key,
    }
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2))
    return path


def load_checkpoint(path: str | Path) -> LoadedModel:
    """Rebuild a model from ``<name>.pt`` + ``<name>.json``; refuses anything but a tensor ``state_dict``."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (and {meta_path.name})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - weights_only raises UnpicklingError/RuntimeError variants
        raise CheckpointError(f"{path}: not a weights-only state_dict ({type(exc).__name__}); refusing to load it") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state_dict of tensors, got {type(state).__name__}")
    meta = json.loads(meta_path.read_text())
    model = build_model(meta["model"], ModelSpec(**meta["model_spec"]))
    if hasattr(model, "resize_buffers"):
        model.resize_buffers(state)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: state_dict does not match model '{meta['model']}': {exc}") from None
    model.eval()
    return LoadedModel(model, FeatureSpec.from_dict(meta["features"]), meta)
