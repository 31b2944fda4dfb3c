"""Benchmark: trained models and the physics solver against real in-situ soil temperatures.

One command: ``.venv/bin/python benchmarks/site_validation.py [--run-dir RUN] [--data-dir DIR] [--out-dir DIR]``.
Writes ``benchmarks/site_validation.json`` and ``.md``: per site × layer RMSE and bias of the physics and of
every checkpoint in ``RUN/checkpoints/*.pt`` (physics only, said so, when there is none), and the GIPL Barrow
cross-model table. Per-site CSVs and plots (which contain the observations) go to ``--out-dir`` (default: a
temporary folder), never into the repository: the reference data must not be committed.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from geothaw.errors import InputDataError
from geothaw.io.sites import GOLDSTREAM_SITES, default_data_dir, list_sites
from geothaw.validation import PHYSICS, find_checkpoints, gipl_crosscheck, results_table, validate_sites
from geothaw.versions import cpu_model

HERE = Path(__file__).parent
TARGET_RMSE = 2.0


def _md_table(df: pd.DataFrame, fmt: str = "{:.2f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [fmt.format(v) if isinstance(v, (float, np.floating)) and np.isfinite(v) else
                 ("–" if isinstance(v, (float, np.floating)) else str(v)) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_model(scores: pd.DataFrame) -> tuple[str | None, pd.DataFrame]:
    """Model with the lowest mean RMSE over Goldstream layers 1–3, and its per-station RMSEs."""
    gs = scores[scores["site"].isin(GOLDSTREAM_SITES) & scores["layer"].isin(["stl1", "stl2", "stl3"])]
    gs = gs.dropna(subset=["rmse"])
    if gs.empty:
        return None, gs
    means = gs.groupby("model")["rmse"].mean().sort_values()
    best = str(means.index[0])
    return best, gs[gs["model"] == best].pivot_table(index="site", columns="layer", values="rmse")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", type=Path, default=None, help="run folder with checkpoints/*.pt")
    ap.add_argument("--data-dir", type=Path, default=None, help="reference data (default $GEOTHAW_SITE_DATA or ../shared/data)")
    ap.add_argument("--out-dir", type=Path, default=None, help="per-site CSV/PNG (default: a temporary folder)")
    ap.add_argument("--sites", nargs="*", default=None)
    args = ap.parse_args()

    data_dir = args.data_dir or default_data_dir()
    if not data_dir.is_dir():
        raise SystemExit(f"skipped: reference data not found at {data_dir} (set GEOTHAW_SITE_DATA)")
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="geothaw_sites_"))
    cks = find_checkpoints(args.run_dir)
    t0 = time.perf_counter()
    scores = validate_sites(args.sites, args.run_dir, out_dir, data_dir=data_dir, gipl=False,
                            require_checkpoints=False)
    t_sites = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        gipl = gipl_crosscheck(data_dir, out_dir)
    except InputDataError as exc:
        gipl = pd.DataFrame()
        print(f"GIPL cross-check skipped: {exc}")
    t_gipl = time.perf_counter() - t0

    table = results_table(scores)
    best, best_rmse = best_model(scores)
    models = sorted(set(scores["model"]))
    status = (scores[scores["model"] == PHYSICS][["site", "layer", "status"]]
              .set_index(["site", "layer"])["status"].to_dict())
    meets = bool(best is not None and (best_rmse.reindex(columns=["stl1", "stl2", "stl3"]) <= TARGET_RMSE).all().all()
                 and set(best_rmse.index) == set(GOLDSTREAM_SITES))
    result = {
        # only the run's name goes into the committed files (no paths of the machine that ran it)
        "command": "python benchmarks/site_validation.py" + (f" --run-dir runs/{Path(args.run_dir).name}" if args.run_dir else ""),
        "run_dir": f"runs/{Path(args.run_dir).name}" if args.run_dir else None,
        "checkpoints": [p.name for p in cks],
        "mode": "models + physics" if cks else "physics only (no checkpoints found)",
        "sites": sorted(set(scores["site"])),
        "models": models,
        "seconds": {"sites": round(t_sites, 1), "gipl": round(t_gipl, 1)},
        "machine": f"{platform.platform()}, {cpu_model()}",
        "scores": json.loads(scores.to_json(orient="records")),
        "layer_status": {f"{s}/{l}": v for (s, l), v in status.items()},
        "best_model_goldstream_l1_3": best,
        "best_model_rmse": json.loads(best_rmse.to_json()) if best else None,
        "target_rmse_l1_3": TARGET_RMSE,
        "target_met": meets,
        "gipl_crosscheck": json.loads(gipl.to_json(orient="records")) if not gipl.empty else None,
    }
    (HERE / "site_validation.json").write_text(json.dumps(result, indent=2))

    md = [
        "# Real-site validation (in-situ soil temperature, monthly)",
        "",
        f"Command: `{result['command']}`. Mode: **{result['mode']}**"
        + (f" ({', '.join(result['checkpoints'])})" if cks else "") + ".",
        f"Runtime: {t_sites:.0f} s for the sites, {t_gipl:.0f} s for the GIPL cross-check (2 shared cores).",
        "",
        "Observed layers are nearest-sensor-weighted means of the sensors inside each ERA5-Land layer; a layer "
        "with no sensor (or no month passing the coverage rule: ≥ 20 valid days, no gap > 5 days; a day needs "
        "≥ 75 % of its samples) is not scored. RMSE/bias in °C over the months with observations (bias = "
        "predicted − observed).",
        "",
        "## RMSE and bias per site × layer",
        "",
        _md_table(table),
        "",
        "## Layers without a score",
        "",
        *[f"- {k}: {v}" for k, v in result["layer_status"].items() if not v.startswith("ok")],
        "",
        "## Target (RMSE ≤ 2.0 °C at layers 1–3 at every Goldstream station, best model)",
        "",
        (f"Best model over Goldstream layers 1–3: **{best}** — target "
         f"{'met' if meets else 'NOT met'}.\n\n" + _md_table(best_rmse.reset_index()) if best else "No scores."),
        "",
        "## Annual amplitude and 0 °C crossing months (observed vs predicted)",
        "",
        _md_table(scores.dropna(subset=["rmse"])[["site", "model", "layer", "amp_obs", "amp_pred", "thaw_obs",
                                                  "thaw_pred", "freeze_obs", "freeze_pred"]], "{:.1f}"),
        "",
        "## GIPL2 cross-model check (Barrow, CMIP5 forcing, 135 years monthly; geothaw physics − GIPL2)",
        "",
        "Both are models: this is a sanity check of the solver, not a score.",
        "",
        _md_table(gipl) if not gipl.empty else "GIPL inputs not found.",
        "",
    ]
    (HERE / "site_validation.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"per-site CSV/PNG: {out_dir}")


if __name__ == "__main__":
    main()
