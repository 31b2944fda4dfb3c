"""Apply a trained model cell by cell over the whole domain with dask.

The forcing is chunked in space only (time stays one chunk, since a sample needs the 24 months before each
December); each spatial block is turned into model inputs, predicted in batches of ``batch_size`` with a
model loaded once per worker process (cached by checkpoint path, one torch thread per worker), and reduced
straight to yearly products, so only yearly fields ever leave a block. Memory is bounded by the block size.
All scenarios of a GCM go through one block together, so the historical years they share are predicted once.

Works on dask's local threaded scheduler by default and on a ``dask.distributed`` cluster (``scheduler``
address or a ``Client``): the block function is a module-level function of plain arguments, so it pickles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputDataError
from .memory import map_large_arrays_directly
from .products import DEPTH_MID, first_exceedance_year, yearly_products
from .scenarios import HISTORICAL_END

PRODUCT_DTYPES = {"magt": "float32", "tmin": "float32", "tmax": "float32", "exceeds_zero": "int8",
                  "thawed_year_round": "int8", "thaws_in_summer": "int8", "alt": "float32", "alt_capped": "int8",
                  "first_exceedance_year": "float32"}


CELLS_PER_GROUP = 256  # cells whose input windows are materialised at once in a block
SLAB_CELLS = 1024  # about this many grid cells (whole rows of a block) get their snow derived at once


def block_chunks(shape: tuple[int, int], chunk_cells: int) -> dict[str, int]:
    """Spatial dask chunks holding about ``chunk_cells``² grid cells, whatever the domain's shape.

    A block's memory follows its cell count, so a domain narrower than ``chunk_cells`` rows gets wider
    blocks instead of smaller ones: peak memory is then set by the configured block size, not by the domain.
    """
    ny, nx = shape
    rows = max(1, min(ny, chunk_cells))
    cols = max(1, min(nx, chunk_cells * chunk_cells // rows))
    return {"latitude": rows, "longitude": cols}


@lru_cache(maxsize=4)
def _model_for(checkpoint: str):
    """Load a checkpoint once per process (dask workers reuse it for every block they run)."""
    import torch

    from .training import load_checkpoint

    torch.set_num_threads(1)  # two single-threaded workers beat one worker with two threads (measured)
    map_large_arrays_directly()
    return load_checkpoint(checkpoint)


def predict_block(block: xr.Dataset, *, checkpoint: str, years: np.ndarray, scenario: str,
                  batch_size: int = 512) -> xr.DataArray:
    """Monthly soil temperature (time, depth, latitude, longitude) predicted for one spatial block."""
    from .features import make_inputs, predictions_to_dataset, prepare, valid_cells
    from .training import predict

    loaded = _model_for(checkpoint)
    ny, nx = block.sizes["latitude"], block.sizes["longitude"]
    time = _monthly_time(np.asarray(years, dtype="int64"))
    empty = xr.DataArray(np.full((time.size, 4, ny, nx), np.nan, dtype="float32"),
                         dims=("time", "depth", "latitude", "longitude"),
                         coords={"time": time, "depth": DEPTH_MID, "latitude": block["latitude"].values,
                                 "longitude": block["longitude"].values})
    if not bool(block["t2m"].notnull().any()):
        return empty
    ds = prepare(block)  # snow once for the whole block; make_inputs reuses it
    rows, cols = valid_cells(ds)
    # Windows are built for CELLS_PER_GROUP cells at a time, so the (samples × 24 months × features) arrays
    # stay small whatever the chunk size; every cell's inputs are independent of its group.
    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    for g in range(0, rows.size, CELLS_PER_GROUP):
        inputs = make_inputs(ds, years, loaded.features, scenario=scenario,
                             cells=(rows[g:g + CELLS_PER_GROUP], cols[g:g + CELLS_PER_GROUP]))
        if len(inputs["year"]):
            y_hat = predict(loaded.model, loaded.features, inputs, batch_size=batch_size)
            parts.append((y_hat, {k: inputs[k] for k in ("row", "col", "year")}))
    if not parts:
        return empty
    y_hat = np.concatenate([p[0] for p in parts])
    where = {k: np.concatenate([p[1][k] for p in parts]) for k in ("row", "col", "year")}
    pred = predictions_to_dataset(y_hat, where, block, years)
    stacked = xr.concat([pred[v] for v in ("stl1", "stl2", "stl3", "stl4")], dim="depth").transpose(
        "time", "depth", "latitude", "longitude")
    return stacked.assign_coords(depth=DEPTH_MID).astype("float32")


def _monthly_time(years: np.ndarray) -> np.ndarray:
    """First of every month of ``years`` (datetime64[ns])."""
    months = (years[:, None] - 1970) * 12 + np.arange(12)[None, :]
    return months.ravel().astype("datetime64[M]").astype("datetime64[ns]")


def _group_monthly(y_hat: np.ndarray, inputs: dict[str, np.ndarray], cells: np.ndarray, nx: int, years: np.ndarray,
                   time: np.ndarray) -> xr.DataArray:
    """A group's predictions [N, 12, 4] as monthly soil temperature (time, depth, cell); cell-years without a
    sample stay NaN. ``cells`` are the group's flat indices (row * nx + col), ascending."""
    monthly = np.full((time.size, 4, cells.size), np.nan, dtype="float32")
    ci = np.searchsorted(cells, inputs["row"] * nx + inputs["col"])
    t_idx = np.searchsorted(years, inputs["year"])[:, None] * 12 + np.arange(12)[None, :]
    monthly[t_idx, :, ci[:, None]] = y_hat  # advanced indices around a slice: the target is (N, 12, 4)
    return xr.DataArray(monthly, dims=("time", "depth", "cell"), coords={"time": time, "depth": DEPTH_MID})


