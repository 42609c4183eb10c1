"""Finite-n simulation against the limit law of each regime (docs/theory.md §b, §c, §f).

* :func:`subcritical_fluctuations` - fixed beta, growing n: the covariance of
  sqrt(n) (y - A_d(beta) q) against (S_par, S_perp), and the normality of a projected component.
* :func:`critical_laws` - beta = lambda n^{2/alpha}, growing n: the laws of the max weight, the
  entropy and the first ordered weights against the Poisson-process limit (two-sample KS).
* :func:`supercritical_tail_check` - large lambda: 1 - E[max weight] against the exact Poisson
  value and the tail law log(2) h Gamma(2 - 1/h) rho^{1/h}.
* :func:`entropy_crossover` - H against log beta at fixed n with its slope, against the
  n = infinity curve log n + log M_d - beta A_d and the plateau -(d-1)/2.

Every function takes ``devices`` (devices per process, None: the plain one-device path)
to shard its seeds over devices and processes (:mod:`phasejax.runtime.devices`) with the
same numbers. All return plain dicts of NumPy arrays / floats (the CLI's tables and JSON). Every Monte Carlo
number carries a standard error; KS distances come with the 95% noise level of the test,
1.36 sqrt((S1 + S2) / (S1 S2)), so "shrinks with n" can be read against it.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from . import theory
from ._checks import InputError, check_int, check_real
from .laws.sphere import UniformSphere
from .observables import Accumulator, _chunk_valid
from .runtime.memory import check_memory
from .scaling import nearest_gap_samples

__all__ = [
    "check_limit_laws_memory",
    "ks_noise",
    "subcritical_fluctuations",
    "critical_laws",
    "supercritical_tail_check",
    "entropy_crossover",
]


def _over_seeds(f, keys, devices):
    """``f(keys)`` (batched over the seed axis), sharded by :func:`phasejax.runtime.devices.run_seeds`
    when ``devices`` is given or in a multi-process run; seed i gets ``keys[i]`` either way."""
    if devices is None and jax.process_count() == 1:
        return f(keys)
    from .runtime.devices import run_seeds

    return run_seeds(f, keys, devices=devices, batched=True)


# Up-front memory checks (runtime.memory): each step's largest arrays, vmapped over its seeds at once.


def _check_sub_memory(seeds, n_top, d, item):
    check_memory(4.0 * seeds * n_top * (2 * d + 2) * item, "seeds", f"{seeds} contexts x a chunk of {n_top} keys "
                 f"in d = {d}")


def _ppp_points(m, rho, h):  # points kept per Poisson-limit sample: the m nearest, or all within e^-60 of the top
    return max(m, int(rho * (60.0**h)) + 16)


def _check_critical_memory(seeds, ppp_seeds, m, mm, item):
    check_memory(4.0 * (ppp_seeds * mm + seeds * m) * item, "seeds",
                 f"{ppp_seeds} Poisson samples x {mm} points and {seeds} contexts x {m} nearest gaps")


def _check_nearest_memory(seeds, m, item):
    check_memory(4.0 * seeds * m * item, "seeds", f"{seeds} contexts x {m} nearest gaps")


def check_limit_laws_memory(d: int, lam: float, seeds: int, *, chunk: int = 8192) -> None:
    """Refuse, before any work, a ``phasejax limit-laws`` run whose steps would not fit in memory: the subcritical
    step (``seeds // 2`` contexts, keys in chunks of ``chunk``), the critical one (``seeds`` contexts and
    ``10 seeds`` Poisson samples) and the supercritical one (``2 seeds`` contexts of 64 nearest gaps); each raises
    the :class:`~phasejax._checks.InputError` of :func:`phasejax.runtime.memory.check_memory` naming seeds.

    >>> check_limit_laws_memory(3, 0.4, 400)
    """
    item = jnp.dtype(jnp.result_type(float)).itemsize
    h = UniformSphere(d).alpha / 2
    rho = math.exp(check_critical_lambda(d, lam))
    _check_sub_memory(max(50, seeds // 2), chunk, d, item)
    _check_critical_memory(seeds, 10 * seeds, 256, _ppp_points(256, rho, h), item)
    _check_nearest_memory(2 * seeds, 64, item)


def ks_noise(s1: int, s2: int) -> float:
    """95% critical value of the two-sample KS distance for sample sizes s1, s2 (asymptotic)."""
    return 1.358 * math.sqrt((s1 + s2) / (s1 * s2))


@functools.partial(jax.jit, static_argnames=("law", "n", "chunk"))
def _outputs(law, keys, q, beta, n, chunk):
    valid = _chunk_valid(n, chunk)

    def one(k):
        n_chunks = -(-n // chunk)
        state = Accumulator.init(beta, values_dim=q.shape[0], dtype=q.dtype)

        def body(s, c):
            kk = law.sample_keys(jax.random.fold_in(k, c), q, chunk)
            u = 0.5 * jnp.sum((kk - q[None, :]) ** 2, axis=-1)
            return s.update(beta, u, valid(c), kk), None

        state, _ = jax.lax.scan(body, state, jnp.arange(n_chunks))
        return state.finish(beta).output[0]

    return jax.vmap(one)(keys)


def subcritical_fluctuations(
    d: int, beta: float, ns, *, key, seeds: int = 400, chunk: int = 8192, devices: int | None = None,
) -> dict:
    """sqrt(n) (y - A q) over ``seeds`` contexts of n uniform keys, for each n, against docs/theory.md §b.

    Returns per n: n Var(y_par) and n Var(y_perp) (averaged over the d-1 perpendicular
    directions) with standard errors (se of a sample variance, Gaussian approximation
    sqrt(2/(S-1)) Var), the theory values, the mean bias sqrt(n)(E y_par - A) against the
    second-order mean R(A(b) - A(2b))/sqrt(n), and the KS distance/p-value of the standardised
    parallel component against N(0, 1).
    """
    d = check_int("d", d, minimum=2)
    beta = check_real("beta", beta, positive=True)
    seeds = check_int("seeds", seeds, minimum=10)
    law = UniformSphere(d)
    dtype = jnp.result_type(float)
    n_top = max([min(chunk, int(v)) for v in ns], default=1)  # the vmapped chunk of keys and values
    _check_sub_memory(seeds, n_top, d, jnp.dtype(dtype).itemsize)
    q = jnp.zeros(d, dtype).at[0].set(1.0)
    a = float(theory.mean_resultant(beta, d))
    s_par, s_perp = (float(x) for x in theory.subcritical_covariance(beta, d))
    rows = []
    for i, n in enumerate(int(v) for v in ns):
        n = check_int("n", n, minimum=2)
        keys = jax.random.split(jax.random.fold_in(key, i), seeds)
        b = jnp.asarray([beta], dtype)
        y = np.asarray(_over_seeds(lambda ks, n=n, b=b: _outputs(law, ks, q, b, n, min(chunk, n)), keys, devices),
                       np.float64)
        z = math.sqrt(n) * (y - a * np.asarray(q, np.float64))
        zpar = z[:, 0]
        zperp = z[:, 1:]
        vpar = zpar.var(ddof=1)
        vperp = zperp.var(axis=0, ddof=1).mean()
        ks = stats.kstest((zpar - zpar.mean()) / math.sqrt(s_par), "norm")
        rows.append({
            "n": n,
            "n_var_par": vpar, "n_var_par_se": vpar * math.sqrt(2 / (seeds - 1)),
            "n_var_perp": vperp, "n_var_perp_se": vperp * math.sqrt(2 / ((seeds - 1) * (d - 1))),
            "mean_bias": zpar.mean(), "mean_bias_se": zpar.std(ddof=1) / math.sqrt(seeds),
            "mean_bias_theory": float(theory.second_order_mean(n, beta, d) - a) * math.sqrt(n),
            "ks_normal": ks.statistic, "ks_normal_p": ks.pvalue,
        })
    out = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    out.update({"d": d, "beta": beta, "A": a, "S_par": s_par, "S_perp": s_perp, "seeds": seeds,
                "ks_noise": 1.358 / math.sqrt(seeds)})
    return out


@functools.partial(jax.jit, static_argnames=("k",))
def _critical_stats(gaps, beta, k):
    """Per context: the first k ordered weights, the max weight and the entropy (from the m nearest gaps)."""

    def one(u):
        u = jnp.sort(u)
        lw = -beta * (u - u[0])
        logz = jax.nn.logsumexp(lw)
        w = jnp.exp(lw - logz)
        ent = -jnp.sum(jnp.where(w > 0, w * (lw - logz), 0.0))
        return w[:k], ent

    return jax.vmap(one)(gaps)


@functools.partial(jax.jit, static_argnames=("h", "m", "k"))
def _ppp_stats(keys, h, rho, m, k):
    def one(key):
        w = theory.poisson_limit_weights(key, h, rho, m)
        w = w / jnp.sum(w)
        ent = -jnp.sum(jnp.where(w > 0, w * jnp.log(jnp.where(w > 0, w, 1.0)), 0.0))
        return w[:k], ent

    return jax.vmap(one)(keys)


def check_critical_lambda(d: int, lam: float) -> float:
    """log rho, rho = C lambda^{-h} the Poisson intensity of the critical law at d (h = (d-1)/2, C = C_d), after
    checking lambda: each Poisson sample keeps ~rho 60^h points, so lambda is bounded below by that size (1e5
    points: smaller lambda is the subcritical regime) and above by rho's underflow. InputError names the bound."""
    lam = check_real("lambda", lam, positive=True)
    law = UniformSphere(check_int("d", d, minimum=2))
    h, c = law.alpha / 2, law.C
    log_rho = math.log(c) - h * math.log(lam)
    if log_rho + h * math.log(60.0) > math.log(1e5):
        lam_min = math.exp((math.log(c) + h * math.log(60.0) - math.log(1e5)) / h)
        raise InputError(f"lambda = {lam:g} is too small for the critical law at d = {d}: the Poisson limit would "
                         f"need > 1e5 points per sample; lambda must be >= {lam_min:.4g} (smaller lambda is the "
                         "subcritical regime)")
    if log_rho < -700.0:
        lam_max = math.exp((math.log(c) + 700.0) / h)
        raise InputError(f"lambda = {lam:g} is too large at d = {d} (rho = C lambda^(-h) underflows); lambda must be "
                         f"<= {lam_max:.4g}")
    return log_rho


