"""Active-set solver for the budget- and box-constrained quadratic programme

    minimise  1/2 w'Qw - c'w   subject to  sum(w) = 1,  lo <= w <= hi,

and for its one-parameter family ``c = c0 + lam * c1`` (the efficient frontier).

Why not a generic solver: with only bounds and one equality, a guess of which weights sit on which
bound reduces the problem to one linear solve on the free weights. The primal-dual active-set
iteration (Hintermueller, Ito and Kunisch 2002) updates the whole guess at once and usually finishes
in a handful of Cholesky factorisations; when it cycles, a primal active-set method started from the
projection of its last iterate finishes the job (it decreases the objective monotonically, so it
terminates). On a fixed active set the solution is affine in ``lam``, ``w = A + lam * B``, which lets
the frontier methods (target return, target risk, max Sharpe) find their ``lam`` in closed form on the
final active set, exactly as the critical line algorithm does, with a bracketing search around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from engine.errors import OptimizationError
from engine.optimize.bounds import project_onto_bounds


@dataclass
class Segment:
    """The solution on one active set: ``w = A + lam B``, budget multiplier ``nu = nu0 + lam nu1``."""

    A: np.ndarray
    B: np.ndarray
    nu0: float
    nu1: float
    at_lo: np.ndarray
    at_hi: np.ndarray

    def weights(self, lam: float) -> np.ndarray:
        return self.A + lam * self.B


@dataclass
class QPSolution:
    w: np.ndarray
    nu: float
    at_lo: np.ndarray
    at_hi: np.ndarray
    iterations: int
    segment: Segment


def _solve_spd(M: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        return cho_solve(cho_factor(M, lower=True, check_finite=False), rhs, check_finite=False)
    except (LinAlgError, ValueError):
        pass
    # A PSD matrix with a zero eigenvalue (clipped covariance): a ridge far below the data's precision.
    ridge = 1e-12 * max(float(np.trace(M)) / max(len(M), 1), 1e-300)
    try:
        return cho_solve(cho_factor(M + ridge * np.eye(len(M)), lower=True, check_finite=False), rhs,
                         check_finite=False)
    except (LinAlgError, ValueError):
        x: np.ndarray = np.linalg.lstsq(M, rhs, rcond=None)[0]
        return x


def segment(Q: np.ndarray, c0: np.ndarray, c1: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            at_lo: np.ndarray, at_hi: np.ndarray) -> Segment | None:
    """Solve the equality-constrained problem with ``at_lo``/``at_hi`` weights fixed on their bounds.

    Return ``None`` when no weight is free (the budget then cannot be adjusted).
    """
    free = ~(at_lo | at_hi)
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return None
    wb = np.where(at_lo, lo, 0.0) + np.where(at_hi, hi, 0.0)
    rhs = np.empty((idx.size, 3))
    rhs[:, 0] = c0[idx] - Q[idx] @ wb
    rhs[:, 1] = c1[idx]
    rhs[:, 2] = 1.0
    X = _solve_spd(Q[np.ix_(idx, idx)], rhs)
    a0, a1, r = X[:, 0], X[:, 1], X[:, 2]
    sr = r.sum()
    if not sr > 0:
        return None
    nu0 = (1.0 - wb.sum() - a0.sum()) / sr
    nu1 = -a1.sum() / sr
    A = wb.copy()
    A[idx] = a0 + nu0 * r
    B = np.zeros_like(A)
    B[idx] = a1 + nu1 * r
    return Segment(A, B, float(nu0), float(nu1), at_lo.copy(), at_hi.copy())


def _gradient_tol(Qw: np.ndarray, c: np.ndarray, rel: float = 1e-11) -> float:
    """Absolute tolerance on multipliers, relative to the size of the gradient's two terms at ``w``."""
    return rel * max(float(np.max(np.abs(Qw))), float(np.max(np.abs(c))), 1e-300)


_EPS_W = 1e-12


