"""1-D soil heat conduction with freeze/thaw, vectorised over many columns in one numba kernel.

Numerics (see REFERENCE §6 for why):

* cell-centred finite volumes; every ERA5-Land layer is split into an odd number of equal cells so a
  cell centre sits exactly on each layer mid-depth and layer means are plain cell averages;
* enthalpy form H(T) = sensible + L·theta_liquid(T) with the GIPL unfrozen-water curve;
* BDF2 in time (backward Euler on the first step); each step does Newton passes on the energy balance
  (H linearised about the current iterate, one tridiagonal solve, then T recovered from the updated
  enthalpy, so energy is conserved exactly whatever the linearisation error): at least two, and more, up to
  eight, for each column until its linearisation error is below _PASS_TOL (a thawing thin cell needs them);
* T from H on the frozen branch: for the default b = -1/2 Newton on the cubic c_f s^3 + H s - L a = 0
  in s = sqrt(-T) (one division per iteration, vectorised, converged to 1e-7 in s); blocks with other
  b values use a vectorised Newton in T clamped at the cap temperature (g(T) is convex, so it converges
  monotonically), and a scalar safeguarded Newton only for a row that does not converge;
* the surface couples to air through snow (Sturm 1997 conductivity) plus an optional surface
  resistance; the bottom receives the geothermal flux.

The kernel owns the whole time loop: columns are processed in blocks (``prange`` over blocks, inner
loops across the block's columns), monthly forcing is interpolated inside, and monthly layer means,
liquid water and maximum thaw depth are accumulated inside, so memory is just forcing plus outputs.
Each block keeps its state in one flat buffer with compile-time offsets so the column loops are
SIMD-vectorised (see the comment above ``_N``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import ArrayLike, NDArray

ERA5_LAYER_BOUNDS: tuple[tuple[float, float], ...] = ((0.0, 0.07), (0.07, 0.28), (0.28, 1.00), (1.00, 2.89))
ERA5_LAYER_MIDDEPTHS: tuple[float, ...] = (0.035, 0.175, 0.64, 1.945)

LATENT_HEAT = 3.34e8  # J m-3 of water
SECONDS_PER_DAY = 86400.0
_DAYS_365 = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# cells per ERA5 layer (odd, so a centre lies on the mid-depth) and the deep cells below 2.89 m
_CELLS_PER_LAYER = (3, 3, 7, 5)
_DEEP_FIRST_WIDTH = 0.45  # m
_DEEP_GROWTH = 1.5
_DEEP_CELLS = 8  # bottom at ~25 m
_BLOCK = 32  # columns per block: inner loops run across these (SIMD, 4 doubles per AVX2 register)

_FASTMATH = {"contract", "arcp", "reassoc", "nsz", "afn"}  # no nnan/ninf: NaN checks must survive


@dataclass
class SoilProperties:
    """Ground thermal properties; each field is a float or an array of shape ``(n_cells,)``.

    The mineral soil fills the column except for an optional organic (peat) layer on top and an
    optional bedrock below ``bedrock_depth`` (default: none, the soil extends to the column bottom).
    """

    k_thawed: ArrayLike  # W m-1 K-1, bulk thawed conductivity
    k_frozen: ArrayLike  # W m-1 K-1
    c_thawed: ArrayLike  # J m-3 K-1, volumetric sensible heat capacity
    c_frozen: ArrayLike  # J m-3 K-1
    water_content: ArrayLike  # total volumetric water (ice + liquid), m3 m-3
    unfrozen_a: ArrayLike = 0.05  # theta_u = a |T|^b below 0 °C, capped at water_content
    unfrozen_b: ArrayLike = -0.5
    organic_thickness: ArrayLike = 0.0  # m of peat on top of the mineral soil
    geothermal_flux: ArrayLike = 0.05  # W m-2 into the column bottom
    surface_resistance: ArrayLike = 0.0  # m2 K W-1 between air and ground surface (vegetation, litter)
    n_factor_thaw: ArrayLike = 1.0  # multiplies positive air temperature (summer n-factor)
    # peat (REFERENCE texture table, moist peat; sensible heat capacities include the water)
    organic_k_thawed: ArrayLike = 0.5
    organic_k_frozen: ArrayLike = 1.2
    organic_c_thawed: ArrayLike = 2.5e6
    organic_c_frozen: ArrayLike = 1.2e6
    organic_water_content: ArrayLike = 0.6
    bedrock_depth: ArrayLike = np.inf  # m
    bedrock_k: ArrayLike = 2.5
    bedrock_c: ArrayLike = 2.0e6
    bedrock_water_content: ArrayLike = 0.02


@dataclass
class SolverResult:
    """Monthly outputs of :func:`solve_columns` plus the final state to continue a run."""

    layer_temperature: np.ndarray  # (n_cells, n_months, 4) float32 °C
    layer_liquid_water: np.ndarray  # (n_cells, n_months, 4) float32 m3 m-3
    thaw_depth: np.ndarray  # (n_cells, n_months) float32 m, monthly max depth of the 0 °C isotherm
    state: np.ndarray  # (n_cells, n_nodes) float64 final node temperatures
    node_depths: np.ndarray  # (n_nodes,) m


@dataclass(frozen=True)
class Grid:
    """Finite-volume column: cell centres (the nodes), widths and the layer → cell index map."""

    centers: NDArray[np.float64]
    widths: NDArray[np.float64]
    tops: NDArray[np.float64]
    layer_lo: NDArray[np.int64]  # first cell of each ERA5 layer
    layer_hi: NDArray[np.int64]  # one past the last cell
    mid_index: NDArray[np.int64]  # cell whose centre is the layer mid-depth


def build_grid() -> Grid:
    """The fixed solver grid (26 cells to ~25 m), nodes exactly on the ERA5-Land mid-depths."""
    widths: list[float] = []
    lo: list[int] = []
    hi: list[int] = []
    mid: list[int] = []
    for (top, bottom), n in zip(ERA5_LAYER_BOUNDS, _CELLS_PER_LAYER, strict=True):
        lo.append(len(widths))
        mid.append(len(widths) + n // 2)
        widths.extend([(bottom - top) / n] * n)
        hi.append(len(widths))
    widths.extend(_DEEP_FIRST_WIDTH * _DEEP_GROWTH**i for i in range(_DEEP_CELLS))
    w = np.asarray(widths)
    tops = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    return Grid(
        centers=tops + 0.5 * w,
        widths=w,
        tops=tops,
        layer_lo=np.asarray(lo, dtype=np.int64),
        layer_hi=np.asarray(hi, dtype=np.int64),
        mid_index=np.asarray(mid, dtype=np.int64),
    )


GRID = build_grid()
NODE_DEPTHS = GRID.centers


# ----------------------------------------------------------------------------------------------
# kernel helpers (scalar, inlined)
# ----------------------------------------------------------------------------------------------

_N_PROPS = len(fields(SoilProperties))
(_KT, _KF, _CT, _CF, _W, _A, _B, _ORG, _Q, _RS, _NT, _OKT, _OKF, _OCT, _OCF, _OW, _BD, _BK, _BC, _BW) = range(_N_PROPS)


@nb.njit(inline="always", fastmath=_FASTMATH, error_model="numpy", cache=True)
def _unfrozen(temp: float, a: float, b: float) -> float:
    """GIPL unfrozen water a |T|^b for T < 0 (uncapped; callers only use it below the cap point)."""
    return a * (-temp) ** b


@nb.njit(inline="always", fastmath=_FASTMATH, error_model="numpy", cache=True)
def _enthalpy(temp, theta, a, b, c_t, c_f, t_cap):
    """Enthalpy of a node and its unfrozen water."""
    if temp >= 0.0:
        return LATENT_HEAT * theta + c_t * temp, theta
    if temp >= t_cap:
        return LATENT_HEAT * theta + c_f * temp, theta
    wu = _unfrozen(temp, a, b)
    return LATENT_HEAT * wu + c_f * temp, wu


# ----------------------------------------------------------------------------------------------
# the kernel
#
# Performance layout: every block of _BLOCK columns keeps ALL its per-node state and constants in ONE
# flat float64 buffer, field f / node i / column j at (f * _N + i) * _BLOCK + j.  _N and _BLOCK are
# compile-time constants, so every access in the inner column loops is base + constant offset: LLVM
# proves the fields disjoint (no runtime alias checks, which it gives up on beyond a handful of
# arrays) and emits SIMD across the block's columns.  The inner loops are branch-free (selects),
# divisions are a few per node, and the frozen-branch inversion runs only on rows that need it.
# ----------------------------------------------------------------------------------------------

_N = int(NODE_DEPTHS.size)
_NP = 32  # rows reserved per field (power of two >= _N): with ``i & (_NP - 1)`` LLVM proves fields disjoint
assert _N <= _NP
_INV_L = 1.0 / LATENT_HEAT
# per-node fields (each _N rows of _BLOCK columns)
(_XT, _XH, _XHP, _XHIST, _XWU, _XCAP, _XK, _XUP, _XRHS, _XG, _XTCAP, _XSCAP, _XCT, _XCF, _XICT, _XICF,
 _XKF, _XDK, _XITH, _XTH, _XLAT, _XLB, _XLA, _XPA, _XPB, _N2D) = range(26)  # fmt: skip
# per-column rows
(_YTAIR, _YRTOP, _YQ, _YGUP, _YX, _YS, _YNEED, _YACT, _YPASS, _N1D) = range(10)
# Field stride: _NP rows plus 4 cache lines.  Without the pad every field's row i would sit at the same
# address modulo 4096, i.e. in the same L1 set (8 ways for ~20 fields: constant conflict misses) and
# with 4K-aliasing stalls between the stores and loads of one loop iteration.
_FS = _NP * _BLOCK + 32
_BUF = _N2D * _FS + _N1D * _BLOCK
_NEWTON_TOL = 1e-4  # sqrt(K): last Newton step in s = sqrt(-T); the error after it is < 0.8 * step^2 (< 1e-7 K)
_NEWTON_MAX = 8
# Outer (energy-balance) Newton passes per time step: at least two, then more for each column until its own
# linearisation error max |x - T| is below _PASS_TOL K (a converged column is left alone, so its result does
# not depend on which columns share its block). Two fixed passes left melt-out steps of thin, dry top cells
# unconverged: monthly means up to tens of K too warm on 2-day steps (docs/results.md §5i).
_MIN_PASSES = 2
_MAX_PASSES = 8
_PASS_TOL = 1e-2


@nb.njit(inline="always", cache=True)
def _o(f, i):
    """Offset of node row ``i`` of per-node field ``f`` in the block buffer.

    ``i & (_NP - 1)`` tells LLVM the index is non-negative and inside the field, so numba's
    negative-index wraparound select folds away, addresses stay affine and fields provably disjoint
    (preconditions for vectorising the column loops without runtime alias checks)."""
    return f * _FS + (i & (_NP - 1)) * _BLOCK


@nb.njit(inline="always", cache=True)
def _c(f):
    """Offset of per-column field ``f`` in the block buffer."""
    return _N2D * _FS + f * _BLOCK


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _setup_block(W, cellp, cols, tops, widths):
    """Per-node properties of a block (organic layer, mineral soil and bedrock mixed by cell fraction)
    plus the derived constants the hot loops use; returns True if every node has b == -0.5."""
    sqrt_mode = True
    for i in range(_N):
        top = tops[i]
        bot = top + widths[i]
        for j in range(_BLOCK):
            c = cols[j]
            f_org = min(max((cellp[_ORG, c] - top) / widths[i], 0.0), 1.0)
            f_rock = min(max((bot - cellp[_BD, c]) / widths[i], 0.0), 1.0)
            f_rock = min(f_rock, 1.0 - f_org)
            f_min = 1.0 - f_org - f_rock
            # layers in series: conductivities combine harmonically, capacities and water linearly
            kt = 1.0 / (f_min / cellp[_KT, c] + f_org / cellp[_OKT, c] + f_rock / cellp[_BK, c])
            kf = 1.0 / (f_min / cellp[_KF, c] + f_org / cellp[_OKF, c] + f_rock / cellp[_BK, c])
            ct = f_min * cellp[_CT, c] + f_org * cellp[_OCT, c] + f_rock * cellp[_BC, c]
            cf = f_min * cellp[_CF, c] + f_org * cellp[_OCF, c] + f_rock * cellp[_BC, c]
            w = f_min * cellp[_W, c] + f_org * cellp[_OW, c] + f_rock * cellp[_BW, c]
            a = cellp[_A, c]
            b = cellp[_B, c]
            if b != -0.5:
                sqrt_mode = False
            # below t_cap the curve a|T|^b drops under the total water; above it all water is liquid
            tcap = -((w / a) ** (1.0 / b)) if w > 1e-9 else -1e30
            W[_o(_XKF, i) + j] = kf
            W[_o(_XDK, i) + j] = kt - kf
            W[_o(_XCT, i) + j] = ct
            W[_o(_XCF, i) + j] = cf
            W[_o(_XICT, i) + j] = 1.0 / ct
            W[_o(_XICF, i) + j] = 1.0 / cf
            W[_o(_XTH, i) + j] = w
            W[_o(_XITH, i) + j] = 1.0 / w if w > 1e-9 else 0.0
            W[_o(_XLAT, i) + j] = LATENT_HEAT * w
            W[_o(_XLB, i) + j] = -LATENT_HEAT * b
            W[_o(_XLA, i) + j] = LATENT_HEAT * a
            W[_o(_XPA, i) + j] = a
            W[_o(_XPB, i) + j] = b
            W[_o(_XTCAP, i) + j] = tcap
            W[_o(_XSCAP, i) + j] = np.sqrt(-tcap)
    return sqrt_mode


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _month_value(x, c, m, src, nv):
    """Mean-preserving vertex value of virtual month m: mean - (second difference)/8.

    The first and last months have no outer neighbour; they keep their mean (as if extrapolated linearly).
    """
    xm = x[c, src[m]]
    if m == 0 or m == nv - 1:
        return xm
    return xm - 0.125 * (x[c, src[m - 1]] - 2.0 * xm + x[c, src[m + 1]])


@nb.njit(inline="always", fastmath=_FASTMATH, error_model="numpy", cache=True)
def _cap_k(W, i, j):
    """Apparent capacity dH/dT and conductivity of node i, column j at the current iterate (branch-free)."""
    t = W[_o(_XT, i) + j]
    w = W[_o(_XWU, i) + j]
    frozen = t < W[_o(_XTCAP, i) + j]
    c_sens = W[_o(_XCT, i) + j] if t >= 0.0 else W[_o(_XCF, i) + j]
    latent = W[_o(_XLB, i) + j] * w / (-t)  # L b wu / T (b < 0, T < 0)
    cap = c_sens + (latent if frozen else 0.0)
    frac = w * W[_o(_XITH, i) + j] if frozen else 1.0
    return cap, W[_o(_XKF, i) + j] + W[_o(_XDK, i) + j] * frac


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _pass(W, alpha, widths, dzh, sqrt_mode):
    """One Newton pass: linearise H about the iterate, solve the tridiagonal system, recover T from H.

    ``_XH`` holds the enthalpy of the current iterate on entry and the updated enthalpy on exit; ``_XT``
    and ``_XWU`` are updated consistently with it.  The Thomas forward sweep computes the node
    properties on the fly (one row ahead); the back substitution does the energy update and the cheap
    (thawed / linear) inversions; rows with frozen-branch nodes then get the vectorised Newton solve.
    """
    n = _N
    # ---- forward sweep, top node (snow + surface resistance to the air)
    w0 = widths[0]
    wa0 = w0 * alpha
    dz0 = dzh[0]
    dz1 = dzh[1]
    for j in range(_BLOCK):
        cap0, k0 = _cap_k(W, 0, j)
        cap1, k1 = _cap_k(W, 1, j)
        W[_o(_XCAP, 0) + j] = cap0
        W[_o(_XCAP, 1) + j] = cap1
        W[_o(_XK, 1) + j] = k1
        g_dn = k0 * k1 / (dz0 * k1 + dz1 * k0)
        g_s = k0 / (W[_c(_YRTOP) + j] * k0 + dz0)
        d = wa0 * cap0 + g_s + g_dn
        r = w0 * (W[_o(_XHIST, 0) + j] - alpha * (W[_o(_XH, 0) + j] - cap0 * W[_o(_XT, 0) + j]))
        r += g_s * W[_c(_YTAIR) + j]
        inv = 1.0 / d
        W[_o(_XUP, 0) + j] = -g_dn * inv
        W[_o(_XRHS, 0) + j] = r * inv
        W[_c(_YGUP) + j] = g_dn
    # ---- interior nodes
    for i in range(1, n - 1):
        wi = widths[i]
        wa = wi * alpha
        dzi = dzh[i]
        dzn = dzh[i + 1]
        for j in range(_BLOCK):
            capn, kn = _cap_k(W, i + 1, j)
            W[_o(_XCAP, i + 1) + j] = capn
            W[_o(_XK, i + 1) + j] = kn
            ki = W[_o(_XK, i) + j]
            g_up = W[_c(_YGUP) + j]
            g_dn = ki * kn / (dzi * kn + dzn * ki)  # two half cells in series
            cap = W[_o(_XCAP, i) + j]
            d = wa * cap + g_up + g_dn
            r = wi * (W[_o(_XHIST, i) + j] - alpha * (W[_o(_XH, i) + j] - cap * W[_o(_XT, i) + j]))
            inv = 1.0 / (d + g_up * W[_o(_XUP, i - 1) + j])
            W[_o(_XUP, i) + j] = -g_dn * inv
            W[_o(_XRHS, i) + j] = (r + g_up * W[_o(_XRHS, i - 1) + j]) * inv
            W[_c(_YGUP) + j] = g_dn
    # ---- bottom node (geothermal flux)
    i = n - 1
    wi = widths[i]
    wa = wi * alpha
    for j in range(_BLOCK):
        g_up = W[_c(_YGUP) + j]
        cap = W[_o(_XCAP, i) + j]
        d = wa * cap + g_up
        r = wi * (W[_o(_XHIST, i) + j] - alpha * (W[_o(_XH, i) + j] - cap * W[_o(_XT, i) + j])) + W[_c(_YQ) + j]
        W[_o(_XRHS, i) + j] = (r + g_up * W[_o(_XRHS, i - 1) + j]) / (d + g_up * W[_o(_XUP, i - 1) + j])
        W[_o(_XUP, i) + j] = 0.0
        W[_c(_YX) + j] = 0.0
    # ---- back substitution + energy-conserving update: H from the linearisation, then T from H
    # (columns whose _YPASS is 0 have converged: their state is kept as it is)
    for i in range(n - 1, -1, -1):
        cnt = 0.0
        for j in range(_BLOCK):
            x = W[_o(_XRHS, i) + j] - W[_o(_XUP, i) + j] * W[_c(_YX) + j]
            W[_c(_YX) + j] = x
            act = W[_c(_YPASS) + j] > 0.0
            h = W[_o(_XH, i) + j] + W[_o(_XCAP, i) + j] * (x - W[_o(_XT, i) + j])
            dh = h - W[_o(_XLAT, i) + j]
            t_thawed = dh * W[_o(_XICT, i) + j]
            t_linear = dh * W[_o(_XICF, i) + j]
            need = 1.0 if (t_linear < W[_o(_XTCAP, i) + j]) and act else 0.0  # frozen branch: Newton below
            W[_o(_XH, i) + j] = h if act else W[_o(_XH, i) + j]
            W[_o(_XT, i) + j] = (t_thawed if dh >= 0.0 else t_linear) if act else W[_o(_XT, i) + j]
            W[_o(_XWU, i) + j] = W[_o(_XTH, i) + j] if act else W[_o(_XWU, i) + j]
            W[_o(_XG, i) + j] = x if act else W[_o(_XG, i) + j]
            W[_c(_YNEED) + j] = need
            cnt += need
        if cnt > 0.0:
            if sqrt_mode:
                if _frozen_row_sqrt(W, i):
                    continue
            elif _frozen_row_pow(W, i):
                continue
            _frozen_row_general(W, i)


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _frozen_row_sqrt(W, i):
    """Frozen-branch inversion of row i for b = -1/2, vectorised across the block.

    With s = sqrt(-T), H = c_f T + L a (-T)^(-1/2) becomes the cubic c_f s^3 + H s - L a = 0 (convex
    in s, one positive root): Newton needs one division per iteration and no pow.  Starts from the
    linearised temperature (within O(dT^2) of the root).  Returns False if a node did not converge
    (the caller then uses the scalar safeguarded inversion for that row).
    """
    oy = _c(_YS)
    for j in range(_BLOCK):
        t0 = min(W[_o(_XG, i) + j], W[_o(_XTCAP, i) + j])
        W[oy + j] = np.sqrt(-t0)
    done = False
    for _ in range(_NEWTON_MAX):
        n_big = 0.0  # a sum, not a max: LLVM vectorises float max reductions only with no-NaN fastmath
        for j in range(_BLOCK):
            s = W[oy + j]
            h = W[_o(_XH, i) + j]
            cf = W[_o(_XCF, i) + j]
            s2 = s * s
            f = (cf * s2 + h) * s - W[_o(_XLA, i) + j]
            fp = 3.0 * cf * s2 + h
            step = f / fp
            W[oy + j] = max(s - step, W[_o(_XSCAP, i) + j])
            n_big += W[_c(_YNEED) + j] if abs(step) >= _NEWTON_TOL else 0.0
        if n_big == 0.0:
            done = True
            break
    if not done:
        return False
    for j in range(_BLOCK):
        W[oy + j] = -W[oy + j] * W[oy + j]  # s -> T
    _store_frozen_row(W, i)
    return True


@nb.njit(inline="always", fastmath=_FASTMATH, error_model="numpy", cache=True)
def _store_frozen_row(W, i):
    """Write the inverted temperatures (row ``_YS``) of the nodes that needed them, with the liquid water
    that the enthalpy leaves (energy-consistent, whatever the last Newton step's error)."""
    oy = _c(_YS)
    for j in range(_BLOCK):
        t = W[oy + j]
        wu = min(max((W[_o(_XH, i) + j] - W[_o(_XCF, i) + j] * t) * _INV_L, 0.0), W[_o(_XTH, i) + j])
        nd = W[_c(_YNEED) + j] > 0.0
        W[_o(_XT, i) + j] = t if nd else W[_o(_XT, i) + j]
        W[_o(_XWU, i) + j] = wu if nd else W[_o(_XWU, i) + j]


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _frozen_row_pow(W, i):
    """Frozen-branch inversion of row i for any b < 0, vectorised across the block.

    g(T) = c_f T + L a (-T)^b - H is increasing and convex below t_cap (g'' = L a b (b-1) (-T)^(b-2) > 0),
    so Newton clamped at t_cap (where g > 0) converges monotonically from the right of the root.  Soils
    mix b values (-0.4 … -0.6), so this path, not the scalar bracketed one, carries the synthetic world.
    Returns False if a node did not converge (the caller then uses the scalar safeguarded inversion).
    """
    oy = _c(_YS)
    oa = _c(_YACT)
    for j in range(_BLOCK):
        W[oy + j] = min(W[_o(_XG, i) + j], W[_o(_XTCAP, i) + j])
        W[oa + j] = W[_c(_YNEED) + j]
    done = False
    for _ in range(_NEWTON_MAX):
        n_big = 0.0
        for j in range(_BLOCK):
            t = W[oy + j]
            wu = W[_o(_XPA, i) + j] * (-t) ** W[_o(_XPB, i) + j]
            g = W[_o(_XCF, i) + j] * t + LATENT_HEAT * wu - W[_o(_XH, i) + j]
            gp = W[_o(_XCF, i) + j] + W[_o(_XLB, i) + j] * wu / (-t)
            step = g / gp
            act = W[oa + j]
            W[oy + j] = min(t - step, W[_o(_XTCAP, i) + j]) if act > 0.0 else t
            # a node stops once its own step is tiny, so its result does not depend on which columns
            # share its block (a looser 1e-4 K stop was 20 % faster but moved results by up to 0.4 K)
            act = act if abs(step) >= 1e-9 * (1.0 - t) else 0.0
            W[oa + j] = act
            n_big += act
        if n_big == 0.0:
            done = True
            break
    if not done:
        return False
    _store_frozen_row(W, i)
    return True


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _invert_frozen_safe(h, guess, a, b, c_f, t_cap):
    """T and unfrozen water on the frozen branch (h below H(t_cap)), any b: bracketed Newton.

    g(T) = c_f T + L a (-T)^b - h is increasing; g(t_cap) > 0 and g -> -inf as T -> -inf, so a bracket
    is found by doubling and Newton steps that leave it are replaced by bisection (always converges).
    """
    hi = t_cap
    lo = min(guess, t_cap)
    for _ in range(60):
        if c_f * lo + LATENT_HEAT * _unfrozen(lo, a, b) - h < 0.0:
            break
        lo = 2.0 * lo - 1.0
    t = min(max(guess, lo), hi)
    for _ in range(100):
        wu = _unfrozen(t, a, b)
        g = c_f * t + LATENT_HEAT * wu - h
        if g > 0.0:
            hi = t
        else:
            lo = t
        t_new = t - g / (c_f + LATENT_HEAT * b * wu / t)
        if not (lo < t_new < hi):
            t_new = 0.5 * (lo + hi)
        if abs(t_new - t) < 1e-11 * (1.0 + abs(t)) or hi - lo < 1e-11 * (1.0 + abs(t)):
            t = t_new
            break
        t = t_new
    return t, min(_unfrozen(t, a, b), 1.0)


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _frozen_row_general(W, i):
    """Scalar bracketed frozen-branch inversion (any b) for the nodes of row i that need it."""
    for j in range(_BLOCK):
        if W[_c(_YNEED) + j] > 0.0:
            t, w = _invert_frozen_safe(
                W[_o(_XH, i) + j], W[_o(_XG, i) + j], W[_o(_XPA, i) + j], W[_o(_XPB, i) + j],
                W[_o(_XCF, i) + j], W[_o(_XTCAP, i) + j],
            )  # fmt: skip
            W[_o(_XT, i) + j] = t
            W[_o(_XWU, i) + j] = w


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _layer_values(W, widths, layer_lo, layer_hi, mid_index, mid_output, out_t, out_w):
    """Layer-mean (or mid-depth node) temperature and liquid water of the block at this instant."""
    for lay in range(4):
        for j in range(_BLOCK):
            out_t[lay, j] = 0.0
            out_w[lay, j] = 0.0
        if mid_output:
            lo = mid_index[lay]
            hi = lo + 1
        else:
            lo = layer_lo[lay]
            hi = layer_hi[lay]
        total = 0.0
        for i in range(lo, hi):
            total += widths[i]
        for i in range(lo, hi):
            wgt = widths[i] / total
            for j in range(_BLOCK):
                t = W[_o(_XT, i) + j]
                th = W[_o(_XTH, i) + j]
                # liquid water from the enthalpy itself: no extra unfrozen-curve evaluation
                liquid = th if t >= 0.0 else (W[_o(_XH, i) + j] - W[_o(_XCF, i) + j] * t) * _INV_L
                out_t[lay, j] += wgt * t
                out_w[lay, j] += wgt * min(max(liquid, 0.0), th)


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _thaw_depth(W, widths, tops, j, bottom):
    """Depth of the first 0 °C crossing below a thawed surface cell.

    In the first not-thawed cell the front sits at the cell top plus its liquid-water fraction of the
    cell (the enthalpy method smears the front over one cell); for dry cells (no latent heat) the
    temperature is interpolated linearly between the two nodes instead.
    """
    if W[_o(_XT, 0) + j] <= 0.0:
        return 0.0
    for i in range(1, _N):
        t = W[_o(_XT, i) + j]
        if t <= 0.0:
            theta = W[_o(_XTH, i) + j]
            if theta > 0.01:
                frac = (W[_o(_XH, i) + j] - W[_o(_XCF, i) + j] * t) / (LATENT_HEAT * theta)
                return tops[i] + widths[i] * min(max(frac, 0.0), 1.0)
            t_up = W[_o(_XT, i - 1) + j]
            z_up = tops[i - 1] + 0.5 * widths[i - 1]
            z_dn = tops[i] + 0.5 * widths[i]
            return z_up + (z_dn - z_up) * t_up / (t_up - t)
    return bottom


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _mark_unconverged(W):
    """Keep passing (``_YPASS`` = 1) only the columns whose largest |x - T| after this pass, the linear solve's
    temperature against the one recovered from the updated enthalpy, is at least ``_PASS_TOL``; returns how
    many are left."""
    op = _c(_YPASS)
    left = 0.0
    for j in range(_BLOCK):
        err = 0.0
        for i in range(_N):
            err = max(err, abs(W[_o(_XG, i) + j] - W[_o(_XT, i) + j]))
        W[op + j] = 1.0 if (W[op + j] > 0.0 and err >= _PASS_TOL) else 0.0
        left += W[op + j]
    return left


@nb.njit(parallel=True, fastmath=_FASTMATH, error_model="numpy", cache=True)
def _kernel(
    air, snow_d, snow_rho, cellp, src, step_m0, step_w, step_out, dt_spin, dt_run, record_from,
    tops, widths, layer_lo, layer_hi, mid_index, mid_output, t_init,
    out_t, out_w, out_z, state, record,
):  # fmt: skip
    n_cells = air.shape[0]
    n = _N
    nv = src.shape[0]
    n_steps = step_m0.shape[0]
    n_blocks = (n_cells + _BLOCK - 1) // _BLOCK
    bottom = tops[n - 1] + widths[n - 1]
    dzh = 0.5 * widths
    for blk in nb.prange(n_blocks):
        c0 = blk * _BLOCK
        nbk = min(_BLOCK, n_cells - c0)
        # a partial block is padded with copies of its last column (computed, never written out)
        cols = np.empty(_BLOCK, dtype=np.int64)
        for j in range(_BLOCK):
            cols[j] = c0 + min(j, nbk - 1)
        W = np.zeros(_BUF)
        sqrt_mode = _setup_block(W, cellp, cols, tops, widths)
        valid = np.ones(_BLOCK, dtype=np.bool_)
        fa0 = np.zeros(_BLOCK); fa1 = np.zeros(_BLOCK); fs0 = np.zeros(_BLOCK); fs1 = np.zeros(_BLOCK)  # noqa: E702
        fr0 = np.zeros(_BLOCK); fr1 = np.zeros(_BLOCK); nt = np.empty(_BLOCK); rs = np.empty(_BLOCK)  # noqa: E702
        acc_t = np.zeros((4, _BLOCK)); acc_w = np.zeros((4, _BLOCK)); max_z = np.zeros(_BLOCK)  # noqa: E702
        prev_t = np.zeros((4, _BLOCK)); prev_w = np.zeros((4, _BLOCK))  # noqa: E702
        now_t = np.zeros((4, _BLOCK)); now_w = np.zeros((4, _BLOCK))  # noqa: E702
        for j in range(_BLOCK):
            c = cols[j]
            nt[j] = cellp[_NT, c]
            rs[j] = cellp[_RS, c]
            W[_c(_YQ) + j] = cellp[_Q, c]
        for i in range(n):
            for j in range(_BLOCK):
                t = t_init[cols[j], i]
                h, w = _enthalpy(t, W[_o(_XTH, i) + j], W[_o(_XPA, i) + j], W[_o(_XPB, i) + j],
                                 W[_o(_XCT, i) + j], W[_o(_XCF, i) + j], W[_o(_XTCAP, i) + j])  # fmt: skip
                W[_o(_XT, i) + j] = t
                W[_o(_XH, i) + j] = h
                W[_o(_XHP, i) + j] = h
                W[_o(_XWU, i) + j] = w
        _layer_values(W, widths, layer_lo, layer_hi, mid_index, mid_output, prev_t, prev_w)
        cur_m = -1
        n_acc = 0
        for s in range(n_steps):
            m0 = step_m0[s]
            if m0 != cur_m:  # new pair of mid-month vertices: refresh the block's forcing cache
                cur_m = m0
                m1 = m0 + 1 if m0 < nv - 1 else nv - 1
                for j in range(_BLOCK):
                    c = cols[j]
                    a0 = _month_value(air, c, m0, src, nv)
                    a1 = _month_value(air, c, m1, src, nv)
                    if not (a0 == a0 and a1 == a1):
                        valid[j] = False
                        a0 = 0.0
                        a1 = 0.0
                    fa0[j] = a0
                    fa1[j] = a1
                    s0 = _month_value(snow_d, c, m0, src, nv)
                    s1 = _month_value(snow_d, c, m1, src, nv)
                    fs0[j] = s0 if s0 == s0 else 0.0
                    fs1[j] = s1 if s1 == s1 else 0.0
                    r0 = snow_rho[c, src[m0]]
                    r1 = snow_rho[c, src[m1]]
                    fr0[j] = r0 if r0 == r0 else 250.0
                    fr1[j] = r1 if r1 == r1 else 250.0
            w = step_w[s]
            for j in range(_BLOCK):
                ta = fa0[j] + w * (fa1[j] - fa0[j])
                W[_c(_YTAIR) + j] = ta * nt[j] if ta > 0.0 else ta
                depth = max(fs0[j] + w * (fs1[j] - fs0[j]), 0.0)
                rho = min(max(fr0[j] + w * (fr1[j] - fr0[j]), 50.0), 700.0) * 1e-3
                k_snow = 0.138 - 1.01 * rho + 3.233 * rho * rho
                W[_c(_YRTOP) + j] = depth / k_snow + rs[j]  # air-to-surface resistance
            # BDF2 history; backward Euler on the first step (no H^{n-1}) and where the step size changes
            dt = dt_spin if s < record_from else dt_run
            if s == 0 or (s == record_from and dt_spin != dt_run):
                alpha = 1.0 / dt
                c_now = 1.0 / dt
                c_old = 0.0
            else:
                alpha = 1.5 / dt
                c_now = 2.0 / dt
                c_old = 0.5 / dt
            for i in range(n):
                for j in range(_BLOCK):
                    h = W[_o(_XH, i) + j]
                    W[_o(_XHIST, i) + j] = c_now * h - c_old * W[_o(_XHP, i) + j]
                    W[_o(_XHP, i) + j] = h
            for j in range(_BLOCK):
                W[_c(_YPASS) + j] = 1.0
            for k in range(_MAX_PASSES):
                _pass(W, alpha, widths, dzh, sqrt_mode)
                if k + 1 >= _MIN_PASSES and _mark_unconverged(W) == 0.0:
                    break
            # outputs: trapezoidal time means of layer values, max thaw depth at step ends
            o = step_out[s]
            if o >= 0:
                _layer_values(W, widths, layer_lo, layer_hi, mid_index, mid_output, now_t, now_w)
                for lay in range(4):
                    for j in range(_BLOCK):
                        acc_t[lay, j] += 0.5 * (prev_t[lay, j] + now_t[lay, j])
                        acc_w[lay, j] += 0.5 * (prev_w[lay, j] + now_w[lay, j])
                        prev_t[lay, j] = now_t[lay, j]
                        prev_w[lay, j] = now_w[lay, j]
                for j in range(nbk):
                    z = _thaw_depth(W, widths, tops, j, bottom)
                    if z > max_z[j]:
                        max_z[j] = z
                n_acc += 1
                if s == n_steps - 1 or step_out[s + 1] != o:
                    for j in range(nbk):
                        for lay in range(4):
                            out_t[c0 + j, o, lay] = acc_t[lay, j] / n_acc
                            out_w[c0 + j, o, lay] = acc_w[lay, j] / n_acc
                            acc_t[lay, j] = 0.0
                            acc_w[lay, j] = 0.0
                        out_z[c0 + j, o] = max_z[j]
                        max_z[j] = 0.0
                    n_acc = 0
            elif s == record_from - 1:  # last spin-up step: the run's first trapezoid starts here
                _layer_values(W, widths, layer_lo, layer_hi, mid_index, mid_output, prev_t, prev_w)
            if s >= record_from and record.shape[0] > 0:
                for j in range(nbk):
                    for i in range(n):
                        record[c0 + j, s - record_from, i] = W[_o(_XT, i) + j]
        for j in range(nbk):
            for i in range(n):
                state[c0 + j, i] = W[_o(_XT, i) + j] if valid[j] else np.nan
            if not valid[j]:
                out_t[c0 + j, :, :] = np.nan
                out_w[c0 + j, :, :] = np.nan
                out_z[c0 + j, :] = np.nan
                if record.shape[0] > 0:
                    record[c0 + j, :, :] = np.nan


# ----------------------------------------------------------------------------------------------
# Python driver
# ----------------------------------------------------------------------------------------------


def _cell_properties(props: SoilProperties, n_cells: int) -> NDArray[np.float64]:
    """Broadcast every property field to ``(n_props, n_cells)`` and validate the values."""
    out = np.empty((_N_PROPS, n_cells))
    for idx, fld in enumerate(fields(SoilProperties)):
        value = np.asarray(getattr(props, fld.name), dtype=float)
        try:
            out[idx] = np.broadcast_to(value, (n_cells,))
        except ValueError as err:
            raise ValueError(f"SoilProperties.{fld.name} has shape {value.shape}, expected () or ({n_cells},)") from err
    checks = {
        "k_thawed": out[_KT] > 0, "k_frozen": out[_KF] > 0, "c_thawed": out[_CT] > 0, "c_frozen": out[_CF] > 0,
        "water_content": (out[_W] >= 0) & (out[_W] <= 1), "unfrozen_a": out[_A] > 0, "unfrozen_b": out[_B] < 0,
        "organic_thickness": out[_ORG] >= 0, "surface_resistance": out[_RS] >= 0, "n_factor_thaw": out[_NT] > 0,
        "organic_k_thawed": out[_OKT] > 0, "organic_k_frozen": out[_OKF] > 0, "organic_c_thawed": out[_OCT] > 0,
        "organic_c_frozen": out[_OCF] > 0, "organic_water_content": (out[_OW] >= 0) & (out[_OW] <= 1),
        "bedrock_depth": out[_BD] >= 0, "bedrock_k": out[_BK] > 0, "bedrock_c": out[_BC] > 0,
        "bedrock_water_content": (out[_BW] >= 0) & (out[_BW] <= 1),
    }  # fmt: skip
    for name, ok in checks.items():
        if not np.all(ok):
            raise ValueError(f"SoilProperties.{name} out of range (see the field comment)")
    if not np.all(np.isfinite(np.delete(out, _BD, axis=0))):
        raise ValueError("SoilProperties contains non-finite values")
    return out


def _month_lengths(month_lengths: ArrayLike | None, n_months: int, start_month: int) -> NDArray[np.float64]:
    if month_lengths is None:
        if not 1 <= start_month <= 12:
            raise ValueError(f"start_month must be 1..12, got {start_month}")
        return np.asarray([_DAYS_365[(start_month - 1 + m) % 12] for m in range(n_months)], dtype=float)
    lengths = np.asarray(month_lengths, dtype=float)
    if lengths.shape != (n_months,) or np.any(lengths <= 0):
        raise ValueError(f"month_lengths must be {n_months} positive day counts, got shape {lengths.shape}")
    return lengths


def _time_axis(lengths: NDArray[np.float64], spinup_years: int, dt_days: float) -> dict[str, Any]:
    """Virtual month sequence (spin-up cycles of the first 12 months, then the run) and per-step indices.

    Each step carries: the left mid-month vertex for linear forcing interpolation at the step end
    (the implicit scheme's time level) and the output month containing the step midpoint (−1 in spin-up).
    """
    n_months = lengths.shape[0]
    n_spin = 12 * spinup_years
    src = np.concatenate([np.tile(np.arange(12), spinup_years), np.arange(n_months)]).astype(np.int64)
    vlen = np.concatenate([np.tile(lengths[:12], spinup_years), lengths])
    edges = np.concatenate([[0.0], np.cumsum(vlen)])
    mids = 0.5 * (edges[:-1] + edges[1:])
    spin_days = edges[n_spin]
    run_days = edges[-1] - spin_days
    # steps tile spin-up and run separately so that the run starts exactly on a step boundary
    n_spin_steps = int(round(spin_days / dt_days))
    n_run_steps = max(int(round(run_days / dt_days)), 1)
    t_end = np.concatenate([
        spin_days * np.arange(1, n_spin_steps + 1) / max(n_spin_steps, 1),
        spin_days + run_days * np.arange(1, n_run_steps + 1) / n_run_steps,
    ])  # fmt: skip
    dt_run = run_days / n_run_steps
    t_mid = np.concatenate([
        spin_days * (np.arange(n_spin_steps) + 0.5) / max(n_spin_steps, 1),
        spin_days + dt_run * (np.arange(n_run_steps) + 0.5),
    ])  # fmt: skip
    # outside the first/last mid-month the line through the two nearest vertices is extrapolated
    m0 = np.clip(np.searchsorted(mids, t_end, side="right") - 1, 0, max(len(mids) - 2, 0))
    m1 = np.minimum(m0 + 1, len(mids) - 1)
    span = np.where(m1 > m0, mids[m1] - mids[m0], 1.0)
    w = np.where(m1 > m0, np.clip((t_end - mids[m0]) / span, -0.5, 1.5), 0.0)
    vmonth = np.clip(np.searchsorted(edges, t_mid, side="right") - 1, 0, len(vlen) - 1)
    out = np.where(vmonth >= n_spin, vmonth - n_spin, -1).astype(np.int64)
    out[:n_spin_steps] = -1
    return {
        "src": src,
        "m0": m0.astype(np.int64),
        "w": w,
        "out": out,
        "dt_s": dt_run * SECONDS_PER_DAY,
        "dt_spin_s": (spin_days / n_spin_steps if n_spin_steps else dt_run) * SECONDS_PER_DAY,
        "n_spin_steps": n_spin_steps,
        "run_days": t_end[n_spin_steps:] - spin_days,
    }


def _initial_profile(air: np.ndarray, cellp: NDArray[np.float64]) -> NDArray[np.float64]:
    """Equilibrium-ish start: mean air temperature of the first year plus the geothermal gradient."""
    first_year = np.asarray(air[:, : min(12, air.shape[1])], dtype=float)
    finite = np.isfinite(first_year)
    total = np.where(finite, first_year, 0.0).sum(axis=1)
    mean = total / np.maximum(finite.sum(axis=1), 1)  # all-missing cells start at 0 °C (outputs are NaN anyway)
    k = np.where(mean < 0.0, cellp[_KF], cellp[_KT])
    return mean[:, None] + (cellp[_Q] / k)[:, None] * NODE_DEPTHS[None, :]


def _as_forcing(name: str, x: ArrayLike, shape: tuple[int, ...] | None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_cells, n_months), got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape} like air_temperature")
    return np.ascontiguousarray(arr)


