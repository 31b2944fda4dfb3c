"""Run configuration: one pydantic model tree, ``extra="forbid"`` at every level, validated on load.

Defaults live in ``geothaw/configs/alaska.yaml``; a user file (or ``--set key=value`` overrides) is a partial
tree merged over them, so a run's delta from the defaults is explicit.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

SCENARIOS = ("rcp26", "rcp45", "rcp60", "rcp85")
ScenarioName = Literal["rcp26", "rcp45", "rcp60", "rcp85"]
PosInt = Annotated[int, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DomainConfig(_Strict):
    """The ERA5-Land grid window. Longitudes in degrees east; exceed 180 to cross the antimeridian."""

    lat_min: float = Field(51.0, ge=-90, le=90, description="southern cell-centre latitude")
    lat_max: float = Field(72.0, ge=-90, le=90, description="northern cell-centre latitude")
    lon_min: float = Field(172.0, description="western cell-centre longitude, degrees east")
    lon_max: float = Field(231.0, description="eastern cell-centre longitude, degrees east (may exceed 180)")
    resolution: float = Field(0.1, gt=0, description="grid spacing in degrees (ERA5-Land: 0.1)")
    band_edges: list[float] = Field([51.0, 56.0, 60.0, 64.0, 68.0, 72.0], description="latitude-band edges")
    clip_to_alaska: bool = Field(False, description="mask cells outside the Alaska boundary")

    @model_validator(mode="after")
    def _check(self) -> "DomainConfig":
        if self.lat_max <= self.lat_min:
            raise ValueError(f"lat_max ({self.lat_max}) must be greater than lat_min ({self.lat_min})")
        if not 0 < self.lon_max - self.lon_min < 360:
            raise ValueError("lon_max must exceed lon_min by less than 360 (use e.g. 172 → 231 across 180°)")
        if len(self.band_edges) < 2 or any(b <= a for a, b in zip(self.band_edges, self.band_edges[1:])):
            raise ValueError("band_edges must be at least two strictly increasing latitudes")
        return self


class SyntheticConfig(_Strict):
    """The embedded physics-grounded synthetic Alaska."""

    coarsen: PosInt = Field(1, description="grid coarsening factor vs 0.1° (1 = full ERA5-Land resolution)")
    out_dir: Path = Field(Path("data/synthetic"), description="where synthetic worlds are built (one folder per world hash, reused)")
    gcms: list[str] = Field(["SYN-ESM-A", "SYN-ESM-B"], min_length=1, description="synthetic GCM names")
    spinup_years: int = Field(20, ge=0, description="physics spin-up years before the first output year")
    dt_days: float = Field(1.0, gt=0, le=5.0, description="physics solver time step, days")
    truth_stride: PosInt = Field(
        1,
        description=(
            "the scenarios' physics truth (2006 onwards) is solved on every n-th row and column only, where the "
            "projection skill is scored; the ERA5-Land record covers every cell regardless"
        ),
    )
    workers: PosInt | None = Field(None, description="processes solving the physics in parallel (null = one per CPU core when the world is large enough to gain); the world does not change")


class DataConfig(_Strict):
    source: Literal["synthetic", "files"] = Field("synthetic", description="embedded synthetic world or user files")
    era5land: list[Path] = Field([], description="ERA5-Land monthly files (NetCDF/GRIB), globs allowed")
    invariants: list[Path] = Field([], description="ERA5-Land invariant files (lsm, z, slt)")
    cmip5: dict[str, dict[str, list[Path]]] = Field(
        {}, description="GCM name → {'historical'|'rcp45'|'rcp85': [paths]} (ESGF NetCDF or SNAP GeoTIFF folders)"
    )
    synthetic: SyntheticConfig = SyntheticConfig()

    @model_validator(mode="after")
    def _files_exist(self) -> "DataConfig":
        if self.source == "files":
            if not self.era5land:
                raise ValueError("source is 'files' but data.era5land lists no files")
            for p in [*self.era5land, *self.invariants]:
                if not any(Path().glob(str(p))) and not Path(p).exists():
                    raise ValueError(f"file not found: {p}")
        return self


class PeriodConfig(_Strict):
    start_year: int = Field(1950, ge=1950, description="first year of reanalysis forcing")
    end_year: int = Field(2024, description="last year of reanalysis forcing (training data end)")
    projection_end_year: int = Field(2100, le=2300, description="last projected year")

    @model_validator(mode="after")
    def _order(self) -> "PeriodConfig":
        if self.end_year <= self.start_year:
            raise ValueError(f"end_year ({self.end_year}) must be after start_year ({self.start_year})")
        if self.projection_end_year <= self.end_year:
            raise ValueError(f"projection_end_year ({self.projection_end_year}) must be after end_year ({self.end_year})")
        return self


class FeatureConfig(_Strict):
    window_months: int = Field(24, ge=12, le=120, description="input window length ending each December")
    scenario_signal: Literal["rcp_forcing", "warming_anomaly"] = Field(
        "warming_anomaly", description="rcp_forcing: yearly RCP radiative forcing; warming_anomaly: running mean of "
                                       "the cell's own air-temperature anomaly")
    anomaly_years: PosInt = Field(10, description="running-mean length of the warming-anomaly signal")
    anomaly_baseline: tuple[int, int] = Field((1986, 2005), description="baseline years of the warming anomaly (the AR5 reference period; ending by 2005, the last CMIP5 historical year, keeps the years to 2005 identical in every scenario, and the projection computes them once)")
    extra_static: list[str] = Field(
        [], description="more 2-D variables used as static inputs: ERA5-Land invariants from the invariant files "
                        "(e.g. cvl, tvh, sdor) or, on the synthetic world, its ground parameters (e.g. "
                        "organic_thickness) for diagnostics")

    @model_validator(mode="after")
    def _baseline(self) -> "FeatureConfig":
        if self.anomaly_baseline[1] < self.anomaly_baseline[0] + 4:
            raise ValueError("anomaly_baseline must span at least 5 years (start, end)")
        return self


class TrainingConfig(_Strict):
    models: list[str] = Field(["gru", "tcn", "transformer", "conv1dlstm", "bilstm"], min_length=1,
                              description="sequence architectures to train (registry names)")
    baselines: list[str] = Field(["climatology", "linear"], description="baselines fitted in closed form")
    epochs: PosInt = Field(30, description="maximum epochs (early stopping on the validation cells)")
    batch_size: PosInt = Field(512, description="training batch size")
    learning_rate: float = Field(4e-3, gt=0, lt=1, description="Adam learning rate (halved on plateaus)")
    hidden_size: PosInt = Field(64, description="width of every sequence core")
    n_layers: PosInt = Field(2, le=6, description="recurrent/convolutional/attention layers")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout between layers")
    ridge_alpha: float = Field(1.0, gt=0, description="ridge penalty of the linear baseline (and of the networks' ridge-fitted linear path)")
    linear_path: Literal["joint", "ridge"] = Field("ridge", description="the networks' linear response path: fitted first by ridge regression and frozen, so the network learns only the remainder and extrapolates the warming like ridge (ridge), or trained jointly with the network (joint, which under-warmed late-century RCP8.5; docs/results.md §5f)")
    patience: PosInt = Field(5, description="epochs without validation improvement before stopping")
    ema_epochs: float = Field(1.0, ge=0, description="validate and keep an exponential moving average of the weights over about this many epochs of steps (0 = the raw weights; 1 gave 2-6 % lower hold-out errors on the 0.5° proxy, docs/results.md §5i)")
    max_train_cells: PosInt = Field(4000, description="cells sampled for training (bounds memory)")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="fraction of training cells used for validation")
    num_threads: PosInt = Field(1, le=64, description="torch threads (1 is fastest for small batches on few cores)")
    workers: PosInt | None = Field(None, le=64, description="networks trained at once, one process each (null = one per CPU core when the samples are many enough to gain); the weights do not change")
    seed: int | None = Field(None, description="seed of the networks' initial weights, batch order and dropout (null = the run's `seed`); the samples, splits and world keep the run's seed, so training several seeds on one world measures the spread between training runs")
    shortlist_epochs: PosInt | None = Field(None, description="train every network this many epochs, then only the `shortlist_size` with the lowest validation loss so far go on to `epochs` (successive halving; the others keep their weights of these epochs, and their errors in the comparison are those of a shorter training). null = every network trains to the end")
    shortlist_size: PosInt = Field(2, description="how many networks go on training after `shortlist_epochs`")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="where the networks train: cpu (bit-reproducible), cuda (an NVIDIA GPU; an error when torch sees none) or auto (cuda when torch sees one). Baselines, evaluation and projection run on the CPU; checkpoints load on any machine")


class EvaluationConfig(_Strict):
    holdout_years: PosInt = Field(10, description="last years never trained on (time hold-out)")
    block_size_deg: float = Field(2.0, gt=0, description="spatial hold-out block edge, degrees")
    holdout_block_fraction: float = Field(0.2, gt=0, lt=0.5, description="fraction of blocks never trained on")
    max_eval_cells: PosInt = Field(4000, description="cells scored per hold-out (bounds memory)")
    attribution_repeats: PosInt = Field(3, description="permutations per feature for importance")


class ProjectionConfig(_Strict):
    scenarios: list[ScenarioName] = Field(["rcp45", "rcp85"], min_length=1, description="RCPs to project")
    batch_size: int = Field(4096, ge=64, le=65536, description="inference batch size (1024 projected 10-16 % faster than 512 with the GRU, 4096 another 7 % with the BiLSTM; values change by float rounding only, ≤ 2e-6 °C)")
    chunk_cells: PosInt = Field(
        64,
        description=(
            "projection block size (dask): blocks hold about `chunk_cells`² grid cells; a domain narrower than "
            "`chunk_cells` rows gets wider blocks of the same cell count"
        ),
    )
    scheduler: str | None = Field(None, description="dask.distributed scheduler address; None = local threads")
    workers: PosInt = Field(2, description="local dask worker threads (one torch thread each)")
    ensemble: bool = Field(True, description="combine GCMs into an ensemble mean (maps, COGs) and spread")
    first_year: int = Field(1981, ge=1951, description="first projected year (needs window_months of forcing before it)")
    skill_stride: PosInt = Field(3, description="projection skill on every n-th row and column (synthetic truth only)")


class OutputConfig(_Strict):
    runs_dir: Path = Field(Path("runs"), description="parent folder of run directories")
    crs: Literal[3338, 4326] = Field(3338, description="EPSG code of the GeoTIFFs")
    resolution_m: float = Field(5000.0, gt=0, description="pixel size of EPSG:3338 rasters")
    era_maps: bool = Field(True, description="draw an exceedance map per depth × scenario × era (32 maps by default)")


def drop_unset_training_keys(training: dict) -> None:
    """Leave unset options out of hashes, so that configs older than the options keep their hashes: an unset
    ``training.seed`` means the run's seed, and without ``training.shortlist_epochs`` there is no shortlist."""
    if training.get("seed") is None:
        training.pop("seed", None)
    if training.get("shortlist_epochs") is None:
        training.pop("shortlist_epochs", None)
        training.pop("shortlist_size", None)