def solve_qp(Q: np.ndarray, c0: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, c1: np.ndarray | None = None,
             lam: float = 0.0, start: tuple[np.ndarray, np.ndarray] | None = None,
             max_iter: int = 60) -> QPSolution:
    """Minimise ``1/2 w'Qw - (c0 + lam c1)'w`` on ``{sum(w) = 1, lo <= w <= hi}``.

    ``start`` is a guess of the active set ``(at_lo, at_hi)``, e.g. the one of a nearby ``lam``.
    """
    n = len(c0)
    c1 = np.zeros(n) if c1 is None else c1
    c = c0 + lam * c1
    fixed = lo >= hi
    eps_w = _EPS_W
    if start is None:
        at_lo, at_hi = fixed.copy(), np.zeros(n, dtype=bool)
    else:
        at_lo, at_hi = start[0] | fixed, start[1] & ~fixed
    seen: set[bytes] = set()
    g_prev = np.zeros(n)
    w = None
    for it in range(1, max_iter + 1):
        seg = segment(Q, c0, c1, lo, hi, at_lo, at_hi)
        if seg is None:
            # Nothing free: release the fixed weight whose multiplier is closest to zero.
            cand = np.flatnonzero((at_lo | at_hi) & ~fixed)
            if cand.size == 0:
                break
            i = cand[np.argmin(np.abs(g_prev[cand]))]
            at_lo[i] = at_hi[i] = False
            continue
        w = seg.weights(lam)
        nu = seg.nu0 + lam * seg.nu1
        Qw = Q @ w
        g = Qw - c - nu
        eps_g = _gradient_tol(Qw, c)
        free = ~(at_lo | at_hi)
        new_lo = fixed | (free & (w < lo - eps_w)) | (at_lo & (g >= -eps_g))
        new_hi = ~new_lo & ((free & (w > hi + eps_w)) | (at_hi & (g <= eps_g)))
        if np.array_equal(new_lo, at_lo) and np.array_equal(new_hi, at_hi):
            w = np.clip(w, lo, hi)
            return QPSolution(w, nu, at_lo, at_hi, it, seg)
        key = new_lo.tobytes() + new_hi.tobytes()
        if key in seen:
            break
        seen.add(key)
        if not (~(new_lo | new_hi)).any():
            cand = np.flatnonzero(~fixed)
            i = cand[np.argmin(np.abs(g[cand]))]
            new_lo[i] = new_hi[i] = False
        at_lo, at_hi, g_prev = new_lo, new_hi, g
    w0 = project_onto_bounds(np.full(n, 1.0 / n) if w is None else w, lo, hi)
    return _primal_active_set(Q, c0, c1, lam, lo, hi, w0)


def _primal_active_set(Q: np.ndarray, c0: np.ndarray, c1: np.ndarray, lam: float, lo: np.ndarray,
                       hi: np.ndarray, w: np.ndarray) -> QPSolution:
    """Primal active-set method from the feasible point ``w`` (Nocedal and Wright, algorithm 16.3)."""
    n = len(w)
    c = c0 + lam * c1
    eps_w = _EPS_W
    fixed = lo >= hi
    at_lo = fixed | (w <= lo + eps_w)
    at_hi = ~at_lo & (w >= hi - eps_w)
    w = np.where(at_lo, lo, np.where(at_hi, hi, w))
    if not (~(at_lo | at_hi)).any():
        i = int(np.flatnonzero(~fixed)[0]) if (~fixed).any() else 0
        at_lo[i] = at_hi[i] = False
    for it in range(1, 10 * n + 200):
        seg = segment(Q, c0, c1, lo, hi, at_lo, at_hi)
        if seg is None:
            raise OptimizationError("the quadratic programme has no free weight left (degenerate bounds)")
        target = seg.weights(lam)
        p = target - w
        if np.max(np.abs(p)) <= 1e-14:
            nu = seg.nu0 + lam * seg.nu1
            Qw = Q @ w
            g = Qw - c - nu
            eps_g = _gradient_tol(Qw, c)
            viol = np.where(at_lo & ~fixed, -g, 0.0) + np.where(at_hi, g, 0.0)
            j = int(np.argmax(viol))
            if viol[j] <= eps_g:
                return QPSolution(np.clip(w, lo, hi), nu, at_lo, at_hi, it, seg)
            at_lo[j] = at_hi[j] = False
            continue
        alpha, block, to_hi = 1.0, -1, False
        free = np.flatnonzero(~(at_lo | at_hi))
        for i in map(int, free):
            if p[i] < 0 and lo[i] - w[i] > alpha * p[i]:
                alpha, block, to_hi = (lo[i] - w[i]) / p[i], i, False
            elif p[i] > 0 and hi[i] - w[i] < alpha * p[i]:
                alpha, block, to_hi = (hi[i] - w[i]) / p[i], i, True
        w = w + max(alpha, 0.0) * p
        if block >= 0:
            if to_hi:
                at_hi[block], w[block] = True, hi[block]
            else:
                at_lo[block], w[block] = True, lo[block]
    raise OptimizationError("the quadratic programme did not converge (primal active set)")


