"""The random energy model: softmax over i.i.d. Gaussian scores, its freezing point and its
Poisson-Dirichlet limit PD(m, 0) above it (docs/theory.md §h).

Shapes: ``pd_sample(key, m, k)`` -> :class:`PDSample` with ``weights`` (k,), ``tail_mass`` (),
``tail_sd`` (), ``vmap`` over ``key``; ``pd_expected_max_weight(m)``, ``pd_chi(m)``,
``pd_expected_sum_w2(m)``: scalar m in (0, 1), Python floats computed on the host in float64.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import InputError, check_int, check_real
from .._numerics.peak import host_derivative
from .._numerics.quadrature import exp_sinh

__all__ = ["rem_beta_c", "PDSample", "pd_sample", "pd_expected_max_weight", "pd_chi", "pd_expected_sum_w2"]


def rem_beta_c(n, sigma=1.0):
    """Freezing point of the random energy model: beta_c = sqrt(2 log n)/sigma (docs/theory.md §h).

    Softmax over n i.i.d. N(0, sigma^2) scores. On the sphere the scores are close to N(0, 1/d)
    when d is large against log n, so beta_c = sqrt(2 d log n). ``n`` may be an array.

    >>> round(float(rem_beta_c(1e6)), 6)
    5.256522
    """
    sigma = check_real("sigma", sigma, positive=True)
    n_arr = np.asarray(n, np.float64)
    if np.any(n_arr < 2):
        raise InputError(f"n must be >= 2 for beta_c = sqrt(2 log n)/sigma, got {n!r}")
    out = np.sqrt(2.0 * np.log(n_arr)) / sigma
    return float(out) if out.ndim == 0 else out


def _check_m(m, name="m"):
    m = check_real(name, m)
    if not 0.0 < m < 1.0:
        raise InputError(f"{name} must be in (0, 1) (m = beta_c/beta; PD(m, 0) needs beta > beta_c), got {m!r}")
    return m


class PDSample(NamedTuple):
    """The first k ordered PD(m, 0) weights of one draw, and what the truncation leaves out.

    ``tail_mass``: the share of the total carried by the points beyond the k-th (their conditional
    mean, included in the normaliser); ``tail_sd``: the conditional standard deviation of that
    left-out sum relative to the total, i.e. the (1-sigma) relative error of every weight."""

    weights: Float[Array, " k"]
    tail_mass: Float[Array, ""]
    tail_sd: Float[Array, ""]


@functools.partial(jax.jit, static_argnames=("k", "dtype"))
def _pd_sample(key, m, k, dtype):
    gam = jnp.cumsum(jax.random.exponential(key, (k,), dtype))
    logx = -jnp.log(gam) / m
    lg = jnp.log(gam[-1])
    # Given Gamma_k the later points are a unit Poisson process on (Gamma_k, inf) (Campbell):
    # E tail = int x^{-1/m} dx = m/(1-m) Gamma_k^{1-1/m}; Var tail = m/(2-m) Gamma_k^{1-2/m}.
    log_tail = jnp.log(m / (1 - m)) + (1 - 1 / m) * lg
    log_var = jnp.log(m / (2 - m)) + (1 - 2 / m) * lg
    log_tot = jnp.logaddexp(jax.nn.logsumexp(logx), log_tail)
    return PDSample(jnp.exp(logx - log_tot), jnp.exp(log_tail - log_tot), jnp.exp(0.5 * log_var - log_tot))


def pd_sample(key: PRNGKeyArray, m: float, k: int = 4096, *, dtype=None) -> PDSample:
    """One draw of the ordered Poisson-Dirichlet PD(m, 0) weights, truncated to the first k (docs/theory.md §h).

    Points x_i = Gamma_i^{-1/m} (Gamma_i the arrivals of a unit Poisson process), weights
    x_i / sum_j x_j. The points beyond the k-th enter the normaliser through their exact conditional
    mean given Gamma_k, m/(1-m) Gamma_k^{1-1/m}; the neglected fluctuation has conditional sd
    sqrt(m/(2-m)) Gamma_k^{1/2-1/m}, reported relative to the total as ``tail_sd`` (about
    k^{1/2-1/m}: about 1e-6 at m = 0.5 and 4e-3 at m = 0.9 for k = 1e4). This is the beta > beta_c limit
    of Gaussian-score softmax with m = beta_c/beta.

    >>> import jax
    >>> s = pd_sample(jax.random.key(0), 0.5, 1024)
    >>> s.weights.shape, bool(s.weights[0] >= s.weights[1])
    ((1024,), True)
    """
    m = _check_m(m)
    k = check_int("k", k, minimum=2)
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    return _pd_sample(key, jnp.asarray(m, dtype), k, dtype)


_PD_S = exp_sinh(-40.0, math.log(80.0), 1 / 16)  # s in (0, inf), weight e^{-s}


def _pd_ew1(m: float) -> float:
    """E W_(1) of PD(m, 0) by the exp-sinh rule (host, float64)."""
    from scipy.special import gammainc, gammaln

    ls, lw = _PD_S
    s = np.exp(ls)
    phi = np.exp(m * ls + gammaln(1.0 - m)) * gammainc(1.0 - m, s) + np.expm1(-s)  # phi_m(s)
    return float(np.sum(np.exp(lw - s) / (1.0 + phi)))


def pd_expected_max_weight(m: float) -> float:
    """E W_(1) of PD(m, 0): int_0^inf e^{-s} ds / (1 + phi_m(s)) (docs/theory.md §h).

    phi_m(s) = s^m gamma(1-m, s) - (1 - e^{-s}) with gamma(a, s) = Gamma(a) P(a, s) the lower
    incomplete gamma; an exp-sinh rule on (0, 80), float64. E W_(1) = 1 - m log 2 + O(m^2) as m -> 0
    and -> 0 as m -> 1 (beta -> beta_c from above).

    >>> round((1 - pd_expected_max_weight(1e-4)) / 1e-4, 3)  # log 2
    0.693
    """
    m = _check_m(m)
    return _pd_ew1(m)


def pd_chi(m: float) -> float:
    """Susceptibility of the PD limit, chi = d E W_(1)/d log beta = -dE W_(1)/d log m (m = beta_c/beta).

    The derivative of a Chebyshev interpolant of :func:`pd_expected_max_weight` in log m (host float64). It grows
    monotonically and diverges like log(1/(1-m)) as m -> 1: the peak sits at the freezing point (docs/theory.md §h).

    >>> pd_chi(0.9) > pd_chi(0.5) > 0
    True
    """
    m = _check_m(m)
    # the Chebyshev window in log m stays inside (0, 1)
    return -host_derivative(lambda lm: _pd_ew1(math.exp(lm)), math.log(m), width=min(0.5, -math.log(m)))


def pd_expected_sum_w2(m: float) -> float:
    """E sum_i w_i^2 of PD(m, 0) by quadrature of its Laplace functional; the identity is 1 - m (docs/theory.md §h).

    The points form a Poisson process with intensity mu(dx) = m x^{-m-1} dx, so (Mecke, with
    1/S^2 = int t e^{-tS} dt) E sum w^2 = int_0^inf dt t B(t) exp(-A(t)),
    A(t) = int mu(dx) (1 - e^{-tx}), B(t) = int mu(dx) x^2 e^{-tx}. A and B are computed by an
    exp-sinh rule (scaled out: A(t) = t^m A(1), B(t) = t^{m-2} B(1)), the t-integral by a trapezoid
    rule in log t over the range where A(t) runs from e^-40 to 80. Used as an identity test of the PD machinery.

    >>> round(pd_expected_sum_w2(0.3), 8)
    0.7
    """
    m = _check_m(m)
    # A(1) = int_0^inf m y^{-m-1} (1 - e^{-y}) dy and B(1) = int m y^{1-m} e^{-y} dy, trapezoid in
    # v = log y on [-60, log 50] with the Euler-Maclaurin end correction -h^2/12 (f'(b) - f'(a)), plus
    # the tails in closed form: int_0^{e^-60} ~ m e^{-60(1-m)}/(1-m) (1 - e^{-y} ~ y), int_50^inf = 50^{-m}
    vy, h = np.linspace(-60.0, math.log(50.0), 20001, retstep=True)
    fa = m * np.exp(-m * vy) * -np.expm1(-np.exp(vy))
    da = (1 - m) * fa[0], -m * fa[-1]
    a1 = float(np.trapezoid(fa, vy) - h * h / 12 * (da[1] - da[0]) + m * np.exp(-60.0 * (1 - m)) / (1 - m)
               + 50.0 ** (-m))
    vb = np.linspace(-60.0, math.log(800.0), 20001)
    b1 = float(np.trapezoid(m * np.exp((2 - m) * vb - np.exp(vb)), vb))
    # t-integral in v = log t over the range where a1 t^m runs from e^-40 to 80, integrand in logs
    z = np.linspace(-40.0, math.log(80.0), 4001)  # z = log(a1 t^m) = log a1 + m v
    v = (z - math.log(a1)) / m
    f = b1 * np.exp(m * v - np.exp(z))  # t B(t) e^{-A(t)} dt = b1 t^m e^{-a1 t^m} dv
    lo_tail = b1 / (m * a1) * -np.expm1(-np.exp(z[0]))  # int_0^{t_0} in closed form (about e^-40)
    return float(np.trapezoid(f, v) + lo_tail)