def critical_laws(
    d: int, lam: float, ns, *, key, seeds: int = 2000, ppp_seeds: int = 20000, m: int | float = 256, k: int = 3,
    devices: int | None = None,
) -> dict:
    """Finite-n laws at beta = lambda n^{2/(d-1)} against the Poisson limit, by two-sample KS.

    For each n: the KS distance (and p-value) between the finite-n sample of W_(1), the entropy
    H, and W_(2), ..., W_(k), and a ``ppp_seeds`` sample from the Poisson limit
    (:func:`phasejax.theory.poisson_limit_weights`); E[W_(1)] with its se against the exact
    quadrature. The m nearest gaps are kept (exactly: the m smallest of an exact sample).
    """
    d = check_int("d", d, minimum=2)
    lam = check_real("lambda", lam, positive=True)
    seeds = check_int("seeds", seeds, minimum=10)
    law = UniformSphere(d)
    h = law.alpha / 2
    log_rho = check_critical_lambda(d, lam)
    rho = math.exp(log_rho)
    ppp_seeds = check_int("ppp_seeds", ppp_seeds, minimum=10)
    mm = _ppp_points(m, rho, h)
    _check_critical_memory(seeds, ppp_seeds, m, mm, jnp.dtype(jnp.result_type(float)).itemsize)
    kp = jax.random.split(jax.random.fold_in(key, 10**6), ppp_seeds)
    w_ppp, h_ppp = (np.asarray(x, np.float64) for x in _over_seeds(
        lambda ks: _ppp_stats(ks, h, jnp.asarray(rho), mm, k), kp, devices))
    ew1 = float(theory.poisson_expected_max_weight(h, rho))
    rows = []
    for i, n in enumerate(int(v) for v in ns):
        n = check_int("n", n, minimum=2)
        gaps = nearest_gap_samples(law, jax.random.fold_in(key, i), n, min(m, n), seeds=seeds, devices=devices)
        beta = lam * n ** (2 / law.alpha)
        w, ent = (np.asarray(x, np.float64) for x in _critical_stats(gaps, jnp.asarray(beta, gaps.dtype), min(k, n)))
        row = {"n": n, "beta": beta, "E_max_weight": w[:, 0].mean(), "E_max_weight_se": w[:, 0].std(ddof=1) /
               math.sqrt(seeds)}
        row["ks_max_weight"], row["ks_max_weight_p"] = stats.ks_2samp(w[:, 0], w_ppp[:, 0])
        row["ks_entropy"], row["ks_entropy_p"] = stats.ks_2samp(ent, h_ppp)
        for j in range(1, min(k, n)):
            row[f"ks_w{j + 1}"], row[f"ks_w{j + 1}_p"] = stats.ks_2samp(w[:, j], w_ppp[:, j])
        rows.append(row)
        last = (w, ent)
    out = {key_: np.array([float(r[key_]) for r in rows]) for key_ in rows[0]}
    out.update({
        "d": d, "lambda": lam, "h": h, "rho": rho, "seeds": seeds, "ppp_seeds": ppp_seeds,
        "E_max_weight_limit": ew1, "ks_noise": ks_noise(seeds, ppp_seeds),
        "samples_largest_n": {"max_weight": last[0][:, 0], "entropy": last[1]},
        "samples_limit": {"max_weight": w_ppp[:, 0], "entropy": h_ppp},
    })
    return out


