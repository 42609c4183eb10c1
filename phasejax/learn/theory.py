"""What the trained inverse temperature should be: the theory of the regression task (docs/theory.md §i).

Host-side NumPy/SciPy in float64, not jitted:

* :func:`regression_mse_large_n`: bias^2 + variance at large n,
  MSE ~ (1 - a_2(beta))^2 / N_2 + (R(beta)/n) [sigma^2 + V_f(beta)],
  a_l = I_{l+d/2-1}/I_{d/2-1}, R = M_d(2beta)/M_d(beta)^2, N_2 = (d+2)(d-1)/2 = 1/E[f^2],
  V_f = [1 - 2 a_2(beta) a_2(2beta) + a_2(beta)^2] / N_2 (the local variance of f under the kernel).
* :func:`beta_opt_asymptotic`: its leading-order minimiser beta_opt = c n^{2/(d+3)},
  c = [2 d^2 / (N_2 sigma^2 r_d h)]^{2/(d+3)}, h = (d-1)/2, r_d = sqrt(pi)/(Gamma(d/2) 2^{d-2})
  (from 1 - a_2 ~ d/beta and R ~ r_d beta^h); bias^2/MSE -> h/(h+2) there.
* :func:`regression_mse_exact`: the exact finite-n MSE by quadrature (2-D: s and u), from
  1/D^2 = int_0^inf s e^{-sD} ds with D = sum_i e^{-beta u_i} (derivation in its docstring), and
  :func:`beta_opt_exact`, its minimiser (Brent in log beta; quadrature error < 1e-9 relative, so the
  minimiser is located to ~1e-5 relative, far inside the 1% asked for: see ``tests/test_learn.py``).
* :func:`regression_mse_mc`: a Monte Carlo estimate with common random numbers across beta (the check).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._checks import InputError, check_int, check_real
from .._numerics.arrays import default_float
from ..theory.sphere import funk_hecke_multiplier, log_kernel_ratio
from .model import SIGMA, AttentionHead, RegressionTask, _harmonic_dim2

__all__ = [
    "regression_mse_large_n",
    "beta_opt_coefficient",
    "beta_opt_asymptotic",
    "beta_opt_large_n",
    "regression_mse_exact",
    "beta_opt_exact",
    "regression_mse_mc",
]


def _check_theory_args(beta, n, d, sigma):
    d = check_int("d", d, minimum=3)
    n = check_real("n", n, minimum=1.0)
    sigma = check_real("sigma", sigma, nonnegative=True)
    if beta is not None:
        beta = check_real("beta", beta, positive=True)
    return beta, n, d, sigma


def regression_mse_large_n(beta, n, d: int, sigma: float = SIGMA, *, parts: bool = False):
    """Large-n bias-variance MSE of the regression task (docs/theory.md §i), averaged over the query:

    MSE = (1 - a_2(beta))^2 / N_2 + (R(beta)/n) [sigma^2 + V_f(beta)],
    V_f = [1 - 2 a_2(beta) a_2(2 beta) + a_2(beta)^2] / N_2,  N_2 = (d+2)(d-1)/2,

    a_2 = I_{d/2+1}/I_{d/2-1} (Funk-Hecke), R = M_d(2beta)/M_d(beta)^2. The first term is bias^2 (the mean
    prediction a_2 f(q)), the second the delta-method variance of the ratio sum e^{-beta u} v / sum e^{-beta u}.
    Valid for 1 << beta << n^{2/(d-1)} (n_eff = n/R >> 1). ``parts=True`` returns (mse, bias2, variance).

    >>> round(regression_mse_large_n(10.0, 1e12, 3), 6)  # bias only: (1 - a_2(10))^2/5, a_2 = 1 + 3/b^2 - 3 coth(b)/b
    0.01458
    """
    beta, n, d, sigma = _check_theory_args(beta, n, d, sigma)
    n2 = _harmonic_dim2(d)
    a2, a22 = funk_hecke_multiplier(d, 2, beta), funk_hecke_multiplier(d, 2, 2 * beta)
    bias2 = float((1.0 - a2) ** 2 / n2)
    vf = (1.0 - 2.0 * a2 * a22 + a2 * a2) / n2
    var = float(np.exp(log_kernel_ratio(beta, d)) / n * (sigma**2 + vf))
    return (bias2 + var, bias2, var) if parts else bias2 + var


def beta_opt_coefficient(d: int, sigma: float = SIGMA) -> float:
    """c in beta_opt ~ c n^{2/(d+3)}: c = [2 d^2 / (N_2 sigma^2 r_d h)]^{2/(d+3)} (docs/theory.md §i).

    From bias^2 ~ d^2/(N_2 beta^2) (1 - a_2 ~ d/beta) and variance ~ sigma^2 r_d beta^h / n,
    h = (d-1)/2, r_d = sqrt(pi)/(Gamma(d/2) 2^{d-2}), N_2 = (d+2)(d-1)/2.

    >>> round(beta_opt_coefficient(3), 6)  # (14.4)^(1/3)
    2.432881
    """
    _, _, d, sigma = _check_theory_args(None, 1, d, sigma)
    if sigma == 0:
        raise InputError("sigma must be > 0 for a finite optimal beta")
    h = (d - 1) / 2.0
    r_d = math.sqrt(math.pi) / (math.gamma(d / 2.0) * 2.0 ** (d - 2))
    return (2.0 * d * d / (_harmonic_dim2(d) * sigma**2 * r_d * h)) ** (2.0 / (d + 3))


def beta_opt_asymptotic(n, d: int, sigma: float = SIGMA) -> float:
    """Leading-order MSE-optimal beta = c n^{2/(d+3)} (:func:`beta_opt_coefficient`; docs/theory.md §i).

    >>> round(beta_opt_asymptotic(1000, 3), 4)  # 2.432881 * 1000^(1/3)
    24.3288
    """
    _, n, d, sigma = _check_theory_args(None, n, d, sigma)
    return beta_opt_coefficient(d, sigma) * n ** (2.0 / (d + 3))


def _minimise_log_beta(f, guess):
    from scipy.optimize import minimize_scalar

    x0, step = math.log(guess), 0.15
    f0 = f(x0)
    lo, hi = x0 - step, x0 + step
    while f(lo) < f0:  # walk the bracket out until it holds the minimum
        lo, x0, f0 = lo - step, lo, f(lo)
    while f(hi) < f0:
        hi, x0, f0 = hi + step, hi, f(hi)
    res = minimize_scalar(f, bracket=(lo, x0, hi), method="brent", options={"xtol": 1e-7})
    return math.exp(res.x)


def beta_opt_large_n(n, d: int, sigma: float = SIGMA) -> float:
    """Minimiser over beta of :func:`regression_mse_large_n` (Bessel functions kept exact).

    >>> 0.9 < beta_opt_large_n(1e8, 3) / beta_opt_asymptotic(1e8, 3) < 1.1
    True
    """
    _, n, d, sigma = _check_theory_args(None, n, d, sigma)
    return _minimise_log_beta(lambda x: regression_mse_large_n(math.exp(x), n, d, sigma),
                              beta_opt_asymptotic(n, d, sigma))


@functools.lru_cache(maxsize=8)
def _gl(order):
    return np.polynomial.legendre.leggauss(order)


def _z_nodes(zmax, panel, order):
    """Composite Gauss-Legendre nodes/weights on [0, zmax] with panels of width ~panel."""
    m = max(1, math.ceil(zmax / panel))
    edges = np.linspace(0.0, zmax, m + 1)
    x, w = _gl(order)
    a, b = edges[:-1, None], edges[1:, None]
    z = (0.5 * (b - a) * x[None, :] + 0.5 * (a + b)).ravel()
    wz = (0.5 * (b - a) * w[None, :]).ravel()
    return z, wz


def regression_mse_exact(beta, n: int | float, d: int, sigma: float = SIGMA, *, dx: float = 0.1, panel: float = 1.0,
                         order: int = 10, parts: bool = False):
    """Exact finite-n expected squared error E[(yhat - f(q))^2] of the regression task, by quadrature.

    With e_i = e^{-beta u_i}, D = sum e_i, g_i = f(k_i) - f(q), yhat - f(q) = sum e_i g_i / D + sigma sum e_i eps_i / D,
    and 1/D^2 = int_0^inf s e^{-sD} ds, the keys being i.i.d. given q:

        MSE(q) = int_0^inf s ds { n E[e^2 g^2 e^{-se}] phi^{n-1} + n(n-1) E[e g e^{-se}]^2 phi^{n-2}
                                  + sigma^2 n E[e^2 e^{-se}] phi^{n-1} },   phi(s) = E[e^{-se}].

    By the addition theorem E[f(k) | t, q] = P_2(t) f(q), and averaged over the uniform query
    E_q E[g^2 | t] = (2/N_2)(1 - P_2(t)) and E_q f(q)^2 = 1/N_2, so with P_2(1-u) - 1 = -d u(2-u)/(d-1):

        MSE = (1/N_2) int s [2n c_2(s) phi^{n-1} + n(n-1) a_1(s)^2 phi^{n-2}] ds + sigma^2 n int s B(s) phi^{n-1} ds,
        a_1 = E[e (P_2(t) - 1) e^{-se}],  c_2 = E[e^2 (1 - P_2(t)) e^{-se}],  B = E[e^2 e^{-se}],

    expectations over the gap law u/2 ~ Beta(h, h) (docs/theory.md §a). Evaluated in log space: trapezoid in
    x = log s (step ``dx``; the integrand is smooth and decays doubly exponentially, so the rule converges
    geometrically) and composite Gauss-Legendre in z = beta u (panels of width ``panel``, ``order`` nodes).
    Relative accuracy ~1e-10 at the defaults (halving dx and panel changes the result by less than that).
    ``parts=True`` returns (mse, bias part (the first integral), noise part (the sigma^2 term)).

    >>> m = regression_mse_exact(10.0, 100, 3)
    >>> 0.0 < m < 1.0
    True
    """
    from scipy.special import betaln, logsumexp

    beta, n, d, sigma = _check_theory_args(beta, n, d, sigma)
    n = check_int("n", n, minimum=1)
    h = (d - 1) / 2.0
    n2 = _harmonic_dim2(d)
    lbeta_hh = betaln(h, h)

    def nodes(zmax):
        z, wz = _z_nodes(zmax, panel, order)
        u = z / beta
        x = u / 2.0
        # log[p(u) dz / beta], p(u) = (u/2)^{h-1} (1-u/2)^{h-1} / (2 B(h,h))
        lw = np.log(wz) + (h - 1) * (np.log(x) + np.log1p(-x)) - math.log(2.0) - lbeta_hh - math.log(beta)
        lg = math.log(d / (d - 1.0)) + np.log(u) + np.log1p(-u / 2.0) + math.log(2.0)  # log|P_2 - 1|
        return z, lw, lg

    zfull = 2.0 * beta
    z, lw, lg = nodes(min(zfull, 120.0))
    log_m = float(logsumexp(lw - z))  # log E e^{-beta u}

    def log_phi(xs, z, lw):
        y = np.exp(np.asarray(xs)[:, None] - z[None, :])
        dd = np.exp(logsumexp(lw[None, :], b=-np.expm1(-y), axis=1))
        with np.errstate(divide="ignore"):
            return np.log1p(-np.minimum(dd, 1.0))

    # integration range in x = log s: below, s n E[e] = e^{-30}; above, phi^{n-2} < e^{-120}, or past the
    # end of the gap law (x > 2 beta + 8) where every e^{-se} has died doubly exponentially.
    x_lo = -math.log(n) - log_m - 30.0
    x_hi = 2.0 * beta + 8.0
    if n >= 3:
        zz, lww, _ = nodes(zfull)
        f_hi = -(n - 2) * log_phi([x_hi], zz, lww)[0]
        if f_hi > 120.0:
            a, b = x_lo, x_hi
            for _ in range(60):
                mid = 0.5 * (a + b)
                if -(n - 2) * log_phi([mid], zz, lww)[0] > 120.0:
                    b = mid
                else:
                    a = mid
            x_hi = b
    z, lw, lg = nodes(min(zfull, x_hi + 60.0))
    xs = np.arange(x_lo, x_hi + dx, dx)
    with np.errstate(divide="ignore"):
        return _exact_sum(xs, z, lw, lg, n, n2, sigma, dx, parts)


def _exact_sum(xs, z, lw, lg, n, n2, sigma, dx, parts):
    from scipy.special import logsumexp

    out_bias = out_noise = 0.0
    for sl in np.array_split(np.arange(xs.size), max(1, xs.size * z.size // 2_000_000)):
        x = xs[sl]
        y = np.exp(x[:, None] - z[None, :])
        lk = -y  # log e^{-s e}
        lphi = np.log1p(-np.minimum(np.exp(logsumexp(lw[None, :], b=-np.expm1(-y), axis=1)), 1.0))
        la1 = logsumexp(lw + lg - z + lk, axis=1)
        lc2 = logsumexp(lw + lg - 2 * z + lk, axis=1)
        lb = logsumexp(lw - 2 * z + lk, axis=1)
        base = 2 * x + math.log(n)
        p1 = (n - 1) * lphi if n > 1 else 0.0 * x  # phi^{n-1} (0 * -inf guarded)
        t1 = np.exp(base + p1 + lc2 + math.log(2.0))
        t2 = np.exp(base + math.log(n - 1) + ((n - 2) * lphi if n > 2 else 0.0) + 2 * la1) if n >= 2 else 0.0 * x
        t3 = np.exp(base + p1 + lb)
        out_bias += float(np.sum(t1 + t2)) * dx / n2
        out_noise += float(np.sum(t3)) * dx * sigma**2
    mse = out_bias + out_noise
    return (mse, out_bias, out_noise) if parts else mse


def beta_opt_exact(n: int | float, d: int, sigma: float = SIGMA, **quad) -> float:
    """argmin over beta of :func:`regression_mse_exact` (Brent in log beta, xtol 1e-7): the beta that
    gradient descent on the expected squared error against f(q) converges to.

    >>> b = beta_opt_exact(1000, 3)
    >>> 15 < b < 40
    True
    """
    _, n, d, sigma = _check_theory_args(None, n, d, sigma)
    n = check_int("n", n, minimum=2)
    return _minimise_log_beta(lambda x: regression_mse_exact(math.exp(x), n, d, sigma, **quad),
                              beta_opt_large_n(n, d, sigma))


def regression_mse_mc(
    betas, n: int | float, d: int, *, key: PRNGKeyArray, contexts: int = 64, queries: int = 16, sigma: float = SIGMA
):
    """Monte Carlo MSE of the regression task on a beta grid, common random numbers across beta.

    Returns (mean (B,), se (B,), dmean_dlogbeta (B,), dmean_se (B,)) as NumPy float64; se over the
    ``contexts`` independent key sets (each averages its ``queries`` queries). The derivative in
    log beta is exact per sample (autodiff), so the CRN minimiser can be found by root-finding it.

    >>> import jax
    >>> m, se, g, gse = regression_mse_mc([5.0, 10.0], 100, 3, key=jax.random.key(0), contexts=4)
    >>> m.shape
    (2,)
    """
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    if betas.ndim != 1 or np.any(~np.isfinite(betas)) or np.any(betas <= 0):
        raise InputError("betas must be a 1-D array of finite positive numbers")
    n = check_int("n", n, minimum=1)
    contexts = check_int("contexts", contexts, minimum=2)
    queries = check_int("queries", queries, minimum=1)
    task = RegressionTask(d, sigma)
    lb = jnp.asarray(np.log(betas), default_float())
    vals, grads = _mc_per_context(task, key, lb, n, contexts, queries)
    vals, grads = np.asarray(vals, np.float64), np.asarray(grads, np.float64)
    rt = math.sqrt(contexts)
    return vals.mean(0), vals.std(0, ddof=1) / rt, grads.mean(0), grads.std(0, ddof=1) / rt


@eqx.filter_jit
def _mc_per_context(task, key, log_betas, n, contexts, queries):
    def one(k):
        b = task.sample(k, n, queries)

        def mse(lbeta):
            head = AttentionHead.from_log_beta(lbeta)
            pred = jax.vmap(head.predict, in_axes=(0, None))(b.gaps, b.values)
            return jnp.mean((pred - b.targets) ** 2)

        return jax.vmap(jax.value_and_grad(mse))(log_betas)

    return jax.lax.map(one, jax.random.split(key, contexts))
