"""Locating the transition by autodiff: susceptibilities and their peaks.

Conventions (docs/theory.md §c, §e). An *observable curve* is a function of log beta. The
susceptibility of an observable O is chi(log beta) = dO/d log beta, computed by forward-mode
autodiff (``jax.jvp``), which costs about one forward pass; phasejax's convention for "the"
critical point at finite n is the peak of chi of E[max weight] (DESIGN: lambda* is the peak
in the Poisson limit).

Shape contract for :func:`find_peak`: ``curve(log_betas: (B,)) -> (S, B)`` per-seed values
(S >= 1 contexts, *common random numbers across beta*: seed s uses the same keys at every
beta, so each row is a smooth function of beta). The peak is located on the seed-mean curve.

>>> import jax.numpy as jnp
>>> logistic = lambda x: jax.nn.sigmoid(3.0 * (x - 1.5))[None, :]   # chi peaks at x = 1.5
>>> peak = find_peak(logistic, jnp.linspace(-2.0, 5.0, 15))
>>> round(float(peak.log_beta), 6)
1.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._checks import InputError, check_array, check_int, check_option
from ._numerics.peak import newton_peak
from .laws.base import KeyLaw
from .observables import DEFAULT_CHUNK, OBSERVABLE_NAMES
from .runtime.ensemble import choose_sampler, observe

__all__ = ["derivative", "susceptibility", "seed_curve", "Peak", "find_peak"]


def derivative(f: Callable, order: int = 1) -> Callable:
    """The ``order``-th derivative of an elementwise function ``f(x)`` by nested ``jax.jvp``.

    ``f`` must act elementwise in x (as every observable does in log beta), so a tangent of
    ones gives all the derivatives of a vector of points in one pass.
    """
    order = check_int("order", order, minimum=0)
    g = f
    for _ in range(order):
        g = _jvp_ones(g)
    return g


def _jvp_ones(f):
    def df(x):
        return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

    return df


def susceptibility(observable: Callable, *, order: int = 1) -> Callable:
    """chi = d observable / d log beta, as a function of log beta (forward mode, ``jax.jvp``).

    Mirrors ``force = grad(-energy)`` in jax-md: a derived quantity returned as a function.
    ``order=2`` gives d chi / d log beta, whose zero is the peak.

    Args:
      observable: f(log_beta) -> values; elementwise in log_beta (any leading batch axes).

    Identity (docs/theory.md §e): for the entropy, dH/d log beta = -beta^2 Var_w(t).

    >>> import jax.numpy as jnp
    >>> chi = susceptibility(lambda lb: jnp.exp(2 * lb))   # d e^{2x}/dx = 2 e^{2x}
    >>> float(chi(jnp.array(0.0)))
    2.0
    """
    return derivative(observable, order)


def seed_curve(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int | float,
    observable: str | Callable = "max_weight",
    *,
    seeds: int = 32,
    sampler: str = "auto",
    m: int | None = None,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
) -> Callable[[Float[Array, " B"]], Float[Array, "S B"]]:
    """Per-seed observable as a function of log beta, with common random numbers across beta.

    ``observable`` is a name in :data:`phasejax.observables.OBSERVABLE_NAMES` or a function
    ``Observables -> (B,)`` (a user-defined observable). Seed s always uses the keys drawn from
    ``jax.random.split(key, seeds)[s]``, so each row is smooth in beta. Jitted.
    """
    seeds = check_int("seeds", seeds, minimum=1)
    n = check_int("n", n, minimum=1)
    resolved = choose_sampler(law, n, sampler)
    if isinstance(observable, str):
        check_option("observable", observable, OBSERVABLE_NAMES)
        name = observable

        def extract(o):
            return getattr(o, name)
    elif callable(observable):
        extract = observable
    else:
        raise InputError(f"observable must be a name in {OBSERVABLE_NAMES} or a callable, got {observable!r}")
    keys = jax.random.split(key, seeds)

    @jax.jit
    def curve(log_betas):
        log_betas = jnp.atleast_1d(log_betas)

        def one(k):
            o = observe(law, k, n, jnp.exp(log_betas), sampler=resolved, top_k=top_k, chunk=chunk, m=m)
            return extract(o)

        return jax.vmap(one)(keys)

    curve.sampler = resolved
    return curve


@dataclasses.dataclass(frozen=True)
class Peak:
    """A susceptibility peak: location in log beta with its standard error, and the curve around it.

    ``log_beta_se`` is the delta-method standard error over seeds: the peak solves
    g(x) = mean_s g_s(x) = 0 with g_s = d chi_s / d log beta, so
    se(x*) = sd_s(g_s(x*)) / (sqrt(S) |g'(x*)|). NaN when S = 1.
    """

    log_beta: Float[Array, ""]
    log_beta_se: Float[Array, ""]
    chi_max: Float[Array, ""]
    value: Float[Array, ""]
    grid: Float[Array, " G"]
    chi_grid: Float[Array, " G"]
    value_grid: Float[Array, " G"]
    newton_steps: int
    converged: bool
    on_edge: bool

    @property
    def beta(self):
        return jnp.exp(self.log_beta)

    @property
    def beta_se(self):
        """se(beta*) = beta* se(log beta*) (delta method)."""
        return self.beta * self.log_beta_se


def _as_2d(y):
    return y if y.ndim == 2 else y[None, :]


@eqx.filter_jit
def _grid_terms(curve, grid, args):
    def f(x):
        return _as_2d(curve(x, *args))

    values, chis = jax.jvp(f, (grid,), (jnp.ones_like(grid),))
    return jnp.mean(values, axis=0), jnp.mean(chis, axis=0)


@eqx.filter_jit
def _point_terms(curve, x, args):
    """Per-seed value, chi, d chi/dx and d^2 chi/dx^2 at one log beta (nested jvp)."""

    def f(x):
        return _as_2d(curve(x, *args))

    xv = jnp.reshape(x, (1,))
    return tuple(derivative(f, k)(xv)[:, 0] for k in range(4))


def find_peak(
    curve: Callable[..., Float[ArrayLike, "S B"]],
    log_beta_grid: Float[ArrayLike, " G"],
    *args,
    max_newton: int = 30,
    tol: float | None = None,
) -> Peak:
    """Peak of chi = d <curve>/d log beta, where <.> is the mean over seeds.

    ``curve(log_betas, *args)`` returns per-seed values (S, B) (or (B,) for one curve);
    passing the data as ``args`` (rather than closing over it) lets one compiled curve serve
    many data sets.

    1. Bracket: chi on ``log_beta_grid`` (one forward pass + jvp), argmax.
    2. Refine: Newton on g(x) = d chi/dx = 0 with g' = d^2 chi/dx^2, both by autodiff
       (nested ``jax.jvp``, no finite differences), safeguarded by bisection inside the
       bracket formed by the argmax's neighbours; stops when a step is below ``tol``
       (default: 1e3 machine epsilons).
    3. Standard error by the delta method over seeds (see :class:`Peak`).

    ``on_edge`` is True when the grid maximum is at an end of the grid (widen the grid).
    """
    check_array("log_beta_grid", log_beta_grid, ndim=1)
    grid = jnp.asarray(log_beta_grid)
    if grid.shape[0] < 3:
        raise InputError(f"log_beta_grid needs at least 3 points, got {grid.shape[0]}")
    if not bool(jnp.all(jnp.diff(grid) > 0)):
        raise InputError("log_beta_grid must be strictly increasing")
    tol = float(1e3 * jnp.finfo(grid.dtype).eps) if tol is None else tol
    value_grid, chi_mean = _grid_terms(curve, grid, args)
    i = int(jnp.argmax(chi_mean))
    on_edge = i in (0, grid.shape[0] - 1)
    lo = float(grid[max(i - 1, 0)])
    hi = float(grid[min(i + 1, grid.shape[0] - 1)])
    x = float(grid[i])

    def g_and_gp(x):
        terms = _point_terms(curve, jnp.asarray(x, grid.dtype), args)
        return float(jnp.mean(terms[2])), float(jnp.mean(terms[3]))

    x, steps, converged = newton_peak(g_and_gp, lo, hi, x, tol=tol, max_iter=max_newton)
    value, chi, g_seed, gp_seed = _point_terms(curve, jnp.asarray(x, grid.dtype), args)
    s = g_seed.shape[0]
    gp = jnp.mean(gp_seed)
    se = jnp.std(g_seed, ddof=1) / jnp.sqrt(s) / jnp.abs(gp) if s > 1 else jnp.asarray(jnp.nan, grid.dtype)
    return Peak(
        log_beta=jnp.asarray(x, grid.dtype),
        log_beta_se=se,
        chi_max=jnp.mean(chi),
        value=jnp.mean(value),
        grid=grid,
        chi_grid=chi_mean,
        value_grid=value_grid,
        newton_steps=steps,
        converged=converged,
        on_edge=on_edge,
    )
