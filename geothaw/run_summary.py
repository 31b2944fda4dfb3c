"""What ``geothaw run`` prints when it ends (each stage's cost, the run's headline numbers, and where to look),
and ``geothaw status`` (which stages a re-run would skip or redo).

The headlines are read back from the files the stages wrote (not from the stage summaries), so a run whose
stages were all cached prints the same numbers as the run that computed them. A file that is missing (a run
stopped early with ``--until``, or real inputs with no physics truth to score skill against) leaves its line out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from .config import RunConfig

from .features import DEPTH_LABELS
from .scenarios import scenario_label

HEADLINE_DEPTH = 2  # 28–100 cm: the layer of the overview map


def _per_depth(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values) + " °C"


def holdout_lines(run_dir: Path) -> list[tuple[str, str]]:
    best_file, metrics_file = run_dir / "best_model.json", run_dir / "evaluation" / "metrics.csv"
    if not (best_file.exists() and metrics_file.exists()):
        return []
    best = json.loads(best_file.read_text())["model"]
    m = pd.read_csv(metrics_file)
    m = m[(m["model"] == best) & (m["band"] == "all") & (m["season"] == "annual")]
    lines = [("best network (validation)", best)]
    for holdout, name in (("time", "held-out years"), ("space", "held-out blocks")):
        rows = m[m["holdout"] == holdout].sort_values("depth")
        if len(rows):
            lines.append((f"monthly RMSE, {name}", _per_depth(rows["rmse"])))
    return lines


def skill_lines(run_dir: Path) -> list[tuple[str, str]]:
    path = run_dir / "evaluation" / "projection_skill.csv"
    if not path.exists():
        return []
    df = pd.read_csv(path)
    lines = []
    last_era = sorted(df["era"].unique())[-1]
    for scen in sorted(s for s in df["scenario"].unique() if "-" not in s):
        rows = df[(df["scenario"] == scen) & (df["era"] == last_era) & (df["metric"] == "magt_rmse")]
        if len(rows):
            lines.append((f"projection skill, {scenario_label(scen)} {last_era} (MAGT RMSE vs physics)",
                          _per_depth(rows.sort_values("depth")["value"])))
    div = df[df["metric"].isin(["divergence_pred", "divergence_truth"])]
    if len(div):
        wide = div.pivot_table(index="depth", columns="metric", values="value").sort_index()
        share = 100 * wide["divergence_pred"] / wide["divergence_truth"]
        lines.append(("scenario divergence, modelled / physics", " / ".join(f"{v:.0f}" for v in share) + " %"))
    return lines


def area_lines(run_dir: Path) -> list[tuple[str, str]]:
    path = run_dir / "area_above_0C.csv"
    if not path.exists():
        return []
    df = pd.read_csv(path)
    depths = sorted(df["depth_m"].unique())
    depth = depths[min(HEADLINE_DEPTH, len(depths) - 1)]
    df = df[df["depth_m"] == depth]
    eras = sorted(df["era"].unique())
    first = df[df["era"] == eras[0]]["fraction"].mean()  # the first era is historical: the same in every scenario
    last = ", ".join(f"{100 * f:.0f} % ({scenario_label(s)})"
                     for s, f in df[df["era"] == eras[-1]].set_index("scenario")["fraction"].items())
    label = DEPTH_LABELS[HEADLINE_DEPTH] if len(depths) == len(DEPTH_LABELS) else f"{depth:.2f} m"
    return [(f"land above 0 °C at {label}", f"{100 * first:.0f} % in {eras[0]} → {last} in {eras[-1]}")]


def output_lines(run_dir: Path) -> list[tuple[str, str]]:
    wanted = (("report", "report.html"), ("overview map", "maps/overview.png"), ("NetCDF", "products"),
              ("GeoTIFFs (EPSG:3338 COGs)", "rasters"), ("exceedance polygons", "rasters/exceedance_polygons.gpkg"))
    return [(what, str(run_dir / rel)) for what, rel in wanted if (run_dir / rel).exists()]


_FILE_SUFFIXES = (".nc", ".tif", ".png", ".gpkg", ".pt", ".md", ".html", ".csv")


def _stage_result(summary: dict) -> str:
    """The stage's own short facts: its scalars, the files it wrote as a count, trained models with their
    validation RMSE; else the names of what it holds (its nested tables are in the run directory and the report)."""
    facts = {k: v for k, v in summary.items() if k not in ("seconds", "peak_rss_gib", "outputs")}
    files = [k for k, v in facts.items() if isinstance(v, str) and v.endswith(_FILE_SUFFIXES)]
    scalars = [f"{k}={v}" for k, v in facts.items() if isinstance(v, (str, int, float, bool)) and k not in files]
    scores = sorted((v["val_rmse"], k) for k, v in facts.items() if isinstance(v, dict) and "val_rmse" in v)
    shown = scalars + ([f"files={len(files)}"] if files else [])
    if scores:
        shown.append("validation RMSE " + ", ".join(f"{name} {rmse:.2f}" for rmse, name in scores))
    text = ", ".join(shown) or ", ".join(facts)
    return text[:110] + ("…" if len(text) > 110 else "")


def _table(title: str, columns: tuple[str, ...]) -> Table:
    """A stage table; its numeric columns right-aligned."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in ("seconds", "peak GiB") else "left")
    return table