def _blank_products(years: np.ndarray) -> xr.Dataset:
    """The products of one cell whose monthly series is all NaN (dims …, cell of size 1)."""
    time = _monthly_time(years)
    return yearly_products(xr.DataArray(np.full((time.size, 4, 1), np.nan, dtype="float32"),
                                        dims=("time", "depth", "cell"), coords={"time": time, "depth": DEPTH_MID}))


def block_products(block: xr.Dataset, *, checkpoint: str, years: np.ndarray, scenario: str,
                   batch_size: int = 512) -> xr.Dataset:
    """Yearly products of one spatial block: ``yearly_products(predict_block(...))``, value for value, without
    ever holding the block's monthly series.

    The block goes by slabs of whole rows (about ``SLAB_CELLS`` grid cells; snow is derived per slab), and each
    group of at most ``CELLS_PER_GROUP`` land cells of a slab is predicted and reduced to its yearly products
    before the next one (every product is per cell, so the grouping changes no value). The monthly grid of a
    64 × 64 block over 149 years is 117 MB per scenario, and building it took several copies; the yearly
    products are a twelfth of it.
    Cells without predictions (sea) get what ``yearly_products`` gives an all-NaN series.
    """
    from .features import make_inputs, prepare, valid_cells
    from .training import predict

    loaded = _model_for(checkpoint)
    years = np.asarray(years, dtype="int64")
    ny, nx = block.sizes["latitude"], block.sizes["longitude"]
    time = _monthly_time(years)
    # an all-NaN cell's products: the fill of every cell no group reaches, and each variable's dtype and attrs
    blank = _blank_products(years)
    grids = {name: np.repeat(v.values, ny * nx, axis=-1).reshape(v.shape[:-1] + (ny, nx))
             for name, v in blank.data_vars.items()}
    slab_rows = max(1, SLAB_CELLS // nx)
    has_land = bool(block["t2m"].notnull().any())
    for r0 in range(0, ny if has_land else 0, slab_rows):
        # snow is derived a slab of rows at a time: for the whole block its arrays and their temporaries
        # were ~400 MB per worker at 64 × 64 cells and 151 years
        ds = prepare(block.isel(latitude=slice(r0, r0 + slab_rows)))
        rows, cols = valid_cells(ds)
        for g in range(0, rows.size, CELLS_PER_GROUP):
            r, c = rows[g:g + CELLS_PER_GROUP], cols[g:g + CELLS_PER_GROUP]
            inputs = make_inputs(ds, years, loaded.features, scenario=scenario, cells=(r, c))
            if not len(inputs["year"]):
                continue
            y_hat = predict(loaded.model, loaded.features, inputs, batch_size=batch_size)
            group = yearly_products(_group_monthly(y_hat, inputs, r * nx + c, nx, years, time))
            for name, v in group.data_vars.items():
                grids[name][..., r0 + r, c] = v.values
    dims = {name: v.dims[:-1] + ("latitude", "longitude") for name, v in blank.data_vars.items()}
    return xr.Dataset({name: (dims[name], grids[name], blank[name].attrs) for name in grids},
                      coords={"year": years, "depth": blank["depth"],
                              "latitude": block["latitude"].values, "longitude": block["longitude"].values})


def shared_history_end(features) -> int | None:
    """Last year whose model inputs are the same in every scenario, for a model with these ``features``.

    Every RCP continues the same CMIP5 historical run, so forcing to 2005 is shared; the scenario signal is
    too when it is the RCP table (shared to 2005) or a trailing warming anomaly whose baseline ends by 2005.
    ``None`` when the signal looks past the shared years (then every scenario is predicted in full).
    """
    if features.scenario_signal == "warming_anomaly" and features.anomaly_baseline[1] > HISTORICAL_END:
        return None
    return HISTORICAL_END


def _same_history(a: xr.Dataset, b: xr.Dataset, last_year: int) -> bool:
    """Whether two scenarios' forcing blocks agree bit for bit up to December of ``last_year``."""
    upto = a["time"].dt.year.values <= last_year
    return all(np.array_equal(a[v].values[upto], b[v].values[upto], equal_nan=True) for v in ("t2m", "tp"))


_SCENARIO_SEP = "|"  # t2m|rcp45: a scenario's forcing variable in the combined block input


def combine_scenarios(forcings: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """One dataset holding every scenario's ``t2m``/``tp`` (as ``t2m|<scenario>``) and the first one's statics.

    Variables side by side rather than stacked along a new dimension: each block then reads the scenarios'
    forcing chunks as they are, with no concatenated copy.
    """
    first = next(iter(forcings.values()))
    statics = first[[v for v in first.data_vars if "time" not in first[v].dims]]
    dynamic = {f"{v}{_SCENARIO_SEP}{scen}": f[v] for scen, f in forcings.items() for v in ("t2m", "tp")}
    return xr.merge([xr.Dataset(dynamic), statics], join="exact", compat="no_conflicts")  # explicit: xarray's default is changing


def _scenario_forcing(block: xr.Dataset, scenario: str) -> xr.Dataset:
    statics = block[[v for v in block.data_vars if _SCENARIO_SEP not in v]]
    return statics.assign(t2m=block[f"t2m{_SCENARIO_SEP}{scenario}"], tp=block[f"tp{_SCENARIO_SEP}{scenario}"])


def _scenarios_block(block: xr.Dataset, checkpoint: str, years: np.ndarray, scenarios: tuple[str, ...],
                     batch_size: int) -> xr.Dataset:
    """Yearly products of one spatial block (:func:`combine_scenarios` layout) for every scenario.

    The first scenario is predicted for all ``years``; the others only for the years after their shared
    history when their forcing there is identical to the first's (checked here, per block), and take the
    first's products of the years before (only the first-exceedance year, which looks at the whole series,
    is recomputed). With 1952–2100 and two RCPs that skips 54 of 298 scenario-years.
    """
    shared_end = shared_history_end(_model_for(checkpoint).features)
    first = _scenario_forcing(block, scenarios[0])
    products = [block_products(first, checkpoint=checkpoint, years=years, scenario=scenarios[0], batch_size=batch_size)]
    for scen in scenarios[1:]:
        this = _scenario_forcing(block, scen)
        if shared_end is None or years[0] > shared_end or not _same_history(first, this, shared_end):
            products.append(block_products(this, checkpoint=checkpoint, years=years, scenario=scen, batch_size=batch_size))
            continue
        yearly = products[0].drop_vars("first_exceedance_year").sel(year=slice(None, shared_end))
        later = years[years > shared_end]
        if later.size:
            own = block_products(this, checkpoint=checkpoint, years=later, scenario=scen,
                                 batch_size=batch_size).drop_vars("first_exceedance_year")
            yearly = xr.concat([yearly, own], dim="year", data_vars="all", coords="minimal", compat="override")
        products.append(yearly.assign(first_exceedance_year=first_exceedance_year(yearly["magt"])))
    out = xr.concat(products, dim=pd.Index(list(scenarios), name="scenario"), coords="minimal", compat="override")
    return out.drop_vars([c for c in out.coords if c not in ("scenario", "year", "depth", "latitude", "longitude")])


def _template(forcing: xr.Dataset, years: np.ndarray, scenarios: tuple[str, ...]) -> xr.Dataset:
    """The lazy result's layout. ``map_blocks`` takes every attribute from here, so the products' own (units,
    long_name, standard_name, the flags' _FillValue, the depth coordinate's CF attributes) are copied in."""
    import dask.array as da

    lat_chunks = forcing.chunks["latitude"]
    lon_chunks = forcing.chunks["longitude"]
    blank = _blank_products(np.asarray(years[:1]))
    coords = {"scenario": list(scenarios), "year": years, "depth": ("depth", DEPTH_MID, blank["depth"].attrs),
              "latitude": forcing["latitude"].values, "longitude": forcing["longitude"].values}
    out = {}
    for name, dtype in PRODUCT_DTYPES.items():
        dims = ("scenario", "year", "depth", "latitude", "longitude")
        shape = (len(scenarios), years.size, 4, forcing.sizes["latitude"], forcing.sizes["longitude"])
        chunks = ((len(scenarios),), (years.size,), (4,), lat_chunks, lon_chunks)
        keep = [0, 2, 3, 4] if name == "first_exceedance_year" else [0, 1, 3, 4] if name in ("alt", "alt_capped") \
            else [0, 1, 2, 3, 4]
        out[name] = ([dims[i] for i in keep], da.zeros([shape[i] for i in keep], chunks=[chunks[i] for i in keep],
                                                       dtype=dtype), blank[name].attrs)
    return xr.Dataset(out, coords=coords)


def project_scenarios(forcings: Mapping[str, xr.Dataset], checkpoint: str | Path, *, years,
                      chunk_cells: int = 64, batch_size: int = 512) -> xr.Dataset:
    """Lazy yearly products (dask) of a trained model for several scenarios at once: dims ``scenario``, ``year``,
    ``depth``, ``latitude``, ``longitude``.

    ``forcings`` maps each scenario to its canonical forcing (historical + scenario months, incl. statics, all
    on one grid). The years every scenario shares (:func:`shared_history_end`) are predicted once per block,
    so write all scenarios from one computation (:func:`geothaw.io.writers.write_scenario_products`).
    Blocks hold about ``chunk_cells``² grid cells (:func:`block_chunks`); each forcing must start in January at
    least ``window_months`` before the first year in ``years``. Nothing is computed until the result is written.
    """
    years = np.asarray(list(years), dtype="int64")
    scenarios = tuple(forcings)
    if years.size == 0:
        raise InputDataError("projection needs at least one year")
    if not scenarios:
        raise InputDataError("projection needs at least one scenario")
    for scen, f in forcings.items():
        if _SCENARIO_SEP in scen:
            raise InputDataError(f"scenario name '{scen}' must not contain '{_SCENARIO_SEP}'")
        for v in ("t2m", "tp"):
            if v not in f:
                raise InputDataError(f"projection forcing of {scen} lacks '{v}'")
    combined = combine_scenarios(forcings)
    blocks = block_chunks((combined.sizes["latitude"], combined.sizes["longitude"]), chunk_cells)
    forcing = combined.chunk({"time": -1, **blocks})
    return xr.map_blocks(_scenarios_block, forcing, args=(str(checkpoint), years, scenarios, batch_size),
                         template=_template(forcing, years, scenarios))


def project_products(forcing: xr.Dataset, checkpoint: str | Path, *, years, scenario: str,
                     chunk_cells: int = 64, batch_size: int = 512) -> xr.Dataset:
    """Lazy yearly products (dask) of a trained model driven by one scenario's ``forcing`` (canonical, incl.
    statics): :func:`project_scenarios` for a single scenario."""
    return project_scenarios({scenario: forcing}, checkpoint, years=years, chunk_cells=chunk_cells,
                             batch_size=batch_size).isel(scenario=0, drop=True)


@contextlib.contextmanager
def dask_scheduler(address: str | None = None, *, workers: int = 2) -> Iterator[object]:
    """Run dask computations on a distributed cluster (``address``) or the local threaded scheduler.

    Locally, ``workers`` threads each run one single-threaded torch model; on a cluster each worker process
    caches its own model. For HPC, start a ``dask_jobqueue`` cluster and pass its scheduler address. Start
    cluster workers with a large ``MALLOC_TRIM_THRESHOLD_`` (dask config
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_``, e.g. 2**30): distributed's default
    (65536) made one torch batch 1.3-1.8x slower in a standalone check; ``benchmarks/projection.md``
    has the LocalCluster at 0.43x the threaded speed.
    """
    import dask

    if address:
        from distributed import Client

        with Client(address) as client:
            yield client
    else:
        with dask.config.set(scheduler="threads", num_workers=workers):
            yield None