def parametric(Q: np.ndarray, c0: np.ndarray, c1: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
               on_segment: Callable[[Segment], float | None],
               residual: Callable[[float, np.ndarray], float],
               lam0: float, lam_max: float = 1e12, max_iter: int = 200) -> tuple[float, QPSolution]:
    """Find ``lam >= 0`` where ``residual(lam, w(lam))`` crosses zero from below, ``w(lam)`` the QP optimum.

    ``on_segment`` returns the exact ``lam`` of the condition on an active set (closed form), or None.
    Each trial ``lam`` comes from that closed form when it lies inside the current bracket, else from
    bisection (geometric while the bracket is open above); a trial whose active set reproduces itself
    is the exact answer. Return ``(lam, solution)``; when no crossing exists below ``lam_max`` the
    solution at ``lam_max`` is returned.
    """
    lo_b, hi_b = 0.0, np.inf
    lam = max(lam0, 0.0)
    start = None
    sol = None
    for _ in range(max_iter):
        sol = solve_qp(Q, c0, lo, hi, c1=c1, lam=lam, start=start)
        start = (sol.at_lo, sol.at_hi)
        lam_s = on_segment(sol.segment)
        if lam_s is not None and np.isfinite(lam_s) and lam_s >= 0:
            exact = _check_segment(Q, c0, c1, lo, hi, sol.segment, lam_s)
            if exact is not None:
                return lam_s, exact
        r = residual(lam, sol.w)
        if r == 0:
            return lam, sol
        if r < 0:
            lo_b = lam
        else:
            hi_b = lam
        if lo_b >= lam_max:
            return lam, sol
        if np.isfinite(hi_b) and hi_b - lo_b <= 1e-15 * max(hi_b, 1e-300):
            return lam, sol
        if lam_s is not None and np.isfinite(lam_s) and lo_b < lam_s < hi_b and lam_s != lam:
            lam = float(lam_s)
        elif np.isinf(hi_b):
            lam = max(lo_b * 4.0, lam0 if lam0 > 0 else 1.0, 1e-12)
            lam = min(lam, lam_max)
        elif lo_b == 0.0:
            lam = hi_b / 4.0
        else:
            lam = float(np.sqrt(lo_b * hi_b))
    if sol is None:  # pragma: no cover - max_iter >= 1
        raise OptimizationError("no iteration ran")
    return lam, sol


def _check_segment(Q: np.ndarray, c0: np.ndarray, c1: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   seg: Segment, lam: float) -> QPSolution | None:
    """Return the solution at ``lam`` if the active set of ``seg`` is optimal there, else None."""
    c = c0 + lam * c1
    w = seg.weights(lam)
    nu = seg.nu0 + lam * seg.nu1
    Qw = Q @ w
    g = Qw - c - nu
    free = ~(seg.at_lo | seg.at_hi)
    tol_w = 1e-10
    if (free & ((w < lo - tol_w) | (w > hi + tol_w))).any():
        return None
    tol_g = _gradient_tol(Qw, c, 1e-9)
    if (seg.at_lo & (lo < hi) & (g < -tol_g)).any() or (seg.at_hi & (g > tol_g)).any():
        return None
    return QPSolution(np.clip(w, lo, hi), nu, seg.at_lo, seg.at_hi, 0, seg)
