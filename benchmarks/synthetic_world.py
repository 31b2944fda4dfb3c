"""Benchmark: the synthetic world on the full 0.1° Alaska domain, 1950–2100, all scenarios.

One command: ``.venv/bin/python benchmarks/synthetic_world.py [--sample-cells N] [--dt-days D] [--full]``.
Writes ``benchmarks/synthetic_world.json`` and ``.md``. Without ``--full`` the per-cell work (forcing,
snow, physics) is timed on a spread sample of land cells and extrapolated to all land cells; statics,
zarr writes, ERA5-Land file emission and the GCMs are timed at full size. Peak memory is the process
RSS high-water mark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from geothaw.config import load_config
from geothaw.synthetic import world as W
from geothaw.synthetic.era5_format import ERA5_FIELDS, write_era5_year
from geothaw.versions import cpu_model
from geothaw.synthetic.gcm import build_gcm
from geothaw.synthetic.plausibility import world_plausibility
from geothaw.synthetic.statics import build_statics

HERE = Path(__file__).parent


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample-cells", type=int, default=256)
    ap.add_argument("--dt-days", type=float, default=None)
    ap.add_argument("--full", action="store_true", help="build the whole world (hours on 2 shared cores)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    overrides = [f"data.synthetic.dt_days={a.dt_days}"] if a.dt_days else []
    cfg = load_config(None, overrides)
    load0 = os.getloadavg()
    res: dict = {"machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_start": load0},
                 "config": {"grid": "0.1 deg", "period": [cfg.period.start_year, cfg.period.end_year,
                                                          cfg.period.projection_end_year],
                            "spinup_years": cfg.data.synthetic.spinup_years, "dt_days": cfg.data.synthetic.dt_days,
                            "scenarios": W._scenarios(cfg), "gcms": cfg.data.synthetic.gcms}}
    out = Path(a.out or tempfile.mkdtemp(prefix="geothaw_bench_"))
    if a.full:
        t = time.perf_counter()
        s = W.build_world(cfg, out)
        res.update(mode="full", wall_s=time.perf_counter() - t, peak_rss_gb=peak_gb(), summary=s)
        res["plausibility"] = world_plausibility(out)
    else:
        dom = W.world_domain(cfg)
        t = time.perf_counter()
        st = build_statics(dom, cfg.seed)
        res["statics_s"] = time.perf_counter() - t
        land = st["land"].values.astype(bool)
        n_land = int(land.sum())
        ctx = W.make_context(cfg, dom, st)
        ii, jj = np.nonzero(land)
        pick = np.linspace(0, n_land - 1, min(a.sample_cells, n_land)).astype(int)  # spread over the domain
        t = time.perf_counter()
        out_cells = W.simulate_cells(ctx, ii[pick], jj[pick])
        per_cell = (time.perf_counter() - t) / pick.size
        sim_years = cfg.data.synthetic.spinup_years + (ctx.trunk.n + len(ctx.scenarios) * ctx.future.n) // 12
        res["cells"] = {"land_cells": n_land, "sample_cells": int(pick.size), "simulated_years_per_cell": sim_years,
                        "per_cell_s": per_cell, "column_years_per_s": sim_years / per_cell,
                        "extrapolated_all_cells_s": per_cell * n_land}
        # zarr region writes: one full-size block of real-looking values, extrapolated to all blocks
        rows, blocks = W._row_blocks(land, W.BLOCK_CELLS)
        W._create_store(out / "record.zarr", W.RECORD_VARS, ctx.record, dom, rows)
        for s in ctx.scenarios:
            W._create_store(out / f"{s}.zarr", W.SCENARIO_VARS, ctx.future, dom, rows)
        r0, r1 = blocks[len(blocks) // 2]
        li, lj = np.nonzero(land[r0:r1])
        reps = np.resize(np.arange(pick.size), li.size)
        t = time.perf_counter()
        W._write_region(out / "record.zarr", {k: W._scatter(v[reps], li, lj, r1 - r0, dom.shape[1])
                                              for k, v in out_cells["record"].items()}, r0)
        for s in ctx.scenarios:
            W._write_region(out / f"{s}.zarr", {k: W._scatter(v[reps], li, lj, r1 - r0, dom.shape[1])
                                                for k, v in out_cells[s].items()}, r0)
        block_write = time.perf_counter() - t
        res["zarr_writes"] = {"rows_per_block": rows, "blocks": len(blocks), "one_block_cells": int(li.size),
                              "one_block_s": block_write, "extrapolated_s": block_write * n_land / max(li.size, 1)}
        # ERA5-Land yearly files: 3 full-grid years with every land cell filled, extrapolated to 75 years
        years = 3
        t = time.perf_counter()
        nrec = ctx.record.n
        for y in range(years):
            vals = {k: out_cells["record"][k][np.resize(np.arange(pick.size), n_land), 12 * y:12 * y + 12] for k in ERA5_FIELDS}
            grid = {k: np.full((12, *dom.shape), np.nan, "float32") for k in vals}
            for k, v in vals.items():
                grid[k][:, ii, jj] = v.T
            ds = xr.Dataset({k: (("time", "latitude", "longitude"), g) for k, g in grid.items()},
                            coords={"time": ctx.record.times()[12 * y:12 * y + 12], **dom.coords()})
            write_era5_year(out / f"era5_{y}.nc", ds, dom.longitude)
        per_year = (time.perf_counter() - t) / years
        res["era5_files"] = {"per_year_s": per_year, "extrapolated_s": per_year * nrec / 12,
                             "mb_per_file": (out / "era5_0.nc").stat().st_size / 1e6}
        t = time.perf_counter()
        for g in cfg.data.synthetic.gcms:
            build_gcm(g, dom, cfg.seed, cfg.period.start_year, cfg.period.projection_end_year, ctx.scenarios, out / "cmip5")
        res["gcms_s"] = time.perf_counter() - t
        total = (res["statics_s"] + res["cells"]["extrapolated_all_cells_s"] + res["zarr_writes"]["extrapolated_s"]
                 + res["era5_files"]["extrapolated_s"] + res["gcms_s"])
        res.update(mode="sampled", extrapolated_total_s=total, peak_rss_gb_sample=peak_gb(),
                   peak_rss_note="sample run; a full run holds one block (≤ BLOCK_CELLS cells × all months) at a time")
    res["machine"]["loadavg_end"] = os.getloadavg()
    (HERE / "synthetic_world.json").write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
