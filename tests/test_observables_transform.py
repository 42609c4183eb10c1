"""Observables under a logit transform, weights proportional to exp(f(beta t)) (docs/theory.md §j).

References: a NumPy float64 softmax of the transformed logits f(beta t_i) written here (max-shifted, the
plain way), the exact identities d log Z / d beta = E_w[f'(beta t) t] and
d^2 log Z / d beta^2 = Var_w(f'(beta t) t) + E_w[f''(beta t) t^2] (Z = sum_i exp(f(beta t_i))), and mpmath for
the stable soft-cap drop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from phasejax._checks import InputError
from phasejax.laws import UniformSphere
from phasejax.observables import LogitTransform, SoftCap, gap_observables, key_observables, sampled_observables

BETAS = np.array([0.0, 1.0, 20.0, 60.0, 200.0, 1e4])


def _np_reference(gaps, beta, cap, top_k=3):
    t = 1.0 - gaps
    logit = cap * np.tanh(beta * t / cap)
    a = logit - logit.max()
    w = np.exp(a) / np.exp(a).sum()
    lse = logit.max() + np.log(np.exp(a).sum())
    fp = 1.0 - np.tanh(beta * t / cap) ** 2  # f'(beta t) = sech^2
    fpp = -2.0 / cap * np.tanh(beta * t / cap) * fp
    x = fp * t
    return {
        "max_weight": w.max(),
        "entropy": -np.sum(w[w > 0] * np.log(w[w > 0])),
        "sum_w2": np.sum(w * w),
        "top_k_mass": np.sort(w)[::-1][:top_k].sum(),
        "mean_gap": np.sum(w * gaps),
        "var_gap": np.sum(w * gaps**2) - np.sum(w * gaps) ** 2,
        "log_partition": lse - cap * np.tanh(beta / cap),
        "dlogZ": np.sum(w * x),
        "d2logZ": np.sum(w * x * x) - np.sum(w * x) ** 2 + np.sum(w * fpp * t * t),
        "dW1": w.max() * (x[np.argmax(w)] - np.sum(w * x)),
    }


def _gaps(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 2.0, n) ** 2 / 2.0  # many small gaps, shuffled: the running minimum drops across chunks


@pytest.mark.parametrize("cap", [5.0, 50.0])
def test_matches_numpy_softmax_of_capped_logits(dtype, cap):
    gaps = _gaps()
    obs = gap_observables(jnp.asarray(gaps, dtype), jnp.asarray(BETAS, dtype), top_k=3, chunk=64,
                          transform=SoftCap(cap))
    rtol = 2e-5 if dtype == "float32" else 1e-11
    for i, b in enumerate(BETAS):
        ref = _np_reference(gaps, b, cap)
        for name in ("max_weight", "sum_w2", "top_k_mass", "mean_gap", "log_partition"):
            np.testing.assert_allclose(float(getattr(obs, name)[i]), ref[name], rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=f"{name} beta={b}")
        np.testing.assert_allclose(float(obs.entropy[i]), ref["entropy"], rtol=rtol, atol=rtol, err_msg=f"H {b}")
        np.testing.assert_allclose(float(obs.var_gap[i]), ref["var_gap"], rtol=50 * rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(float(obs.effective_keys[i]), np.exp(ref["entropy"]), rtol=5 * rtol)
        np.testing.assert_allclose(float(obs.inv_sum_w2[i]), 1.0 / ref["sum_w2"], rtol=5 * rtol)


def test_susceptibility_identities_autodiff(dtype):
    """d log Z / d beta = E_w[f'(beta t) t], its second derivative, and d W_(1) / d beta, by forward-mode autodiff
    (each output depends on its own beta only, so one jvp with unit tangents gives every derivative)."""
    gaps = jnp.asarray(_gaps(200, 1), dtype)

    @jax.jit
    def derivatives(b, cap):
        f = SoftCap(cap)

        def obs(b):
            o = gap_observables(gaps, b, chunk=48, transform=f)
            return o.log_partition + f(b), o.max_weight

        def d_obs(b):
            return jax.jvp(obs, (b,), (jnp.ones_like(b),))[1]

        (d1, dw), (d2, _) = d_obs(b), jax.jvp(d_obs, (b,), (jnp.ones_like(b),))[1]
        return d1, d2, dw

    # f'(beta t) t and its moments are O(1) at most: float32 rounding gives ~1e-6 absolute
    rtol, atol = (1e-4, 5e-6) if dtype == "float32" else (1e-10, 1e-13)
    bs = np.array([0.5, 7.0, 40.0, 150.0])
    for cap in (5.0, 50.0):
        d1, d2, dw = (np.asarray(x) for x in derivatives(jnp.asarray(bs, dtype), jnp.asarray(cap, dtype)))
        for i, b in enumerate(bs):
            ref = _np_reference(np.asarray(gaps, np.float64), b, cap)
            np.testing.assert_allclose(d1[i], ref["dlogZ"], rtol=rtol, atol=atol, err_msg=f"{cap} {b}")
            np.testing.assert_allclose(d2[i], ref["d2logZ"], rtol=20 * rtol, atol=atol, err_msg=f"{cap} {b}")
            np.testing.assert_allclose(dw[i], ref["dW1"], rtol=20 * rtol, atol=atol, err_msg=f"{cap} {b}")


def test_default_path_and_limits(x64):
    gaps = jnp.asarray(_gaps(500, 2))
    b = jnp.asarray([0.0, 3.0, 300.0, 3000.0])
    base = gap_observables(gaps, b, chunk=128)
    same = gap_observables(gaps, b, chunk=128, transform=None)
    for name in ("max_weight", "entropy", "sum_w2", "top_k_mass", "mean_gap", "var_gap", "log_partition"):
        assert np.array_equal(np.asarray(getattr(base, name)), np.asarray(getattr(same, name))), name
    # a cap far above every logit is the identity to (beta / cap)^2
    big = gap_observables(gaps, b, chunk=128, transform=SoftCap(1e9))
    for name in ("max_weight", "entropy", "sum_w2", "top_k_mass", "mean_gap", "log_partition"):
        np.testing.assert_allclose(np.asarray(getattr(big, name)), np.asarray(getattr(base, name)), rtol=1e-9,
                                   atol=1e-12, err_msg=name)

    class Scale(LogitTransform):  # f(x) = s x with the base class's plain drop: the head at beta s
        s: float

        def __call__(self, x):
            return self.s * x

        def derivative(self, x):
            return self.s + 0 * x

    lin = gap_observables(gaps, b, chunk=128, transform=Scale(2.5))
    ref = gap_observables(gaps, 2.5 * b, chunk=128)
    for name in ("max_weight", "entropy", "sum_w2", "top_k_mass", "mean_gap", "var_gap"):
        np.testing.assert_allclose(np.asarray(getattr(lin, name)), np.asarray(getattr(ref, name)), rtol=1e-10,
                                   atol=1e-13, err_msg=name)


def test_soft_cap_drop_is_stable_in_float32():
    """cap (tanh(a/cap) - tanh(b/cap)) from the tanh difference identity, against mpmath; the plain
    difference of the two capped logits loses the digits (float32, cap 1e5, logits near the cap)."""
    cap, beta = 1e5, 2e5
    m = 1e-3
    u = np.array([1e-3, 1.0001e-3, 1.01e-3, 2e-3, 0.1, 1.0])
    f = SoftCap(cap)
    hi, lo, delta = (jnp.asarray(v, jnp.float32) for v in (beta * (1 - m), beta * (1 - u), beta * (u - m)))
    got = np.asarray(f.drop(hi, lo, delta), np.float64)
    mpmath.mp.dps = 40
    ref = np.array([float(cap * (mpmath.tanh(mpmath.mpf(beta) * (1 - mpmath.mpf(m)) / cap)
                                 - mpmath.tanh(mpmath.mpf(beta) * (1 - mpmath.mpf(float(x))) / cap))) for x in u])
    # the inputs are float32-rounded (u - m to 1 ulp): compare at that precision
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-30)
    naive = np.asarray(f(hi) - f(lo), np.float64)
    assert np.max(np.abs(naive[1:3] - ref[1:3]) / ref[1:3]) > 1e-2  # what the identity avoids


def test_keys_and_sampled_paths(x64):
    law = UniformSphere(3)
    key = jax.random.key(3)
    n, chunk = 1000, 256
    f = SoftCap(30.0)
    b = jnp.asarray([2.0, 40.0, 400.0])
    obs = sampled_observables(law, key, n, b, chunk=chunk, transform=f)
    u = jnp.concatenate([law.sample_gaps(jax.random.fold_in(key, c), chunk, dtype=jnp.float64)
                         for c in range(-(-n // chunk))])[:n]
    ref = gap_observables(u, b, chunk=chunk, transform=f)
    for name in ("max_weight", "entropy", "sum_w2", "mean_gap", "log_partition"):
        np.testing.assert_allclose(np.asarray(getattr(obs, name)), np.asarray(getattr(ref, name)), rtol=1e-12)
    # keys: the output y = sum w k under the capped weights, against NumPy
    q = np.array([0.0, 0.0, 1.0])
    keys = np.asarray(law.sample_keys(jax.random.key(4), jnp.asarray(q), 400), np.float64)
    ko = key_observables(jnp.asarray(q), jnp.asarray(keys), b, chunk=100, transform=f)
    assert ko.bias is None
    for i, bb in enumerate(np.asarray(b)):
        logit = 30.0 * np.tanh(bb * (keys @ q) / 30.0)
        w = np.exp(logit - logit.max())
        w /= w.sum()
        np.testing.assert_allclose(np.asarray(ko.output[i]), w @ keys, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(float(ko.max_weight[i]), w.max(), rtol=1e-10)


@pytest.mark.bad_input
def test_bad_transform():
    with pytest.raises(InputError, match="transform must be None or a phasejax.observables.LogitTransform"):
        gap_observables(jnp.asarray([0.0, 1.0]), 1.0, transform="tanh")
    with pytest.raises(InputError, match="cap"):
        SoftCap(-1.0)
