"""Benchmark: how much of a network's accuracy is the luck of its training seed.

One command (from the repository root, on the default run's world):
``.venv/bin/python benchmarks/seed_spread.py [--model bilstm] [--seeds 42,1,2] [--quick] [--set KEY=VALUE ...]``.

Each seed is a run of its own (``<name>-<model>-seed<N>``: ``training.seed=N``, that network and the climatology
baseline only) taken through the ``skill`` stage by ``geothaw evaluate``, ``--jobs`` runs at a time. ``training.seed``
changes only the network's initial weights, batch order and dropout; the world, samples and hold-outs are the
runs' common ones. Then the mean of the seeds' predictions is scored against the physics truth too. Writes
``benchmarks/seed_spread.json`` and ``.md``: per seed the epochs, validation loss, monthly RMSE on both
hold-outs, and the yearly-MAGT skill of the last era per scenario with the scenario divergence.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from geothaw.config import load_config
from geothaw.evaluation import scenario_predictions, score_projection
from geothaw.pipeline import run_dir_for
from geothaw.stages import Context, skill_inputs
from geothaw.training import load_checkpoint
from geothaw.versions import cpu_model

HERE = Path(__file__).parent


def seed_overrides(model: str, seed: int, base_name: str, extra: list[str]) -> list[str]:
    return [*extra, f"name={base_name}-{model}-seed{seed}", f"training.seed={seed}", f"training.models=[{model}]",
            "training.baselines=[climatology]", "training.workers=1"]


def run_seed(overrides: list[str], quick: bool, log: Path) -> float:
    """``geothaw evaluate`` for one seed in its own process (training a network holds a core); its seconds."""
    cmd = [sys.executable, "-m", "geothaw", "evaluate", *(["--quick"] if quick else []),
           *(arg for o in overrides for arg in ("--set", o))]
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); its output is in {log}")
    return time.perf_counter() - t0


def last_era_skill(table: pd.DataFrame) -> dict:
    """Per scenario the last era's MAGT RMSE and bias per depth, and the divergence as a share of the physics'."""
    era = sorted(table["era"].unique())[-1]
    rows = table[table["era"] == era]
    out: dict = {"era": era}
    for scen in sorted(s for s in rows["scenario"].unique() if "-" not in s):
        r = rows[rows["scenario"] == scen].pivot_table(index="metric", columns="depth", values="value")
        out[scen] = {"rmse": [round(v, 3) for v in r.loc["magt_rmse"]], "bias": [round(v, 3) for v in r.loc["magt_bias"]]}
    div = rows[rows["metric"].isin(["divergence_pred", "divergence_truth"])]
    if len(div):
        d = div.pivot_table(index="metric", columns="depth", values="value")
        out["divergence_pct"] = [round(100 * p / t, 1) for p, t in zip(d.loc["divergence_pred"], d.loc["divergence_truth"])]
    return out


def holdout_rmse(run_dir: Path, model: str) -> dict[str, list[float]]:
    m = pd.read_csv(run_dir / "evaluation" / "metrics.csv")
    m = m[(m["model"] == model) & (m["band"] == "all") & (m["season"] == "annual")]
    return {h: [round(v, 3) for v in m[m["holdout"] == h].sort_values("depth")["rmse"]] for h in ("time", "space")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="bilstm")
    ap.add_argument("--seeds", default="42,1,2", help="comma-separated training seeds")
    ap.add_argument("--quick", action="store_true", help="on the quick configuration")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides for every seed")
    ap.add_argument("--jobs", type=int, default=2, help="seeds trained at once")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    base = load_config(None, a.set, base="quick" if a.quick else "alaska")
    configs = {s: seed_overrides(a.model, s, base.name, a.set) for s in seeds}
    logs = {s: Path(run_dir_for(base)).parent / f"seed_spread_{a.model}_{s}.log" for s in seeds}
    logs[seeds[0]].parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(a.jobs) as pool:
        seconds = dict(zip(seeds, pool.map(lambda s: run_seed(configs[s], a.quick, logs[s]), seeds)))

    report: dict = {"command": " ".join([".venv/bin/python", "benchmarks/seed_spread.py", *sys.argv[1:]]),
                    "machine": {"cpu": cpu_model()}, "model": a.model, "seeds": {}}
    cfgs = {s: load_config(None, configs[s], base="quick" if a.quick else "alaska") for s in seeds}
    ctx = Context(cfgs[seeds[0]], run_dir_for(cfgs[seeds[0]]))
    forcing, truth, years = skill_inputs(ctx)
    preds = {}
    for s in seeds:
        run_dir = run_dir_for(cfgs[s])
        loaded = load_checkpoint(run_dir / "checkpoints" / f"{a.model}.pt")
        meta = loaded.meta["metrics"]
        preds[s] = scenario_predictions(loaded, forcing, years)
        report["seeds"][str(s)] = {
            "seconds_to_skill": round(seconds[s], 1), "epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"],
            "val_loss": round(meta["val_loss"], 6), "holdout_rmse": holdout_rmse(run_dir, a.model),
            "skill": last_era_skill(pd.read_csv(run_dir / "evaluation" / "projection_skill.csv"))}
    mean = {scen: sum(p[scen] for p in preds.values()) / len(preds) for scen in forcing}
    report["mean_of_seeds"] = {"skill": last_era_skill(score_projection(mean, truth))}
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    (a.out_dir / "seed_spread.json").write_text(json.dumps(report, indent=2))
    (a.out_dir / "seed_spread.md").write_text(markdown(report))
    print(markdown(report))


def _depths(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(v) for v in values)


def markdown(rep: dict) -> str:
    seeds = rep["seeds"]
    era = next(iter(seeds.values()))["skill"]["era"]
    scenarios = [k for k in next(iter(seeds.values()))["skill"] if k not in ("era", "divergence_pct")]
    head = ["seed", "epochs run / best", "validation loss", "RMSE held-out years (°C)", "RMSE held-out blocks (°C)",
            *(f"{s} {era} MAGT RMSE (bias) (°C)" for s in scenarios), "divergence, modelled / physics (%)"]
    lines = [f"# Training-seed spread: {rep['model']}", "", f"`{rep['command']}`", "",
             f"Machine: {rep['machine']['cpu']}; {rep['wall_s']:.0f} s in all. Depths stl1 / stl2 / stl3 / stl4. "
             "Each seed is its own run on the same world, samples and hold-outs; `training.seed` changes only the "
             "network's initial weights, batch order and dropout.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def skill_cells(skill: dict) -> list[str]:
        return [f"{_depths(skill[s]['rmse'])} ({_depths(skill[s]['bias'], '{:+.2f}')})" for s in scenarios] + \
               [_depths(skill.get("divergence_pct", []), "{:.0f}")]

    for seed, r in seeds.items():
        lines.append("| " + " | ".join([seed, f"{r['epochs_run']} / {r['best_epoch']}", f"{r['val_loss']:.2e}",
                                        _depths(r["holdout_rmse"]["time"]), _depths(r["holdout_rmse"]["space"]),
                                        *skill_cells(r["skill"])]) + " |")
    lines.append("| " + " | ".join(["mean of the seeds", "", "", "not scored", "not scored",
                                    *skill_cells(rep["mean_of_seeds"]["skill"])]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