def _run(
    air_temperature: ArrayLike,
    snow_depth: ArrayLike,
    snow_density: ArrayLike,
    props: SoilProperties,
    *,
    dt_days: float,
    spinup_years: int,
    initial_state: ArrayLike | None,
    month_lengths: ArrayLike | None,
    start_month: int,
    mid_depth_output: bool,
    record: bool,
) -> tuple[SolverResult, np.ndarray | None, np.ndarray]:
    air = _as_forcing("air_temperature", air_temperature, None)
    shape = air.shape
    snow = _as_forcing("snow_depth", snow_depth, shape)
    rho = _as_forcing("snow_density", snow_density, shape)
    n_cells, n_months = shape
    if not 0.0 < dt_days <= 5.0:
        raise ValueError(f"dt_days must be in (0, 5], got {dt_days}")
    if spinup_years < 0 or (spinup_years > 0 and n_months < 12):
        raise ValueError("spinup_years needs >= 0 and at least 12 months of forcing")
    cellp = _cell_properties(props, n_cells)
    lengths = _month_lengths(month_lengths, n_months, start_month)
    if initial_state is not None:
        spinup_years = 0
        t_init = np.ascontiguousarray(np.asarray(initial_state, dtype=np.float64))
        if t_init.shape != (n_cells, NODE_DEPTHS.size):
            raise ValueError(f"initial_state must have shape ({n_cells}, {NODE_DEPTHS.size}), got {t_init.shape}")
    else:
        t_init = np.ascontiguousarray(_initial_profile(air, cellp))
    axis = _time_axis(lengths, spinup_years, dt_days)
    out_t = np.empty((n_cells, n_months, 4), dtype=np.float32)
    out_w = np.empty((n_cells, n_months, 4), dtype=np.float32)
    out_z = np.empty((n_cells, n_months), dtype=np.float32)
    state = np.empty((n_cells, NODE_DEPTHS.size))
    n_rec = axis["m0"].size - axis["n_spin_steps"] if record else 0
    rec = np.empty((n_cells if record else 0, n_rec, NODE_DEPTHS.size))
    _kernel(
        air, snow, rho, cellp, axis["src"], axis["m0"], axis["w"], axis["out"], axis["dt_spin_s"], axis["dt_s"],
        axis["n_spin_steps"],
        GRID.tops, GRID.widths, GRID.layer_lo, GRID.layer_hi, GRID.mid_index, mid_depth_output, t_init,
        out_t, out_w, out_z, state, rec,
    )  # fmt: skip
    result = SolverResult(out_t, out_w, out_z, state, NODE_DEPTHS.copy())
    return result, (rec if record else None), axis["run_days"]


