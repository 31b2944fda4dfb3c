"""Throughput and memory of the physics solver (geothaw.physics.solve_columns).

Run:  .venv/bin/python benchmarks/physics_solver.py [--cells 1024] [--years 10] [--repeats 3]
Writes benchmarks/physics_solver.json and benchmarks/physics_solver.md next to this file.
Synthetic Alaska-like forcing (seasonal air temperature, winter snow, wet soils with peat) so the
freeze/thaw branch of the solver is exercised, as in a real run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numba
import numpy as np

from geothaw.physics import SoilProperties, solve_columns
from geothaw.versions import cpu_model

HERE = Path(__file__).resolve().parent
TARGET_CELLS, TARGET_YEARS = 50_000, 266


def synthetic_case(n_cells: int, years: int, dtype: type, seed: int = 0):
    rng = np.random.default_rng(seed)
    m = np.arange(12 * years)
    mean = rng.uniform(-12.0, 3.0, (n_cells, 1))
    amp = rng.uniform(8.0, 20.0, (n_cells, 1))
    air = mean - amp * np.cos(2 * np.pi * m / 12)[None, :] + rng.normal(0.0, 1.5, (n_cells, m.size))
    snow = np.clip(0.5 * np.cos(2 * np.pi * m / 12)[None, :], 0, None) * rng.uniform(0.2, 1.5, (n_cells, 1))
    rho = np.full(air.shape, 250.0)
    props = SoilProperties(
        k_thawed=rng.uniform(0.6, 1.8, n_cells), k_frozen=rng.uniform(1.0, 2.6, n_cells),
        c_thawed=rng.uniform(2.0e6, 3.0e6, n_cells), c_frozen=rng.uniform(1.6e6, 2.2e6, n_cells),
        water_content=rng.uniform(0.1, 0.6, n_cells), organic_thickness=rng.uniform(0.0, 0.3, n_cells),
    )  # fmt: skip
    return air.astype(dtype), snow.astype(dtype), rho.astype(dtype), props


def measure(n_cells: int, years: int, dt_days: float, dtype: type, repeats: int, threads: int) -> dict:
    numba.set_num_threads(threads)
    air, snow, rho, props = synthetic_case(n_cells, years, dtype)
    # warm-up on a slice compiles (or loads the cached) kernel for this dtype outside the timing
    solve_columns(air[:64, :12], snow[:64, :12], rho[:64, :12], props_slice(props, 64), dt_days=dt_days)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        solve_columns(air, snow, rho, props, dt_days=dt_days)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rate = n_cells * years / med
    return {
        "cells": n_cells, "years": years, "dt_days": dt_days, "forcing_dtype": np.dtype(dtype).name, "threads": threads,
        "seconds": [round(t, 3) for t in times], "median_seconds": round(med, 3),
        "cell_years_per_second": round(rate, 1),
        "extrapolated_minutes_50k_x_266y": round(TARGET_CELLS * TARGET_YEARS / rate / 60.0, 1),
    }  # fmt: skip


def props_slice(props: SoilProperties, n: int) -> SoilProperties:
    return SoilProperties(**{k: (np.asarray(v)[:n] if np.ndim(v) else v) for k, v in vars(props).items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1024)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    max_threads = numba.get_num_threads()
    runs = [
        measure(args.cells, args.years, dt, np.float64, args.repeats, threads)
        for threads in sorted({1, max_threads})
        for dt in (1.0, 2.0)
    ]
    runs.append(measure(args.cells, args.years, 2.0, np.float32, args.repeats, max_threads))
    numba.set_num_threads(max_threads)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    forcing_mb = 3 * args.cells * args.years * 12 * 8 / 2**20
    outputs_mb = args.cells * args.years * 12 * (4 + 4 + 1) * 4 / 2**20
    report = {
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "numba_threads": numba.get_num_threads(), "platform": platform.platform(),
                    "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "runs": runs,
        "peak_rss_mb": round(peak_mb, 1),
        "forcing_mb": round(forcing_mb, 1),
        "outputs_mb": round(outputs_mb, 1),
    }  # fmt: skip
    (HERE / "physics_solver.json").write_text(json.dumps(report, indent=2) + "\n")
    (HERE / "physics_solver.md").write_text(markdown(report))
    print(markdown(report))


def markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = [
        "# Physics solver throughput",
        "",
        "`.venv/bin/python benchmarks/physics_solver.py` (synthetic Alaska-like forcing, wet soils with peat, so",
        "freeze/thaw is exercised). Medians of the repeats; 26 nodes to 25 m, BDF2, Newton passes per step until each column converges (2-8).",
        "",
        f"Machine: {m['cpu_count']} cores of {m.get('cpu', 'an unrecorded CPU')}, numba threads {m['numba_threads']}; load average before/after "
        f"{m['loadavg_before']} / {m['loadavg_after']}"
        + (" — **measured while other jobs shared the cores**, so these are pessimistic." if m["loadavg_before"][0] > 0.5
           else " (1-minute load below 0.5 at the start: the cores were otherwise idle)."),
        "",
        "| cells | years | dt (days) | forcing | threads | median s | cell-years/s | extrapolated 50,000 × 266 y (min) |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rep["runs"]:
        lines.append(
            f"| {r['cells']} | {r['years']} | {r['dt_days']:g} | {r['forcing_dtype']} | {r['threads']} | {r['median_seconds']} | "
            f"{r['cell_years_per_second']} | {r['extrapolated_minutes_50k_x_266y']} |"
        )
    lines += [
        "",
        f"Peak RSS of the benchmark process: {rep['peak_rss_mb']} MB (includes numba/LLVM; forcing held "
        f"{rep['forcing_mb']} MB, outputs {rep['outputs_mb']} MB). The kernel itself allocates only per-block",
        "work arrays (~0.2 MB per thread); memory scales with forcing + outputs.",
        "",
        "Forcing dtype only changes the input arrays; the solver state is float64 either way.",
        "The first import compiles the kernel (~40 s on this machine) and caches it (`cache=True`).",
        "",
        "Before/after (same process, 512 cells x 10 y, interleaved best-of-3, load ~1.1-1.4): the previous",
        "kernel (commit 3411d80) did 1638 / 2530 cell-years/s on 1 thread at dt 1 / 2 days and 2637 / 4641 on",
        "2 threads; the block-buffer kernel 3725 / 6917 and 5634 / 10367, i.e. 2.1-2.7x.  Still short of the",
        "30,000 cell-years/s (2-day, 2 threads) needed for the full domain in 5 min.",
        "",
        "Session 22: two fixed Newton passes per step left the melt-out steps of thin, dry top cells unconverged",
        "(monthly layer-1 means tens of K too warm; docs/results.md section 5i). Each column now gets passes until",
        "its linearisation error is below 1e-2 K. Interleaved in one process (1,024 cells x 10 y, dt 2 d, 2 threads,",
        "3 repeats, this case's wet soils and noisy forcing): 2 fixed passes 0.98 s; to 1e-2 K 1.66 s (1.7x), 1e-3 K",
        "1.86 s, 1e-4 K 2.04 s (the table above, 1e-4 K); on 256 cells of the 0.5 deg world",
        "all three leave the same 0.08 K layer-1 RMSE against 0.5-day steps.",
        "On the world's own soils and forcing the cost is lower: its 0.5 deg physics took 226 s, not 162 s (1.4x, 1e-4 K).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
