"""Susceptibilities and the peak finder: docs/theory.md §e identities, synthetic peaks known in closed form,
the delta-method standard error against replication, and autodiff consistency."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from phasejax._checks import InputError
from phasejax.laws import UniformSphere
from phasejax.observables import gap_observables
from phasejax.scaling import gap_curve
from phasejax.transition import derivative, find_peak, seed_curve, susceptibility


def _gaps(n=400, seed=0):
    return jnp.asarray(np.random.default_rng(seed).beta(1.0, 1.0, n) * 2)


def test_chi_of_max_weight_identity(x64):
    """chi = dW1/dlog beta = beta W1 (<u> - u1); d chi/dlog beta = chi + beta^2 W1 [(<u>-u1)^2 - Var u]."""
    u = _gaps()
    u1 = float(jnp.min(u))

    def w1(lb):
        return gap_observables(u, jnp.exp(lb), chunk=128).max_weight

    chi = susceptibility(w1)
    dchi = susceptibility(w1, order=2)
    for beta in (3.0, 300.0, 3000.0):
        lb = jnp.atleast_1d(math.log(beta))
        o = gap_observables(u, jnp.asarray([beta]), chunk=128)
        w, mean, var = float(o.max_weight[0]), float(o.mean_gap[0]), float(o.var_gap[0])
        c = beta * w * (mean - u1)
        assert float(chi(lb)[0]) == pytest.approx(c, rel=1e-9)
        assert float(dchi(lb)[0]) == pytest.approx(c + beta**2 * w * ((mean - u1) ** 2 - var), rel=1e-7)


def test_entropy_susceptibility_is_minus_specific_heat(x64):
    u = _gaps(seed=1)

    def h(lb):
        return gap_observables(u, jnp.exp(lb), chunk=64).entropy

    for beta in (0.1, 10.0, 1000.0):
        o = gap_observables(u, jnp.asarray([beta]))
        got = float(susceptibility(h)(jnp.atleast_1d(math.log(beta)))[0])
        assert got == pytest.approx(-(beta**2) * float(o.var_gap[0]), rel=1e-8)


def test_check_grads_order_2_of_the_scaling_curve(x64):
    curve = gap_curve("max_weight")
    gaps = jnp.stack([jnp.sort(_gaps(32, s)) for s in range(2)])

    def f(lb):
        return jnp.sum(curve(lb, gaps))

    check_grads(f, (jnp.asarray([math.log(40.0)]),), order=2, modes=("fwd", "rev"))


def test_vmap_of_grad_equals_grad_of_vmap_for_the_curve(x64):
    curve = gap_curve("entropy")
    gaps = jnp.stack([jnp.sort(_gaps(50, s)) for s in range(4)])
    lb = jnp.asarray(math.log(30.0))

    def one(u, x):
        return curve(x, u[None, :])[0, 0]

    a = jax.vmap(jax.grad(one, argnums=1), in_axes=(0, None))(gaps, lb)
    b = jax.grad(lambda x: jnp.sum(jax.vmap(one, in_axes=(0, None))(gaps, x)))(lb)
    assert float(jnp.sum(a)) == pytest.approx(float(b), rel=1e-12)


def test_derivative_orders_on_a_closed_form():
    f = derivative(lambda x: jnp.sin(2 * x), 3)  # -8 cos(2x)
    assert float(f(jnp.asarray(0.3))) == pytest.approx(-8 * math.cos(0.6), rel=1e-6)


@pytest.mark.parametrize("x0, slope", [(1.5, 3.0), (-2.0, 0.7), (10.0, 12.0)])
def test_find_peak_logistic_closed_form(x0, slope):
    # chi = slope * s (1 - s) with s = sigmoid(slope (x - x0)): the peak is exactly x0
    curve = lambda x: jax.nn.sigmoid(slope * (x - x0))[None, :]  # noqa: E731
    grid = jnp.linspace(x0 - 7.3, x0 + 5.1, 21)
    p = find_peak(curve, grid)
    assert p.converged and not p.on_edge
    assert float(p.log_beta) == pytest.approx(x0, abs=1e-5)
    assert float(p.chi_max) == pytest.approx(slope / 4, rel=1e-5)
    assert float(p.value) == pytest.approx(0.5, abs=1e-5)


def test_find_peak_asymmetric_closed_form(x64):
    # W = 1 - exp(-e^x) (a Gumbel CDF in log beta): chi = e^x exp(-e^x) peaks at x = 0
    curve = lambda x: (1 - jnp.exp(-jnp.exp(x)))[None, :]  # noqa: E731
    p = find_peak(curve, jnp.linspace(-4.0, 3.0, 9))
    assert float(p.log_beta) == pytest.approx(0.0, abs=1e-10)
    assert float(p.chi_max) == pytest.approx(math.exp(-1), rel=1e-10)


def test_delta_method_se_matches_replication(x64):
    """Seeds with peak positions x0 + sigma z_s: the reported se must match the spread of the estimate
    over independent replications. 200 replications: the sd of the sd estimate is ~5%; allow 20%."""
    s, sigma, reps = 16, 0.3, 200
    rng = np.random.default_rng(7)
    grid = jnp.linspace(-5.0, 5.0, 21)

    def curve(x, shifts):
        return jax.nn.sigmoid(2.0 * (x[None, :] - shifts[:, None]))

    est, ses = [], []
    for _ in range(reps):
        shifts = jnp.asarray(sigma * rng.standard_normal(s))
        p = find_peak(curve, grid, shifts)
        est.append(float(p.log_beta))
        ses.append(float(p.log_beta_se))
    assert np.std(est, ddof=1) == pytest.approx(np.mean(ses), rel=0.2)


@pytest.mark.bad_input
def test_find_peak_flags_edges_and_bad_grids():
    curve = lambda x: jax.nn.sigmoid(x - 10.0)[None, :]  # noqa: E731
    assert find_peak(curve, jnp.linspace(0.0, 5.0, 6)).on_edge
    with pytest.raises(InputError, match="at least 3 points"):
        find_peak(curve, jnp.array([0.0, 1.0]))
    with pytest.raises(InputError, match="strictly increasing"):
        find_peak(curve, jnp.array([0.0, 2.0, 1.0]))


def test_seed_curve_uses_common_random_numbers():
    c = seed_curve(UniformSphere(3), jax.random.key(0), 2000, seeds=4, sampler="exact")
    a = c(jnp.log(jnp.asarray([100.0, 1000.0])))
    b = c(jnp.log(jnp.asarray([1000.0])))
    np.testing.assert_allclose(np.asarray(a[:, 1]), np.asarray(b[:, 0]), rtol=1e-6)
    with pytest.raises(InputError, match="observable must be one of"):
        seed_curve(UniformSphere(3), jax.random.key(0), 10, "nope")


def test_user_defined_observable_works():
    # any function of Observables: here the top-k mass minus the max weight
    c = seed_curve(UniformSphere(3), jax.random.key(1), 3000, lambda o: o.top_k_mass - o.max_weight, seeds=8,
                   sampler="exact")
    p = find_peak(c, jnp.log(jnp.geomspace(30.0, 3e5, 15)))
    assert math.isfinite(float(p.log_beta)) and float(p.log_beta_se) > 0
