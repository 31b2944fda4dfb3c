"""The run report: ``report.md`` and ``report.html`` in the run directory, assembled from what the stages wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .io.atomic import write_text_atomic


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _section_skill(run_dir: Path) -> list[str]:
    path = run_dir / "evaluation" / "projection_skill.csv"
    if not path.exists():
        return []
    df = pd.read_csv(path)
    return ["## Projection skill against the physics truth", "",
            "The best model driven by the bias-free scenario forcing of the synthetic world, scored against the "
            "physics solver's soil temperature under the same forcing (yearly MAGT).", "", markdown_table(df), ""]


def _section_area(run_dir: Path) -> list[str]:
    path = run_dir / "area_above_0C.csv"
    if not path.exists():
        return []
    df = pd.read_csv(path)
    wide = df.pivot_table(index=["scenario", "depth_m"], columns="era", values="area_above_0C_km2").reset_index()
    wide.columns = [str(c) for c in wide.columns]
    for c in wide.columns[2:]:
        wide[c] = wide[c].map(lambda v: f"{v:,.0f}")
    return ["## Area with mean annual ground temperature above 0 °C (km², EPSG:3338)", "",
            "GCM-ensemble mean, era means of yearly MAGT per depth.", "", markdown_table(wide), ""]


def _section_cost(stages: dict[str, dict]) -> list[str]:
    """Wall time and the main process's peak memory of each stage, as recorded when the stage ran (a cached
    stage keeps the figures of the invocation that ran it)."""
    rows = [{"stage": name, "seconds": f"{s['seconds']:,.1f}",
             "peak RSS, main process (GiB)": f"{s['peak_rss_gib']:.2f}" if "peak_rss_gib" in s else "–"}
            for name, s in stages.items() if "seconds" in s]
    if not rows:
        return []
    return ["## Run cost", "", "Per stage, when it ran. Worker processes (world build, training, a dask cluster) "
            "have their own memory, not counted here.", "", markdown_table(pd.DataFrame(rows)), ""]


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
             f"scenarios {', '.join(s.upper() for s in cfg.projection.scenarios)}; best model **{best}** "
             "(lowest validation RMSE).", ""]
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
        lines += [f"## {scen.upper()} maps", ""]
        for png in sorted((run_dir / "maps" / scen).glob("*.png")):
            if png.name.startswith(("magt_", "first_")) or "_d3_2071-2100" in png.name:
                lines += _image(run_dir, str(png.relative_to(run_dir)), png.stem.replace("_", " "))
    lines += _section_cost(stages)
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