def print_run_summary(name: str, run_dir: Path, results: dict[str, dict], console: Console, seconds: float) -> None:
    """The stage table, then the headline numbers and the paths a user opens next."""
    stages = _table(f"geothaw run '{name}' → {run_dir}  ({seconds:.0f} s)", ("stage", "seconds", "peak GiB", "result"))
    for stage, summary in results.items():
        peak = summary.get("peak_rss_gib")
        stages.add_row(stage, f"{summary.get('seconds', 0):.1f}", "" if peak is None else f"{peak:.2f}",
                       _stage_result(summary))
    console.print(stages)
    print_headlines(run_dir, console)


def print_headlines(run_dir: Path, console: Console) -> None:
    """The run's headline numbers and output paths, from whatever of its files exist."""
    rows = [*holdout_lines(run_dir), *skill_lines(run_dir), *area_lines(run_dir), *output_lines(run_dir)]
    if rows:
        head = Table(title="headlines (depths 0–7 / 7–28 / 28–100 / 100–289 cm)", show_header=False)
        head.add_column(style="bold")
        head.add_column()
        for what, value in rows:
            head.add_row(what, value)
        console.print(head)


def _training_progress(run_dir: Path) -> str:
    """Inside an unfinished training stage: the networks whose checkpoints are written, those paused for the
    shortlist (``training.shortlist_epochs``), and the one a re-run goes on with from its last finished epoch."""
    ckpt = run_dir / "checkpoints"
    written = sorted(p.stem for p in ckpt.glob("*.pt") if not p.name.endswith(".resume.pt"))
    paused = [n for n in written if _paused(ckpt / f"{n}.json")]
    finished = [n for n in written if n not in paused]
    resuming = sorted({p.name.removesuffix(".resume.pt") for p in ckpt.glob("*.resume.pt")} - set(paused))
    parts = [f"trained: {', '.join(finished)}"] if finished else []
    parts += [f"paused for the shortlist: {', '.join(paused)}"] if paused else []
    parts += [f"resumes from its last epoch: {', '.join(resuming)}"] if resuming else []
    return "; ".join(parts)


def _paused(meta: Path) -> bool:
    """Whether a checkpoint holds a network paused after the shortlist's epochs (unreadable: no)."""
    try:
        return bool(json.loads(meta.read_text()).get("metrics", {}).get("paused"))
    except (OSError, ValueError, AttributeError):
        return False


def print_status(cfg: RunConfig, console: Console) -> None:
    """``geothaw status``: each stage's state (what a re-run would skip or redo), its recorded cost, and the
    headline numbers of whatever the run has written."""
    from datetime import datetime

    from .pipeline import run_dir_for, stage_states

    run_dir = run_dir_for(cfg)
    if not (run_dir / "stages").is_dir():
        console.print(f"run '{cfg.name}' has not started: there is no {run_dir / 'stages'}", soft_wrap=True)
        return
    table = _table(f"geothaw run '{cfg.name}' → {run_dir}",
                   ("stage", "state", "finished", "seconds", "peak GiB", "result"))
    colours = {"done": "green", "stale": "yellow", "to do": "dim"}
    for st in stage_states(cfg):
        summary = st.summary or {}
        when = datetime.fromtimestamp(st.finished_at).strftime("%Y-%m-%d %H:%M") if st.finished_at else ""
        peak = summary.get("peak_rss_gib")
        result = _stage_result(summary) if summary else ""
        if st.name == "train" and st.summary is None:  # killed in training: how far it got
            result = _training_progress(run_dir)
        table.add_row(st.name, f"[{colours[st.state]}]{st.state}[/]", when,
                      f"{summary['seconds']:.1f}" if "seconds" in summary else "",
                      "" if peak is None else f"{peak:.2f}", result)
    console.print(table)
    console.print("[dim]done: a re-run skips it; stale: its record is from another config or an earlier stage "
                  "is redone, so a re-run redoes it[/dim]")
    print_headlines(run_dir, console)
