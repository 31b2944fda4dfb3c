"""Training the five networks on a GPU (``training.device: cuda``): wall time and validation RMSE on real
prepared samples, and epoch throughput at the full default's sample count.

geothaw never needs a GPU; this measures what one buys. Two steps, because the machine with the GPU need not
hold the run's input store:

  .venv/bin/python benchmarks/gpu_training.py prepare --run runs/q05ridge --out prepared.pkl
  python benchmarks/gpu_training.py train --prepared prepared.pkl [--device cuda] [--out-dir benchmarks]

``prepare`` pickles the run's config and its prepared training samples (the same ``prepare_training_data`` the
train stage calls). ``train`` then (a) trains every network on them as the run's config says and (b) times
``--throughput-epochs`` epochs per network, at the full default's width, on the samples tiled up to
``--full-samples`` (the full 0.1° default trains on 217,600). Writes gpu_training.json and gpu_training.md.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
NETWORKS = ["gru", "tcn", "transformer", "conv1dlstm", "bilstm"]


def prepare(run: Path, out: Path) -> None:
    from geothaw.config import load_config
    from geothaw.stages import Context
    from geothaw.training import prepare_training_data

    cfg = load_config(run / "config.yaml")
    data = prepare_training_data(cfg, Context(cfg, run).record())
    with out.open("wb") as f:
        pickle.dump({"config": cfg.model_dump(mode="json"), "data": data}, f)
    print(f"{out}: {len(data.train['band'])} training and {len(data.val['band'])} validation samples")


def _with_training(cfg, **kw):
    return cfg.model_copy(update={"training": cfg.training.model_copy(update=kw)})


def _tiled(data, n: int):
    reps = int(np.ceil(n / len(data.train["band"])))
    train = {k: np.concatenate([v] * reps)[:n] for k, v in data.train.items()}
    return replace(data, train=train)


def train(prepared: Path, device: str, out_dir: Path, full_samples: int, throughput_epochs: int,
          full_hidden: int, epochs: int | None = None) -> dict:
    from geothaw.config import RunConfig
    from geothaw.training import train_model

    blob = pickle.loads(prepared.read_bytes())
    cfg, data = RunConfig.model_validate(blob["config"]), blob["data"]
    cfg = _with_training(cfg, device=device, **({"epochs": epochs} if epochs else {}))
    result = {"device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
              "torch": torch.__version__, "python": platform.python_version(),
              "samples": {"train": int(len(data.train["band"])), "val": int(len(data.val["band"]))},
              "config": {k: getattr(cfg.training, k) for k in ("epochs", "patience", "batch_size", "hidden_size",
                                                               "n_layers", "learning_rate", "linear_path")},
              "trained": {}, "throughput": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in NETWORKS:  # (a) as the run's config trains them, early stopping included
            t0 = time.perf_counter()
            res = train_model(cfg, None, name, Path(tmp) / "a", prepared=data)
            result["trained"][name] = {"seconds": round(time.perf_counter() - t0, 2),
                                       "epochs_run": res.metrics["epochs_run"],
                                       "val_rmse_by_depth": {k: round(v, 4) for k, v in
                                                             res.metrics["val_rmse_by_depth"].items()}}
            print(name, result["trained"][name], flush=True)
        big = _tiled(data, full_samples)
        tcfg = _with_training(cfg, epochs=throughput_epochs, patience=throughput_epochs + 1, hidden_size=full_hidden)
        for name in NETWORKS:  # (b) seconds per epoch at the full default's size
            t0 = time.perf_counter()
            res = train_model(tcfg, None, name, Path(tmp) / "b", prepared=big)
            secs = time.perf_counter() - t0
            per_epoch = secs / res.metrics["epochs_run"]
            result["throughput"][name] = {"samples": full_samples, "epochs": res.metrics["epochs_run"],
                                          "seconds": round(secs, 2), "seconds_per_epoch": round(per_epoch, 2),
                                          "samples_per_second": round(full_samples / per_epoch)}
            print(name, result["throughput"][name], flush=True)
    result["median_seconds_per_epoch_full_size"] = round(statistics.median(
        v["seconds_per_epoch"] for v in result["throughput"].values()), 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_training.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "gpu_training.md").write_text(markdown(result))
    return result


def markdown(r: dict) -> str:
    c = r["config"]
    lines = [
        "# Training on a GPU (`training.device: cuda`)", "",
        f"Device: {r['gpu'] or r['device']}, torch {r['torch']}, Python {r['python']}. "
        "Re-run: see the docstring of `benchmarks/gpu_training.py`.", "",
        f"## (a) The five networks on the prepared samples ({r['samples']['train']:,} training, "
        f"{r['samples']['val']:,} validation)", "",
        f"Config as the run: up to {c['epochs']} epochs (patience {c['patience']}), batch {c['batch_size']}, "
        f"width {c['hidden_size']}, {c['n_layers']} layers, linear path `{c['linear_path']}`.", "",
        "| network | seconds | epochs | validation RMSE stl1 / stl2 / stl3 / stl4 (°C) |", "|---|---|---|---|"]
    for name, v in r["trained"].items():
        rm = " / ".join(f"{x:.2f}" for x in v["val_rmse_by_depth"].values())
        lines.append(f"| {name} | {v['seconds']:.1f} | {v['epochs_run']} | {rm} |")
    lines += ["", "## (b) Epoch time at the full default's size", "",
              "The samples tiled up to the full 0.1° default's training-set size, width 64 as in the default.", "",
              "| network | samples | seconds / epoch | samples / s |", "|---|---|---|---|"]
    for name, v in r["throughput"].items():
        lines.append(f"| {name} | {v['samples']:,} | {v['seconds_per_epoch']:.2f} | {v['samples_per_second']:,} |")
    lines += ["", f"Median seconds per epoch: {r['median_seconds_per_epoch_full_size']}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("train")
    t.add_argument("--prepared", type=Path, required=True)
    t.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    t.add_argument("--out-dir", type=Path, default=HERE)
    t.add_argument("--full-samples", type=int, default=217_600)
    t.add_argument("--throughput-epochs", type=int, default=2)
    t.add_argument("--full-hidden", type=int, default=64)
    t.add_argument("--epochs", type=int, default=None, help="override the run's epochs (a quick smoke run)")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.run, a.out)
    else:
        train(a.prepared, a.device, a.out_dir, a.full_samples, a.throughput_epochs, a.full_hidden, a.epochs)


if __name__ == "__main__":
    main()
