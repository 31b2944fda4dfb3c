"""1-D soil heat conduction with freeze/thaw, vectorised over many columns in one numba kernel.

Numerics (see REFERENCE §6 for why):

* cell-centred finite volumes; every ERA5-Land layer is split into an odd number of equal cells so a
  cell centre sits exactly on each layer mid-depth and layer means are plain cell averages;
* enthalpy form H(T) = sensible + L·theta_liquid(T) with the GIPL unfrozen-water curve;
* BDF2 in time (backward Euler on the first step); each step does two Newton passes on the energy
  balance (H linearised about the current iterate, one tridiagonal solve) and then recovers T from the
  updated enthalpy, so energy is conserved exactly whatever the linearisation error;
* the surface couples to air through snow (Sturm 1997 conductivity) plus an optional surface
  resistance; the bottom receives the geothermal flux.

The kernel owns the whole time loop: columns are processed in blocks (``prange`` over blocks, inner
loops across the block's columns), monthly forcing is interpolated inside, and monthly layer means,
liquid water and maximum thaw depth are accumulated inside, so memory is just forcing plus outputs.
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
_BLOCK = 64  # columns per block: inner loops run across these
_SMALL_STEP = 2e-3  # K: frozen-branch moves below this use the tangent instead of an exact inversion

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
def _invert_enthalpy(h, guess, theta, a, b, c_t, c_f, t_cap):
    """Temperature and unfrozen water for enthalpy ``h`` (J m-3); returns (T, theta_liquid).

    Above 0 °C and between the cap point ``t_cap`` and 0 °C H is linear in T.  Below ``t_cap``
    H = c_f T + L a (-T)^b is convex and increasing, so Newton started right of the root (at
    min(guess, t_cap) when that is right of it) converges monotonically; 1–3 iterations suffice.
    """
    lat = LATENT_HEAT * theta
    if h >= lat:
        return (h - lat) / c_t, theta
    t_lin = (h - lat) / c_f
    if t_lin >= t_cap:
        return t_lin, theta
    t = guess if guess < t_cap else t_cap
    for _ in range(8):
        wu = _unfrozen(t, a, b)
        f = c_f * t + LATENT_HEAT * wu - h
        if f < 0.0:  # started left of the root: restart from the cap point (f > 0 there)
            t = t_cap
            wu = theta
            f = c_f * t + lat - h
        slope = c_f + LATENT_HEAT * b * wu / t
        step = f / slope
        t -= step
        if step < 1e-7:
            wu = wu - b * wu / t * step  # first-order update, no extra pow
            return t, wu
    return t, _unfrozen(t, a, b)


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
# ----------------------------------------------------------------------------------------------


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _node_properties(cellp, c0, nb_, tops, widths, kt, kf, ct, cf, th, pa, pb, tcap):
    """Per-node properties of a block: organic layer, mineral soil and bedrock mixed by cell fraction."""
    n = widths.shape[0]
    for i in range(n):
        top = tops[i]
        bot = top + widths[i]
        for j in range(nb_):
            c = c0 + j
            f_org = min(max((cellp[_ORG, c] - top) / widths[i], 0.0), 1.0)
            f_rock = min(max((bot - cellp[_BD, c]) / widths[i], 0.0), 1.0)
            f_rock = min(f_rock, 1.0 - f_org)
            f_min = 1.0 - f_org - f_rock
            # layers in series: conductivities combine harmonically, capacities and water linearly
            kt[i, j] = 1.0 / (f_min / cellp[_KT, c] + f_org / cellp[_OKT, c] + f_rock / cellp[_BK, c])
            kf[i, j] = 1.0 / (f_min / cellp[_KF, c] + f_org / cellp[_OKF, c] + f_rock / cellp[_BK, c])
            ct[i, j] = f_min * cellp[_CT, c] + f_org * cellp[_OCT, c] + f_rock * cellp[_BC, c]
            cf[i, j] = f_min * cellp[_CF, c] + f_org * cellp[_OCF, c] + f_rock * cellp[_BC, c]
            w = f_min * cellp[_W, c] + f_org * cellp[_OW, c] + f_rock * cellp[_BW, c]
            th[i, j] = w
            pa[i, j] = cellp[_A, c]
            pb[i, j] = cellp[_B, c]
            # below t_cap the curve a|T|^b drops under the total water; above it all water is liquid
            tcap[i, j] = -((w / cellp[_A, c]) ** (1.0 / cellp[_B, c])) if w > 1e-9 else -1e30


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _month_value(x, c, m, src, nv):
    """Mean-preserving vertex value of virtual month m: mean - (second difference)/8.

    The first and last months have no outer neighbour; they keep their mean (as if extrapolated linearly).
    """
    xm = x[c, src[m]]
    if m == 0 or m == nv - 1:
        return xm
    return xm - 0.125 * (x[c, src[m - 1]] - 2.0 * xm + x[c, src[m + 1]])


@nb.njit(parallel=True, fastmath=_FASTMATH, error_model="numpy", cache=True)
def _kernel(
    air, snow_d, snow_rho, cellp, src, step_m0, step_w, step_out, dt_spin, dt_run, record_from,
    tops, widths, layer_lo, layer_hi, mid_index, mid_output, t_init,
    out_t, out_w, out_z, state, record,
):  # fmt: skip
    n_cells = air.shape[0]
    n = widths.shape[0]
    nv = src.shape[0]
    n_steps = step_m0.shape[0]
    n_blocks = (n_cells + _BLOCK - 1) // _BLOCK
    bottom = tops[n - 1] + widths[n - 1]
    dz_half = 0.5 * widths
    for blk in nb.prange(n_blocks):
        c0 = blk * _BLOCK
        nbk = min(_BLOCK, n_cells - c0)
        shape = (n, nbk)
        kt = np.empty(shape); kf = np.empty(shape); ct = np.empty(shape); cf = np.empty(shape)  # noqa: E702
        th = np.empty(shape); pa = np.empty(shape); pb = np.empty(shape); tcap = np.empty(shape)  # noqa: E702
        _node_properties(cellp, c0, nbk, tops, widths, kt, kf, ct, cf, th, pa, pb, tcap)
        temp = np.empty(shape); hh = np.empty(shape); hprev = np.empty(shape); wu = np.empty(shape)  # noqa: E702
        cap = np.empty(shape); kk = np.empty(shape); hist = np.empty(shape); hnew = np.empty(shape)  # noqa: E702
        diag = np.empty(shape); upper = np.empty(shape); rhs = np.empty(shape); cond = np.empty(shape)  # noqa: E702
        t_air = np.empty(nbk); g_top = np.empty(nbk); valid = np.ones(nbk, dtype=np.bool_)  # noqa: E702
        fa0 = np.zeros(nbk); fa1 = np.zeros(nbk); fs0 = np.zeros(nbk); fs1 = np.zeros(nbk)  # noqa: E702
        fr0 = np.zeros(nbk); fr1 = np.zeros(nbk)  # noqa: E702
        acc_t = np.zeros((4, nbk)); acc_w = np.zeros((4, nbk)); max_z = np.zeros(nbk)  # noqa: E702
        prev_t = np.zeros((4, nbk)); prev_w = np.zeros((4, nbk))  # noqa: E702
        now_t = np.zeros((4, nbk)); now_w = np.zeros((4, nbk))  # noqa: E702
        for i in range(n):
            for j in range(nbk):
                temp[i, j] = t_init[c0 + j, i]
                h, w = _enthalpy(temp[i, j], th[i, j], pa[i, j], pb[i, j], ct[i, j], cf[i, j], tcap[i, j])
                hh[i, j] = h
                hprev[i, j] = h
                wu[i, j] = w
        _layer_values(temp, hh, cf, th, widths, layer_lo, layer_hi, mid_index, mid_output, prev_t, prev_w)
        cur_m = -1
        n_acc = 0
        for s in range(n_steps):
            m0 = step_m0[s]
            if m0 != cur_m:  # new pair of mid-month vertices: refresh the block's forcing cache
                cur_m = m0
                _resync(temp, hh, wu, th, pa, pb, ct, cf, tcap, nbk)
                m1 = m0 + 1 if m0 < nv - 1 else nv - 1
                for j in range(nbk):
                    c = c0 + j
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
            for j in range(nbk):
                c = c0 + j
                ta = fa0[j] + w * (fa1[j] - fa0[j])
                if ta > 0.0:
                    ta *= cellp[_NT, c]
                t_air[j] = ta
                depth = max(fs0[j] + w * (fs1[j] - fs0[j]), 0.0)
                rho = min(max(fr0[j] + w * (fr1[j] - fr0[j]), 50.0), 700.0) * 1e-3
                k_snow = 0.138 - 1.01 * rho + 3.233 * rho * rho
                g_top[j] = depth / k_snow + cellp[_RS, c]  # resistance for now, conductance below
            # BDF2 history; backward Euler on the first step (no H^{n-1}) and where the step size changes
            dt = dt_spin if s < record_from else dt_run
            if s == 0 or (s == record_from and dt_spin != dt_run):
                alpha = 1.0 / dt
                for i in range(n):
                    for j in range(nbk):
                        hist[i, j] = hh[i, j] / dt
            else:
                alpha = 1.5 / dt
                for i in range(n):
                    for j in range(nbk):
                        hist[i, j] = (2.0 * hh[i, j] - 0.5 * hprev[i, j]) / dt
            for i in range(n):
                for j in range(nbk):
                    hprev[i, j] = hh[i, j]
                    hnew[i, j] = hh[i, j]
            for _it in range(2):
                _newton_pass(temp, hnew, wu, th, pa, pb, ct, cf, kt, kf, tcap, widths, dz_half, cap, kk,
                             cond, diag, upper, rhs, hist, alpha, t_air, g_top, cellp, c0, nbk)  # fmt: skip
            for i in range(n):
                for j in range(nbk):
                    hh[i, j] = hnew[i, j]
            # outputs: trapezoidal time means of layer values, max thaw depth at step ends
            o = step_out[s]
            if o >= 0:
                _accumulate(temp, hh, cf, th, widths, tops, layer_lo, layer_hi, mid_index, mid_output,
                            prev_t, prev_w, now_t, now_w, acc_t, acc_w, max_z, bottom)  # fmt: skip
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
                _layer_values(temp, hh, cf, th, widths, layer_lo, layer_hi, mid_index, mid_output, prev_t, prev_w)
            if s >= record_from and record.shape[0] > 0:
                for j in range(nbk):
                    for i in range(n):
                        record[c0 + j, s - record_from, i] = temp[i, j]
        for j in range(nbk):
            for i in range(n):
                state[c0 + j, i] = temp[i, j] if valid[j] else np.nan
            if not valid[j]:
                out_t[c0 + j, :, :] = np.nan
                out_w[c0 + j, :, :] = np.nan
                out_z[c0 + j, :] = np.nan
                if record.shape[0] > 0:
                    record[c0 + j, :, :] = np.nan


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _newton_pass(temp, hnew, wu, th, pa, pb, ct, cf, kt, kf, tcap, widths, dz_half, cap, kk,
                 cond, diag, upper, rhs, hist, alpha, t_air, g_top, cellp, c0, nbk):  # fmt: skip
    """One Newton pass: linearise H about the iterate, solve the tridiagonal system, recover T from H.

    ``hnew`` holds the enthalpy of the current iterate on entry and the updated enthalpy on exit;
    ``temp``/``wu`` are updated consistently with it.  Loops run across the block's columns (inner
    index) so the branch-free ones vectorise; divisions are kept to one per node where possible.
    """
    n = widths.shape[0]
    # apparent capacity dH/dT and half-cell thermal resistance (kk) at the iterate
    for i in range(n):
        for j in range(nbk):
            t = temp[i, j]
            frozen = t < tcap[i, j]
            liquid_frac = wu[i, j] / th[i, j] if frozen else 1.0
            c_sens = ct[i, j] if t >= 0.0 else cf[i, j]
            cap[i, j] = c_sens + (LATENT_HEAT * pb[i, j] * wu[i, j] / t if frozen else 0.0)
            kk[i, j] = dz_half[i] / (kf[i, j] + (kt[i, j] - kf[i, j]) * liquid_frac)
    # face conductances (two half cells in series); cond[i] couples cells i and i+1
    for i in range(n - 1):
        for j in range(nbk):
            cond[i, j] = 1.0 / (kk[i, j] + kk[i + 1, j])
    # Thomas algorithm, forward sweep (upper/rhs hold the normalised coefficients)
    for j in range(nbk):
        g_surf = 1.0 / (g_top[j] + kk[0, j])
        d = widths[0] * alpha * cap[0, j] + g_surf + cond[0, j]
        r = widths[0] * (hist[0, j] - alpha * (hnew[0, j] - cap[0, j] * temp[0, j])) + g_surf * t_air[j]
        inv = 1.0 / d
        upper[0, j] = -cond[0, j] * inv
        rhs[0, j] = r * inv
    for i in range(1, n - 1):
        for j in range(nbk):
            g_up = cond[i - 1, j]
            g_dn = cond[i, j]
            d = widths[i] * alpha * cap[i, j] + g_up + g_dn
            r = widths[i] * (hist[i, j] - alpha * (hnew[i, j] - cap[i, j] * temp[i, j]))
            inv = 1.0 / (d + g_up * upper[i - 1, j])
            upper[i, j] = -g_dn * inv
            rhs[i, j] = (r + g_up * rhs[i - 1, j]) * inv
    i = n - 1
    for j in range(nbk):
        g_up = cond[i - 1, j]
        d = widths[i] * alpha * cap[i, j] + g_up
        r = widths[i] * (hist[i, j] - alpha * (hnew[i, j] - cap[i, j] * temp[i, j])) + cellp[_Q, c0 + j]
        upper[i, j] = 0.0
        rhs[i, j] = (r + g_up * rhs[i - 1, j]) / (d + g_up * upper[i - 1, j])
    for i in range(n - 2, -1, -1):
        for j in range(nbk):
            rhs[i, j] -= upper[i, j] * rhs[i + 1, j]
    # energy-conserving update: H from the linearisation, then T from H
    for i in range(n):
        for j in range(nbk):
            t_old = temp[i, j]
            t_lin = rhs[i, j]
            h = hnew[i, j] + cap[i, j] * (t_lin - t_old)
            hnew[i, j] = h
            if t_old < tcap[i, j] and t_lin < tcap[i, j] and abs(t_lin - t_old) < _SMALL_STEP:
                # small move on the smooth frozen branch: the tangent is exact to O(dT^2), skip the pow
                temp[i, j] = t_lin
                wu[i, j] += pb[i, j] * wu[i, j] / t_old * (t_lin - t_old)
            else:
                t_new, w = _invert_enthalpy(h, t_lin, th[i, j], pa[i, j], pb[i, j], ct[i, j], cf[i, j], tcap[i, j])
                temp[i, j] = t_new
                wu[i, j] = w


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _resync(temp, hh, wu, th, pa, pb, ct, cf, tcap, nbk):
    """Recover T and unfrozen water exactly from H (undoes the drift of the no-pow shortcut)."""
    for i in range(temp.shape[0]):
        for j in range(nbk):
            t, w = _invert_enthalpy(hh[i, j], temp[i, j], th[i, j], pa[i, j], pb[i, j], ct[i, j], cf[i, j], tcap[i, j])
            temp[i, j] = t
            wu[i, j] = w


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _layer_values(temp, hh, cf, th, widths, layer_lo, layer_hi, mid_index, mid_output, out_t, out_w):
    """Layer-mean (or mid-depth node) temperature and liquid water of the block at this instant."""
    nbk = temp.shape[1]
    for lay in range(4):
        for j in range(nbk):
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
            for j in range(nbk):
                t = temp[i, j]
                # liquid water from the enthalpy itself: no extra unfrozen-curve evaluation
                liquid = th[i, j] if t >= 0.0 else (hh[i, j] - cf[i, j] * t) / LATENT_HEAT
                out_t[lay, j] += wgt * t
                out_w[lay, j] += wgt * min(max(liquid, 0.0), th[i, j])


@nb.njit(fastmath=_FASTMATH, error_model="numpy", cache=True)
def _accumulate(temp, hh, cf, th, widths, tops, layer_lo, layer_hi, mid_index, mid_output,
                prev_t, prev_w, now_t, now_w, acc_t, acc_w, max_z, bottom):  # fmt: skip
    """Add this step's trapezoidal layer means to the monthly sums and update the max thaw depth."""
    nbk = temp.shape[1]
    _layer_values(temp, hh, cf, th, widths, layer_lo, layer_hi, mid_index, mid_output, now_t, now_w)
    for lay in range(4):
        for j in range(nbk):
            acc_t[lay, j] += 0.5 * (prev_t[lay, j] + now_t[lay, j])
            acc_w[lay, j] += 0.5 * (prev_w[lay, j] + now_w[lay, j])
            prev_t[lay, j] = now_t[lay, j]
            prev_w[lay, j] = now_w[lay, j]
    for j in range(nbk):
        z = _thaw_depth(temp, hh, cf, th, widths, tops, j, bottom)
        if z > max_z[j]:
            max_z[j] = z


@nb.njit(inline="always", fastmath=_FASTMATH, error_model="numpy", cache=True)
def _thaw_depth(temp, hh, cf, th, widths, tops, j, bottom):
    """Depth of the first 0 °C crossing below a thawed surface cell.

    In the first not-thawed cell the front sits at the cell top plus its liquid-water fraction of the
    cell (the enthalpy method smears the front over one cell); for dry cells (no latent heat) the
    temperature is interpolated linearly between the two nodes instead.
    """
    n = temp.shape[0]
    if temp[0, j] <= 0.0:
        return 0.0
    for i in range(1, n):
        t = temp[i, j]
        if t <= 0.0:
            theta = th[i, j]
            if theta > 0.01:
                frac = (hh[i, j] - cf[i, j] * t) / (LATENT_HEAT * theta)
                return tops[i] + widths[i] * min(max(frac, 0.0), 1.0)
            t_up = temp[i - 1, j]
            z_up = tops[i - 1] + 0.5 * widths[i - 1]
            z_dn = tops[i] + 0.5 * widths[i]
            return z_up + (z_dn - z_up) * t_up / (t_up - t)
    return bottom


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