def solve_columns(
    air_temperature: ArrayLike,
    snow_depth: ArrayLike,
    snow_density: ArrayLike,
    props: SoilProperties,
    *,
    dt_days: float = 1.0,
    spinup_years: int = 0,
    initial_state: ArrayLike | None = None,
    month_lengths: ArrayLike | None = None,
    start_month: int = 1,
    mid_depth_output: bool = False,
) -> SolverResult:
    """Solve many soil columns under monthly forcing and return monthly layer outputs.

    ``air_temperature`` (°C), ``snow_depth`` (m) and ``snow_density`` (kg m-3) are ``(n_cells, n_months)``
    monthly means (float32 or float64; NaN air temperature marks a cell as missing and all its outputs
    NaN).  Forcing is interpolated piecewise-linearly between mid-months inside the kernel, with vertex
    values corrected so monthly means are preserved to ~0.1 %.  ``spinup_years`` cycles the first 12
    months from an equilibrium-ish profile unless ``initial_state`` (``(n_cells, n_nodes)`` °C, e.g. a
    previous ``SolverResult.state``) is given.  ``month_lengths`` gives days per month (default: a
    365-day calendar starting at ``start_month``).  ``mid_depth_output=True`` stores the node values at
    the four ERA5-Land mid-depths instead of layer means.
    """
    result, _, _ = _run(
        air_temperature, snow_depth, snow_density, props, dt_days=dt_days, spinup_years=spinup_years,
        initial_state=initial_state, month_lengths=month_lengths, start_month=start_month,
        mid_depth_output=mid_depth_output, record=False,
    )  # fmt: skip
    return result


def solve_columns_daily(
    air_temperature: ArrayLike,
    snow_depth: ArrayLike,
    snow_density: ArrayLike,
    props: SoilProperties,
    *,
    dt_days: float = 1.0,
    spinup_years: int = 0,
    initial_state: ArrayLike | None = None,
    month_lengths: ArrayLike | None = None,
    start_month: int = 1,
) -> tuple[np.ndarray, np.ndarray, SolverResult]:
    """Like :func:`solve_columns` but also return every step's node temperatures (for a few cells).

    Returns ``(times_days, node_temperature, result)``: step-end times in days from the run start
    ``(n_steps,)``, node temperatures ``(n_cells, n_steps, n_nodes)`` float64 and the monthly result.
    Memory grows with cells × steps × nodes: meant for tests and diagnostics, not whole domains.
    """
    result, rec, days = _run(
        air_temperature, snow_depth, snow_density, props, dt_days=dt_days, spinup_years=spinup_years,
        initial_state=initial_state, month_lengths=month_lengths, start_month=start_month,
        mid_depth_output=False, record=True,
    )  # fmt: skip
    assert rec is not None
    return days, rec, result
