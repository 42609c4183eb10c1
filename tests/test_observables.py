"""Streaming observables against a NumPy float64 reference, flax, limits, identities and properties."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from phasejax.laws import UniformSphere, gaps_from_keys
from phasejax.observables import gap_observables, key_observables, sampled_observables, weights


def numpy_reference(u, beta, top_k=5, keys=None):
    """Every observable from the dense float64 weights (independent of the streaming code)."""
    u = np.asarray(u, np.float64)
    lw = -beta * u
    lw = lw - lw.max()
    w = np.exp(lw)
    w = w / w.sum()
    nz = w > 0
    h = -np.sum(w[nz] * np.log(w[nz]))
    mean = np.sum(w * u)
    ref = {
        "max_weight": w.max(),
        "entropy": h,
        "effective_keys": math.exp(h),
        "sum_w2": np.sum(w**2),
        "inv_sum_w2": 1 / np.sum(w**2),
        "top_k_mass": np.sort(w)[::-1][:top_k].sum(),
        "mean_gap": mean,
        "var_gap": np.sum(w * (u - mean) ** 2),
        "log_partition": np.log(np.sum(np.exp(-beta * u - (-beta * u).max()))) + (-beta * u).max(),
    }
    if keys is not None:
        ref["output"] = w @ np.asarray(keys, np.float64)
    return ref


BETAS = np.array([0.0, 0.3, 3.0, 30.0, 300.0, 3000.0, 3e4])


def _fixed_gaps(n=500):
    return jnp.asarray(np.random.default_rng(2).beta(1, 1, n) * 2)


@pytest.mark.parametrize("chunk", [7, 256, 5000])
def test_gap_observables_match_numpy(dtype, chunk):
    rng = np.random.default_rng(0)
    u = 2 * rng.beta(1.5, 1.5, size=3001)
    obs = gap_observables(jnp.asarray(u, dtype), jnp.asarray(BETAS, dtype), top_k=4, chunk=chunk)
    rtol = 2e-4 if dtype == "float32" else 1e-10
    for i, beta in enumerate(BETAS):
        ref = numpy_reference(u, beta, top_k=4)
        for name, value in ref.items():
            got = float(getattr(obs, name)[i])
            atol = rtol * (1 + abs(math.log(len(u)))) if name in ("entropy", "log_partition") else 0.0
            if name == "var_gap":  # a difference of moments: absolute error ~ eps * <u'^2>
                atol = rtol * max(ref["var_gap"], (ref["mean_gap"] - u.min()) ** 2 + 1e-300) * 10
            assert got == pytest.approx(value, rel=rtol, abs=atol), (name, beta)


def test_key_observables_output_matches_numpy(dtype):
    d = 4
    q = jnp.asarray(np.eye(d)[1], jnp.result_type(float))
    keys = UniformSphere(d).sample_keys(jax.random.key(0), q, 2000)
    obs = key_observables(q, keys, jnp.asarray(BETAS[:5], q.dtype), chunk=300)
    rtol = 2e-4 if dtype == "float32" else 1e-10
    u = np.asarray(gaps_from_keys(q, keys), np.float64)
    for i, beta in enumerate(BETAS[:5]):
        ref = numpy_reference(u, beta, keys=keys)
        np.testing.assert_allclose(np.asarray(obs.output[i]), ref["output"], rtol=rtol, atol=rtol)
        assert float(obs.max_weight[i]) == pytest.approx(ref["max_weight"], rel=rtol)


def test_weights_match_flax_dot_product_attention(x64):
    from flax.linen import dot_product_attention_weights

    d, n, beta = 5, 300, 7.5
    q = jnp.asarray(np.eye(d)[0])
    keys = UniformSphere(d).sample_keys(jax.random.key(1), q, n)
    # flax divides the query by sqrt(depth): pass beta*sqrt(d)*q so the logit is beta <q,k>
    fw = dot_product_attention_weights((beta * math.sqrt(d) * q)[None, None, None, :], keys[None, :, None, :])
    ours = weights(gaps_from_keys(q, keys), beta)
    np.testing.assert_allclose(np.asarray(fw[0, 0, 0]), np.asarray(ours), rtol=1e-12, atol=1e-15)
    obs = key_observables(q, keys, jnp.array([beta]))
    assert float(obs.max_weight[0]) == pytest.approx(float(fw.max()), rel=1e-12)


def test_beta_zero_is_uniform_and_large_beta_is_argmin(dtype):
    rng = np.random.default_rng(1)
    n = 1000
    u = jnp.asarray(2 * rng.random(n), jnp.result_type(float))
    obs = gap_observables(u, jnp.asarray([0.0, 1e9], u.dtype))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    assert float(obs.max_weight[0]) == pytest.approx(1 / n, rel=rtol)
    assert float(obs.entropy[0]) == pytest.approx(math.log(n), rel=rtol)
    assert float(obs.effective_keys[0]) == pytest.approx(n, rel=1e-4)
    assert float(obs.inv_sum_w2[0]) == pytest.approx(n, rel=rtol)
    assert float(obs.max_weight[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(obs.mean_gap[1]) == pytest.approx(float(jnp.min(u)), rel=rtol)
    assert float(obs.entropy[1]) == pytest.approx(0.0, abs=1e-5)


def test_identities_of_theory_e(x64):
    """d<t>/dbeta = Var(t); dH/dlog beta = -beta^2 Var(t); dW1/dlog beta = beta W1(<u> - u1);
    d^2 W1/dbeta^2 = W1[(<u> - u1)^2 - Var(u)]  (docs/theory.md §e, exact for every sample)."""
    u = _fixed_gaps()

    def obs_at(beta):
        return gap_observables(u, jnp.atleast_1d(beta), chunk=128)

    for beta in (0.5, 20.0, 700.0):
        b = jnp.asarray(beta)
        o, do = jax.jvp(obs_at, (b,), (jnp.ones_like(b),))
        var, mean, w1 = float(o.var_gap[0]), float(o.mean_gap[0]), float(o.max_weight[0])
        u1 = float(jnp.min(u))
        # <t> = 1 - <u>
        assert -float(do.mean_gap[0]) == pytest.approx(var, rel=1e-9)
        assert beta * float(do.entropy[0]) == pytest.approx(-(beta**2) * var, rel=1e-9)
        assert beta * float(do.max_weight[0]) == pytest.approx(beta * w1 * (mean - u1), rel=1e-9)
        d2 = jax.jvp(lambda x: jax.jvp(obs_at, (x,), (jnp.ones_like(x),))[1].max_weight, (b,), (jnp.ones_like(b),))
        assert float(d2[1][0]) == pytest.approx(w1 * ((mean - u1) ** 2 - var), rel=1e-7, abs=1e-14)


def test_check_grads_order_2(x64):
    from jax.test_util import check_grads

    u = _fixed_gaps(48)

    def f(log_beta):
        o = gap_observables(u, jnp.exp(log_beta)[None], chunk=48)
        return o.max_weight[0] + o.entropy[0] + o.top_k_mass[0]

    check_grads(f, (jnp.asarray(math.log(50.0)),), order=2, modes=("fwd", "rev"))


def test_vmap_of_grad_equals_grad_of_vmap(x64):
    law = UniformSphere(3)
    keys = jax.random.split(jax.random.key(3), 4)

    def w1(key, beta):
        return sampled_observables(law, key, 1000, beta[None], chunk=256).max_weight[0]

    beta = jnp.asarray(300.0)
    a = jax.vmap(jax.grad(w1, argnums=1), in_axes=(0, None))(keys, beta)
    b = jax.grad(lambda bb: jnp.sum(jax.vmap(w1, in_axes=(0, None))(keys, bb)))(beta)
    assert float(jnp.sum(a)) == pytest.approx(float(b), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    # three lengths only: every new shape is a new XLA compilation
    u=hnp.arrays(np.float64, st.sampled_from([2, 9, 40]), elements=st.floats(0, 2)),
    beta=st.floats(0, 1e4),
    seed=st.integers(0, 2**31),
)
def test_properties_normalisation_permutation_monotonicity(u, beta, seed):
    w = np.asarray(weights(jnp.asarray(u, jnp.float32), beta), np.float64)
    assert abs(w.sum() - 1) < 1e-5
    perm = np.random.default_rng(seed).permutation(len(u))
    bs = jnp.asarray([beta, beta * 1.5 + 1.0], jnp.float32)
    a = gap_observables(jnp.asarray(u, jnp.float32), bs, top_k=2, chunk=7)
    b = gap_observables(jnp.asarray(u[perm], jnp.float32), bs, top_k=2, chunk=7)
    for name in ("max_weight", "entropy", "sum_w2", "top_k_mass", "mean_gap"):
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), rtol=1e-5, atol=1e-6)
    # max weight is non-decreasing in beta
    assert float(a.max_weight[1]) >= float(a.max_weight[0]) - 1e-6


def test_precision_float32_gap_path_vs_naive_dot(x64):
    """n = 1e6, d = 3, beta = 1e6: float32 from gaps matches float64 to 1e-4 in max weight; the naive
    float32 path (logits beta * <q,k> with <q,k> rounded to float32) does not."""
    n, beta = 10**6, 1e6
    u64 = UniformSphere(3).sample_gaps(jax.random.key(11), n)  # float64 gaps
    ref = float(gap_observables(u64, jnp.asarray([beta])).max_weight[0])
    u32 = u64.astype(jnp.float32)
    f32 = float(gap_observables(u32, jnp.asarray([beta], jnp.float32)).max_weight[0])
    assert abs(f32 / ref - 1) < 1e-4
    t32 = (1.0 - u64).astype(jnp.float32)  # what a float32 dot product of unit vectors can hold
    naive = float(jnp.max(jax.nn.softmax(jnp.float32(beta) * t32)))
    # rounding <q,k> near 1 to float32 (spacing 6e-8) moves logits by ~beta * 6e-8 = 0.06:
    # the naive path misses the 1e-4 target by more than an order of magnitude
    assert abs(naive / ref - 1) > 1e-3


def test_float32_is_default_and_float64_with_x64(dtype):
    obs = sampled_observables(UniformSphere(3), jax.random.key(0), 100, jnp.asarray([1.0]))
    assert obs.max_weight.dtype == jnp.dtype(dtype)
