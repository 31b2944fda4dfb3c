"""Permutation importance: how much worse a model gets when one input is shuffled across samples.

Model-agnostic (works for every registered model, baselines included) and needs no extra dependency.
A dynamic feature is permuted as a whole sequence (its 24 months move together to another sample), so the
score measures the information in that feature, not the damage of scrambling time order. The soil
one-hot columns are permuted together as one ``soil_class`` feature; the latitude band as ``band``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .features import TARGETS, FeatureSpec
from .io.atomic import atomic_path, write_text_atomic


def _rmse(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((p - y) ** 2, axis=(0, 1)))  # per depth


def _groups(features: FeatureSpec) -> list[tuple[str, str, list[int]]]:
    out = [(name, "dynamic", [i]) for i, name in enumerate(features.dynamic)]
    soil = [i for i, n in enumerate(features.static) if n.startswith("soil_")]
    out += [(n, "static", [i]) for i, n in enumerate(features.static) if not n.startswith("soil_")]
    if soil:
        out.append(("soil_class", "static", soil))
    out.append(("band", "band", []))
    return out


def permutation_importance(model, features: FeatureSpec, batch: dict[str, np.ndarray], *, n_repeats: int = 3,
                           seed: int = 0, batch_size: int = 4096) -> pd.DataFrame:
    """Mean increase of RMSE (°C) per depth when each input feature is permuted across samples.

    ``batch`` is a *normalised* ``make_inputs`` batch that includes ``target`` (e.g. a hold-out set).
    Returns one row per feature: ``feature``, ``group``, ``rmse_increase`` (mean over depths and repeats),
    ``rmse_increase_std`` (sample standard deviation over repeats; NaN from a single repeat) and
    ``rmse_increase_<depth>``; sorted by importance.
    """
    from .training import predict

    rng = np.random.default_rng(seed)
    y = features.denormalize_target(batch["target"])
    base = _rmse(y, predict(model, features, batch, batch_size))
    rows = []
    for name, group, idx in _groups(features):
        incs = []
        for _ in range(n_repeats):
            perm = rng.permutation(len(y))
            b = dict(batch)
            if group == "dynamic":
                b["dynamic"] = batch["dynamic"].copy()
                b["dynamic"][:, :, idx] = batch["dynamic"][perm][:, :, idx]
            elif group == "static":
                b["static"] = batch["static"].copy()
                b["static"][:, idx] = batch["static"][perm][:, idx]
            else:
                b["band"] = batch["band"][perm]
            incs.append(_rmse(y, predict(model, features, b, batch_size)) - base)
        incs = np.asarray(incs)  # (repeats, depths)
        rows.append({"feature": name, "group": group, "rmse_increase": float(incs.mean()),
                     # one permutation has no spread to report: NaN, not a reassuring 0
                     "rmse_increase_std": float(incs.mean(axis=1).std(ddof=1)) if n_repeats > 1 else float("nan"),
                     **{f"rmse_increase_{d}": float(incs[:, k].mean()) for k, d in enumerate(TARGETS)}})
    df = pd.DataFrame(rows).sort_values("rmse_increase", ascending=False, ignore_index=True)
    df.attrs["baseline_rmse"] = [float(v) for v in base]
    return df


def _spread(std: float) -> str:
    return "—" if np.isnan(std) else f"{std:.3f}"


def write_importance(df: pd.DataFrame, out_dir: str | Path, model_name: str) -> dict[str, Path]:
    """Write ``importance_<model>.csv``, ``.md`` and a horizontal bar plot ``.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = {"csv": out_dir / f"importance_{model_name}.csv", "md": out_dir / f"importance_{model_name}.md",
             "png": out_dir / f"importance_{model_name}.png"}
    write_text_atomic(paths["csv"], df.to_csv(index=False))
    lines = [f"# Permutation importance: {model_name}", "",
             "Increase of RMSE (°C) when the feature is shuffled across samples (mean of depths); ± is the standard "
             "deviation over the permutations (— from a single one).", "",
             "| feature | group | ΔRMSE | ± | " + " | ".join(TARGETS) + " |",
             "|---|---|---:|---:|" + "---:|" * len(TARGETS)]
    for _, r in df.iterrows():
        lines.append(f"| {r['feature']} | {r['group']} | {r['rmse_increase']:.3f} | {_spread(r['rmse_increase_std'])} | "
                     + " | ".join(f"{r[f'rmse_increase_{d}']:.3f}" for d in TARGETS) + " |")
    write_text_atomic(paths["md"], "\n".join(lines) + "\n")
    d = df.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.32 * len(d) + 1.2))
    colors = {"dynamic": "tab:blue", "static": "tab:orange", "band": "tab:green"}
    ax.barh(d["feature"], d["rmse_increase"], xerr=d["rmse_increase_std"].fillna(0), color=[colors[g] for g in d["group"]])
    ax.set_xlabel("RMSE increase when permuted (°C)")
    ax.set_title(f"Permutation importance — {model_name}")
    ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, list(colors), fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return paths


def attribute_run(cfg, dataset, run_dir: str | Path, model_name: str, *, holdout: str = "time",
                  n_repeats: int = 3, sets_cache: dict | None = None) -> pd.DataFrame:
    """Permutation importance of a trained model on one evaluation hold-out; writes into ``<run_dir>/attribution``.
    ``sets_cache``: the hold-out samples :func:`~geothaw.evaluation.evaluate_run` already read, if any."""
    from .evaluation import cached_evaluation_sets
    from .features import prepare
    from .training import CHECKPOINT_DIR, load_checkpoint

    loaded = load_checkpoint(Path(run_dir) / CHECKPOINT_DIR / f"{model_name}.pt")
    raw = cached_evaluation_sets(cfg, prepare(dataset), loaded.features, {} if sets_cache is None else sets_cache)[holdout]
    df = permutation_importance(loaded.model, loaded.features, loaded.features.normalize(raw), n_repeats=n_repeats,
                                seed=cfg.seed)
    write_importance(df, Path(run_dir) / "attribution", model_name)
    return df
