"""Background warm-up: the cold-cache check, the kernel child process and its cancellation."""

from __future__ import annotations

import os
import subprocess
import sys

from geothaw.warmup import BackgroundWarmup, start_background_imports


def _python(code: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_an_empty_numba_cache_means_the_solver_must_compile(tmp_path):
    code = "from geothaw.warmup import solver_needs_compiling as s; print(s())"
    assert _python(code, NUMBA_CACHE_DIR=str(tmp_path / "empty")) == "True"


def test_warm_kernels_cover_the_bias_correction_stage():
    # After the warm-up, a quantile mapping shaped like the stage's (float32, time × cell, other sizes)
    # must not compile any new specialisation: that is what lets the stage load them from the disk cache.
    code = """
import numpy as np, pandas as pd, xarray as xr
from numba.core.dispatcher import Dispatcher
from geothaw.biascorrect import BiasAdjustment, warm_kernels
from xsdba import nbutils
warm_kernels()
count = lambda: sum(len(d.signatures) for d in vars(nbutils).values() if isinstance(d, Dispatcher))
before = count()
rng = np.random.default_rng(1)
t = pd.date_range("1960-01-01", periods=360, freq="MS")
ds = lambda s: xr.Dataset({"t2m": (("time", "cell"), rng.normal(s, 4, (360, 7)).astype("float32"), {"units": "degC"}),
                           "tp": (("time", "cell"), rng.gamma(2, 10, (360, 7)).astype("float32"), {"units": "mm month-1"})},
                          coords={"time": t, "cell": np.arange(7)})
h = ds(-3.0)
BiasAdjustment.train(ds(0.0), h, nquantiles=50).adjust(h)
print(before > 0, count() - before)
"""
    assert _python(code) == "True 0"


def test_cancelling_stops_the_kernel_child():
    warm = BackgroundWarmup(("json",), compile_in_child=True)
    warm.join(cancel=True)
    assert warm.child is not None and warm.child.poll() is not None
    assert not warm.thread.is_alive()


def test_a_warm_cache_starts_no_child():
    warm = start_background_imports(("json",), compile_kernels=False)
    warm.join()
    assert warm.child is None