def supercritical_tail_check(
    d: int, lams, n: int | float, *, key, seeds: int = 4000, m: int | float = 64, devices: int | None = None,
) -> dict:
    """1 - E[W_(1)] at beta = lambda n^{2/(d-1)} for large lambda against the exact Poisson value and the
    tail law log(2) h Gamma(2-1/h) rho^{1/h} (docs/theory.md §c); the ratio measured/tail -> 1 as lambda grows."""
    d = check_int("d", d, minimum=3)
    n = check_int("n", n, minimum=2)
    law = UniformSphere(d)
    h, c = law.alpha / 2, law.C
    seeds = check_int("seeds", seeds, minimum=2)
    _check_nearest_memory(seeds, min(m, n), jnp.dtype(jnp.result_type(float)).itemsize)
    gaps = nearest_gap_samples(law, key, n, min(m, n), seeds=seeds, devices=devices)
    rows = []
    for lam in lams:
        lam = check_real("lambda", lam, positive=True)
        beta = lam * n ** (2 / law.alpha)
        w1 = np.asarray(1.0 - _critical_stats(gaps, jnp.asarray(beta, gaps.dtype), 1)[0][:, 0], np.float64)
        rho = c * lam ** (-h)
        rows.append({
            "lambda": lam, "rho": rho, "one_minus_E_max_weight": w1.mean(),
            "one_minus_E_max_weight_se": w1.std(ddof=1) / math.sqrt(seeds),
            "poisson_exact": float(theory.poisson_one_minus_max_weight(h, rho)),
            "tail_law": float(theory.supercritical_tail(h, rho)),
        })
    out = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    out["ratio_to_tail"] = out["one_minus_E_max_weight"] / out["tail_law"]
    out.update({"d": d, "n": n, "h": h, "seeds": seeds})
    return out