class RunConfig(_Strict):
    name: str = Field("alaska", pattern=r"^[A-Za-z0-9_.-]+$", description="run name (folder under runs_dir)")
    seed: int = Field(42, description="seed for the synthetic world, splits and training (the networks' own seed is `training.seed` when set)")
    domain: DomainConfig = DomainConfig()
    data: DataConfig = DataConfig()
    period: PeriodConfig = PeriodConfig()
    features: FeatureConfig = FeatureConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    projection: ProjectionConfig = ProjectionConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _skill_on_the_truth_lattice(self) -> "RunConfig":
        truth, skill = self.data.synthetic.truth_stride, self.projection.skill_stride
        if self.data.source == "synthetic" and skill % truth:
            raise ValueError(f"projection.skill_stride ({skill}) must be a multiple of data.synthetic.truth_stride "
                             f"({truth}): the skill is scored where the world holds scenario truth")
        return self

    def training_seed(self) -> int:
        """The seed of the networks' weights, batch order and dropout: ``training.seed``, else the run's."""
        return self.seed if self.training.seed is None else self.training.seed

    def hash(self, *sections: str) -> str:
        """Stable short hash of the whole config or of some sections (stage caching keys, provenance).

        Where outputs go (``output.runs_dir``, ``data.synthetic.out_dir``) is not part of what is computed, so it
        is left out: the same run in another folder has the same hash and identical files. So is
        ``training.workers``, which changes how long training takes, never the weights.
        """
        data = self.model_dump(mode="json")
        data["output"].pop("runs_dir", None)
        data["data"]["synthetic"].pop("out_dir", None)
        data["training"].pop("workers", None)  # how many processes train, not what they compute
        drop_unset_training_keys(data["training"])
        if sections:
            data = {s: data[s] for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---- loading -----------------------------------------------------------------------------------------
def _format_error(err: ValidationError) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "<root>"
    if e["type"] == "extra_forbidden":
        return f"unknown config key '{key}'"
    msg = e["msg"].removeprefix("Value error, ")
    if not e["loc"]:  # a check across sections names its keys itself
        return f"invalid config: {msg}"
    return f"invalid config value for '{key}': {msg}" + (f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else "")


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _parse_override(item: str) -> dict:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key.sub=value")
    key, value = item.split("=", 1)
    tree: Any = yaml.safe_load(value) if value else None
    for part in reversed(key.strip().split(".")):
        tree = {part: tree}
    return tree


def packaged_config(name: str) -> Path:
    """Path of a config shipped with the package (``alaska`` or ``quick``)."""
    path = Path(str(files("geothaw") / "configs" / f"{name}.yaml"))
    if not path.exists():
        raise ConfigError(f"no packaged config named '{name}'")
    return path


def _read_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config keys")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *,
                base: str = "alaska") -> RunConfig:
    """Load the packaged defaults, merge a user YAML and ``key=value`` overrides, and validate everything."""
    data = _read_yaml(packaged_config(base))
    if path is not None:
        data = _deep_merge(data, _read_yaml(Path(path)))
    for item in overrides:
        data = _deep_merge(data, _parse_override(item))
    return validate_config(data)


def validate_config(data: dict) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def config_reference() -> str:
    """Markdown reference of every config key, generated from the schema (docs/config.md is this text)."""
    lines = ["# geothaw configuration reference", "",
             "Generated from `geothaw.config` by `python -m geothaw.config > docs/config.md`; a test keeps it in sync.",
             "Defaults are those of `geothaw/configs/alaska.yaml`.", ""]
    defaults = load_config().model_dump(mode="json")

    def walk(model: type[BaseModel], prefix: str, values: dict) -> None:
        rows = []
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.", values[name])
                continue
            rows.append(f"| `{prefix}{name}` | `{json.dumps(values[name])}` | {f.description or ''} |")
        if rows:
            lines.extend([f"## `{prefix.rstrip('.') or 'top level'}`", "", "| key | default | meaning |",
                          "| --- | --- | --- |", *rows, ""])

    walk(RunConfig, "", defaults)
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(config_reference())
