"""The run report: ``report.md`` and ``report.html`` in the run directory, assembled from what the stages wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .features import DEPTH_LABELS, TARGETS
from .io.atomic import write_text_atomic
from .scenarios import scenario_label


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table_keys(df: pd.DataFrame) -> list[str]:
    """Model and scenario-signal columns, kept only where the skill table holds more than one of them."""
    return [c for c in ("model", "scenario_signal") if df[c].nunique() > 1]


def _per_scenario_era(df: pd.DataFrame, metrics: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``metrics`` of the long skill table as one row per scenario × era with (depth, metric) columns, and those
    rows' labels (scenarios by their display names) to build a table on."""
    wide = df[df["metric"].isin(metrics)].pivot_table(index=[*_table_keys(df), "scenario", "era"],
                                                      columns=["depth", "metric"], values="value")
    labels = wide.index.to_frame(index=False)
    labels["scenario"] = labels["scenario"].map(scenario_label)
    return labels, wide


def skill_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long projection-skill table as two readable ones: yearly-MAGT RMSE (bias) per scenario × era, one
    column per depth; and the scenario divergence per depth, modelled against the physics. Model and
    scenario-signal columns are kept only where the table holds more than one of them."""
    keys = _table_keys(df)
    era_table, wide = _per_scenario_era(df, ("magt_rmse", "magt_bias"))
    for d in sorted(df["depth"].unique()):
        era_table[f"{d} RMSE (bias)"] = [f"{r:.2f} ({b:+.2f})" for r, b in
                                         zip(wide[(d, "magt_rmse")], wide[(d, "magt_bias")])]
    div = df[df["metric"].str.startswith("divergence_")]
    div = div.pivot_table(index=[*keys, "scenario", "era", "depth"], columns="metric", values="value").reset_index()
    div_table = div[[*keys, "scenario", "era", "depth"]].copy()
    div_table["scenario"] = div_table["scenario"].map(scenario_label)
    div_table["modelled (°C)"] = div["divergence_pred"].map("{:.2f}".format)
    div_table["physics (°C)"] = div["divergence_truth"].map("{:.2f}".format)
    div_table["modelled / physics"] = (100 * div["divergence_pred"] / div["divergence_truth"]).map("{:.0f} %".format)
    div_table["cell RMSE of the difference (°C)"] = div["divergence_error"].map("{:.2f}".format)
    return era_table, div_table


def thaw_share_table(df: pd.DataFrame) -> pd.DataFrame:
    """Share of the scored cells with era-mean MAGT above 0 °C per scenario × era, one column per depth:
    "modelled (physics)". Empty for skill tables written before these rows existed."""
    if not (df["metric"] == "above0_share_pred").any():
        return pd.DataFrame()
    table, wide = _per_scenario_era(df, ("above0_share_pred", "above0_share_truth"))
    for d in sorted(df["depth"].unique()):
        table[d] = [f"{100 * m:.0f} % ({100 * t:.0f} %)" for m, t in
                    zip(wide[(d, "above0_share_pred")], wide[(d, "above0_share_truth")])]
    return table


def _section_skill(run_dir: Path) -> list[str]:
    path = run_dir / "evaluation" / "projection_skill.csv"
    if not path.exists():
        return []
    skill = pd.read_csv(path)
    era_table, div_table = skill_tables(skill)
    lines = ["## Projection skill against the physics truth", "",
             "The best model driven by the bias-free scenario forcing of the synthetic world, scored against the "
             "physics solver's soil temperature under the same forcing: RMSE and bias (model − physics) of yearly "
             "MAGT over the scored cells, °C. Every figure is in `evaluation/projection_skill.csv`.", "",
             markdown_table(era_table), ""]
    thaw = thaw_share_table(skill)
    if len(thaw):
        lines += ["### Ground above 0 °C, modelled (physics)", "",
                  "Share of the scored cells whose era-mean MAGT is above 0 °C: the same comparison as the area "
                  "tables below, on the cells where the physics is known.", "", markdown_table(thaw), ""]
    if len(div_table):
        lines += ["### Scenario divergence", "",
                  "Domain-mean difference between the scenarios' era MAGT, as modelled and in the physics.", "",
                  markdown_table(div_table), ""]
    return lines


def area_table(df: pd.DataFrame) -> pd.DataFrame:
    """``area_above_0C.csv`` as scenario × depth rows and one column per era: km² and the share of the land."""
    depths = sorted(df["depth_m"].unique())
    names = dict(zip(depths, DEPTH_LABELS)) if len(depths) == len(DEPTH_LABELS) else {d: f"{d:.2f} m" for d in depths}
    cells = df.assign(depth=df["depth_m"].map(names), scenario=df["scenario"].map(scenario_label),
                      text=[f"{a:,.0f} ({100 * f:.0f} %)" for a, f in zip(df["area_above_0C_km2"], df["fraction"])])
    wide = cells.pivot(index=["scenario", "depth_m", "depth"], columns="era", values="text").reset_index()
    wide = wide.drop(columns="depth_m")
    wide.columns = [str(c) for c in wide.columns]
    return wide


def _section_area(run_dir: Path) -> list[str]:
    path = run_dir / "area_above_0C.csv"
    if not path.exists():
        return []
    return ["## Area with mean annual ground temperature above 0 °C (km², EPSG:3338)", "",
            "GCM-ensemble mean, era means of yearly MAGT per depth; in brackets the share of the land.", "",
            markdown_table(area_table(pd.read_csv(path))), ""]


def _section_cost(stages: dict[str, dict], machine: dict | None = None) -> list[str]:
    """Wall time and the main process's peak memory of each stage, as recorded when the stage ran (a cached
    stage keeps the figures of the invocation that ran it)."""
    rows = [{"stage": name, "seconds": f"{s['seconds']:,.1f}",
             "peak RSS, main process (GiB)": f"{s['peak_rss_gib']:.2f}" if "peak_rss_gib" in s else "–"}
            for name, s in stages.items() if "seconds" in s]
    if not rows:
        return []
    total = sum(s["seconds"] for s in stages.values() if "seconds" in s)
    rows.append({"stage": "**total**", "seconds": f"**{total:,.1f}** ({total / 60:.1f} min)",
                 "peak RSS, main process (GiB)": f"{max(s.get('peak_rss_gib', 0.0) for s in stages.values()):.2f}"})
    where = (f" The latest invocation ran on {machine['cores']} cores of {machine['cpu']}." if machine else "")
    return ["## Run cost", "", "Per stage, when it ran (a stage cached from an earlier invocation keeps that invocation's "
            "figures). Worker processes (world build, training, a dask cluster) have their own memory, not counted "
            f"here.{where}", "", markdown_table(pd.DataFrame(rows)), ""]


def _image(run_dir: Path, rel: str, caption: str) -> list[str]:
    return [f"![{caption}]({rel})", "", f"*{caption}*", ""] if (run_dir / rel).exists() else []


def build_markdown(ctx) -> str:
    run_dir: Path = ctx.run_dir
    cfg = ctx.cfg
    best = json.loads((run_dir / "best_model.json").read_text())["model"] if (run_dir / "best_model.json").exists() else "?"
    from .pipeline import STAGE_NAMES, _read_marker

    markers = {p.stem: p for p in (run_dir / "stages").glob("*.json")}
    order = [n for n in STAGE_NAMES if n in markers]  # pipeline order, not alphabetical
    stages = {n: m["summary"] for n in order if (m := _read_marker(markers[n]))}
    lines = [f"# geothaw run report: {cfg.name}", "",
             f"Inputs: {'embedded physics-grounded synthetic Alaska' if ctx.synthetic else 'ERA5-Land + CMIP5 files'}; "
             f"grid {stages.get('domain', {}).get('grid', '?')}, {stages.get('domain', {}).get('land_cells', '?')} land cells; "
             f"scenarios {', '.join(scenario_label(s) for s in cfg.projection.scenarios)}; best model **{best}** "
             "(the sequence network with the lowest validation RMSE; the baselines are not candidates). Soil layers: "
             + ", ".join(f"{name} = {label}" for name, label in zip(TARGETS, DEPTH_LABELS)) + ".", ""]
    lines += _image(run_dir, "maps/overview.png", "Ground projected above 0 °C (28–100 cm), eras × scenarios")
    metrics = run_dir / "evaluation" / "metrics.md"
    if metrics.exists():
        body = metrics.read_text().replace("# Evaluation", "## Model comparison on held-out data", 1)
        lines += [body.replace("\n## ", "\n### ").replace("### Model comparison", "## Model comparison", 1), ""]
    lines += _image(run_dir, "evaluation/rmse_by_depth.png", "RMSE per depth and model (hold-outs)")
    lines += _image(run_dir, "evaluation/seasonal_cycle.png", "Observed vs predicted seasonal cycle at held-out cells")
    lines += _section_skill(run_dir)
    lines += _section_area(run_dir)
    imp = run_dir / "attribution" / f"importance_{best}.md"
    if imp.exists():
        lines += ["## What the best model relies on", "", imp.read_text().replace("# ", "### ", 1), ""]
        lines += _image(run_dir, f"attribution/importance_{best}.png", "Permutation importance")
    for scen in cfg.projection.scenarios:
        lines += [f"## {scenario_label(scen)} maps", ""]
        for png in sorted((run_dir / "maps" / scen).glob("*.png")):
            if png.name.startswith(("magt_", "first_")) or "_d3_2071-2100" in png.name:
                lines += _image(run_dir, str(png.relative_to(run_dir)), png.stem.replace("_", " "))
    versions = run_dir / "versions.json"
    lines += _section_cost(stages, json.loads(versions.read_text()).get("machine") if versions.exists() else None)
    lines += ["## Outputs", "",
              "- `products/<gcm>_<scenario>.nc`, `products/ensemble_<scenario>.nc`: CF-1.8 NetCDF, dims (year, depth, latitude, longitude)",
              "- `rasters/<scenario>/*.tif`: Cloud-Optimized GeoTIFFs in EPSG:3338 (bands = years); `rasters/<scenario>/eras/`",
              "- `rasters/exceedance_polygons.gpkg`: polygons above 0 °C per scenario × era × depth, with areas",
              "- `area_above_0C.csv`, `evaluation/`, `attribution/`, `checkpoints/`, `maps/`", ""]
    return "\n".join(lines)


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>geothaw report: {title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0;font-size:0.85em}}td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}
th{{background:#f2f2f2}}img{{max-width:100%}}em{{color:#555}}</style></head>
<body>
{body}
</body></html>
"""


def write_report(ctx) -> list[Path]:
    import markdown

    md = build_markdown(ctx)
    html = HTML_TEMPLATE.format(title=ctx.cfg.name, body=markdown.markdown(md, extensions=["tables"]))
    return [write_text_atomic(ctx.run_dir / "report.md", md), write_text_atomic(ctx.run_dir / "report.html", html)]