@functools.partial(jax.jit, static_argnames=("law", "n", "chunk"))
def _entropy_and_var(law, keys, betas, n, chunk):
    valid = _chunk_valid(n, chunk)

    def one(k):
        state = Accumulator.init(betas)

        def body(s, c):
            u = law.sample_gaps(jax.random.fold_in(k, c), chunk, dtype=betas.dtype)
            return s.update(betas, u, valid(c)), None

        state, _ = jax.lax.scan(body, state, jnp.arange(-(-n // chunk)))
        o = state.finish(betas)
        return o.entropy, o.var_gap

    return jax.vmap(one)(keys)


def entropy_crossover(
    d: int, n: int | float, betas, *, key, seeds: int = 8, chunk: int = 32768, devices: int | None = None,
) -> dict:
    """H(beta) and its slope dH/d log beta = -beta^2 Var_w(u) (exact per sample, docs/theory.md §e) at fixed n,
    mean +- se over seeds, against the n = infinity curve and slope and the plateau (docs/theory.md §f)."""
    d = check_int("d", d, minimum=2)
    n = check_int("n", n, minimum=2)
    b = np.asarray(betas, np.float64)
    if b.ndim != 1 or np.any(b <= 0):
        raise InputError("betas must be a 1-D array of positive numbers")
    dtype = jnp.result_type(float)
    seeds = check_int("seeds", seeds, minimum=2)
    check_memory(4.0 * seeds * b.size * min(chunk, n) * jnp.dtype(dtype).itemsize, "seeds",
                 f"{seeds} contexts x {b.size} betas x a chunk of {min(chunk, n)} keys")
    bj = jnp.asarray(b, dtype)
    ent, var = (np.asarray(x, np.float64) for x in _over_seeds(
        lambda ks: _entropy_and_var(UniformSphere(d), ks, bj, n, min(chunk, n)), jax.random.split(key, seeds),
        devices))
    slope = -(b**2)[None, :] * var
    return {
        "d": d, "n": n, "beta": b, "seeds": seeds,
        "entropy": ent.mean(0), "entropy_se": ent.std(0, ddof=1) / math.sqrt(seeds),
        "slope": slope.mean(0), "slope_se": slope.std(0, ddof=1) / math.sqrt(seeds),
        "entropy_limit": np.asarray(theory.entropy_limit(n, jnp.asarray(b, dtype), d), np.float64),
        "slope_limit": np.asarray(theory.entropy_slope_limit(jnp.asarray(b, dtype), d), np.float64),
        "plateau": np.asarray(theory.entropy_plateau_slope(jnp.asarray(b, dtype), d), np.float64),
        "critical_beta": n ** (2 / (d - 1)),
    }
